package codec

import (
	"errors"
	"fmt"
)

// maxVarint is the largest value a variable byte integer can hold [MQTT-1.5.5]; it bounds the
// remaining length and subscription identifiers.
const maxVarint = 268_435_455

// Encoding errors, wrapped with the packet type; compare with errors.Is.
var (
	// ErrFieldTooLong reports a string or binary field longer than 65,535 bytes.
	ErrFieldTooLong = errors.New("codec: field too long")
	// ErrInvalidField reports a value the wire format cannot carry: QoS 3, retain handling 3,
	// subscription identifier 0, an Ack whose Kind is not an acknowledgement, AUTH before 5.0,
	// or a version other than V31, V311 and V5.
	ErrInvalidField = errors.New("codec: invalid field")
)

// body is implemented by every packet type of this package: the pieces that Encode and Size share.
type body interface {
	Packet
	flags() byte            // the low nibble of the fixed header's first byte
	bodySize(v Version) int // the remaining length
	appendBody(dst []byte, v Version) ([]byte, error)
}

// Size returns the number of bytes Encode(nil, v) would produce for p: fixed header plus remaining
// length. It does not allocate, so the engine can compare it with a client's Maximum Packet Size
// before encoding. For a packet that cannot be encoded Size still returns the size its fields
// imply; Encode reports the error. A Packet implemented outside this package is sized by encoding.
func Size(p Packet, v Version) int {
	b, ok := p.(body)
	if !ok {
		out, _ := p.Encode(nil, v)
		return len(out)
	}
	n := b.bodySize(v)
	return 1 + varintSize(uint32(n)) + n
}

// encode writes the fixed header and body of p. On error dst is returned unchanged.
func encode(dst []byte, p body, v Version) ([]byte, error) {
	if v != V31 && v != V311 && v != V5 {
		return dst, &packetError{t: p.Type(), field: "version", err: ErrInvalidField}
	}
	n := p.bodySize(v)
	if n > maxVarint {
		return dst, &packetError{t: p.Type(), field: "remaining length", err: PacketTooLarge}
	}
	start := len(dst)
	dst = appendVarint(append(dst, byte(p.Type())<<4|p.flags()), uint32(n))
	dst, err := p.appendBody(dst, v)
	if err != nil {
		return dst[:start], &packetError{t: p.Type(), err: err}
	}
	return dst, nil
}

// varintSize is the length of x as a variable byte integer.
func varintSize(x uint32) int {
	switch {
	case x < 1<<7:
		return 1
	case x < 1<<14:
		return 2
	case x < 1<<21:
		return 3
	case x < 1<<28:
		return 4
	}
	return 5
}

// appendVarint appends x as a variable byte integer [MQTT-1.5.5]; x must not exceed maxVarint.
func appendVarint(dst []byte, x uint32) []byte {
	for x >= 0x80 {
		dst = append(dst, byte(x)|0x80)
		x >>= 7
	}
	return append(dst, byte(x))
}

// appendString appends a UTF-8 string or binary data field: a two-byte length, then the bytes.
func appendString[T string | []byte](dst []byte, s T) ([]byte, error) {
	if len(s) > 0xFFFF {
		return dst, ErrFieldTooLong
	}
	return append(append(dst, byte(len(s)>>8), byte(len(s))), s...), nil
}

// checkQoS rejects a QoS the wire format cannot carry.
func checkQoS(q byte) error {
	if q > 2 {
		return ErrInvalidField
	}
	return nil
}

// protocolName is the protocol name a CONNECT of version v carries.
func protocolName(v Version) string {
	if v == V31 {
		return "MQIsdp"
	}
	return "MQTT"
}

// reasonSize is the size of the 5.0 tail shared by acknowledgements, DISCONNECT and AUTH: a
// reason code that may be left out when it is Success and no properties follow, then the
// property block, left out when empty.
func reasonSize(r ReasonCode, p *Properties, ctx Type) int {
	if !p.empty(ctx) {
		return 1 + p.blockSize(ctx)
	}
	if r == Success {
		return 0
	}
	return 1
}

