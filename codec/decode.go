package codec

import (
	"fmt"
	"io"
	"strings"
	"unsafe"
)

// packetError is a decode or encode failure with the packet type and field it happened in. It
// unwraps to its cause: a ReasonCode when decoding, ErrFieldTooLong / ErrInvalidField (or
// PacketTooLarge) when encoding.
type packetError struct {
	t     Type
	field string
	err   error
}

func (e *packetError) Error() string {
	var msg string
	if rc, ok := e.err.(ReasonCode); ok {
		msg = fmt.Sprintf("%s (0x%02x)", rc.String(), byte(rc))
	} else {
		msg = strings.TrimPrefix(e.err.Error(), "codec: ")
	}
	if e.field == "" {
		return "codec: " + e.t.String() + ": " + msg
	}
	return "codec: " + e.t.String() + " " + e.field + ": " + msg
}

func (e *packetError) Unwrap() error { return e.err }

// tooLarge holds the PacketTooLarge error of each packet type, made once so that refusing an
// oversized packet allocates nothing.
var tooLarge = func() (errs [16]error) {
	for t := range errs {
		errs[t] = &packetError{t: Type(t), field: "remaining length", err: PacketTooLarge}
	}
	return errs
}()

// Reader decodes MQTT packets from a byte stream. It keeps no buffer between packets: each packet
// body is read into a new slice that belongs to the returned Packet. A Reader is not safe for
// concurrent use.
type Reader struct {
	r   io.Reader
	br  io.ByteReader // r, when it can hand out single bytes cheaply
	max uint32
	v   Version
	hdr [1]byte // scratch for fixed-header bytes when r is not an io.ByteReader
	// With ReuseAcks, acknowledgements are decoded into ack from a body read into ackBody.
	reuseAcks bool
	ack       Ack
	ackBody   [reusedAckBody]byte
	// With ReusePublishes, a PUBLISH is decoded into pub.
	reusePubs bool
	pub       Publish
}

// reusedAckBody is the largest acknowledgement body ReuseAcks reads into the Reader's own
// buffer: a 5.0 one with a reason code and a short property or two. Larger ones (long reason
// strings, user properties) get a body of their own, and still the reused Ack.
const reusedAckBody = 64

// NewReader returns a Reader that decodes packets from r, refusing any packet whose total size
// (fixed header plus remaining length) exceeds maxPacketSize; 0 means the protocol's own maximum.
// Wrap a network connection in a small bufio.Reader first: the fixed header is read byte by byte.
// Until SetVersion is called, packets other than CONNECT are decoded as 3.1.1.
func NewReader(r io.Reader, maxPacketSize uint32) *Reader {
	br, _ := r.(io.ByteReader)
	return &Reader{r: r, br: br, max: maxPacketSize, v: V311}
}

// Reset makes the Reader what NewReader(src, maxPacketSize) returns, keeping only its reuse
// settings: a server can lend one Reader (and the buffer under it) to whichever connection
// has something to read. Nothing of the packets read before stays reachable from it.
func (r *Reader) Reset(src io.Reader, maxPacketSize uint32) {
	br, _ := src.(io.ByteReader)
	*r = Reader{r: src, br: br, max: maxPacketSize, v: V311, reuseAcks: r.reuseAcks, reusePubs: r.reusePubs}
}

// SetVersion sets the protocol version used for every packet after CONNECT. A CONNECT is always
// decoded by its own protocol level.
func (r *Reader) SetVersion(v Version) { r.v = v }

// ReuseAcks makes ReadPacket decode every PUBACK, PUBREC, PUBREL and PUBCOMP into one Ack
// the Reader owns, from a body it owns when the body is small: such a packet, and every
// []byte and string in it, is valid only until the next ReadPacket. For a caller that handles
// each acknowledgement at once, it spares the allocations of one per message.
func (r *Reader) ReuseAcks() { r.reuseAcks = true }

// ReusePublishes makes ReadPacket decode every PUBLISH into one Publish the Reader owns: the
// packet is valid only until the next ReadPacket. Its body is still read into a slice of its
// own, so its Topic, Payload and properties stay valid as ReadPacket says. For a caller that
// copies what it keeps of a publication before the next read, it spares an allocation of a
// few hundred bytes per message.
func (r *Reader) ReusePublishes() { r.reusePubs = true }

