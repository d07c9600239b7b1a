package codec

import "math/bits"

// willProps is the property context of a CONNECT's will properties. Type 0 is reserved on the
// wire, so it can stand for the will inside the per-property masks below.
const willProps Type = 0

// propAllowed lists, for every property identifier, the packet types (bit n = Type n, bit 0 = the
// will) that may carry it (5.0 §2.2.2.2). An identifier with no bits is unknown.
var propAllowed = [...]uint16{
	PropPayloadFormat:        1<<PUBLISH | 1<<willProps,
	PropMessageExpiry:        1<<PUBLISH | 1<<willProps,
	PropContentType:          1<<PUBLISH | 1<<willProps,
	PropResponseTopic:        1<<PUBLISH | 1<<willProps,
	PropCorrelationData:      1<<PUBLISH | 1<<willProps,
	PropSubscriptionID:       1<<PUBLISH | 1<<SUBSCRIBE,
	PropSessionExpiry:        1<<CONNECT | 1<<CONNACK | 1<<DISCONNECT,
	PropAssignedClientID:     1 << CONNACK,
	PropServerKeepAlive:      1 << CONNACK,
	PropAuthMethod:           1<<CONNECT | 1<<CONNACK | 1<<AUTH,
	PropAuthData:             1<<CONNECT | 1<<CONNACK | 1<<AUTH,
	PropRequestProblemInfo:   1 << CONNECT,
	PropWillDelay:            1 << willProps,
	PropRequestResponseInfo:  1 << CONNECT,
	PropResponseInfo:         1 << CONNACK,
	PropServerReference:      1<<CONNACK | 1<<DISCONNECT,
	PropReasonString:         1<<CONNACK | 1<<PUBACK | 1<<PUBREC | 1<<PUBREL | 1<<PUBCOMP | 1<<SUBACK | 1<<UNSUBACK | 1<<DISCONNECT | 1<<AUTH,
	PropReceiveMaximum:       1<<CONNECT | 1<<CONNACK,
	PropTopicAliasMaximum:    1<<CONNECT | 1<<CONNACK,
	PropTopicAlias:           1 << PUBLISH,
	PropMaximumQoS:           1 << CONNACK,
	PropRetainAvailable:      1 << CONNACK,
	PropUser:                 0xFFFF,
	PropMaximumPacketSize:    1<<CONNECT | 1<<CONNACK,
	PropWildcardSubAvailable: 1 << CONNACK,
	PropSubIDAvailable:       1 << CONNACK,
	PropSharedSubAvailable:   1 << CONNACK,
}

// listProps are the properties kept in slices rather than flagged in PropSet.
const listProps = PropSet(1)<<PropUser | PropSet(1)<<PropSubscriptionID

// ctxProps is, per packet type (index 0 = the will), the set of scalar properties it may carry.
var ctxProps = func() (m [16]PropSet) {
	for id, allowed := range propAllowed {
		for ctx := range m {
			if allowed&(1<<ctx) != 0 {
				m[ctx] |= PropSet(1) << id
			}
		}
	}
	for ctx := range m {
		m[ctx] &^= listProps
	}
	return m
}()

// allowed reports whether id may appear on a packet of type ctx.
func allowed(id PropID, ctx Type) bool {
	return int(id) < len(propAllowed) && propAllowed[id]&(1<<ctx) != 0
}

