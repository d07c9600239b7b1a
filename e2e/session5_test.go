package e2e

import (
	"fmt"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// MQTT 5.0 sessions: Clean Start and Session Expiry Interval replace Clean Session, and messages
// carry their own Message Expiry Interval.

// connect5Session connects a 5.0 client with Clean Start 0 (resume if possible) and the given
// session expiry interval in seconds.
func connect5Session(t *testing.T, b *broker, id string, expiry uint32) *client5 {
	t.Helper()
	return connect5(t, b, &paho.Connect{
		ClientID:   id,
		KeepAlive:  30,
		CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(expiry)},
	})
}

// disconnect5 sends a normal DISCONNECT, with a new session expiry interval when expiry is not nil.
func disconnect5(t *testing.T, c *client5, expiry *uint32) {
	t.Helper()
	d := &paho.Disconnect{ReasonCode: 0x00}
	if expiry != nil {
		d.Properties = &paho.DisconnectProperties{SessionExpiryInterval: expiry}
	}
	if err := c.Disconnect(d); err != nil {
		t.Fatalf("disconnect: %v", err)
	}
	c.waitClosed(t)
}

// TestSessionExpiryZeroEndsAtDisconnect: with Session Expiry Interval 0 (or absent) the session
// ends with the connection, even with Clean Start 0.
func TestSessionExpiryZeroEndsAtDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect5Session(t, b, "expiry0", 0)
	if c.connack.SessionPresent {
		t.Fatal("Session Present = 1 for a new client id")
	}
	c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/expiry0", QoS: 1})
	disconnect5(t, c, nil)

	pub := connect5(t, b, &paho.Connect{ClientID: "expiry0-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "v5/expiry0", QoS: 1, Payload: []byte("lost")})

	again := connect5Session(t, b, "expiry0", 0)
	if again.connack.SessionPresent {
		t.Fatal("Session Present = 1 after a session with expiry 0 ended")
	}
	again.in.waitExactly(t, 0)
}

// TestSessionExpiryInterval: expiry 2 s keeps the session (and its queued messages) for 2 s after
// the disconnect: reconnecting after 1 s finds it, after 3 s does not.
func TestSessionExpiryInterval(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		wait    time.Duration
		present bool
	}{
		{1 * time.Second, true},
		{3 * time.Second, false},
	} {
		t.Run(fmt.Sprintf("reconnect-after-%v", tc.wait), func(t *testing.T) {
			t.Parallel()
			b := startBroker(t, brokerOptions{})
			c := connect5Session(t, b, "expiry2", 2)
			c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/expiry2", QoS: 1})
			disconnect5(t, c, nil)
			pub := connect5(t, b, &paho.Connect{ClientID: "expiry2-pub", CleanStart: true, KeepAlive: 30})
			pub.publish(t, &paho.Publish{Topic: "v5/expiry2", QoS: 1, Payload: []byte("queued")})

			time.Sleep(tc.wait) // the offline period under test, not a wait for an event
			again := connect5Session(t, b, "expiry2", 2)
			if again.connack.SessionPresent != tc.present {
				t.Fatalf("Session Present = %v after %v offline with expiry 2 s, want %v", again.connack.SessionPresent, tc.wait, tc.present)
			}
			want := 0
			if tc.present {
				want = 1
			}
			again.in.waitExactly(t, want)
		})
	}
}

// TestSessionExpiryChangedOnDisconnect: the expiry given on DISCONNECT replaces the one given on
// CONNECT: lowered from 60 s to 0 the session ends at once, lowered to 1 s it ends a second later.
func TestSessionExpiryChangedOnDisconnect(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})

	// Lowered to 0: the session ends with the connection.
	c := connect5Session(t, b, "lower0", 60)
	c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/lower0", QoS: 1})
	disconnect5(t, c, uint32p(0))
	again := connect5Session(t, b, "lower0", 60)
	if again.connack.SessionPresent {
		t.Fatal("Session Present = 1 after DISCONNECT set the session expiry to 0")
	}

	// Lowered to 1 s: present right away, gone after 2 s.
	c = connect5Session(t, b, "lower1", 60)
	disconnect5(t, c, uint32p(1))
	again = connect5Session(t, b, "lower1", 60)
	if !again.connack.SessionPresent {
		t.Fatal("Session Present = 0 right after DISCONNECT lowered the expiry to 1 s")
	}
	disconnect5(t, again, uint32p(1))
	time.Sleep(2 * time.Second) // the offline period under test
	again = connect5Session(t, b, "lower1", 60)
	if again.connack.SessionPresent {
		t.Fatal("Session Present = 1 two seconds after DISCONNECT lowered the expiry to 1 s")
	}
}

