package e2e

import (
	"net"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// TestWill311: the will is published when the connection is cut without DISCONNECT, and not
// after a normal DISCONNECT.
func TestWill311(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "will-watcher", opts3{clean: true})
	watcher.subscribe(t, "will/311/#", 1)

	var conn net.Conn
	connect3(t, b, "will-abrupt", opts3{clean: true, conn: &conn,
		will: &message{topic: "will/311/abrupt", payload: "died", qos: 1}})
	polite := connect3(t, b, "will-polite", opts3{clean: true,
		will: &message{topic: "will/311/polite", payload: "left", qos: 1}})

	polite.disconnect()
	conn.Close() // cut the TCP connection without DISCONNECT

	got := watcher.in.waitExactly(t, 1)
	if got[0].topic != "will/311/abrupt" || got[0].payload != "died" {
		t.Fatalf("got %+v, want only the will of the abruptly closed client", got[0])
	}
}

// will5 connects a 5.0 client with a will on topic and the given will delay and session expiry.
func will5(t *testing.T, b *broker, id, topic string, delay, expiry uint32) *client5 {
	t.Helper()
	return connect5(t, b, &paho.Connect{
		ClientID: id, KeepAlive: 30, CleanStart: true,
		Properties:     &paho.ConnectProperties{SessionExpiryInterval: uint32p(expiry)},
		WillMessage:    &paho.WillMessage{Topic: topic, QoS: 1, Payload: []byte(id)},
		WillProperties: &paho.WillProperties{WillDelayInterval: uint32p(delay)},
	})
}

// TestWill5: abnormal close publishes the will, DISCONNECT 0x00 does not, DISCONNECT 0x04
// (disconnect with will message) does.
func TestWill5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "will5-watcher", opts3{clean: true})
	watcher.subscribe(t, "will/5/#", 1)

	normal := will5(t, b, "normal", "will/5/normal", 0, 0)
	if err := normal.Disconnect(&paho.Disconnect{ReasonCode: 0x00}); err != nil {
		t.Fatal(err)
	}
	normal.waitClosed(t)

	withWill := will5(t, b, "with-will", "will/5/with-will", 0, 0)
	if err := withWill.Disconnect(&paho.Disconnect{ReasonCode: 0x04}); err != nil {
		t.Fatal(err)
	}
	got := watcher.in.waitN(t, 1)
	if got[0].payload != "with-will" {
		t.Fatalf("got will %q first, want with-will", got[0].payload)
	}

	abrupt := will5(t, b, "abrupt", "will/5/abrupt", 0, 0)
	abrupt.conn.Close()
	got = watcher.in.waitExactly(t, 2)
	equalStrings(t, "wills", payloads(got), []string{"with-will", "abrupt"})
}

// TestWillDelay5: with a Will Delay Interval the will waits; a session resumed in time cancels
// it, one that is not resumed has it published after the delay.
func TestWillDelay5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "delay-watcher", opts3{clean: true})
	watcher.subscribe(t, "will/delay/#", 1)

	resumed := will5(t, b, "resumed", "will/delay/resumed", 2, 60)
	resumed.conn.Close()
	again := connect5(t, b, &paho.Connect{ClientID: "resumed", KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32p(60)}})
	if !again.connack.SessionPresent {
		t.Fatal("Session Present = 0 on resuming within the session expiry")
	}

	lost := will5(t, b, "lost", "will/delay/lost", 1, 60)
	start := time.Now()
	lost.conn.Close()
	got := watcher.in.waitN(t, 1)
	if since := time.Since(start); since < 900*time.Millisecond {
		t.Fatalf("delayed will published after %v, before its 1 s delay", since)
	}
	// Past the 2 s delay of the resumed client: its will must not have come.
	time.Sleep(2500 * time.Millisecond) // bounded wait to observe an absence
	got = watcher.in.all()
	equalStrings(t, "wills", payloads(got), []string{"lost"})
}

// TestWillDelayEndsWithSession5: the will is published when the session ends, even if the will
// delay is longer than the session expiry.
func TestWillDelayEndsWithSession5(t *testing.T) {
	t.Parallel()
	b := startBroker(t, brokerOptions{})
	watcher := connect3(t, b, "end-watcher", opts3{clean: true})
	watcher.subscribe(t, "will/end/#", 1)
	c := will5(t, b, "short-session", "will/end/short", 60, 1)
	c.conn.Close()
	got := watcher.in.waitExactly(t, 1)
	if got[0].payload != "short-session" {
		t.Fatalf("got %q", got[0].payload)
	}
}
