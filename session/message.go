package session

import (
	"time"

	"edgebroker/codec"
	"edgebroker/session/topic"
)

// Message is one application message as published. It is immutable once routed: every queue that
// holds it shares the same *Message, so its body is stored once.
type Message struct {
	Topic   string
	Payload []byte
	QoS     byte
	Retain  bool
	// From is the publisher's client identifier, for the 5.0 No Local option.
	From string
	// Expires is when the 5.0 Message Expiry Interval runs out; zero means never.
	Expires time.Time
	// Props are the 5.0 properties forwarded unchanged to subscribers: payload format, content
	// type, response topic, correlation data and user properties.
	Props codec.Properties
}

// forwardedProps is the set of PUBLISH properties a broker passes from publisher to subscriber
// [MQTT-3.3.2-4] and friends; topic alias and subscription identifiers are per connection.
const forwardedProps = codec.PropSet(1<<codec.PropPayloadFormat | 1<<codec.PropContentType |
	1<<codec.PropResponseTopic | 1<<codec.PropCorrelationData)

// newMessage builds a Message from a decoded PUBLISH whose topic alias has been resolved.
func newMessage(p *codec.Publish, from string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from}
	m.Props.Present = p.Props.Present & forwardedProps
	m.Props.PayloadFormat = p.Props.PayloadFormat
	m.Props.ContentType = p.Props.ContentType
	m.Props.ResponseTopic = p.Props.ResponseTopic
	m.Props.CorrelationData = p.Props.CorrelationData
	m.Props.User = p.Props.User
	if p.Props.Present.Has(codec.PropMessageExpiry) {
		m.Expires = now.Add(time.Duration(p.Props.MessageExpiry) * time.Second)
	}
	return m
}

// expired reports whether the message's expiry interval has passed at now.
func (m *Message) expired(now time.Time) bool {
	return !m.Expires.IsZero() && !now.Before(m.Expires)
}

// size approximates the memory the message holds, for statistics and budgets.
func (m *Message) size() int {
	n := len(m.Topic) + len(m.Payload) + len(m.From) + 96
	n += len(m.Props.ContentType) + len(m.Props.ResponseTopic) + len(m.Props.CorrelationData)
	for _, u := range m.Props.User {
		n += len(u.Key) + len(u.Value) + 32
	}
	return n
}

// delivery is one message on its way to one session: a queue entry and, once sent, an in-flight
// entry. The QoS is the granted one (the lower of publish and subscription QoS).
type delivery struct {
	msg    *Message
	qos    byte
	retain bool         // the RETAIN flag to send: retained-on-subscribe or retain-as-published
	subIDs []uint32     // 5.0 subscription identifiers of the matching subscription(s)
	shared *topic.Group // the shared-subscription group it came through, nil if none
}
