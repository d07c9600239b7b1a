package codec

import (
	"bytes"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

// fixture is one packet in its wire form and decoded form.
type fixture struct {
	name string
	v    Version // session version; CONNECT is decoded by its own level
	raw  []byte
	want Packet
	// decodeOnly marks raw bytes that are valid but not the form Encode produces.
	decodeOnly bool
}

// pset builds a PropSet.
func pset(ids ...PropID) PropSet {
	var s PropSet
	for _, id := range ids {
		s.Set(id)
	}
	return s
}

var fixtures = []fixture{
	{name: "3.1.1 CONNECT minimal", v: V311, raw: []byte{
		0x10,                           // CONNECT
		0x0E,                           // remaining length 14
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x3C, // keep alive 60
		0x00, 0x02, 'c', '1', // client id "c1"
	}, want: &Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, KeepAlive: 60, ClientID: "c1"}},

	{name: "3.1.1 CONNECT will user password", v: V311, raw: []byte{
		0x10,                           // CONNECT
		0x1F,                           // remaining length 31
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0xEE,       // flags: user name, password, will retain, will QoS 1, will, clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x02, 'c', '1', // client id "c1"
		0x00, 0x03, 'w', '/', 't', // will topic "w/t"
		0x00, 0x03, 'b', 'y', 'e', // will payload "bye"
		0x00, 0x01, 'u', // user name "u"
		0x00, 0x02, 'p', 'w', // password "pw"
	}, want: &Connect{ProtocolName: "MQTT", Version: V311, CleanStart: true, ClientID: "c1",
		WillFlag: true, WillQoS: 1, WillRetain: true, WillTopic: "w/t", WillPayload: []byte("bye"),
		UsernameFlag: true, Username: "u", PasswordFlag: true, Password: []byte("pw")}},

	{name: "3.1 CONNECT", v: V311, raw: []byte{
		0x10,                                     // CONNECT
		0x11,                                     // remaining length 17
		0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
		0x03,       // protocol level 3
		0x02,       // flags: clean session
		0x00, 0x0A, // keep alive 10
		0x00, 0x03, 'c', '3', '1', // client id "c31"
	}, want: &Connect{ProtocolName: "MQIsdp", Version: V31, CleanStart: true, KeepAlive: 10, ClientID: "c31"}},

	{name: "5.0 CONNECT properties and will properties", v: V311, raw: []byte{
		0x10,                           // CONNECT
		0x2A,                           // remaining length 42
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x06,       // flags: will, clean start
		0x00, 0x1E, // keep alive 30
		0x0F,                         // property length 15
		0x11, 0x00, 0x00, 0x0E, 0x10, // session expiry 3600
		0x21, 0x00, 0x0A, // receive maximum 10
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		0x00, 0x00, // client id ""
		0x07,       // will property length 7
		0x01, 0x01, // payload format 1 (UTF-8)
		0x18, 0x00, 0x00, 0x00, 0x05, // will delay 5
		0x00, 0x01, 'w', // will topic "w"
		0x00, 0x01, 'x', // will payload "x"
	}, want: &Connect{ProtocolName: "MQTT", Version: V5, CleanStart: true, KeepAlive: 30,
		Props: Properties{Present: pset(PropSessionExpiry, PropReceiveMaximum), SessionExpiry: 3600,
			ReceiveMaximum: 10, User: []UserProperty{{"k", "v"}}},
		WillFlag: true, WillProps: Properties{Present: pset(PropPayloadFormat, PropWillDelay),
			PayloadFormat: 1, WillDelay: 5},
		WillTopic: "w", WillPayload: []byte("x")}},

	{name: "5.0 CONNECT password without user name", v: V311, raw: []byte{
		0x10,                           // CONNECT
		0x12,                           // remaining length 18
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x40,       // flags: password
		0x00, 0x00, // keep alive 0
		0x00,            // property length 0
		0x00, 0x01, 'c', // client id "c"
		0x00, 0x02, 0x00, 0xFF, // password, binary
	}, want: &Connect{ProtocolName: "MQTT", Version: V5, ClientID: "c", PasswordFlag: true,
		Password: []byte{0x00, 0xFF}}},

	{name: "3.1.1 CONNACK session present", v: V311, raw: []byte{
		0x20, // CONNACK
		0x02, // remaining length 2
		0x01, // session present
		0x00, // return code accepted
	}, want: &Connack{SessionPresent: true}},

	{name: "3.1.1 CONNACK refused", v: V311, raw: []byte{
		0x20, // CONNACK
		0x02, // remaining length 2
		0x00, // no session
		0x05, // return code not authorized
	}, want: &Connack{Reason: V3NotAuthorized}},

	{name: "5.0 CONNACK properties", v: V5, raw: []byte{
		0x20,                            // CONNACK
		0x0E,                            // remaining length 14
		0x00,                            // no session
		0x00,                            // reason success
		0x0B,                            // property length 11
		0x12, 0x00, 0x03, 'a', 'b', 'c', // assigned client id "abc"
		0x22, 0x00, 0x0A, // topic alias maximum 10
		0x24, 0x01, // maximum QoS 1
	}, want: &Connack{Props: Properties{Present: pset(PropAssignedClientID, PropTopicAliasMaximum, PropMaximumQoS),
		AssignedClientID: "abc", TopicAliasMaximum: 10, MaximumQoS: 1}}},

	{name: "5.0 CONNACK failure", v: V5, raw: []byte{
		0x20, // CONNACK
		0x03, // remaining length 3
		0x00, // no session
		0x87, // reason not authorized
		0x00, // property length 0
	}, want: &Connack{Reason: NotAuthorized}},

	{name: "3.1.1 PUBLISH QoS 0", v: V311, raw: []byte{
		0x30,                      // PUBLISH, QoS 0
		0x0A,                      // remaining length 10
		0x00, 0x03, 'a', '/', 'b', // topic "a/b"
		'h', 'e', 'l', 'l', 'o', // payload
	}, want: &Publish{Topic: "a/b", Payload: []byte("hello")}},

	{name: "3.1.1 PUBLISH QoS 1 DUP RETAIN", v: V311, raw: []byte{
		0x3B,            // PUBLISH, DUP, QoS 1, RETAIN
		0x06,            // remaining length 6
		0x00, 0x01, 't', // topic "t"
		0x00, 0x07, // packet id 7
		'x', // payload
	}, want: &Publish{Dup: true, QoS: 1, Retain: true, Topic: "t", PacketID: 7, Payload: []byte("x")}},

	{name: "3.1.1 PUBLISH QoS 2 empty payload", v: V311, raw: []byte{
		0x34,            // PUBLISH, QoS 2
		0x05,            // remaining length 5
		0x00, 0x01, 't', // topic "t"
		0x12, 0x34, // packet id 0x1234
	}, want: &Publish{QoS: 2, Topic: "t", PacketID: 0x1234, Payload: []byte{}}},

	{name: "3.1 PUBLISH DUP on QoS 0", v: V31, raw: []byte{
		0x38,            // PUBLISH, DUP, QoS 0 (not forbidden in 3.1)
		0x03,            // remaining length 3
		0x00, 0x01, 't', // topic "t"
	}, want: &Publish{Dup: true, Topic: "t", Payload: []byte{}}},

	{name: "5.0 PUBLISH properties", v: V5, raw: []byte{
		0x32,                      // PUBLISH, QoS 1
		0x2C,                      // remaining length 44
		0x00, 0x03, 's', '/', '1', // topic "s/1"
		0x00, 0x01, // packet id 1
		0x22,       // property length 34
		0x01, 0x01, // payload format 1
		0x02, 0x00, 0x00, 0x00, 0x3C, // message expiry 60
		0x03, 0x00, 0x04, 'j', 's', 'o', 'n', // content type "json"
		0x09, 0x00, 0x02, 0xCA, 0xFE, // correlation data
		0x23, 0x00, 0x05, // topic alias 5
		0x0B, 0x01, // subscription id 1
		0x0B, 0x80, 0x01, // subscription id 128
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 'v', // user property k=v
		'{', '}', // payload
	}, want: &Publish{QoS: 1, Topic: "s/1", PacketID: 1, Props: Properties{
		Present:       pset(PropPayloadFormat, PropMessageExpiry, PropContentType, PropCorrelationData, PropTopicAlias),
		PayloadFormat: 1, MessageExpiry: 60, ContentType: "json", CorrelationData: []byte{0xCA, 0xFE},
		TopicAlias: 5, SubscriptionIDs: []uint32{1, 128}, User: []UserProperty{{"k", "v"}}},
		Payload: []byte("{}")}},

	{name: "5.0 PUBLISH empty topic with alias", v: V5, raw: []byte{
		0x30,       // PUBLISH, QoS 0
		0x07,       // remaining length 7
		0x00, 0x00, // topic ""
		0x03,             // property length 3
		0x23, 0x00, 0x01, // topic alias 1
		'p', // payload
	}, want: &Publish{Props: Properties{Present: pset(PropTopicAlias), TopicAlias: 1}, Payload: []byte("p")}},

	{name: "3.1.1 PUBACK", v: V311, raw: []byte{
		0x40,       // PUBACK
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, want: &Ack{Kind: PUBACK, PacketID: 1}},

	{name: "3.1.1 PUBREC", v: V311, raw: []byte{
		0x50,       // PUBREC
		0x02,       // remaining length 2
		0x00, 0x02, // packet id 2
	}, want: &Ack{Kind: PUBREC, PacketID: 2}},

	{name: "3.1.1 PUBREL", v: V311, raw: []byte{
		0x62,       // PUBREL, flags 0010
		0x02,       // remaining length 2
		0x00, 0x03, // packet id 3
	}, want: &Ack{Kind: PUBREL, PacketID: 3}},

	{name: "3.1.1 PUBCOMP", v: V311, raw: []byte{
		0x70,       // PUBCOMP
		0x02,       // remaining length 2
		0x00, 0x04, // packet id 4
	}, want: &Ack{Kind: PUBCOMP, PacketID: 4}},

	{name: "5.0 PUBACK short form", v: V5, raw: []byte{
		0x40,       // PUBACK
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, want: &Ack{Kind: PUBACK, PacketID: 1}},

	{name: "5.0 PUBACK reason only", v: V5, raw: []byte{
		0x40,       // PUBACK
		0x03,       // remaining length 3
		0x00, 0x01, // packet id 1
		0x10, // reason no matching subscribers
	}, want: &Ack{Kind: PUBACK, PacketID: 1, Reason: NoMatchingSubscribers}},

	{name: "5.0 PUBACK success with empty properties", v: V5, decodeOnly: true, raw: []byte{
		0x40,       // PUBACK
		0x04,       // remaining length 4
		0x00, 0x01, // packet id 1
		0x00, // reason success
		0x00, // property length 0
	}, want: &Ack{Kind: PUBACK, PacketID: 1}},

	{name: "5.0 PUBREL reason string", v: V5, raw: []byte{
		0x62,       // PUBREL, flags 0010
		0x09,       // remaining length 9
		0x00, 0x05, // packet id 5
		0x92,                       // reason packet identifier not found
		0x05,                       // property length 5
		0x1F, 0x00, 0x02, 'n', 'o', // reason string "no"
	}, want: &Ack{Kind: PUBREL, PacketID: 5, Reason: PacketIDNotFound,
		Props: Properties{Present: pset(PropReasonString), ReasonString: "no"}}},

	{name: "3.1.1 SUBSCRIBE", v: V311, raw: []byte{
		0x82,       // SUBSCRIBE, flags 0010
		0x0C,       // remaining length 12
		0x00, 0x0A, // packet id 10
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
		0x01,            // QoS 1
		0x00, 0x01, '#', // filter "#"
		0x00, // QoS 0
	}, want: &Subscribe{PacketID: 10, Subs: []Subscription{{Filter: "a/+", QoS: 1}, {Filter: "#"}}}},

	{name: "5.0 SUBSCRIBE options", v: V5, raw: []byte{
		0x82,       // SUBSCRIBE, flags 0010
		0x0B,       // remaining length 11
		0x00, 0x0B, // packet id 11
		0x02,       // property length 2
		0x0B, 0x05, // subscription id 5
		0x00, 0x03, 'x', '/', '#', // filter "x/#"
		0x2E, // options: retain handling 2, retain as published, no local, QoS 2
	}, want: &Subscribe{PacketID: 11, Props: Properties{SubscriptionIDs: []uint32{5}},
		Subs: []Subscription{{Filter: "x/#", QoS: 2, NoLocal: true, RetainAsPublished: true, RetainHandling: 2}}}},

	{name: "3.1.1 SUBACK", v: V311, raw: []byte{
		0x90,       // SUBACK
		0x04,       // remaining length 4
		0x00, 0x0A, // packet id 10
		0x01, // granted QoS 1
		0x80, // failure
	}, want: &Suback{PacketID: 10, Reasons: []ReasonCode{GrantedQoS1, UnspecifiedError}}},

	{name: "5.0 SUBACK", v: V5, raw: []byte{
		0x90,       // SUBACK
		0x05,       // remaining length 5
		0x00, 0x0B, // packet id 11
		0x00, // property length 0
		0x02, // granted QoS 2
		0xA2, // wildcard subscriptions not supported
	}, want: &Suback{PacketID: 11, Reasons: []ReasonCode{GrantedQoS2, WildcardSubNotSupported}}},

	{name: "3.1.1 UNSUBSCRIBE", v: V311, raw: []byte{
		0xA2,       // UNSUBSCRIBE, flags 0010
		0x07,       // remaining length 7
		0x00, 0x0C, // packet id 12
		0x00, 0x03, 'a', '/', '+', // filter "a/+"
	}, want: &Unsubscribe{PacketID: 12, Filters: []string{"a/+"}}},

	{name: "3.1.1 UNSUBACK", v: V311, raw: []byte{
		0xB0,       // UNSUBACK
		0x02,       // remaining length 2
		0x00, 0x0C, // packet id 12
	}, want: &Unsuback{PacketID: 12}},

	{name: "5.0 UNSUBSCRIBE", v: V5, raw: []byte{
		0xA2,       // UNSUBSCRIBE, flags 0010
		0x06,       // remaining length 6
		0x00, 0x0D, // packet id 13
		0x00,            // property length 0
		0x00, 0x01, 'x', // filter "x"
	}, want: &Unsubscribe{PacketID: 13, Filters: []string{"x"}}},

	{name: "5.0 UNSUBACK", v: V5, raw: []byte{
		0xB0,       // UNSUBACK
		0x05,       // remaining length 5
		0x00, 0x0D, // packet id 13
		0x00, // property length 0
		0x00, // success
		0x11, // no subscription existed
	}, want: &Unsuback{PacketID: 13, Reasons: []ReasonCode{Success, NoSubscriptionExisted}}},

	{name: "PINGREQ", v: V311, raw: []byte{
		0xC0, // PINGREQ
		0x00, // remaining length 0
	}, want: &Pingreq{}},

	{name: "PINGRESP", v: V5, raw: []byte{
		0xD0, // PINGRESP
		0x00, // remaining length 0
	}, want: &Pingresp{}},

	{name: "3.1.1 DISCONNECT", v: V311, raw: []byte{
		0xE0, // DISCONNECT
		0x00, // remaining length 0
	}, want: &Disconnect{}},

	{name: "5.0 DISCONNECT normal", v: V5, raw: []byte{
		0xE0, // DISCONNECT
		0x00, // remaining length 0: normal disconnection, no properties
	}, want: &Disconnect{}},

	{name: "5.0 DISCONNECT reason only", v: V5, raw: []byte{
		0xE0, // DISCONNECT
		0x01, // remaining length 1
		0x8B, // reason server shutting down
	}, want: &Disconnect{Reason: ServerShuttingDown}},

	{name: "5.0 DISCONNECT with will and session expiry", v: V5, raw: []byte{
		0xE0,                         // DISCONNECT
		0x07,                         // remaining length 7
		0x04,                         // reason disconnect with will message
		0x05,                         // property length 5
		0x11, 0x00, 0x00, 0x00, 0x00, // session expiry 0
	}, want: &Disconnect{Reason: DisconnectWithWill, Props: Properties{Present: pset(PropSessionExpiry)}}},

	{name: "5.0 AUTH", v: V5, raw: []byte{
		0xF0,                                      // AUTH
		0x0F,                                      // remaining length 15
		0x18,                                      // reason continue authentication
		0x0D,                                      // property length 13
		0x15, 0x00, 0x05, 'S', 'C', 'R', 'A', 'M', // authentication method "SCRAM"
		0x16, 0x00, 0x02, 0x01, 0x02, // authentication data
	}, want: &Auth{Reason: ContinueAuthentication, Props: Properties{Present: pset(PropAuthMethod, PropAuthData),
		AuthMethod: "SCRAM", AuthData: []byte{0x01, 0x02}}}},

	{name: "5.0 AUTH success short form", v: V5, raw: []byte{
		0xF0, // AUTH
		0x00, // remaining length 0: success, no properties
	}, want: &Auth{}},
}

// readOne decodes the first packet of raw with session version v.
func readOne(raw []byte, v Version) (Packet, error) {
	r := NewReader(bytes.NewReader(raw), 0)
	r.SetVersion(v)
	return r.ReadPacket()
}

// encodeVersion is the version a fixture's packet encodes with: a CONNECT's own level.
func encodeVersion(p Packet, v Version) Version {
	if c, ok := p.(*Connect); ok {
		return c.Version
	}
	return v
}

func TestDecodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			got, err := readOne(f.raw, f.v)
			if err != nil {
				t.Fatalf("ReadPacket: %v", err)
			}
			if !reflect.DeepEqual(got, f.want) {
				t.Fatalf("decoded\n%#v\nwant\n%#v", got, f.want)
			}
			if got.Type() != Type(f.raw[0]>>4) {
				t.Errorf("Type() = %v, want %v", got.Type(), Type(f.raw[0]>>4))
			}
		})
	}
}