// TestCleanStartDiscardsSession: Clean Start 1 discards an existing session even when it has
// not expired.
func TestCleanStartDiscardsSession(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect5Session(t, b, "cleanstart", 60)
	c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/cleanstart", QoS: 1})
	disconnect5(t, c, nil)
	pub := connect5(t, b, &paho.Connect{ClientID: "cleanstart-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "v5/cleanstart", QoS: 1, Payload: []byte("discarded")})

	again := connect5(t, b, &paho.Connect{
		ClientID: "cleanstart", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(60)},
	})
	if again.connack.SessionPresent {
		t.Fatal("Session Present = 1 with Clean Start 1")
	}
	again.in.waitExactly(t, 0)
}

// TestMessageExpiry: two messages are queued for an offline session, one with Message Expiry
// Interval 1 s and one with 60 s. After 2 s offline only the second arrives, and its expiry
// interval has been lowered by the time it spent in the queue.
func TestMessageExpiry(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect5Session(t, b, "msgexpiry", 300)
	c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/msgexpiry", QoS: 1})
	disconnect5(t, c, nil)

	pub := connect5(t, b, &paho.Connect{ClientID: "msgexpiry-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "v5/msgexpiry", QoS: 1, Payload: []byte("short"),
		Properties: &paho.PublishProperties{MessageExpiry: uint32p(1)}})
	pub.publish(t, &paho.Publish{Topic: "v5/msgexpiry", QoS: 1, Payload: []byte("long"),
		Properties: &paho.PublishProperties{MessageExpiry: uint32p(60)}})

	time.Sleep(2500 * time.Millisecond) // the offline period under test
	again := connect5Session(t, b, "msgexpiry", 300)
	if !again.connack.SessionPresent {
		t.Fatal("Session Present = 0 within the session expiry interval")
	}
	got := again.in.waitExactly(t, 1)
	if got[0].payload != "long" {
		t.Fatalf("got %q, want only the message that has not expired", got[0].payload)
	}
	if got[0].props == nil || got[0].props.MessageExpiry == nil {
		t.Fatal("forwarded message lost its Message Expiry Interval")
	}
	if e := *got[0].props.MessageExpiry; e >= 60 || e < 50 {
		t.Fatalf("Message Expiry Interval forwarded as %d s after 2.5 s queued, want 57 or 58", e)
	}
}

// TestAssignedClientID: a 5.0 client with an empty client id is given one in the CONNACK's
// Assigned Client Identifier, and it can resume that session by name.
func TestAssignedClientID(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	c := connect5(t, b, &paho.Connect{
		ClientID: "", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(60)},
	})
	id := ""
	if c.connack.Properties != nil {
		id = c.connack.Properties.AssignedClientID
	}
	if id == "" {
		t.Fatal("CONNACK to an empty client id carries no Assigned Client Identifier")
	}
	c.subscribe(t, 0, paho.SubscribeOptions{Topic: "v5/assigned", QoS: 1})
	disconnect5(t, c, nil)

	again := connect5Session(t, b, id, 60)
	if !again.connack.SessionPresent {
		t.Fatalf("Session Present = 0 resuming the session of assigned id %q", id)
	}
	pub := connect5(t, b, &paho.Connect{ClientID: "assigned-pub", CleanStart: true, KeepAlive: 30})
	pub.publish(t, &paho.Publish{Topic: "v5/assigned", QoS: 1, Payload: []byte("hi")})
	again.in.waitExactly(t, 1)
}

// TestSessionExpiryMaxFor311: --session-expiry-max is the lifetime of a 3.1.1 persistent
// session: present within it, gone after it.
func TestSessionExpiryMaxFor311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{sessionExpiryMax: 2 * time.Second})
	c := connect3(t, b, "maxexp", opts3{})
	c.disconnect()
	again := connect3(t, b, "maxexp", opts3{})
	if !again.sessionPresent {
		t.Fatal("Session Present = 0 within --session-expiry-max")
	}
	again.disconnect()
	time.Sleep(3 * time.Second) // the offline period under test
	last := connect3(t, b, "maxexp", opts3{})
	if last.sessionPresent {
		t.Fatal("Session Present = 1 after --session-expiry-max passed")
	}
}
