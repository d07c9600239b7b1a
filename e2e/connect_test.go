package e2e

import (
	"errors"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestTakeover311: a second connection with the same client id closes the first, and the
// session continues on the second.
func TestTakeover311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	first := connect3(t, b, "twin", opts3{})
	first.subscribe(t, "takeover/311", 1)
	second := connect3(t, b, "twin", opts3{})
	if !second.sessionPresent {
		t.Fatal("Session Present = 0 on taking over a persistent session")
	}
	checkFor(t, waitLong, pollEvery, func() error {
		if first.IsConnectionOpen() {
			return errors.New("first connection still open after the takeover")
		}
		return nil
	})
	pub := connect3(t, b, "twin-pub", opts3{clean: true})
	pub.publish(t, "takeover/311", 1, false, "to-second")
	got := second.in.waitExactly(t, 1)
	if got[0].payload != "to-second" {
		t.Fatalf("second connection got %q", got[0].payload)
	}
	if n := len(first.in.all()); n != 0 {
		t.Fatalf("first connection got %d messages after the takeover", n)
	}
}

// TestTakeover5: the first 5.0 connection gets DISCONNECT with reason 0x8E (session taken over)
// before it is closed.
func TestTakeover5(t *testing.T) {
	t.Parallel()
	onlyOurs(t, "it closes the old connection without DISCONNECT 0x8E")
	b := startBroker(t, brokerOptions{})
	cp := func() *paho.Connect {
		return &paho.Connect{ClientID: "twin5", KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(60)}}
	}
	first := connect5(t, b, cp())
	second := connect5(t, b, cp())
	if !second.connack.SessionPresent {
		t.Fatal("Session Present = 0 on taking over a session")
	}
	select {
	case d := <-first.serverDisconnect:
		if d.ReasonCode != 0x8E {
			t.Fatalf("first connection got DISCONNECT 0x%02x, want 0x8E session taken over", d.ReasonCode)
		}
	case <-time.After(waitLong):
		t.Fatal("first connection got no DISCONNECT")
	}
	first.waitClosed(t)
}

// TestKeepAliveTimeout: a 5.0 client with keep-alive 1 s that goes silent is disconnected after
// one and a half keep-alive periods, and its will is published.
func TestKeepAliveTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "ka-watcher", opts3{clean: true})
	watcher.subscribe(t, "keepalive/will", 0)

	silent := dialRaw(t, b)
	will := "keepalive/will"
	silent.send(connectPacket(5, "silent", 1, &will))
	p, err := silent.read(waitLong)
	if err != nil || p.header != 0x20 || len(p.body) < 2 || p.body[1] != 0 {
		t.Fatalf("CONNACK: %v %v", p, err)
	}
	// The broker may send DISCONNECT 0x8D (keep alive timeout) first; then it closes.
	p, err = silent.read(waitLong)
	if err == nil {
		if p.header != 0xE0 || len(p.body) < 1 || p.body[0] != 0x8D {
			t.Fatalf("got %v, want DISCONNECT 0x8D or the connection closed", p)
		}
		silent.expectClosed()
	} else if !errors.Is(err, errClosed) {
		t.Fatalf("silent client still connected: %v", err)
	}
	got := watcher.in.waitExactly(t, 1)
	if got[0].payload != "gone" {
		t.Fatalf("will payload %q", got[0].payload)
	}
}

// TestServerKeepAlive: with --max-keepalive 10 a 5.0 client asking for 60 s gets Server Keep
// Alive 10 in the CONNACK; one asking for 5 s gets no override.
func TestServerKeepAlive(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{maxKeepAlive: 10})
	c := connect5(t, b, &paho.Connect{ClientID: "ka60", CleanStart: true, KeepAlive: 60})
	if c.connack.Properties == nil || c.connack.Properties.ServerKeepAlive == nil {
		t.Fatal("CONNACK has no Server Keep Alive for a keep-alive above --max-keepalive")
	}
	if ka := *c.connack.Properties.ServerKeepAlive; ka != 10 {
		t.Fatalf("Server Keep Alive %d, want 10", ka)
	}
	c = connect5(t, b, &paho.Connect{ClientID: "ka5", CleanStart: true, KeepAlive: 5})
	if p := c.connack.Properties; p != nil && p.ServerKeepAlive != nil && *p.ServerKeepAlive != 5 {
		t.Fatalf("Server Keep Alive %d for a keep-alive of 5 within the maximum", *p.ServerKeepAlive)
	}
}

// TestConnectTimeout: a socket that never sends CONNECT is closed after --connect-timeout.
func TestConnectTimeout(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{connectTimeout: time.Second})
	idle := dialRaw(t, b)
	idle.expectClosed()
}