// appendReason appends the tail that reasonSize measures.
func appendReason(dst []byte, r ReasonCode, p *Properties, ctx Type) ([]byte, error) {
	if !p.empty(ctx) {
		return p.appendBlock(append(dst, byte(r)), ctx)
	}
	if r == Success {
		return dst, nil
	}
	return append(dst, byte(r)), nil
}

func boolBit(b bool, bit byte) byte {
	if b {
		return bit
	}
	return 0
}

// Encode appends the CONNECT's wire form. The protocol name and level come from v, not from the
// ProtocolName and Version fields; will fields are written only with WillFlag, the user name and
// password only with their flags.
func (c *Connect) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, c, v) }

func (c *Connect) flags() byte { return 0 }

func (c *Connect) bodySize(v Version) int {
	n := 2 + len(protocolName(v)) + 1 + 1 + 2 + 2 + len(c.ClientID)
	if v >= V5 {
		n += c.Props.blockSize(CONNECT)
	}
	if c.WillFlag {
		n += 2 + len(c.WillTopic) + 2 + len(c.WillPayload)
		if v >= V5 {
			n += c.WillProps.blockSize(willProps)
		}
	}
	if c.UsernameFlag {
		n += 2 + len(c.Username)
	}
	if c.PasswordFlag {
		n += 2 + len(c.Password)
	}
	return n
}

func (c *Connect) appendBody(dst []byte, v Version) ([]byte, error) {
	if err := checkQoS(c.WillQoS); err != nil {
		return dst, err
	}
	flags := boolBit(c.CleanStart, 0x02) | boolBit(c.UsernameFlag, 0x80) | boolBit(c.PasswordFlag, 0x40)
	if c.WillFlag {
		flags |= 0x04 | c.WillQoS<<3 | boolBit(c.WillRetain, 0x20)
	}
	dst, err := appendString(dst, protocolName(v))
	if err != nil {
		return dst, err
	}
	dst = append(dst, byte(v), flags, byte(c.KeepAlive>>8), byte(c.KeepAlive))
	if v >= V5 {
		if dst, err = c.Props.appendBlock(dst, CONNECT); err != nil {
			return dst, err
		}
	}
	if dst, err = appendString(dst, c.ClientID); err != nil {
		return dst, err
	}
	if c.WillFlag {
		if v >= V5 {
			if dst, err = c.WillProps.appendBlock(dst, willProps); err != nil {
				return dst, err
			}
		}
		if dst, err = appendString(dst, c.WillTopic); err != nil {
			return dst, err
		}
		if dst, err = appendString(dst, c.WillPayload); err != nil {
			return dst, err
		}
	}
	if c.UsernameFlag {
		if dst, err = appendString(dst, c.Username); err != nil {
			return dst, err
		}
	}
	if c.PasswordFlag {
		return appendString(dst, c.Password)
	}
	return dst, nil
}

// Encode appends the CONNACK's wire form; in 3.x Reason is the return code and Props are left out.
func (c *Connack) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, c, v) }

func (c *Connack) flags() byte { return 0 }

func (c *Connack) bodySize(v Version) int {
	if v >= V5 {
		return 2 + c.Props.blockSize(CONNACK)
	}
	return 2
}

func (c *Connack) appendBody(dst []byte, v Version) ([]byte, error) {
	dst = append(dst, boolBit(c.SessionPresent, 1), byte(c.Reason))
	if v >= V5 {
		return c.Props.appendBlock(dst, CONNACK)
	}
	return dst, nil
}

// Encode appends the PUBLISH's wire form; PacketID is written only when QoS > 0.
func (p *Publish) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, p, v) }

func (p *Publish) flags() byte {
	return boolBit(p.Dup, 0x08) | (p.QoS&3)<<1 | boolBit(p.Retain, 0x01)
}