// field returns a pointer to the scalar field that holds property id; its type is the property's
// wire type (*byte, *uint16, *uint32 four-byte integer, *string, *[]byte binary data). It returns
// nil for the list properties and unknown identifiers.
func (p *Properties) field(id PropID) any {
	switch id {
	case PropPayloadFormat:
		return &p.PayloadFormat
	case PropMessageExpiry:
		return &p.MessageExpiry
	case PropContentType:
		return &p.ContentType
	case PropResponseTopic:
		return &p.ResponseTopic
	case PropCorrelationData:
		return &p.CorrelationData
	case PropSessionExpiry:
		return &p.SessionExpiry
	case PropAssignedClientID:
		return &p.AssignedClientID
	case PropServerKeepAlive:
		return &p.ServerKeepAlive
	case PropAuthMethod:
		return &p.AuthMethod
	case PropAuthData:
		return &p.AuthData
	case PropRequestProblemInfo:
		return &p.RequestProblemInfo
	case PropWillDelay:
		return &p.WillDelay
	case PropRequestResponseInfo:
		return &p.RequestResponseInfo
	case PropResponseInfo:
		return &p.ResponseInfo
	case PropServerReference:
		return &p.ServerReference
	case PropReasonString:
		return &p.ReasonString
	case PropReceiveMaximum:
		return &p.ReceiveMaximum
	case PropTopicAliasMaximum:
		return &p.TopicAliasMaximum
	case PropTopicAlias:
		return &p.TopicAlias
	case PropMaximumQoS:
		return &p.MaximumQoS
	case PropRetainAvailable:
		return &p.RetainAvailable
	case PropMaximumPacketSize:
		return &p.MaximumPacketSize
	case PropWildcardSubAvailable:
		return &p.WildcardSubAvailable
	case PropSubIDAvailable:
		return &p.SubIDAvailable
	case PropSharedSubAvailable:
		return &p.SharedSubAvailable
	}
	return nil
}

// scalars returns the present scalar properties that a packet of type ctx can carry.
func (p *Properties) scalars(ctx Type) PropSet { return p.Present & ctxProps[ctx] }

// empty reports whether encoding p on a packet of type ctx writes no property at all.
func (p *Properties) empty(ctx Type) bool {
	return p.scalars(ctx) == 0 && len(p.User) == 0 &&
		(len(p.SubscriptionIDs) == 0 || !allowed(PropSubscriptionID, ctx))
}

// size is the length of the encoded properties of a packet of type ctx, without the length prefix.
func (p *Properties) size(ctx Type) int {
	n := 0
	for set := p.scalars(ctx); set != 0; set &= set - 1 {
		id := PropID(bits.TrailingZeros64(uint64(set)))
		n++
		switch f := p.field(id).(type) {
		case *byte:
			n++
		case *uint16:
			n += 2
		case *uint32:
			n += 4
		case *string:
			n += 2 + len(*f)
		case *[]byte:
			n += 2 + len(*f)
		}
	}
	if allowed(PropSubscriptionID, ctx) {
		for _, id := range p.SubscriptionIDs {
			n += 1 + varintSize(id)
		}
	}
	for _, u := range p.User {
		n += 1 + 2 + len(u.Key) + 2 + len(u.Value)
	}
	return n
}

// blockSize is the length of the property block (length prefix included) of a packet of type ctx.
func (p *Properties) blockSize(ctx Type) int {
	n := p.size(ctx)
	return varintSize(uint32(n)) + n
}

// appendBlock appends the property block of a packet of type ctx: the property length, then each
// present property the packet type allows, in identifier order, then subscription identifiers and
// user properties in slice order. Properties the packet type cannot carry are left out.
func (p *Properties) appendBlock(dst []byte, ctx Type) ([]byte, error) {
	dst = appendVarint(dst, uint32(p.size(ctx)))
	var err error
	for set := p.scalars(ctx); set != 0; set &= set - 1 {
		id := PropID(bits.TrailingZeros64(uint64(set)))
		dst = append(dst, byte(id))
		switch f := p.field(id).(type) {
		case *byte:
			dst = append(dst, *f)
		case *uint16:
			dst = append(dst, byte(*f>>8), byte(*f))
		case *uint32:
			dst = append(dst, byte(*f>>24), byte(*f>>16), byte(*f>>8), byte(*f))
		case *string:
			dst, err = appendString(dst, *f)
		case *[]byte:
			dst, err = appendString(dst, *f)
		}
		if err != nil {
			return dst, err
		}
	}
	if allowed(PropSubscriptionID, ctx) {
		for _, id := range p.SubscriptionIDs {
			if id == 0 || id > maxVarint {
				return dst, ErrInvalidField
			}
			dst = appendVarint(append(dst, byte(PropSubscriptionID)), id)
		}
	}
	for _, u := range p.User {
		if dst, err = appendString(append(dst, byte(PropUser)), u.Key); err != nil {
			return dst, err
		}
		if dst, err = appendString(dst, u.Value); err != nil {
			return dst, err
		}
	}
	return dst, nil
}

