package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/tinylib/msgp/msgp"
)

// formatVersion is the first byte of every log record written. NEVER CHANGE the meaning of a
// version: a new encoding needs a new number and a decoder for the old one (see doc.go).
// Version 2 is version 1 plus the operations DeleteEntries and SetPacketIDs; records of
// both versions are read.
const formatVersion = 2

// opKind is the first byte of an operation in a record. NEVER CHANGE the values: they are on disk.
type opKind byte

const (
	opPutSession     opKind = 1
	opDeleteSession  opKind = 2
	opDisconnected   opKind = 3
	opConnected      opKind = 4
	opPutSub         opKind = 5
	opDeleteSub      opKind = 6
	opPutMessage     opKind = 7
	opPutEntry       opKind = 8
	opReleaseEntry   opKind = 9
	opDeleteEntry    opKind = 10
	opPutInQoS2      opKind = 11
	opDeleteInQoS2   opKind = 12
	opPutRetained    opKind = 13
	opDeleteRetained opKind = 14
	opDeleteEntries  opKind = 15 // version 2 on
	opSetPacketIDs   opKind = 16 // version 2 on
	opLimit                 = 17 // one past the last kind

	// lastV1Kind is the last operation kind of format version 1.
	lastV1Kind = opDeleteRetained
)

var opNames = [opLimit]string{"", "PutSession", "DeleteSession", "Disconnected", "Connected",
	"PutSub", "DeleteSub", "PutMessage", "PutEntry", "ReleaseEntry", "DeleteEntry", "PutInQoS2",
	"DeleteInQoS2", "PutRetained", "DeleteRetained", "DeleteEntries", "SetPacketIDs"}

func (k opKind) String() string {
	if k > 0 && k < opLimit {
		return opNames[k]
	}
	return fmt.Sprintf("op(%d)", byte(k))
}

// Errors of the package. Compare with errors.Is.
var (
	// ErrBadRecord reports a log record or checkpoint value that does not decode.
	ErrBadRecord = errors.New("store: bad record")
	// ErrInvalid reports a batch operation that cannot be stored (an empty client id or topic,
	// a message without an ID); Commit returns it and writes nothing.
	ErrInvalid = errors.New("store: invalid operation")
	// ErrDamaged reports a checkpoint.db that is not a valid checkpoint: garbage, another
	// program's file, a newer layout, or a value that does not decode.
	ErrDamaged = errors.New("store: checkpoint damaged")
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("store: closed")
)

// Batch collects changes that become durable together: Store.Commit writes a whole batch as ONE
// log record, so a power cut keeps all of it or none of it. The operations are encoded as they
// are added, so a Batch holds no reference to the values passed to it. A Batch is not safe for
// concurrent use; the zero value is an empty batch.
type Batch struct {
	buf []byte // formatVersion, then the encoded operations
	n   int
	err error // the first invalid operation; Commit returns it

	// The last operation, which DeleteEntry and SetPacketID may extend instead of adding one.
	last       opKind
	lastAt     int    // offset of its kind byte in buf
	lastClient string // its client id
	listAt     int    // DeleteEntries, SetPacketIDs: offset of its array16 header in buf
	listLen    int    // and the number of array elements
}

// Size returns the encoded size of the batch in bytes: one log record, which may not exceed
// wal.MaxRecordSize.
func (b *Batch) Size() int { return len(b.buf) }

// Len returns the number of operations in the batch.
func (b *Batch) Len() int { return b.n }

// keptBatchBuffer is the largest buffer Reset keeps: a batch reused for every publication
// must not hold the room of the largest message it ever carried.
const keptBatchBuffer = 64 << 10

// Reset empties the batch, keeping its buffer for reuse unless it grew past 64 KiB.
func (b *Batch) Reset() {
	if cap(b.buf) > keptBatchBuffer {
		b.buf = nil
	}
	b.buf, b.n, b.err, b.last, b.lastClient = b.buf[:0], 0, nil, 0, ""
}

// begin starts an operation of kind k.
func (b *Batch) begin(k opKind) {
	if len(b.buf) == 0 {
		b.buf = append(b.buf, formatVersion)
	}
	b.last, b.lastAt = k, len(b.buf)
	b.buf = append(b.buf, byte(k))
	b.n++
}

// fail records the first invalid operation.
func (b *Batch) fail(k opKind, what string) {
	if b.err == nil {
		b.err = fmt.Errorf("%w: %v with %s", ErrInvalid, k, what)
	}
}

// client starts operation k on clientID.
func (b *Batch) client(k opKind, clientID string) {
	if clientID == "" {
		b.fail(k, "an empty client id")
	}
	b.begin(k)
	b.lastClient = clientID
	b.buf = msgp.AppendString(b.buf, clientID)
}

