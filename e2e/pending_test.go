//go:build pending

package e2e

import (
	"fmt"
	"testing"
)

// Tests of behaviour the broker does not have yet. They run with go test -tags pending ./e2e and
// move to their topic's file once they pass.

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

// TestSessionSurvivesRestart: a persistent session, its subscription and the messages queued for
// it survive a graceful restart (SIGTERM) and a crash (SIGKILL) of the broker.
func TestSessionSurvivesRestart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		down func(*broker)
	}{
		{"sigterm", (*broker).Stop},
		{"sigkill", (*broker).Kill},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{})
			sub := connect3(t, b, "durable", opts3{})
			sub.subscribe(t, "durable/t", 1)
			sub.disconnect()
			pub := connect3(t, b, "durable-pub", opts3{clean: true})
			pub.publishSeq(t, "durable/t", 1, "m", 20) // each PUBACK means durable
			pub.disconnect()

			tc.down(b)
			b.Start()
			again := connect3(t, b, "durable", opts3{})
			if !again.sessionPresent {
				t.Fatal("Session Present = 0 after the restart")
			}
			equalStrings(t, "queued before the restart", payloads(again.in.waitExactly(t, 20)), seq("m", 0, 20))

			// The subscription itself was restored: a new message routes to it.
			b.Restart()
			again = connect3(t, b, "durable", opts3{})
			pub = connect3(t, b, "durable-pub", opts3{clean: true})
			pub.publish(t, "durable/t", 1, false, "after")
			equalStrings(t, "after the second restart", payloads(again.in.waitExactly(t, 1)), []string{"after"})
		})
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