// SetMaxPacketSize changes the size limit for the packets read from now on; 0 means no limit
// beyond the protocol's.
func (r *Reader) SetMaxPacketSize(n uint32) { r.max = n }

// ReadPacket reads and decodes the next packet.
//
// The declared size is checked against the limit before anything is allocated; a larger packet
// yields PacketTooLarge and its body is left unread. The packet body is read into one freshly
// allocated slice of exactly the remaining length; every []byte and string in the returned packet
// (Payload, Topic, properties, filters, ...) aliases that slice and stays valid forever: the
// Reader never reuses or modifies it. Keeping any one of them keeps the whole body alive, so copy
// (strings.Clone) a small string you store from a large packet.
//
// Errors: io.EOF when the stream ends cleanly before a packet; io.ErrUnexpectedEOF when it ends
// inside one; other errors of the underlying reader unchanged; otherwise an error that wraps the
// ReasonCode a 5.0 server would disconnect with (MalformedPacket, ProtocolError, PacketTooLarge,
// TopicNameInvalid, TopicAliasInvalid, UnsupportedProtocolVersion); get it with errors.As. After
// any error the stream position is undefined and the connection should be closed.
func (r *Reader) ReadPacket() (Packet, error) {
	first, err := r.readByte()
	if err != nil {
		return nil, err
	}
	t := Type(first >> 4)
	var rem uint32
	size := uint64(1)
	for shift := 0; ; shift += 7 {
		b, err := r.readByte()
		if err != nil {
			return nil, noEOF(err)
		}
		size++
		rem |= uint32(b&0x7F) << shift
		if b == 0 && shift > 0 { // [MQTT-1.5.5-1] the fewest bytes: no trailing zero byte
			return nil, &packetError{t: t, field: "remaining length", err: MalformedPacket}
		}
		if b < 0x80 {
			break
		}
		if size == 5 { // [MQTT-1.5.5-1] at most four bytes
			return nil, &packetError{t: t, field: "remaining length", err: MalformedPacket}
		}
	}
	if r.max != 0 && size+uint64(rem) > uint64(r.max) {
		return nil, tooLarge[t]
	}
	if r.reuseAcks && isAck(t) {
		body := r.ackBody[:min(int(rem), reusedAckBody)]
		if rem > reusedAckBody {
			body, err = readBody(r.r, int(rem))
		} else {
			_, err = io.ReadFull(r.r, body)
		}
		if err != nil {
			return nil, noEOF(err)
		}
		return decodeWith(first, body, r.v, &r.ack, nil)
	}
	body, err := readBody(r.r, int(rem))
	if err != nil {
		return nil, noEOF(err)
	}
	if r.reusePubs && t == PUBLISH {
		return decodeWith(first, body, r.v, nil, &r.pub)
	}
	return decode(first, body, r.v)
}

// isAck reports whether t is a PUBACK, PUBREC, PUBREL or PUBCOMP.
func isAck(t Type) bool { return t == PUBACK || t == PUBREC || t == PUBREL || t == PUBCOMP }

// A packet's body is allocated as its bytes arrive, so that a peer that announces a large
// packet and sends little holds little: bodyChunk at first, then four times what arrived, up
// to bodyWhole, past which (a packet limit raised above 1 MiB) the rest at once, to spare
// the collector copies of large packets.
const (
	bodyChunk = 4 << 10
	bodyWhole = 1 << 20
)

// readBody reads a packet body of n bytes, growing its buffer as they arrive.
func readBody(r io.Reader, n int) ([]byte, error) {
	body := make([]byte, min(n, bodyChunk))
	for read := 0; ; {
		if _, err := io.ReadFull(r, body[read:]); err != nil {
			return nil, err
		}
		read = len(body)
		if read == n {
			return body, nil
		}
		size := n
		if read < bodyWhole {
			size = min(4*read, n)
		}
		grown := make([]byte, size)
		copy(grown, body)
		body = grown
	}
}

func (r *Reader) readByte() (byte, error) {
	if r.br != nil {
		return r.br.ReadByte()
	}
	if _, err := io.ReadFull(r.r, r.hdr[:]); err != nil {
		return 0, err
	}
	return r.hdr[0], nil
}