func TestEncodeFixtures(t *testing.T) {
	for _, f := range fixtures {
		t.Run(f.name, func(t *testing.T) {
			v := encodeVersion(f.want, f.v)
			prefix := []byte{0xAA}
			got, err := f.want.Encode(prefix, v)
			if err != nil {
				t.Fatalf("Encode: %v", err)
			}
			if got[0] != 0xAA {
				t.Fatal("Encode overwrote dst instead of appending")
			}
			got = got[1:]
			if !f.decodeOnly && !bytes.Equal(got, f.raw) {
				t.Fatalf("encoded\n% x\nwant\n% x", got, f.raw)
			}
			if n := Size(f.want, v); n != len(got) {
				t.Errorf("Size = %d, encoded %d bytes", n, len(got))
			}
			back, err := readOne(got, v)
			if err != nil {
				t.Fatalf("decode of encoding: %v", err)
			}
			if !reflect.DeepEqual(back, f.want) {
				t.Fatalf("round trip\n%#v\nwant\n%#v", back, f.want)
			}
		})
	}
}

func TestEncodeDoesNotAllocate(t *testing.T) {
	buf := make([]byte, 0, 512)
	for _, f := range fixtures {
		v := encodeVersion(f.want, f.v)
		allocs := testing.AllocsPerRun(20, func() {
			if _, err := f.want.Encode(buf[:0], v); err != nil {
				t.Fatal(err)
			}
		})
		if allocs != 0 {
			t.Errorf("%s: Encode into a buffer with room: %v allocs, want 0", f.name, allocs)
		}
	}
}

