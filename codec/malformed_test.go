package codec

import (
	"errors"
	"testing"
)

// malformed lists packets each decoder check must refuse, with the exact reason code.
var malformed = []struct {
	tag  string // the rule, as in the comment beside the check
	v    Version
	raw  []byte
	want ReasonCode
}{
	// Fixed header.
	{"[MQTT-2.1.3-1] PUBACK flags 0001", V311, []byte{
		0x41,       // PUBACK, flags 0001
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, MalformedPacket},
	{"[MQTT-3.6.1-1] PUBREL flags 0000", V5, []byte{
		0x60,       // PUBREL, flags 0000
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, MalformedPacket},
	{"[MQTT-3.8.1-1] SUBSCRIBE flags 0000", V311, []byte{
		0x80,       // SUBSCRIBE, flags 0000
		0x06,       // remaining length 6
		0x00, 0x01, // packet id 1
		0x00, 0x01, 'a', // filter "a"
		0x00, // QoS 0
	}, MalformedPacket},
	{"[MQTT-3.10.1-1] UNSUBSCRIBE flags 0000", V311, []byte{
		0xA0,       // UNSUBSCRIBE, flags 0000
		0x05,       // remaining length 5
		0x00, 0x01, // packet id 1
		0x00, 0x01, 'a', // filter "a"
	}, MalformedPacket},
	{"packet type 0 is reserved", V5, []byte{
		0x00, // reserved type 0
		0x00, // remaining length 0
	}, MalformedPacket},
	{"AUTH is reserved before 5.0", V311, []byte{
		0xF0, // AUTH
		0x00, // remaining length 0
	}, MalformedPacket},
	{"[MQTT-1.5.5-1] remaining length of five bytes", V311, []byte{
		0x30,                   // PUBLISH
		0xFF, 0xFF, 0xFF, 0xFF, // remaining length, continuation on the fourth byte
		0x01,
	}, MalformedPacket},
	{"trailing bytes after PINGREQ", V311, []byte{
		0xC0, // PINGREQ
		0x01, // remaining length 1
		0x00, // trailing byte
	}, MalformedPacket},
	{"trailing bytes after 3.1.1 PUBACK", V311, []byte{
		0x40,       // PUBACK
		0x03,       // remaining length 3
		0x00, 0x01, // packet id 1
		0x00, // trailing byte
	}, MalformedPacket},
	{"trailing bytes after 3.1.1 CONNECT", V311, []byte{
		0x10,                           // CONNECT
		0x0D,                           // remaining length 13
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
		0x00, // trailing byte
	}, MalformedPacket},

	// PUBLISH.
	{"[MQTT-3.3.1-4] QoS 3", V311, []byte{
		0x36,            // PUBLISH, QoS 3
		0x05,            // remaining length 5
		0x00, 0x01, 't', // topic "t"
		0x00, 0x01, // packet id 1
	}, MalformedPacket},
	{"[MQTT-3.3.1-2] DUP on QoS 0 (3.1.1)", V311, []byte{
		0x38,            // PUBLISH, DUP, QoS 0
		0x03,            // remaining length 3
		0x00, 0x01, 't', // topic "t"
	}, MalformedPacket},
	{"[MQTT-3.3.1-2] DUP on QoS 0 (5.0)", V5, []byte{
		0x38,            // PUBLISH, DUP, QoS 0
		0x04,            // remaining length 4
		0x00, 0x01, 't', // topic "t"
		0x00, // property length 0
	}, MalformedPacket},
	{"[MQTT-2.2.1-3] PUBLISH QoS 1 packet id 0", V311, []byte{
		0x32,            // PUBLISH, QoS 1
		0x05,            // remaining length 5
		0x00, 0x01, 't', // topic "t"
		0x00, 0x00, // packet id 0
	}, ProtocolError},
	{"[MQTT-3.3.2-2] topic with +", V311, []byte{
		0x30,                      // PUBLISH, QoS 0
		0x05,                      // remaining length 5
		0x00, 0x03, 'a', '/', '+', // topic "a/+"
	}, TopicNameInvalid},
	{"[MQTT-3.3.2-2] topic with #", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x04,            // remaining length 4
		0x00, 0x01, '#', // topic "#"
		0x00, // property length 0
	}, TopicNameInvalid},
	{"[MQTT-4.7.3-1] empty topic before 5.0", V311, []byte{
		0x30,       // PUBLISH, QoS 0
		0x02,       // remaining length 2
		0x00, 0x00, // topic ""
	}, TopicNameInvalid},
	{"(5.0 §3.3.2.3.4) 5.0 empty topic without alias", V5, []byte{
		0x30,       // PUBLISH, QoS 0
		0x03,       // remaining length 3
		0x00, 0x00, // topic ""
		0x00, // property length 0
	}, ProtocolError},
	{"[MQTT-1.5.4-1] topic not UTF-8", V311, []byte{
		0x30,             // PUBLISH, QoS 0
		0x03,             // remaining length 3
		0x00, 0x01, 0xFF, // topic: byte 0xFF
	}, MalformedPacket},
	{"[MQTT-1.5.4-1] topic with a surrogate", V311, []byte{
		0x30,                         // PUBLISH, QoS 0
		0x05,                         // remaining length 5
		0x00, 0x03, 0xED, 0xA0, 0x80, // topic: U+D800 encoded
	}, MalformedPacket},
	{"[MQTT-1.5.4-2] topic with U+0000", V311, []byte{
		0x30,                  // PUBLISH, QoS 0
		0x04,                  // remaining length 4
		0x00, 0x02, 'a', 0x00, // topic "a\x00"
	}, MalformedPacket},
	{"topic length beyond the body", V311, []byte{
		0x30,            // PUBLISH, QoS 0
		0x03,            // remaining length 3
		0x00, 0x05, 't', // topic claims 5 bytes
	}, MalformedPacket},

	// CONNECT.
	{"[MQTT-3.1.2-1] protocol name FOO", V311, []byte{
		0x10,                      // CONNECT
		0x0B,                      // remaining length 11
		0x00, 0x03, 'F', 'O', 'O', // protocol name "FOO"
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
	}, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-2] MQTT level 3", V311, []byte{
		0x10,                           // CONNECT
		0x0C,                           // remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x03,       // protocol level 3
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
	}, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-2] MQTT level 6", V311, []byte{
		0x10,                           // CONNECT
		0x0C,                           // remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x06,       // protocol level 6
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
	}, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-2] MQIsdp level 4", V311, []byte{
		0x10,                                     // CONNECT
		0x0E,                                     // remaining length 14
		0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name "MQIsdp"
		0x04,       // protocol level 4
		0x02,       // flags: clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
	}, UnsupportedProtocolVersion},
	{"[MQTT-3.1.2-3] reserved flag", V311, connect311(0x03), MalformedPacket},
	{"[MQTT-3.1.2-13] will QoS without will flag", V311, connect311(0x0A), MalformedPacket},
	{"[MQTT-3.1.2-15] will retain without will flag", V311, connect311(0x22), MalformedPacket},
	{"[MQTT-3.1.2-14] will QoS 3", V311, connect311(0x1E), MalformedPacket},
	{"[MQTT-3.1.2-22] password without user name", V311, connect311(0x42), MalformedPacket},
	{"[MQTT-3.1.3-11] will topic with wildcard", V311, []byte{
		0x10,                           // CONNECT
		0x11,                           // remaining length 17
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		0x06,       // flags: will, clean session
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
		0x00, 0x01, '#', // will topic "#"
		0x00, 0x00, // will payload ""
	}, TopicNameInvalid},
	{"(5.0 §3.1.2.11.3) receive maximum 0", V5, []byte{
		0x10,                           // CONNECT
		0x10,                           // remaining length 16
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x02,       // flags: clean start
		0x00, 0x00, // keep alive 0
		0x03,             // property length 3
		0x21, 0x00, 0x00, // receive maximum 0
		0x00, 0x00, // client id ""
	}, ProtocolError},
	{"(5.0 §3.1.2.11.4) maximum packet size 0", V5, []byte{
		0x10,                           // CONNECT
		0x12,                           // remaining length 18
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x02,       // flags: clean start
		0x00, 0x00, // keep alive 0
		0x05,                         // property length 5
		0x27, 0x00, 0x00, 0x00, 0x00, // maximum packet size 0
		0x00, 0x00, // client id ""
	}, ProtocolError},
	{"request problem information 2", V5, []byte{
		0x10,                           // CONNECT
		0x0F,                           // remaining length 15
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x05,       // protocol level 5
		0x02,       // flags: clean start
		0x00, 0x00, // keep alive 0
		0x02,       // property length 2
		0x17, 0x02, // request problem information 2
		0x00, 0x00, // client id ""
	}, ProtocolError},

	// CONNACK, SUBACK.
	{"[MQTT-3.2.2-1] CONNACK reserved flags", V311, []byte{
		0x20, // CONNACK
		0x02, // remaining length 2
		0x02, // reserved bit 1 set
		0x00, // accepted
	}, MalformedPacket},
	{"[MQTT-3.9.3-2] SUBACK return code 3", V311, []byte{
		0x90,       // SUBACK
		0x03,       // remaining length 3
		0x00, 0x01, // packet id 1
		0x03, // return code 3
	}, MalformedPacket},

	// Acknowledgements.
	{"[MQTT-2.2.1-3] PUBACK packet id 0", V5, []byte{
		0x40,       // PUBACK
		0x02,       // remaining length 2
		0x00, 0x00, // packet id 0
	}, ProtocolError},

	// SUBSCRIBE and UNSUBSCRIBE.
	{"[MQTT-2.2.1-3] SUBSCRIBE packet id 0", V311, []byte{
		0x82,       // SUBSCRIBE
		0x06,       // remaining length 6
		0x00, 0x00, // packet id 0
		0x00, 0x01, 'a', // filter "a"
		0x00, // QoS 0
	}, ProtocolError},
	{"[MQTT-3.8.3-3] 3.1.1 SUBSCRIBE without filters", V311, []byte{
		0x82,       // SUBSCRIBE
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, ProtocolError},
	{"[MQTT-3.8.3-2] 5.0 SUBSCRIBE without filters", V5, []byte{
		0x82,       // SUBSCRIBE
		0x03,       // remaining length 3
		0x00, 0x01, // packet id 1
		0x00, // property length 0
	}, ProtocolError},
	{"[MQTT-3.8.3-4] 3.1.1 SUBSCRIBE reserved option bits", V311, []byte{
		0x82,       // SUBSCRIBE
		0x06,       // remaining length 6
		0x00, 0x01, // packet id 1
		0x00, 0x01, 'a', // filter "a"
		0x04, // options: bit 2, reserved in 3.1.1
	}, MalformedPacket},
	{"[MQTT-1.5.5-1] remaining length not in the fewest bytes", V311, []byte{
		0xC0, 0x80, 0x00, // PINGREQ, remaining length 0 in two bytes
	}, MalformedPacket},
	{"[MQTT-1.5.5-1] property length not in the fewest bytes", V5, []byte{
		0x30, 0x05, // PUBLISH QoS 0, remaining length 5
		0x00, 0x01, 't', // topic "t"
		0x80, 0x00, // property length 0 in two bytes
	}, MalformedPacket},
	{"5.0 CONNECT with authentication data and no method (§3.1.2.11.10)", V5, []byte{
		0x10, 0x12, // CONNECT, remaining length 18
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x05,       // level 5
		0x02,       // clean start
		0x00, 0x00, // keep alive
		0x05,                         // property length 5
		0x16, 0x00, 0x02, 0x01, 0x02, // authentication data, two bytes
		0x00, 0x00, // client id ""
	}, ProtocolError},
	{"5.0 SUBSCRIBE QoS 3 (a protocol error, §3.8.3.1)", V5, []byte{
		0x82,       // SUBSCRIBE
		0x07,       // remaining length 7
		0x00, 0x01, // packet id 1
		0x00,            // property length 0
		0x00, 0x01, 'a', // filter "a"
		0x03, // options: QoS 3
	}, ProtocolError},
	{"[MQTT-3.8.3-4] 3.1.1 SUBSCRIBE QoS 3", V311, []byte{
		0x82,       // SUBSCRIBE
		0x06,       // remaining length 6
		0x00, 0x01, // packet id 1
		0x00, 0x01, 'a', // filter "a"
		0x03, // options: QoS 3
	}, MalformedPacket},
	{"[MQTT-3.8.3-5] 5.0 SUBSCRIBE reserved option bits", V5, []byte{
		0x82,       // SUBSCRIBE
		0x07,       // remaining length 7
		0x00, 0x01, // packet id 1
		0x00,            // property length 0
		0x00, 0x01, 'a', // filter "a"
		0x40, // options: bit 6, reserved
	}, MalformedPacket},
	{"(5.0 §3.8.3.1) retain handling 3", V5, []byte{
		0x82,       // SUBSCRIBE
		0x07,       // remaining length 7
		0x00, 0x01, // packet id 1
		0x00,            // property length 0
		0x00, 0x01, 'a', // filter "a"
		0x30, // options: retain handling 3
	}, ProtocolError},
	{"(5.0 §3.8.2.1.2) subscription identifier 0", V5, []byte{
		0x82,       // SUBSCRIBE
		0x09,       // remaining length 9
		0x00, 0x01, // packet id 1
		0x02,       // property length 2
		0x0B, 0x00, // subscription identifier 0
		0x00, 0x01, 'a', // filter "a"
		0x00, // options
	}, ProtocolError},
	{"two subscription identifiers on SUBSCRIBE", V5, []byte{
		0x82,       // SUBSCRIBE
		0x0B,       // remaining length 11
		0x00, 0x01, // packet id 1
		0x04,       // property length 4
		0x0B, 0x01, // subscription identifier 1
		0x0B, 0x02, // subscription identifier 2
		0x00, 0x01, 'a', // filter "a"
		0x00, // options
	}, ProtocolError},
	{"[MQTT-1.5.4-1] filter not UTF-8", V311, []byte{
		0x82,       // SUBSCRIBE
		0x06,       // remaining length 6
		0x00, 0x01, // packet id 1
		0x00, 0x01, 0xC0, // filter: lone lead byte
		0x00, // QoS 0
	}, MalformedPacket},
	{"SUBSCRIBE filter without options byte", V311, []byte{
		0x82,       // SUBSCRIBE
		0x05,       // remaining length 5
		0x00, 0x01, // packet id 1
		0x00, 0x01, 'a', // filter "a", options missing
	}, MalformedPacket},
	{"[MQTT-3.10.3-2] UNSUBSCRIBE without filters", V311, []byte{
		0xA2,       // UNSUBSCRIBE
		0x02,       // remaining length 2
		0x00, 0x01, // packet id 1
	}, ProtocolError},
	{"[MQTT-2.2.1-3] UNSUBSCRIBE packet id 0", V5, []byte{
		0xA2,       // UNSUBSCRIBE
		0x06,       // remaining length 6
		0x00, 0x00, // packet id 0
		0x00,            // property length 0
		0x00, 0x01, 'a', // filter "a"
	}, ProtocolError},

	// Properties.
	{"(5.0 §2.2.2.2) session expiry not allowed on PUBLISH", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x09,            // remaining length 9
		0x00, 0x01, 't', // topic "t"
		0x05,                         // property length 5
		0x11, 0x00, 0x00, 0x00, 0x01, // session expiry 1
	}, MalformedPacket},
	{"(5.0 §2.2.2.2) unknown property", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x06,            // remaining length 6
		0x00, 0x01, 't', // topic "t"
		0x02,       // property length 2
		0x7F, 0x00, // property 0x7F
	}, MalformedPacket},
	{"(5.0 §2.2.2.2) duplicate message expiry", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x0E,            // remaining length 14
		0x00, 0x01, 't', // topic "t"
		0x0A,                         // property length 10
		0x02, 0x00, 0x00, 0x00, 0x01, // message expiry 1
		0x02, 0x00, 0x00, 0x00, 0x02, // message expiry 2
	}, ProtocolError},
	{"payload format 2", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x06,            // remaining length 6
		0x00, 0x01, 't', // topic "t"
		0x02,       // property length 2
		0x01, 0x02, // payload format 2
	}, ProtocolError},
	{"[MQTT-3.3.2-8] topic alias 0", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x07,            // remaining length 7
		0x00, 0x01, 't', // topic "t"
		0x03,             // property length 3
		0x23, 0x00, 0x00, // topic alias 0
	}, TopicAliasInvalid},
	{"property length beyond the body", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x05,            // remaining length 5
		0x00, 0x01, 't', // topic "t"
		0x09, // property length 9
		0x01, // payload format, cut
	}, MalformedPacket},
	{"property value beyond the property length", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x07,            // remaining length 7
		0x00, 0x01, 't', // topic "t"
		0x02,             // property length 2
		0x23, 0x00, 0x01, // topic alias: 3 bytes, only 2 in the block
	}, MalformedPacket},
	{"[MQTT-1.5.5-1] subscription identifier of five bytes", V5, []byte{
		0x30,            // PUBLISH, QoS 0
		0x0A,            // remaining length 10
		0x00, 0x01, 't', // topic "t"
		0x06,                         // property length 6
		0x0B, 0xFF, 0xFF, 0xFF, 0xFF, // subscription identifier, continuation on the fourth byte
		0x01,
	}, MalformedPacket},
	{"user property not UTF-8", V5, []byte{
		0x40,       // PUBACK
		0x0B,       // remaining length 11
		0x00, 0x01, // packet id 1
		0x00,                                    // reason success
		0x07,                                    // property length 7
		0x26, 0x00, 0x01, 'k', 0x00, 0x01, 0xFF, // user property k=0xFF
	}, MalformedPacket},
	{"reason string on DISCONNECT not UTF-8", V5, []byte{
		0xE0,                   // DISCONNECT
		0x06,                   // remaining length 6
		0x00,                   // normal disconnection
		0x04,                   // property length 4
		0x1F, 0x00, 0x01, 0x00, // reason string "\x00"
	}, MalformedPacket},
	// Reason codes a packet may not carry [MQTT-2.4] table 2-6.
	{"[MQTT-2.4] PUBACK reason 0x92", V5, []byte{
		0x40, 0x03, // PUBACK, remaining length 3
		0x00, 0x01, // packet id 1
		0x92, // Packet Identifier not found: PUBREL and PUBCOMP only
	}, MalformedPacket},
	{"[MQTT-2.4] PUBREC reason 0x01", V5, []byte{0x50, 0x03, 0x00, 0x01, 0x01}, MalformedPacket},
	{"[MQTT-2.4] PUBREL reason 0x10", V5, []byte{0x62, 0x03, 0x00, 0x01, 0x10}, MalformedPacket},
	{"[MQTT-2.4] PUBCOMP reason 0x80", V5, []byte{0x70, 0x03, 0x00, 0x01, 0x80}, MalformedPacket},
	{"[MQTT-2.4] DISCONNECT reason 0x84", V5, []byte{
		0xE0, 0x01, // DISCONNECT, remaining length 1
		0x84, // Unsupported Protocol Version: CONNACK only
	}, MalformedPacket},
	{"[MQTT-2.4] AUTH reason 0x87", V5, []byte{0xF0, 0x01, 0x87}, MalformedPacket},
}