// props decodes a property block for a packet of type ctx into p [MQTT-2.2.2].
func (d *decoder) props(p *Properties, ctx Type) error {
	n, err := d.varint("property length")
	if err != nil {
		return err
	}
	if uint64(n) > uint64(len(d.b)) {
		return d.fail("property length", MalformedPacket)
	}
	sub := decoder{b: d.b[:n:n], t: d.t}
	d.b = d.b[n:]
	for len(sub.b) > 0 {
		if err := sub.prop(p, ctx); err != nil {
			return err
		}
	}
	return nil
}

// prop decodes one property.
func (d *decoder) prop(p *Properties, ctx Type) error {
	b, err := d.u8("property identifier")
	if err != nil {
		return err
	}
	id := PropID(b)
	// An identifier not valid for the packet type is a malformed packet (5.0 §2.2.2.2).
	if !allowed(id, ctx) {
		return d.fail("property identifier", MalformedPacket)
	}
	switch id {
	case PropUser:
		k, err := d.str("user property")
		if err != nil {
			return err
		}
		v, err := d.str("user property")
		if err != nil {
			return err
		}
		p.User = append(p.User, UserProperty{Key: k, Value: v})
		return nil
	case PropSubscriptionID:
		// SUBSCRIBE carries at most one subscription identifier.
		if ctx == SUBSCRIBE && len(p.SubscriptionIDs) > 0 {
			return d.fail("subscription identifier", ProtocolError)
		}
		v, err := d.varint("subscription identifier")
		if err != nil {
			return err
		}
		if v == 0 {
			return d.fail("subscription identifier", ProtocolError) // (5.0 §3.8.2.1.2) 0 is a protocol error
		}
		p.SubscriptionIDs = append(p.SubscriptionIDs, v)
		return nil
	}
	// Any other property appearing twice is a protocol error (5.0 §2.2.2.2).
	if p.Present.Has(id) {
		return d.fail("duplicate property", ProtocolError)
	}
	p.Present.Set(id)
	switch f := p.field(id).(type) {
	case *byte:
		*f, err = d.u8("property")
	case *uint16:
		*f, err = d.u16("property")
	case *uint32:
		*f, err = d.u32("property")
	case *string:
		*f, err = d.str("property")
	case *[]byte:
		*f, err = d.binary("property")
	}
	if err != nil {
		return err
	}
	return d.checkProp(p, id)
}

// checkProp rejects a decoded property value the specification forbids.
func (d *decoder) checkProp(p *Properties, id PropID) error {
	switch id {
	case PropPayloadFormat, PropRequestProblemInfo, PropRequestResponseInfo, PropMaximumQoS,
		PropRetainAvailable, PropWildcardSubAvailable, PropSubIDAvailable, PropSharedSubAvailable:
		// Byte properties are booleans (or QoS 0/1); any other value is a protocol error.
		if *p.field(id).(*byte) > 1 {
			return d.fail("property value", ProtocolError)
		}
	case PropReceiveMaximum:
		if p.ReceiveMaximum == 0 {
			return d.fail("receive maximum", ProtocolError) // (5.0 §3.1.2.11.3) 0 is a protocol error
		}
	case PropMaximumPacketSize:
		if p.MaximumPacketSize == 0 {
			return d.fail("maximum packet size", ProtocolError) // (5.0 §3.1.2.11.4) 0 is a protocol error
		}
	case PropTopicAlias:
		if p.TopicAlias == 0 {
			return d.fail("topic alias", TopicAliasInvalid) // [MQTT-3.3.2-8] alias 0 is not permitted
		}
	}
	return nil
}