// noEOF turns a clean end of stream inside a packet into io.ErrUnexpectedEOF.
func noEOF(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// decode decodes a packet from its first fixed-header byte and its body. v is the session's
// protocol version; CONNECT ignores it.
func decode(first byte, body []byte, v Version) (Packet, error) {
	return decodeWith(first, body, v, nil, nil)
}

// decodeWith is decode, decoding an acknowledgement into ack when ack is not nil, and a
// PUBLISH into pub when pub is not nil.
func decodeWith(first byte, body []byte, v Version, ack *Ack, pub *Publish) (Packet, error) {
	t, flags := Type(first>>4), first&0x0F
	d := decoder{b: body, t: t, into: ack, intoPub: pub}
	// [MQTT-2.1.3-1] reserved flag bits: 0010 on PUBREL [MQTT-3.6.1-1], SUBSCRIBE [MQTT-3.8.1-1]
	// and UNSUBSCRIBE [MQTT-3.10.1-1], 0000 on every other type but PUBLISH.
	want := byte(0)
	if t == PUBREL || t == SUBSCRIBE || t == UNSUBSCRIBE {
		want = 0x02
	}
	if t != PUBLISH && flags != want {
		return nil, d.fail("fixed header flags", MalformedPacket)
	}
	var p Packet
	var err error
	switch t {
	case CONNECT:
		p, err = d.connect()
	case CONNACK:
		p, err = d.connack(v)
	case PUBLISH:
		p, err = d.publish(flags, v)
	case PUBACK, PUBREC, PUBREL, PUBCOMP:
		p, err = d.ack(v)
	case SUBSCRIBE:
		p, err = d.subscribe(v)
	case SUBACK:
		p, err = d.suback(v)
	case UNSUBSCRIBE:
		p, err = d.unsubscribe(v)
	case UNSUBACK:
		p, err = d.unsuback(v)
	case PINGREQ:
		p = &Pingreq{}
	case PINGRESP:
		p = &Pingresp{}
	case DISCONNECT:
		dis := &Disconnect{}
		if v >= V5 {
			err = d.reasonTail(&dis.Reason, &dis.Props)
		}
		p = dis
	case AUTH:
		if v < V5 { // type 15 is reserved before 5.0
			return nil, d.fail("packet type", MalformedPacket)
		}
		a := &Auth{}
		err = d.reasonTail(&a.Reason, &a.Props)
		p = a
	default: // type 0 is reserved
		return nil, d.fail("packet type", MalformedPacket)
	}
	if err != nil {
		return nil, err
	}
	if len(d.b) != 0 {
		return nil, d.fail("trailing bytes", MalformedPacket)
	}
	return p, nil
}

// decoder reads fields from a packet body with bounds checks; a field that runs past the end of
// the body is a malformed packet.
type decoder struct {
	b       []byte // the unread rest of the body
	t       Type
	into    *Ack     // where an acknowledgement is decoded; nil: a new one
	intoPub *Publish // where a PUBLISH is decoded; nil: a new one
}

// UnsupportedLevelError is the error of a CONNECT whose protocol name and level this codec does
// not speak. It matches UnsupportedProtocolVersion with errors.Is and errors.As, and tells the
// server which CONNACK to answer with: a 5.0 one (reason 0x84) for a level above 5, the 3.x
// return code 0x01 otherwise [MQTT-3.1.2-2].
type UnsupportedLevelError struct {
	Name  string
	Level byte
}

func (e *UnsupportedLevelError) Error() string {
	return fmt.Sprintf("codec: CONNECT protocol %q level %d: %v", e.Name, e.Level, UnsupportedProtocolVersion)
}

// Unwrap returns UnsupportedProtocolVersion.
func (e *UnsupportedLevelError) Unwrap() error { return UnsupportedProtocolVersion }

func (d *decoder) fail(field string, code ReasonCode) error {
	return &packetError{t: d.t, field: field, err: code}
}

func (d *decoder) u8(field string) (byte, error) {
	if len(d.b) < 1 {
		return 0, d.fail(field, MalformedPacket)
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c, nil
}

func (d *decoder) u16(field string) (uint16, error) {
	if len(d.b) < 2 {
		return 0, d.fail(field, MalformedPacket)
	}
	x := uint16(d.b[0])<<8 | uint16(d.b[1])
	d.b = d.b[2:]
	return x, nil
}

func (d *decoder) u32(field string) (uint32, error) {
	if len(d.b) < 4 {
		return 0, d.fail(field, MalformedPacket)
	}
	x := uint32(d.b[0])<<24 | uint32(d.b[1])<<16 | uint32(d.b[2])<<8 | uint32(d.b[3])
	d.b = d.b[4:]
	return x, nil
}

// varint reads a variable byte integer of at most four bytes [MQTT-1.5.5-1].
func (d *decoder) varint(field string) (uint32, error) {
	var x uint32
	for shift := 0; shift < 28; shift += 7 {
		c, err := d.u8(field)
		if err != nil {
			return 0, err
		}
		x |= uint32(c&0x7F) << shift
		if c == 0 && shift > 0 {
			break // not the fewest bytes [MQTT-1.5.5-1]
		}
		if c < 0x80 {
			return x, nil
		}
	}
	return 0, d.fail(field, MalformedPacket)
}

// binary reads two-byte-length-prefixed binary data, aliasing the body. Its capacity is cut to
// its length so that appending to it cannot overwrite the rest of the body.
func (d *decoder) binary(field string) ([]byte, error) {
	n, err := d.u16(field)
	if err != nil {
		return nil, err
	}
	if int(n) > len(d.b) {
		return nil, d.fail(field, MalformedPacket)
	}
	b := d.b[:n:n]
	d.b = d.b[n:]
	return b, nil
}

// str reads a UTF-8 encoded string. The string aliases the body, which is never modified.
func (d *decoder) str(field string) (string, error) {
	b, err := d.binary(field)
	if err != nil {
		return "", err
	}
	s := unsafe.String(unsafe.SliceData(b), len(b))
	if !validUTF8(s) { // [MQTT-1.5.4-1] ill-formed or surrogates, [MQTT-1.5.4-2] U+0000
		return "", d.fail(field, MalformedPacket)
	}
	return s, nil
}

// rest takes the unread rest of the body.
func (d *decoder) rest() []byte {
	b := d.b[:len(d.b):len(d.b)]
	d.b = d.b[len(d.b):]
	return b
}

// packetID reads a packet identifier, which must not be 0 [MQTT-2.2.1-3] (3.1.1: [MQTT-2.3.1-1]).
func (d *decoder) packetID() (uint16, error) {
	id, err := d.u16("packet identifier")
	if err == nil && id == 0 {
		err = d.fail("packet identifier", ProtocolError)
	}
	return id, err
}

// reasonTail reads the 5.0 tail of acknowledgements, DISCONNECT and AUTH: a reason code, absent
// means Success, then properties, absent means none.
func (d *decoder) reasonTail(r *ReasonCode, p *Properties) error {
	if len(d.b) == 0 {
		return nil
	}
	c, err := d.u8("reason code")
	if err != nil {
		return err
	}
	if !validReason(d.t, ReasonCode(c)) {
		return d.fail("reason code", MalformedPacket)
	}
	*r = ReasonCode(c)
	if len(d.b) == 0 {
		return nil
	}
	return d.props(p, d.t)
}

func (d *decoder) connect() (*Connect, error) {
	c := &Connect{}
	var err error
	if c.ProtocolName, err = d.str("protocol name"); err != nil {
		return nil, err
	}
	level, err := d.u8("protocol level")
	if err != nil {
		return nil, err
	}
	c.Version = Version(level)
	// [MQTT-3.1.2-1] [MQTT-3.1.2-2] only MQIsdp/3, MQTT/4 and MQTT/5 are spoken.
	if protocolName(c.Version) != c.ProtocolName || c.Version < V31 || c.Version > V5 {
		return nil, &UnsupportedLevelError{Name: c.ProtocolName, Level: level}
	}
	flags, err := d.u8("connect flags")
	if err != nil {
		return nil, err
	}
	c.CleanStart = flags&0x02 != 0
	c.WillFlag = flags&0x04 != 0
	c.WillQoS = flags >> 3 & 3
	c.WillRetain = flags&0x20 != 0
	c.PasswordFlag = flags&0x40 != 0
	c.UsernameFlag = flags&0x80 != 0
	switch {
	case flags&0x01 != 0:
		return nil, d.fail("reserved flag", MalformedPacket) // [MQTT-3.1.2-3]
	case c.WillQoS == 3:
		return nil, d.fail("will QoS", MalformedPacket) // [MQTT-3.1.2-12] (3.1.1: [MQTT-3.1.2-14])
	case !c.WillFlag && (c.WillQoS != 0 || c.WillRetain):
		// [MQTT-3.1.2-11] [MQTT-3.1.2-13] (3.1.1: [MQTT-3.1.2-13] [MQTT-3.1.2-15])
		return nil, d.fail("will flags without will", MalformedPacket)
	case c.Version < V5 && c.PasswordFlag && !c.UsernameFlag:
		return nil, d.fail("password without user name", MalformedPacket) // 3.1.1: [MQTT-3.1.2-22]
	}
	if c.KeepAlive, err = d.u16("keep alive"); err != nil {
		return nil, err
	}
	if c.Version >= V5 {
		if err = d.props(&c.Props, CONNECT); err != nil {
			return nil, err
		}
		if c.Props.Present.Has(PropAuthData) && !c.Props.Present.Has(PropAuthMethod) {
			return nil, d.fail("authentication data without a method", ProtocolError) // 5.0 §3.1.2.11.10
		}
	}
	if c.ClientID, err = d.str("client identifier"); err != nil {
		return nil, err
	}
	if c.WillFlag {
		if c.Version >= V5 {
			if err = d.props(&c.WillProps, willProps); err != nil {
				return nil, err
			}
		}
		if c.WillTopic, err = d.str("will topic"); err != nil {
			return nil, err
		}
		if c.WillTopic == "" || strings.ContainsAny(c.WillTopic, "+#") { // [MQTT-3.1.3-11] a topic name [MQTT-3.3.2-2]
			return nil, d.fail("will topic", TopicNameInvalid)
		}
		if c.WillPayload, err = d.binary("will payload"); err != nil {
			return nil, err
		}
	}
	if c.UsernameFlag {
		if c.Username, err = d.str("user name"); err != nil {
			return nil, err
		}
	}
	if c.PasswordFlag {
		if c.Password, err = d.binary("password"); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (d *decoder) connack(v Version) (*Connack, error) {
	flags, err := d.u8("acknowledge flags")
	if err != nil {
		return nil, err
	}
	if flags&0xFE != 0 { // [MQTT-3.2.2-1] reserved bits
		return nil, d.fail("acknowledge flags", MalformedPacket)
	}
	c := &Connack{SessionPresent: flags&1 != 0}
	r, err := d.u8("reason code")
	if err != nil {
		return nil, err
	}
	c.Reason = ReasonCode(r)
	if v >= V5 {
		if err := d.props(&c.Props, CONNACK); err != nil {
			return nil, err
		}
	}
	return c, nil
}

func (d *decoder) publish(flags byte, v Version) (*Publish, error) {
	p := d.intoPub
	if p == nil {
		p = new(Publish)
	}
	*p = Publish{Dup: flags&0x08 != 0, QoS: flags >> 1 & 3, Retain: flags&0x01 != 0}
	if p.QoS == 3 {
		return nil, d.fail("QoS", MalformedPacket) // [MQTT-3.3.1-4] QoS 3 is malformed
	}
	if p.Dup && p.QoS == 0 && v >= V311 {
		return nil, d.fail("DUP", MalformedPacket) // [MQTT-3.3.1-2] DUP must be 0 on QoS 0
	}
	var err error
	if p.Topic, err = d.str("topic"); err != nil {
		return nil, err
	}
	if strings.ContainsAny(p.Topic, "+#") {
		return nil, d.fail("topic", TopicNameInvalid) // [MQTT-3.3.2-2] no wildcards
	}
	if p.Topic == "" && v < V5 {
		return nil, d.fail("topic", TopicNameInvalid) // [MQTT-4.7.3-1] at least one character
	}
	if p.QoS > 0 {
		if p.PacketID, err = d.packetID(); err != nil {
			return nil, err
		}
	}
	if v >= V5 {
		if err = d.props(&p.Props, PUBLISH); err != nil {
			return nil, err
		}
		if p.Topic == "" && !p.Props.Present.Has(PropTopicAlias) {
			return nil, d.fail("topic", ProtocolError) // (5.0 §3.3.2.3.4) empty topic needs an alias
		}
	}
	p.Payload = d.rest()
	return p, nil
}

func (d *decoder) ack(v Version) (*Ack, error) {
	a := d.into
	if a == nil {
		a = &Ack{}
	}
	*a = Ack{Kind: d.t}
	var err error
	if a.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if v >= V5 {
		if err = d.reasonTail(&a.Reason, &a.Props); err != nil {
			return nil, err
		}
	}
	return a, nil
}

func (d *decoder) subscribe(v Version) (*Subscribe, error) {
	s := &Subscribe{}
	var err error
	if s.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if v >= V5 {
		if err = d.props(&s.Props, SUBSCRIBE); err != nil {
			return nil, err
		}
	}
	if len(d.b) == 0 {
		return nil, d.fail("payload", ProtocolError) // [MQTT-3.8.3-2] (3.1.1: [MQTT-3.8.3-3]) at least one filter
	}
	for len(d.b) > 0 {
		var sub Subscription
		if sub.Filter, err = d.str("topic filter"); err != nil {
			return nil, err
		}
		opts, err := d.u8("subscription options")
		if err != nil {
			return nil, err
		}
		sub.QoS = opts & 3
		if sub.QoS == 3 { // 3.1.1: malformed [MQTT-3.8.3-4]; 5.0: a protocol error (§3.8.3.1)
			code := MalformedPacket
			if v >= V5 {
				code = ProtocolError
			}
			return nil, d.fail("subscription options", code)
		}
		if v < V5 {
			if opts&0xFC != 0 {
				return nil, d.fail("subscription options", MalformedPacket) // 3.1.1: [MQTT-3.8.3-4] reserved bits
			}
		} else {
			sub.NoLocal = opts&0x04 != 0
			sub.RetainAsPublished = opts&0x08 != 0
			sub.RetainHandling = opts >> 4 & 3
			if opts&0xC0 != 0 {
				return nil, d.fail("subscription options", MalformedPacket) // [MQTT-3.8.3-5] reserved bits
			}
			if sub.RetainHandling == 3 {
				return nil, d.fail("retain handling", ProtocolError) // (5.0 §3.8.3.1) value 3 is a protocol error
			}
		}
		s.Subs = append(s.Subs, sub)
	}
	return s, nil
}

func (d *decoder) suback(v Version) (*Suback, error) {
	s := &Suback{}
	var err error
	if s.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if v >= V5 {
		if err = d.props(&s.Props, SUBACK); err != nil {
			return nil, err
		}
	}
	s.Reasons = d.reasons()
	if v < V5 {
		for _, r := range s.Reasons {
			if r > GrantedQoS2 && r != UnspecifiedError {
				return nil, d.fail("return code", MalformedPacket) // 3.1.1: [MQTT-3.9.3-2]
			}
		}
	}
	return s, nil
}

// reasons takes the rest of the body as a list of reason codes.
func (d *decoder) reasons() []ReasonCode {
	rs := make([]ReasonCode, len(d.b))
	for i, c := range d.rest() {
		rs[i] = ReasonCode(c)
	}
	return rs
}

func (d *decoder) unsubscribe(v Version) (*Unsubscribe, error) {
	u := &Unsubscribe{}
	var err error
	if u.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if v >= V5 {
		if err = d.props(&u.Props, UNSUBSCRIBE); err != nil {
			return nil, err
		}
	}
	if len(d.b) == 0 {
		return nil, d.fail("payload", ProtocolError) // [MQTT-3.10.3-2] at least one filter
	}
	for len(d.b) > 0 {
		f, err := d.str("topic filter")
		if err != nil {
			return nil, err
		}
		u.Filters = append(u.Filters, f)
	}
	return u, nil
}

func (d *decoder) unsuback(v Version) (*Unsuback, error) {
	u := &Unsuback{}
	var err error
	if u.PacketID, err = d.packetID(); err != nil {
		return nil, err
	}
	if v >= V5 {
		if err = d.props(&u.Props, UNSUBACK); err != nil {
			return nil, err
		}
		u.Reasons = d.reasons()
	}
	return u, nil
}