// connect311 is a 3.1.1 CONNECT with the given connect flags and nothing after the client id.
func connect311(flags byte) []byte {
	return []byte{
		0x10,                           // CONNECT
		0x0C,                           // remaining length 12
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name "MQTT"
		0x04,       // protocol level 4
		flags,      // connect flags under test
		0x00, 0x00, // keep alive 0
		0x00, 0x00, // client id ""
	}
}

func TestMalformed(t *testing.T) {
	for _, c := range malformed {
		t.Run(c.tag, func(t *testing.T) {
			p, err := readOne(c.raw, c.v)
			var rc ReasonCode
			if !errors.As(err, &rc) {
				t.Fatalf("decoded %#v, err %v; want %v", p, err, c.want)
			}
			if rc != c.want {
				t.Fatalf("reason %v (%v), want %v", rc, err, c.want)
			}
			if p != nil {
				t.Fatalf("packet %#v returned with the error", p)
			}
		})
	}
}

// Every reason code table 2-6 allows a packet decodes, and gives that code back.
func TestReasonCodesAllowed(t *testing.T) {
	for typ, codes := range reasonsOf {
		for _, rc := range codes {
			raw := []byte{byte(typ) << 4, 0x03, 0x00, 0x01, byte(rc)} // an ack: packet id 1
			switch typ {
			case PUBREL:
				raw[0] |= 0x02 // [MQTT-3.6.1-1]
			case DISCONNECT, AUTH:
				raw = []byte{byte(typ) << 4, 0x01, byte(rc)}
			}
			p, err := readOne(raw, V5)
			if err != nil {
				t.Fatalf("%v with reason %v: %v", typ, rc, err)
			}
			var got ReasonCode
			switch p := p.(type) {
			case *Ack:
				got = p.Reason
			case *Disconnect:
				got = p.Reason
			case *Auth:
				got = p.Reason
			}
			if got != rc {
				t.Fatalf("%v with reason %v decoded as %#v", typ, rc, p)
			}
		}
	}
}