// marshaled takes the buffer a record type's MarshalMsg appended its encoding to, and its
// error, for the operation begun last. (A direct call, not through msgp.Marshaler: the record
// passed to the interface would escape to the heap.)
func (b *Batch) marshaled(buf []byte, err error) {
	b.buf = buf
	if err != nil && b.err == nil {
		b.err = fmt.Errorf("%w: %v: %w", ErrInvalid, b.last, err)
	}
}

// PutSession creates or replaces a session (its will, expiry, protocol version...).
func (b *Batch) PutSession(s *Session) {
	if s.ClientID == "" {
		b.fail(opPutSession, "an empty client id")
	}
	if s.Will != nil && len(s.Will.User) > MaxUserProperties {
		b.fail(opPutSession, "too many will user properties")
	}
	b.begin(opPutSession)
	b.marshaled(s.MarshalMsg(b.buf))
}

// DeleteSession ends a session: its subscriptions, queue entries and inbound QoS 2 packet ids go
// with it.
func (b *Batch) DeleteSession(clientID string) {
	b.client(opDeleteSession, clientID)
}

// Disconnected records that the session's connection ended at at (its expiry clock starts).
func (b *Batch) Disconnected(clientID string, at time.Time) {
	b.client(opDisconnected, clientID)
	b.buf = msgp.AppendInt64(b.buf, at.UnixNano())
}

// Connected records that the session has a connection again (DisconnectedAt = 0).
func (b *Batch) Connected(clientID string) {
	b.client(opConnected, clientID)
}

// PutSub creates or replaces the subscription (s.Group, s.Filter) of a session.
func (b *Batch) PutSub(clientID string, s Sub) {
	b.client(opPutSub, clientID)
	b.marshaled(s.MarshalMsg(b.buf))
}

// DeleteSub removes the subscription (group, filter) of a session.
func (b *Batch) DeleteSub(clientID, group, filter string) {
	b.client(opDeleteSub, clientID)
	b.buf = msgp.AppendString(b.buf, group)
	b.buf = msgp.AppendString(b.buf, filter)
}

// PutMessage stores a message body once; entries and retained topics refer to it by m.ID. A body
// is kept while an entry or a retained topic refers to it, and deleted at the checkpoint after
// its last reference goes, so a PutMessage must be in the same batch as (or an earlier batch
// than) the first reference, and a body whose last reference was deleted in an earlier batch
// must be put again before it is referred to anew. Putting a body again is harmless.
func (b *Batch) PutMessage(m *Message) {
	if m.ID == 0 {
		b.fail(opPutMessage, "message ID 0")
	}
	if len(m.User) > MaxUserProperties {
		b.fail(opPutMessage, "too many user properties")
	}
	b.begin(opPutMessage)
	b.marshaled(m.MarshalMsg(b.buf))
}

// PutEntry creates or replaces the entry e.Seq in a session's queue. e.Msg is ignored: the entry
// refers to the message e.MsgID, which must be stored (see PutMessage).
func (b *Batch) PutEntry(clientID string, e *Entry) {
	b.client(opPutEntry, clientID)
	b.marshaled(e.MarshalMsg(b.buf))
}

// ReleaseEntry records that the PUBREC of the QoS 2 entry seq arrived with packetID: on recovery
// the entry is resent as a PUBREL, never as the PUBLISH.
func (b *Batch) ReleaseEntry(clientID string, seq uint64, packetID uint16) {
	b.client(opReleaseEntry, clientID)
	b.buf = msgp.AppendUint64(b.buf, seq)
	b.buf = msgp.AppendUint16(b.buf, packetID)
}

// DeleteEntry removes the entry seq from a session (acknowledged, expired, evicted or moved).
// Consecutive deletions of one session's entries share one operation.
func (b *Batch) DeleteEntry(clientID string, seq uint64) {
	switch {
	case b.extends(opDeleteEntries, clientID, 1):
	case b.last == opDeleteEntry && b.lastClient == clientID && clientID != "":
		// Turn the single deletion before into a list of two.
		_, rest, err := msgp.ReadStringZC(b.buf[b.lastAt+1:])
		var prev uint64
		if err == nil {
			prev, _, err = msgp.ReadUint64Bytes(rest)
		}
		if err != nil { // cannot happen: the batch wrote it
			b.fail(opDeleteEntry, err.Error())
			return
		}
		b.buf = b.buf[:b.lastAt]
		b.n--
		b.startList(opDeleteEntries, clientID)
		b.buf = msgp.AppendUint64(b.buf, prev)
		b.listLen++
	default:
		b.client(opDeleteEntry, clientID)
		b.buf = msgp.AppendUint64(b.buf, seq)
		return
	}
	b.buf = msgp.AppendUint64(b.buf, seq)
	b.listLen++
	binary.BigEndian.PutUint16(b.buf[b.listAt+1:], uint16(b.listLen))
}

