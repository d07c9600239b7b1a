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
