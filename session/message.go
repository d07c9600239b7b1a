package session

import (
	"time"

	"edgebroker/codec"
	"edgebroker/session/topic"
	"edgebroker/wal"
)

// Message is one application message as published. It is immutable once routed: every queue that
// holds it shares the same *Message, so its body is stored once. It is kept small: offline
// queues hold many of them.
type Message struct {
	Topic   string
	Payload []byte
	// From is the publisher's client identifier, for the 5.0 No Local option.
	From string
	// Props are the 5.0 properties forwarded unchanged to subscribers (payload format, content
	// type, response topic, correlation data, user properties); nil when there are none.
	Props *codec.Properties
	// expires is when the 5.0 Message Expiry Interval runs out, in unix nanoseconds; 0 = never.
	expires int64
	// willExpiry is a will's Message Expiry Interval, which runs from its publication
	// (publishNow sets expires then); 0 when none, or not known (a will recovered from the
	// store, whose expires was set for its publication when it was stored).
	willExpiry time.Duration
	// id names the body in the store; set before the message is routed when the broker
	// persists.
	id     uint64
	QoS    byte
	Retain bool
	sys    bool // a $SYS value: never stored
}

// forwardedProps is the set of PUBLISH properties a broker passes from publisher to subscriber
// unchanged [MQTT-3.3.2-4] and friends; topic alias and subscription identifiers are per
// connection and the expiry interval is recomputed.
const forwardedProps = codec.PropSet(1<<codec.PropPayloadFormat | 1<<codec.PropContentType |
	1<<codec.PropResponseTopic | 1<<codec.PropCorrelationData)

// newMessage builds a Message from a decoded PUBLISH whose topic alias has been resolved.
func newMessage(p *codec.Publish, from string, now time.Time) *Message {
	m := &Message{Topic: p.Topic, Payload: p.Payload, QoS: p.QoS, Retain: p.Retain, From: from}
	if fwd := p.Props.Present & forwardedProps; fwd != 0 || len(p.Props.User) > 0 {
		m.Props = &codec.Properties{
			Present:         fwd,
			PayloadFormat:   p.Props.PayloadFormat,
			ContentType:     p.Props.ContentType,
			ResponseTopic:   p.Props.ResponseTopic,
			CorrelationData: p.Props.CorrelationData,
			User:            p.Props.User,
		}
	}
	if p.Props.Present.Has(codec.PropMessageExpiry) {
		m.expires = now.Add(time.Duration(p.Props.MessageExpiry) * time.Second).UnixNano()
	}
	return m
}

// expired reports whether the message's expiry interval has passed at now.
func (m *Message) expired(now time.Time) bool {
	return m.expires != 0 && now.UnixNano() >= m.expires
}

// delivery is one message on its way to one session: a queue entry and, once sent, an in-flight
// entry. The QoS is the granted one (the lower of publish and subscription QoS).
type delivery struct {
	msg    *Message
	qos    byte
	retain bool         // the RETAIN flag to send: retained-on-subscribe or retain-as-published
	subIDs []uint32     // 5.0 subscription identifiers of the matching subscription(s)
	shared *topic.Group // the shared-subscription group it came through, nil if none
	seq    uint64       // its entry in the store; 0 when not stored (clean session, QoS 0)
	held   bool         // guarded by Session.mu: not sendable until its record is written
	// evicted is set (guarded by Session.mu) when drop-oldest, or a shared subscription's
	// redistribution, took it off its queue while held: its router, whose record puts it,
	// writes its deletion after that record.
	evicted bool
	// pos is the log position of the record that stored it (0: none yet); once the store's
	// checkpoint reaches it, the body may be evicted from RAM. Guarded by Session.mu.
	pos wal.Pos
	// fromDisk is set, once and for all when it is built, when it was read back from the
	// store's checkpoint: once sent, its body leaves RAM (bodyOut, guarded by Session.mu)
	// until a resend needs it again.
	fromDisk, bodyOut bool
}
