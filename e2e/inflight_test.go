package e2e

import (
	"bytes"
	"fmt"
	"testing"
)

// What a persistent session keeps besides its queue: messages in flight to the client, resent
// with DUP on reconnect, and the inbound QoS 2 exchanges not yet released.

// connectPersistent311 sends a 3.1.1 CONNECT with Clean Session 0 for id and returns the
// CONNACK's Session Present flag.
func (c *rawConn) connectPersistent311(id string) bool {
	c.t.Helper()
	v := append(str("MQTT"), // protocol name
		0x04,       // protocol level 4 (3.1.1)
		0x00,       // connect flags: Clean Session 0
		0x00, 0x3c) // keep alive 60 s
	v = append(v, str(id)...) // client identifier
	c.send(append(append([]byte{0x10}, encodeLen(len(v))...), v...))
	p, err := c.read(waitLong)
	if err != nil || p.header != 0x20 || len(p.body) != 2 || p.body[1] != 0 {
		c.t.Fatalf("CONNACK: %v %v", p, err)
	}
	return p.body[0]&0x01 == 1
}

// leaveUnacked subscribes the persistent 3.1.1 session id to topic at QoS 1 over a raw
// connection, publishes "first" to it from the clean client id+"-pub", reads that PUBLISH
// (QoS 1, no DUP) and closes the connection without PUBACK. It returns the publisher and the
// PUBLISH's body (topic, packet identifier, payload).
func leaveUnacked(t *testing.T, b *broker, id, topic string) (*client3, []byte) {
	t.Helper()
	c := dialRaw(t, b)
	c.connectPersistent311(id)
	v := append([]byte{0x00, 0x01}, str(topic)...) // packet identifier 1, topic filter
	v = append(v, 0x01)                            // requested QoS 1
	c.send(append(append([]byte{0x82}, encodeLen(len(v))...), v...))
	c.expect([]byte{0x90, 0x03, 0x00, 0x01, 0x01}) // SUBACK id 1, granted QoS 1

	pub := connect3(t, b, id+"-pub", opts3{clean: true})
	pub.publish(t, topic, 1, false, "first")
	p, err := c.read(waitLong)
	if err != nil || p.header != 0x32 {
		t.Fatalf("want PUBLISH QoS 1 without DUP, got %v %v", p, err)
	}
	c.Close() // gone without PUBACK
	return pub, p.body
}

// TestInflightResentWithDUP: a QoS 1 message the client received but did not acknowledge is
// sent again, with DUP set and the same packet identifier, when the session resumes.
func TestInflightResentWithDUP(t *testing.T) {
	t.Parallel()
	resendUnacked(t, startBroker(t, brokerOptions{}), "unacked", true)
}

// resendUnacked runs the scenario of TestInflightResentWithDUP for client id. The client ends
// with DISCONNECT when graceful is set, and otherwise closes the socket right after its PUBACK.
func resendUnacked(t *testing.T, b *broker, id string, graceful bool) {
	t.Helper()
	_, first := leaveUnacked(t, b, id, "u/t")

	again := dialRaw(t, b)
	if !again.connectPersistent311(id) {
		t.Fatal("Session Present = 0")
	}
	p, err := again.read(waitLong)
	if err != nil {
		t.Fatalf("waiting for the resent PUBLISH: %v", err)
	}
	if p.header != 0x3a { // PUBLISH, DUP 1, QoS 1
		t.Fatalf("resent %v, want header 3a (PUBLISH, DUP, QoS 1)", p)
	}
	if string(p.body) != string(first) {
		t.Fatalf("resent body % x, want the same topic, packet identifier and payload % x", p.body, first)
	}
	again.send([]byte{0x40, 0x02, p.body[5], p.body[6]}) // PUBACK for its packet identifier
	if graceful {
		again.send([]byte{0xe0, 0x00}) // DISCONNECT
		again.expectClosed()
	} else {
		again.Close()
	}
	// Acknowledged now: a further resume brings nothing.
	last := connect3(t, b, id, opts3{})
	last.in.waitExactly(t, 0)
}