// SetPacketID records the packet id an entry of a session was sent with (QoS 1; a QoS 2
// entry is put again whole, see PutEntry), for a resend with the same id after a restart.
// Consecutive ones of a session share one operation.
func (b *Batch) SetPacketID(clientID string, seq uint64, packetID uint16) {
	if !b.extends(opSetPacketIDs, clientID, 2) {
		b.startList(opSetPacketIDs, clientID)
	}
	b.buf = msgp.AppendUint64(b.buf, seq)
	b.buf = msgp.AppendUint16(b.buf, packetID)
	b.listLen += 2
	binary.BigEndian.PutUint16(b.buf[b.listAt+1:], uint16(b.listLen))
}

// maxList is the most elements a list operation holds (the decoder's arrays limit is 65536).
const maxList = 1 << 15

// extends reports whether the last operation is the list operation k of clientID with room
// for n more elements.
func (b *Batch) extends(k opKind, clientID string, n int) bool {
	return b.last == k && b.lastClient == clientID && b.listLen+n <= maxList
}

// startList begins list operation k of clientID with an empty array16 header.
func (b *Batch) startList(k opKind, clientID string) {
	b.client(k, clientID)
	b.listAt, b.listLen = len(b.buf), 0
	b.buf = append(b.buf, 0xdc, 0, 0)
}

// PutInQoS2 records an inbound QoS 2 packet id awaiting PUBREL.
func (b *Batch) PutInQoS2(clientID string, packetID uint16) {
	b.client(opPutInQoS2, clientID)
	b.buf = msgp.AppendUint16(b.buf, packetID)
}

// DeleteInQoS2 forgets an inbound QoS 2 packet id (its PUBREL arrived).
func (b *Batch) DeleteInQoS2(clientID string, packetID uint16) {
	b.client(opDeleteInQoS2, clientID)
	b.buf = msgp.AppendUint16(b.buf, packetID)
}

// PutRetained makes msgID the retained message of topic. The message must be in this or an
// earlier batch (see PutMessage).
func (b *Batch) PutRetained(topic string, msgID uint64) {
	b.topic(opPutRetained, topic)
	b.buf = msgp.AppendUint64(b.buf, msgID)
}

// DeleteRetained clears the retained message of topic.
func (b *Batch) DeleteRetained(topic string) {
	b.topic(opDeleteRetained, topic)
}

func (b *Batch) topic(k opKind, topic string) {
	if topic == "" {
		b.fail(k, "an empty topic")
	}
	b.begin(k)
	b.buf = msgp.AppendString(b.buf, topic)
}

// op is one decoded operation. Which fields are set depends on kind; raw is the encoding of the
// record type (Session, Sub, Message, Entry) as it appeared in the log record, valid as long as
// the record is.
type op struct {
	kind     opKind
	key      string   // client id (PutSession: Session.ClientID), or topic for the retained operations
	group    string   // DeleteSub
	filter   string   // DeleteSub
	seq      uint64   // ReleaseEntry, DeleteEntry
	list     []uint64 // DeleteEntries: seqs; SetPacketIDs: seq, packet id, seq, packet id...
	packetID uint16   // ReleaseEntry, PutInQoS2, DeleteInQoS2
	at       int64    // Disconnected
	msgID    uint64   // PutRetained; PutMessage and PutEntry: the ID in raw
	raw      []byte
	entry    Entry   // PutEntry
	sub      Sub     // PutSub
	session  Session // PutSession
	msg      Message // PutMessage
}

// decodeOps decodes every operation of the log record rec into ops, which it reuses (an op
// may keep buffers of an earlier decode; decodeOp sets every field its kind uses), and returns
// them in order. Client ids and topics come from keys (see internKey), which decodeOps adds
// to. A record that does not decode in full gives an error wrapping ErrBadRecord that names
// the byte offset, and no operations: callers apply all of a record or none.
func decodeOps(rec []byte, ops []op, keys map[string]string) ([]op, error) {
	ops = ops[:0]
	if len(rec) == 0 {
		return nil, fmt.Errorf("%w: empty record", ErrBadRecord)
	}
	last := opKind(opLimit - 1)
	switch rec[0] {
	case 1:
		last = lastV1Kind
	case formatVersion:
	default:
		return nil, fmt.Errorf("%w: format version %d at byte 0, want 1 to %d", ErrBadRecord, rec[0], formatVersion)
	}
	for off := 1; off < len(rec); {
		if len(ops) < cap(ops) {
			ops = ops[:len(ops)+1]
		} else {
			ops = append(ops, op{})
		}
		o := &ops[len(ops)-1]
		rest, err := decodeOp(rec[off:], o, keys)
		if err == nil && o.kind > last {
			err = fmt.Errorf("operation of a later format version than %d", rec[0])
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v at byte %d: %w", ErrBadRecord, o.kind, off, err)
		}
		off = len(rec) - len(rest)
	}
	return ops, nil
}

