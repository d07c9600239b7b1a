package store

import "github.com/tinylib/msgp/msgp"

//go:generate go tool msgp -io=false -tests=false

// The record types below are encoded as msgpack arrays (tuples): the field order is the wire
// order. NEVER reorder, insert or remove a field: that changes the meaning of bytes already on
// disk. A change needs a new formatVersion (see doc.go) and a decoder for the old one.

//msgp:tuple UserProperty Message Session Sub Entry
//msgp:limit arrays:65536
//msgp:ignore Body

// MaxUserProperties is the most user properties a stored message may have: the decoder's
// arrays limit (the msgp:limit directive above). Batch.PutMessage and PutSession refuse more.
const MaxUserProperties = 65536

// UserProperty is one MQTT 5.0 user property, forwarded from publisher to subscriber.
type UserProperty struct {
	Key, Value string
}

// Message is a stored application message. Its body is stored once and shared by every queue
// entry and retained index that refers to it by ID.
type Message struct {
	ID      uint64 // assigned by the engine via Store.NextMessageID; never 0 for stored messages
	Topic   string
	Payload Body
	QoS     byte
	Retain  bool
	From    string // publisher client id (5.0 No Local)
	// Expires is in unix nanoseconds, 0 = never. In a Session's Will a negative value is
	// relative: the will runs out -Expires nanoseconds after the session's disconnection
	// (written while its client is connected, when that time is not known yet).
	Expires int64

	// 5.0 properties forwarded to subscribers.
	PayloadFormat    byte
	HasPayloadFormat bool
	ContentType      string
	ResponseTopic    string
	CorrelationData  []byte
	User             []UserProperty
}

// Session is the durable part of a persistent session.
type Session struct {
	ClientID       string
	Version        byte     // protocol level of the last connection (3, 4, 5)
	Expiry         int64    // nanoseconds after disconnect; 0 = never expires
	DisconnectedAt int64    // unix ns when the connection ended; 0 while connected
	Will           *Message // pending will, nil if none (ID may be 0: wills are stored inline)
	WillDelay      int64    // nanoseconds
}

// Sub is one subscription of a session. Group is the shared-subscription group name, "" for an
// ordinary subscription; (Group, Filter) identifies the subscription within its session.
type Sub struct {
	Filter            string
	Group             string
	QoS               byte
	NoLocal           bool
	RetainAsPublished bool
	RetainHandling    byte
	SubID             uint32
}

// Entry is one message in one session's queue or in flight.
type Entry struct {
	Seq    uint64   // per-session, increasing; orders the queue
	MsgID  uint64   // the Message it delivers
	Msg    *Message `msg:"-"` // filled in by Open's State (shared per MsgID); ignored when writing
	QoS    byte     // granted QoS
	Retain bool     // RETAIN flag to send
	SubIDs []uint32 // 5.0 subscription identifiers
	Group  string   // shared subscription it came through ("" if none)
	Filter string
	// PacketID is the packet identifier of a QoS 2 delivery whose PUBREC was received.
	PacketID uint16
	// Released is set once PUBREC was received: on recovery resend PUBREL with PacketID, not
	// the PUBLISH.
	Released bool
}

// Body is a message payload, encoded as msgpack bin. It has a codec of its own because the
// generated one holds every byte slice to the arrays limit above (64 KiB), which is there so
// that a damaged length cannot make a decoder allocate much; a body may be as long as a log
// record, and its length is checked against the bytes that follow it instead.
type Body []byte

// MarshalMsg appends the body's encoding to o.
func (b Body) MarshalMsg(o []byte) ([]byte, error) { return msgp.AppendBytes(o, b), nil }

// UnmarshalMsg decodes a body from the front of bts into b, reusing its array, and returns the
// rest.
func (b *Body) UnmarshalMsg(bts []byte) ([]byte, error) {
	n, rest, err := msgp.ReadBytesHeader(bts)
	if err != nil {
		return nil, err
	}
	if uint64(n) > uint64(len(rest)) {
		return nil, msgp.ErrShortBytes
	}
	*b = append((*b)[:0], rest[:n]...)
	return rest[n:], nil
}

// Msgsize returns an upper bound of the body's encoded size.
func (b Body) Msgsize() int { return msgp.BytesPrefixSize + len(b) }
