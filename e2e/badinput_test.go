package e2e

import (
	"errors"
	"fmt"
	"slices"
	"testing"
)

// Malformed and protocol-violating input over raw TCP. Each case closes only the offending
// connection (a 5.0 client first gets DISCONNECT or CONNACK with the reason code), while a
// healthy subscriber beside it keeps receiving and an offline session keeps its queue.

// badInput is one case: the protocol level to CONNECT with first (0: send no CONNECT), the
// bytes to send, and the reason codes acceptable in the packet the broker must send before
// closing (none: close without a packet).
type badInput struct {
	name    string
	level   byte
	send    []byte
	reply   byte // 0xE0 DISCONNECT or 0x20 CONNACK; 0 when nothing may be sent
	reasons []byte
}

// badInputCases are the cases for one protocol level; for 3.x the broker only closes.
func badInputCases(level byte) []badInput {
	v5 := level == 5
	disconnect := func(codes ...byte) (byte, []byte) {
		if !v5 {
			return 0, nil
		}
		return 0xE0, codes
	}
	cases := []badInput{
		{name: "remaining-length-5-bytes", send: []byte{
			0x30,                         // PUBLISH, QoS 0
			0x80, 0x80, 0x80, 0x80, 0x01, // remaining length with a 5th byte [MQTT-1.5.5-1]
		}},
		{name: "subscribe-reserved-flags", send: subscribeReservedFlags(v5)}, // not for 3.1: see below
		{name: "publish-qos3", send: []byte{
			0x36,            // PUBLISH, QoS bits 11 [MQTT-3.3.1-4]
			0x07,            // remaining length 7
			0x00, 0x01, 'a', // topic "a"
			0x00, 0x01, // packet identifier 1
			'x', 'y', // payload
		}},
		{name: "publish-qos1-packet-id-0", send: []byte{
			0x32,            // PUBLISH, QoS 1
			0x07,            // remaining length 7
			0x00, 0x01, 'a', // topic "a"
			0x00, 0x00, // packet identifier 0 [MQTT-2.2.1-3]
			'x', 'y', // payload
		}},
		{name: "publish-wildcard-topic", send: []byte{
			0x30,                      // PUBLISH, QoS 0
			0x05,                      // remaining length 5
			0x00, 0x03, 'a', '/', '+', // topic "a/+" [MQTT-3.3.2-2]
		}},
		{name: "publish-invalid-utf8-topic", send: []byte{
			0x30,                       // PUBLISH, QoS 0
			0x05,                       // remaining length 5
			0x00, 0x03, 'a', '/', 0xff, // topic "a/" then 0xFF, never valid UTF-8 [MQTT-1.5.4-1]
		}},
		{name: "publish-nul-in-topic", send: []byte{
			0x30,                       // PUBLISH, QoS 0
			0x05,                       // remaining length 5
			0x00, 0x03, 'a', 0x00, 'b', // topic "a", U+0000, "b" [MQTT-1.5.4-2]
		}},
		{name: "second-connect", send: connectPacket(level, "second", 0, nil)}, // [MQTT-3.1.0-2]
		{name: "packet-over-max-size", send: []byte{
			0x30,                   // PUBLISH, QoS 0
			0xff, 0xff, 0xff, 0x7f, // remaining length 268,435,455 (256 MB), body never sent
		}},
	}
	if v5 {
		// Properties between packet identifier and payload shift the bytes of the 5.0 PUBLISH
		// cases: add an empty property length to each, and 1 to its remaining length.
		for i := range cases {
			if p := cases[i].send; p[0]&0xf0 == 0x30 && len(p) > 2 && p[1] < 0x80 {
				cases[i].send = v5Publish(p)
			}
		}
	}
	reasons := map[string][]byte{
		"remaining-length-5-bytes":   {0x81}, // malformed packet
		"subscribe-reserved-flags":   {0x81}, // malformed packet
		"publish-qos3":               {0x81}, // malformed packet
		"publish-qos1-packet-id-0":   {0x81, 0x82},
		"publish-wildcard-topic":     {0x90}, // topic name invalid
		"publish-invalid-utf8-topic": {0x81}, // malformed packet
		"publish-nul-in-topic":       {0x81}, // malformed packet
		"second-connect":             {0x82}, // protocol error
		"packet-over-max-size":       {0x95}, // packet too large
	}
	if level == 3 {
		// 3.1 gives SUBSCRIBE's header flags as QoS 1 but no rule to close on other values.
		cases = slices.DeleteFunc(cases, func(c badInput) bool { return c.name == "subscribe-reserved-flags" })
	}
	for i := range cases {
		cases[i].level = level
		cases[i].reply, cases[i].reasons = disconnect(reasons[cases[i].name]...)
	}
	return cases
}

// publishBeforeConnect: anything but CONNECT first closes the connection with nothing sent
// [MQTT-3.1.0-1].
var publishBeforeConnect = badInput{name: "publish-before-connect", send: []byte{
	0x30,            // PUBLISH, QoS 0
	0x04,            // remaining length 4
	0x00, 0x01, 'a', // topic "a"
	'x', // payload
}}

// subscribeReservedFlags is a SUBSCRIBE whose fixed-header flags are 0000 instead of 0010.
func subscribeReservedFlags(v5 bool) []byte {
	if v5 {
		return []byte{
			0x80,       // SUBSCRIBE with flags 0000; they must be 0010 [MQTT-3.8.1-1]
			0x07,       // remaining length 7
			0x00, 0x01, // packet identifier 1
			0x00,            // properties length 0
			0x00, 0x01, 'a', // topic filter "a"
			0x01, // subscription options: QoS 1
		}
	}
	return []byte{
		0x80,       // SUBSCRIBE with flags 0000; they must be 0010 [MQTT-3.8.1-1]
		0x06,       // remaining length 6
		0x00, 0x01, // packet identifier 1
		0x00, 0x01, 'a', // topic filter "a"
		0x01, // requested QoS 1
	}
}