func (p *Publish) bodySize(v Version) int {
	n := 2 + len(p.Topic) + len(p.Payload)
	if p.QoS > 0 {
		n += 2
	}
	if v >= V5 {
		n += p.Props.blockSize(PUBLISH)
	}
	return n
}

func (p *Publish) appendBody(dst []byte, v Version) ([]byte, error) {
	if err := checkQoS(p.QoS); err != nil {
		return dst, err
	}
	dst, err := appendString(dst, p.Topic)
	if err != nil {
		return dst, err
	}
	if p.QoS > 0 {
		dst = append(dst, byte(p.PacketID>>8), byte(p.PacketID))
	}
	if v >= V5 {
		if dst, err = p.Props.appendBlock(dst, PUBLISH); err != nil {
			return dst, err
		}
	}
	return append(dst, p.Payload...), nil
}

// Encode appends the acknowledgement's wire form. In 5.0 a Success reason without properties
// takes the short two-byte form.
func (a *Ack) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, a, v) }

func (a *Ack) flags() byte {
	if a.Kind == PUBREL {
		return 0x02
	}
	return 0
}

func (a *Ack) bodySize(v Version) int {
	if v >= V5 {
		return 2 + reasonSize(a.Reason, &a.Props, a.Kind)
	}
	return 2
}

func (a *Ack) appendBody(dst []byte, v Version) ([]byte, error) {
	if a.Kind < PUBACK || a.Kind > PUBCOMP {
		return dst, ErrInvalidField
	}
	dst = append(dst, byte(a.PacketID>>8), byte(a.PacketID))
	if v >= V5 {
		return appendReason(dst, a.Reason, &a.Props, a.Kind)
	}
	return dst, nil
}

// Encode appends the SUBSCRIBE's wire form; before 5.0 only each filter's QoS is written.
func (s *Subscribe) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, s, v) }

func (s *Subscribe) flags() byte { return 0x02 }

func (s *Subscribe) bodySize(v Version) int {
	n := 2
	if v >= V5 {
		n += s.Props.blockSize(SUBSCRIBE)
	}
	for _, sub := range s.Subs {
		n += 2 + len(sub.Filter) + 1
	}
	return n
}

func (s *Subscribe) appendBody(dst []byte, v Version) ([]byte, error) {
	dst = append(dst, byte(s.PacketID>>8), byte(s.PacketID))
	var err error
	if v >= V5 {
		if dst, err = s.Props.appendBlock(dst, SUBSCRIBE); err != nil {
			return dst, err
		}
	}
	for _, sub := range s.Subs {
		if checkQoS(sub.QoS) != nil || sub.RetainHandling > 2 {
			return dst, ErrInvalidField
		}
		if dst, err = appendString(dst, sub.Filter); err != nil {
			return dst, err
		}
		opts := sub.QoS
		if v >= V5 {
			opts |= boolBit(sub.NoLocal, 0x04) | boolBit(sub.RetainAsPublished, 0x08) | sub.RetainHandling<<4
		}
		dst = append(dst, opts)
	}
	return dst, nil
}

// Encode appends the SUBACK's wire form: one reason code (granted QoS or failure) per filter.
func (s *Suback) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, s, v) }

func (s *Suback) flags() byte { return 0 }

func (s *Suback) bodySize(v Version) int {
	n := 2 + len(s.Reasons)
	if v >= V5 {
		n += s.Props.blockSize(SUBACK)
	}
	return n
}

func (s *Suback) appendBody(dst []byte, v Version) ([]byte, error) {
	dst = append(dst, byte(s.PacketID>>8), byte(s.PacketID))
	if v >= V5 {
		var err error
		if dst, err = s.Props.appendBlock(dst, SUBACK); err != nil {
			return dst, err
		}
	}
	for _, r := range s.Reasons {
		dst = append(dst, byte(r))
	}
	return dst, nil
}