func TestReadSequence(t *testing.T) {
	// All 3.1.1 fixtures back to back through one Reader, fed one byte per Read.
	var stream []byte
	var want []Packet
	for _, f := range fixtures {
		if f.v == V311 && f.want.Type() != CONNECT {
			stream = append(stream, f.raw...)
			want = append(want, f.want)
		}
	}
	r := NewReader(&oneByteReader{b: stream}, 0)
	for i, w := range want {
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("packet %d: %v", i, err)
		}
		if !reflect.DeepEqual(got, w) {
			t.Fatalf("packet %d: got %#v, want %#v", i, got, w)
		}
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("after the last packet: %v, want io.EOF", err)
	}
}

// oneByteReader returns at most one byte per Read and is not an io.ByteReader.
type oneByteReader struct{ b []byte }

func (o *oneByteReader) Read(p []byte) (int, error) {
	if len(o.b) == 0 {
		return 0, io.EOF
	}
	if len(p) == 0 {
		return 0, nil
	}
	p[0] = o.b[0]
	o.b = o.b[1:]
	return 1, nil
}

func TestSetVersion(t *testing.T) {
	raw := []byte{
		0x40,       // PUBACK
		0x03,       // remaining length 3
		0x00, 0x01, // packet id 1
		0x10, // 5.0 reason no matching subscribers; a trailing byte in 3.1.1
	}
	r := NewReader(bytes.NewReader(append(append([]byte{}, raw...), raw...)), 0)
	if _, err := r.ReadPacket(); !errors.Is(err, MalformedPacket) {
		t.Fatalf("before SetVersion (3.1.1): %v, want malformed packet", err)
	}
	r.SetVersion(V5)
	p, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if a := p.(*Ack); a.Reason != NoMatchingSubscribers {
		t.Fatalf("after SetVersion(V5): reason %v", a.Reason)
	}
}