// TestInflightQoS1ResentWithDUPAfterKill: a QoS 1 message in flight when the broker is killed
// comes again after the restart with DUP and its packet identifier, before what was queued
// behind it: the broker records the identifiers of what it sends to persistent sessions.
func TestInflightQoS1ResentWithDUPAfterKill(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	pub, first := leaveUnacked(t, b, "killed-unacked", "k/t")
	// Acknowledged means durable, and the log is written in order: once this PUBACK is in,
	// the record of the identifier sent before it is on disk too.
	pub.publish(t, "k/t", 1, false, "second")
	b.Kill()
	b.Start()

	again := dialRaw(t, b)
	if !again.connectPersistent311("killed-unacked") {
		t.Fatal("Session Present = 0 after the restart")
	}
	p, err := again.read(waitLong)
	if err != nil || p.header != 0x3a || string(p.body) != string(first) {
		t.Fatalf("after the restart got %v (%v), want header 3a (PUBLISH, DUP, QoS 1) and body % x", p, err, first)
	}
	again.send([]byte{0x40, 0x02, p.body[5], p.body[6]}) // PUBACK
	// "second" may have gone out to the closed connection before the broker noticed it was
	// gone: then it is in flight too and comes with DUP.
	p, err = again.read(waitLong)
	if err != nil || p.header&^0x08 != 0x32 || !bytes.HasSuffix(p.body, []byte("second")) {
		t.Fatalf("then got %v (%v), want the PUBLISH of \"second\"", p, err)
	}
}

// TestInboundQoS2ExactlyOnce: a QoS 2 PUBLISH that was PUBRECed but not released before the
// connection dropped is resent with DUP after the session resumes; the broker knows the packet
// identifier and delivers the message once, completing the exchange with PUBREC and PUBCOMP.
func TestInboundQoS2ExactlyOnce(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	sub := connect3(t, b, "qos2-sub", opts3{clean: true})
	sub.subscribe(t, "q2/t", 2)

	publish := func(dup bool) []byte {
		h := byte(0x34) // PUBLISH, QoS 2
		if dup {
			h |= 0x08 // DUP
		}
		return []byte{
			h, 0x09, // remaining length 9
			0x00, 0x04, 'q', '2', '/', 't', // topic "q2/t"
			0x00, 0x05, // packet identifier 5
			'x', // payload
		}
	}
	c := dialRaw(t, b)
	c.connectPersistent311("qos2-pub")
	c.send(publish(false))
	c.expect([]byte{0x50, 0x02, 0x00, 0x05}) // PUBREC, packet identifier 5
	c.Close()                                // dropped before PUBREL

	again := dialRaw(t, b)
	if !again.connectPersistent311("qos2-pub") {
		t.Fatal("Session Present = 0")
	}
	again.send(publish(true))
	again.expect([]byte{0x50, 0x02, 0x00, 0x05}) // PUBREC again, packet identifier 5
	again.send([]byte{0x62, 0x02, 0x00, 0x05})   // PUBREL, packet identifier 5
	again.expect([]byte{0x70, 0x02, 0x00, 0x05}) // PUBCOMP, packet identifier 5
	got := sub.in.waitExactly(t, 1)
	if got[0].payload != "x" || got[0].qos != 2 {
		t.Fatalf("got %v, want x once at QoS 2", got[0])
	}
}

// TestPubackBeforeAbruptClose: a PUBACK that arrives right before the client's socket closes
// (no DISCONNECT) still acknowledges the message: it is not resent on the next resume. Five
// rounds, because the broker loses the PUBACK only some of the time.
func TestPubackBeforeAbruptClose(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	for i := range 5 {
		resendUnacked(t, b, fmt.Sprintf("abrupt%d", i), false)
	}
}