// Encode appends the UNSUBSCRIBE's wire form.
func (u *Unsubscribe) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, u, v) }

func (u *Unsubscribe) flags() byte { return 0x02 }

func (u *Unsubscribe) bodySize(v Version) int {
	n := 2
	if v >= V5 {
		n += u.Props.blockSize(UNSUBSCRIBE)
	}
	for _, f := range u.Filters {
		n += 2 + len(f)
	}
	return n
}

func (u *Unsubscribe) appendBody(dst []byte, v Version) ([]byte, error) {
	dst = append(dst, byte(u.PacketID>>8), byte(u.PacketID))
	var err error
	if v >= V5 {
		if dst, err = u.Props.appendBlock(dst, UNSUBSCRIBE); err != nil {
			return dst, err
		}
	}
	for _, f := range u.Filters {
		if dst, err = appendString(dst, f); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// Encode appends the UNSUBACK's wire form; before 5.0 it is the packet identifier alone.
func (u *Unsuback) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, u, v) }

func (u *Unsuback) flags() byte { return 0 }

func (u *Unsuback) bodySize(v Version) int {
	if v >= V5 {
		return 2 + u.Props.blockSize(UNSUBACK) + len(u.Reasons)
	}
	return 2
}

func (u *Unsuback) appendBody(dst []byte, v Version) ([]byte, error) {
	dst = append(dst, byte(u.PacketID>>8), byte(u.PacketID))
	if v < V5 {
		return dst, nil
	}
	dst, err := u.Props.appendBlock(dst, UNSUBACK)
	if err != nil {
		return dst, err
	}
	for _, r := range u.Reasons {
		dst = append(dst, byte(r))
	}
	return dst, nil
}

// Encode appends the PINGREQ's two bytes.
func (p *Pingreq) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, p, v) }

func (*Pingreq) flags() byte                                      { return 0 }
func (*Pingreq) bodySize(Version) int                             { return 0 }
func (*Pingreq) appendBody(dst []byte, _ Version) ([]byte, error) { return dst, nil }

// Encode appends the PINGRESP's two bytes.
func (p *Pingresp) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, p, v) }

func (*Pingresp) flags() byte                                      { return 0 }
func (*Pingresp) bodySize(Version) int                             { return 0 }
func (*Pingresp) appendBody(dst []byte, _ Version) ([]byte, error) { return dst, nil }

// Encode appends the DISCONNECT's wire form: two bytes before 5.0, and in 5.0 also when Reason
// is Success and there are no properties.
func (d *Disconnect) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, d, v) }

func (d *Disconnect) flags() byte { return 0 }

func (d *Disconnect) bodySize(v Version) int {
	if v >= V5 {
		return reasonSize(d.Reason, &d.Props, DISCONNECT)
	}
	return 0
}

func (d *Disconnect) appendBody(dst []byte, v Version) ([]byte, error) {
	if v >= V5 {
		return appendReason(dst, d.Reason, &d.Props, DISCONNECT)
	}
	return dst, nil
}

// Encode appends the AUTH's wire form; AUTH exists only in 5.0, other versions get ErrInvalidField.
func (a *Auth) Encode(dst []byte, v Version) ([]byte, error) { return encode(dst, a, v) }

func (a *Auth) flags() byte { return 0 }

func (a *Auth) bodySize(Version) int { return reasonSize(a.Reason, &a.Props, AUTH) }

func (a *Auth) appendBody(dst []byte, v Version) ([]byte, error) {
	if v < V5 {
		return dst, ErrInvalidField
	}
	return appendReason(dst, a.Reason, &a.Props, AUTH)
}

// typeNames names the packet types for String.
var typeNames = [...]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC",
	"PUBREL", "PUBCOMP", "SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP",
	"DISCONNECT", "AUTH"}

// String names the packet type as the specification does.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return fmt.Sprintf("type %d", byte(t))
}