func TestErrorMessage(t *testing.T) {
	_, err := readOne([]byte{
		0x30,             // PUBLISH, QoS 0
		0x03,             // remaining length 3
		0x00, 0x01, 0xFF, // topic: invalid UTF-8
	}, V311)
	const want = "codec: PUBLISH topic: malformed packet (0x81)"
	if err == nil || err.Error() != want {
		t.Fatalf("error %q, want %q", err, want)
	}
	var rc ReasonCode
	if !errors.As(err, &rc) || rc != MalformedPacket {
		t.Fatalf("errors.As: %v", rc)
	}
}

func TestTypeString(t *testing.T) {
	for typ, want := range map[Type]string{CONNECT: "CONNECT", AUTH: "AUTH", 0: "reserved", 16: "type 16"} {
		if got := typ.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", byte(typ), got, want)
		}
	}
}

// TestReuseAcks reads acknowledgements of both versions, small and with properties larger than
// the Reader's own body buffer, through one Reader with ReuseAcks: each decodes as it would
// without it, into the same Ack, with nothing left over from the one before.
func TestReuseAcks(t *testing.T) {
	long := Properties{Present: pset(PropReasonString), ReasonString: strings.Repeat("r", 2*reusedAckBody),
		User: []UserProperty{{"k", "v"}}}
	for _, v := range []Version{V311, V5} {
		acks := []*Ack{
			{Kind: PUBACK, PacketID: 1},
			{Kind: PUBREC, PacketID: 2},
			{Kind: PUBREL, PacketID: 3},
			{Kind: PUBCOMP, PacketID: 4},
		}
		if v == V5 {
			acks = append(acks,
				&Ack{Kind: PUBACK, PacketID: 5, Reason: NoMatchingSubscribers, Props: long},
				&Ack{Kind: PUBACK, PacketID: 6},
				&Ack{Kind: PUBREC, PacketID: 7, Reason: QuotaExceeded, Props: Properties{Present: pset(PropReasonString), ReasonString: "q"}},
				&Ack{Kind: PUBCOMP, PacketID: 8})
		}
		var stream []byte
		for _, a := range acks {
			var err error
			if stream, err = a.Encode(stream, v); err != nil {
				t.Fatal(err)
			}
		}
		stream, _ = (&Pingresp{}).Encode(stream, v) // a packet of another kind is still new
		r := NewReader(&oneByteReader{b: stream}, 0)
		r.SetVersion(v)
		r.ReuseAcks()
		var first Packet
		for i, want := range acks {
			got, err := r.ReadPacket()
			if err != nil {
				t.Fatalf("v%d ack %d: %v", v, i, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("v%d ack %d: got %#v, want %#v", v, i, got, want)
			}
			if i == 0 {
				first = got
			} else if got != first {
				t.Fatalf("v%d ack %d: a new Ack, want the reused one", v, i)
			}
		}
		if p, err := r.ReadPacket(); err != nil || p.Type() != PINGRESP {
			t.Fatalf("v%d after the acks: %v, %v; want PINGRESP", v, p, err)
		}
	}
}

// TestReuseAcksMalformed: a malformed acknowledgement read into the reused Ack is an error,
// with no packet: not the reused Ack, half decoded.
func TestReuseAcksMalformed(t *testing.T) {
	stream, _ := (&Ack{Kind: PUBACK, PacketID: 9}).Encode(nil, V311)
	stream = append(stream, 0x40, 0x00) // PUBACK without its packet id
	r := NewReader(&oneByteReader{b: stream}, 0)
	r.ReuseAcks()
	if _, err := r.ReadPacket(); err != nil {
		t.Fatal(err)
	}
	var rc ReasonCode
	if p, err := r.ReadPacket(); p != nil || !errors.As(err, &rc) || rc != MalformedPacket {
		t.Fatalf("PUBACK without a packet id: %v, %v; want no packet and MalformedPacket", p, err)
	}
}

// TestReusePublishes: with Reader.ReusePublishes every PUBLISH comes in the same Publish, with
// nothing of the one before (properties included), while the body of each stays its own: a
// payload kept from one packet is intact after the next is read.
func TestReusePublishes(t *testing.T) {
	first := &Publish{QoS: 1, PacketID: 1, Topic: "a/1", Payload: []byte("one")}
	first.Props.Present.Set(PropContentType)
	first.Props.ContentType = "text/plain"
	first.Props.User = []UserProperty{{Key: "k", Value: "v"}}
	pubs := []*Publish{first, {Topic: "b", Payload: []byte("two")}, {QoS: 2, PacketID: 3, Dup: true, Topic: "c/3"}}
	var stream []byte
	for _, p := range pubs {
		var err error
		if stream, err = p.Encode(stream, V5); err != nil {
			t.Fatal(err)
		}
	}
	r := NewReader(&oneByteReader{b: stream}, 0)
	r.SetVersion(V5)
	r.ReusePublishes()
	var reused Packet
	var payload []byte
	for i, want := range pubs {
		got, err := r.ReadPacket()
		if err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
		if got.Type() != PUBLISH || Size(got, V5) != Size(want, V5) {
			t.Fatalf("publish %d: got %#v, want %#v", i, got, want)
		}
		if g := got.(*Publish); g.Topic != want.Topic || !bytes.Equal(g.Payload, want.Payload) ||
			g.QoS != want.QoS || g.Dup != want.Dup || g.PacketID != want.PacketID ||
			g.Props.ContentType != want.Props.ContentType || len(g.Props.User) != len(want.Props.User) {
			t.Fatalf("publish %d: got %#v, want %#v", i, got, want)
		}
		switch i {
		case 0:
			reused, payload = got, got.(*Publish).Payload
		default:
			if got != reused {
				t.Fatalf("publish %d: a new Publish, want the reused one", i)
			}
		}
	}
	if string(payload) != "one" {
		t.Fatalf("the first payload became %q after later reads", payload)
	}
}

// TestReaderReset: after Reset the Reader reads the new source, byte by byte when it can, as
// 3.1.1 until told otherwise, under the new limit, and keeps its reuse settings.
func TestReaderReset(t *testing.T) {
	ack := &Ack{Kind: PUBACK, PacketID: 7, Reason: NoMatchingSubscribers}
	v5ack, err := ack.Encode(nil, V5)
	if err != nil {
		t.Fatal(err)
	}
	r := NewReader(bytes.NewReader(v5ack), 0)
	r.SetVersion(V5)
	r.ReuseAcks()
	got1, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}

	r.Reset(&oneByteReader{b: v5ack}, 0)
	if _, err := r.ReadPacket(); !errors.Is(err, MalformedPacket) {
		t.Fatalf("a 5.0 PUBACK with a reason code read as 3.1.1 after Reset: %v, want MalformedPacket", err)
	}

	r.Reset(&oneByteReader{b: v5ack}, 0)
	r.SetVersion(V5)
	got2, err := r.ReadPacket()
	if err != nil {
		t.Fatal(err)
	}
	if got2 != got1 {
		t.Fatal("after Reset the acknowledgement is no longer the reused one")
	}
	if a := got2.(*Ack); a.PacketID != 7 || a.Reason != NoMatchingSubscribers {
		t.Fatalf("after Reset: %#v, want packet 7 with its 5.0 reason code", a)
	}
	if _, err := r.ReadPacket(); err != io.EOF {
		t.Fatalf("after the new source's end: %v, want io.EOF", err)
	}

	r.Reset(bytes.NewReader(v5ack), 3)
	if _, err := r.ReadPacket(); !errors.Is(err, PacketTooLarge) {
		t.Fatalf("a 5.0 PUBACK over a 3-byte limit after Reset: %v, want PacketTooLarge", err)
	}
}