// v5Publish inserts an empty property length after the topic (and packet identifier) of the
// short 3.x PUBLISH p, making it a 5.0 PUBLISH with the same fields.
func v5Publish(p []byte) []byte {
	topicLen := int(p[2])<<8 | int(p[3])
	at := 4 + topicLen
	if p[0]&0x06 != 0 { // QoS > 0: packet identifier follows the topic
		at += 2
	}
	if at > len(p) {
		return p
	}
	out := append([]byte{p[0], p[1] + 1}, p[2:at]...)
	out = append(out, 0x00) // property length 0
	return append(out, p[at:]...)
}

// TestBadInput runs every case for 3.1, 3.1.1 and 5.0 against one broker.
func TestBadInput(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{maxPacketSize: "1MiB"})
	healthy := connect3(t, b, "bad-healthy", opts3{clean: true})
	healthy.subscribe(t, "bad/health", 1)
	offline := connect3(t, b, "bad-offline", opts3{})
	offline.subscribe(t, "bad/health", 1)
	offline.disconnect()
	pub := connect3(t, b, "bad-pub", opts3{clean: true})

	cases := []badInput{publishBeforeConnect}
	for _, level := range []byte{3, 4, 5} {
		cases = append(cases, badInputCases(level)...)
	}
	var sent []string
	for _, tc := range cases {
		t.Run(fmt.Sprintf("v%d/%s", tc.level, tc.name), func(t *testing.T) {
			c := dialRaw(t, b)
			if tc.level != 0 {
				c.connect(tc.level, "bad-"+tc.name, 0)
			}
			c.send(tc.send)
			if tc.reply != 0 {
				c.expectReason(tc.reply, tc.reasons)
			}
			c.expectClosed()
			if !b.Running() {
				t.Fatal("broker exited")
			}
			p := fmt.Sprintf("after v%d/%s", tc.level, tc.name)
			pub.publish(t, "bad/health", 1, false, p)
			sent = append(sent, p)
			got := healthy.in.waitN(t, len(sent))
			equalStrings(t, "healthy subscriber", payloads(got), sent)
		})
	}
	again := connect3(t, b, "bad-offline", opts3{})
	if !again.sessionPresent {
		t.Fatal("offline session lost")
	}
	equalStrings(t, "offline session's queue", payloads(again.in.waitExactly(t, len(sent))), sent)
}

// TestUnsupportedProtocolLevel: a CONNECT with a protocol name and level the broker does not
// speak gets the 3.x CONNACK with return code 0x01, and the connection is closed [MQTT-3.1.2-2].
// (A level above 5 is tested in the pending file: it should get the 5.0 form, reason 0x84.)
func TestUnsupportedProtocolLevel(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	for _, tc := range []struct {
		name string
		send []byte
	}{
		{"MQTT-level-2", []byte{
			0x10, 0x0d, // CONNECT, remaining length 13
			0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
			0x02,       // protocol level 2: unknown
			0x02,       // connect flags: Clean Session
			0x00, 0x3c, // keep alive 60 s
			0x00, 0x01, 'x', // client identifier "x"
		}},
		{"MQIsdp-level-4", []byte{
			0x10, 0x0f, // CONNECT, remaining length 15
			0x00, 0x06, 'M', 'Q', 'I', 's', 'd', 'p', // protocol name of 3.1
			0x04,       // protocol level 4, which belongs to the name "MQTT"
			0x02,       // connect flags: Clean Session
			0x00, 0x3c, // keep alive 60 s
			0x00, 0x01, 'x', // client identifier "x"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, b)
			c.send(tc.send)
			c.expect([]byte{
				0x20, 0x02, // CONNACK, remaining length 2
				0x00, // session present 0
				0x01, // return code 1: unacceptable protocol level
			})
			c.expectClosed()
		})
	}
}

// expectReason reads one packet and fails t unless its type is header's and its reason code
// (byte 0 of a DISCONNECT, byte 1 of a CONNACK) is one of reasons.
func (c *rawConn) expectReason(header byte, reasons []byte) {
	c.t.Helper()
	p, err := c.read(waitLong)
	if err != nil {
		if errors.Is(err, errClosed) {
			c.t.Fatalf("connection closed without a packet with reason % x", reasons)
		}
		c.t.Fatal(err)
	}
	at := 0
	if header == 0x20 {
		at = 1
	}
	if p.header != header || len(p.body) <= at || !slices.Contains(reasons, p.body[at]) {
		c.t.Fatalf("got %v, want packet %02x with reason one of % x", p, header, reasons)
	}
}

// TestUnsupportedProtocolLevel5: a CONNECT with a level above 5 comes from a client newer than
// 5.0, which reads the 5.0 CONNACK: it gets reason 0x84 (unsupported protocol version) in that
// form, then the connection is closed.
func TestUnsupportedProtocolLevel5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := dialRaw(t, b)
	c.send([]byte{
		0x10, 0x0e, // CONNECT, remaining length 14
		0x00, 0x04, 'M', 'Q', 'T', 'T', // protocol name
		0x06,       // protocol level 6: unknown
		0x02,       // connect flags: Clean Start
		0x00, 0x3c, // keep alive 60 s
		0x00,            // properties length 0
		0x00, 0x01, 'x', // client identifier "x"
	})
	// CONNACK: session present 0, reason 0x84; properties (a reason string) may follow.
	c.expectReason(0x20, []byte{0x84})
	c.expectClosed()
}