// decodeOp decodes one operation from the front of b into o and returns the rest.
func decodeOp(b []byte, o *op, keys map[string]string) (rest []byte, err error) {
	o.kind = opKind(b[0])
	if o.kind == 0 || o.kind >= opLimit {
		return nil, errors.New("unknown operation")
	}
	b = b[1:]
	switch o.kind {
	case opPutSession:
		if b, err = decodeRaw(b, o, &o.session); err == nil {
			o.key = o.session.ClientID
		}
	case opPutMessage:
		if b, err = decodeRaw(b, o, &o.msg); err == nil {
			if o.msgID = o.msg.ID; o.msgID == 0 {
				err = errors.New("message ID 0")
			}
		}
		return b, err
	default:
		var key []byte
		if key, b, err = msgp.ReadStringZC(b); err == nil {
			o.key = internKey(keys, key)
		}
	}
	if err == nil && o.key == "" {
		err = errors.New("empty client id or topic")
	}
	if err != nil {
		return nil, err
	}
	switch o.kind {
	case opPutSub:
		return decodeRaw(b, o, &o.sub)
	case opPutEntry:
		if b, err = decodeRaw(b, o, &o.entry); err == nil {
			o.msgID = o.entry.MsgID
		}
	case opDisconnected:
		o.at, b, err = msgp.ReadInt64Bytes(b)
	case opConnected:
		o.at = 0 // connected: not disconnected at any time
	case opDeleteSub:
		if o.group, b, err = msgp.ReadStringBytes(b); err == nil {
			o.filter, b, err = msgp.ReadStringBytes(b)
		}
	case opReleaseEntry:
		if o.seq, b, err = msgp.ReadUint64Bytes(b); err == nil {
			o.packetID, b, err = msgp.ReadUint16Bytes(b)
		}
	case opDeleteEntry:
		o.seq, b, err = msgp.ReadUint64Bytes(b)
	case opDeleteEntries, opSetPacketIDs:
		b, err = decodeList(b, o)
	case opPutInQoS2, opDeleteInQoS2:
		o.packetID, b, err = msgp.ReadUint16Bytes(b)
	case opPutRetained:
		o.msgID, b, err = msgp.ReadUint64Bytes(b)
	}
	return b, err
}

// decodeList decodes the array of a DeleteEntries or SetPacketIDs into o.list: seqs, or
// (seq, packet id) pairs.
func decodeList(b []byte, o *op) ([]byte, error) {
	n, b, err := msgp.ReadArrayHeaderBytes(b)
	switch {
	case err != nil:
		return nil, err
	case n == 0 || n > maxList || int(n) > len(b): // every element takes a byte at least
		return nil, fmt.Errorf("list of %d elements", n)
	case o.kind == opSetPacketIDs && n%2 != 0:
		return nil, errors.New("odd number of elements in a list of pairs")
	}
	o.list = o.list[:0]
	for i := range n {
		var v uint64
		if o.kind == opSetPacketIDs && i%2 == 1 {
			var id uint16
			id, b, err = msgp.ReadUint16Bytes(b)
			v = uint64(id)
		} else {
			v, b, err = msgp.ReadUint64Bytes(b)
		}
		if err != nil {
			return nil, err
		}
		o.list = append(o.list, v)
	}
	return b, nil
}

// internKey returns key as a string, allocated only the first time keys meets it: a
// checkpoint decodes a client id or topic for nearly every operation, and a few thousand
// distinct ones at most. keys may be nil: then each is allocated.
func internKey(keys map[string]string, key []byte) string {
	if keys == nil {
		return string(key)
	}
	if s, ok := keys[string(key)]; ok {
		return s
	}
	s := string(key)
	keys[s] = s
	return s
}

// decodeRaw decodes a record type from the front of b into v and keeps its bytes in o.raw.
func decodeRaw(b []byte, o *op, v msgp.Unmarshaler) ([]byte, error) {
	rest, err := v.UnmarshalMsg(b)
	if err != nil {
		return nil, err
	}
	o.raw = b[:len(b)-len(rest)]
	return rest, nil
}
