package session

import (
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/codec"
	"edgebroker/wal/waltest"
)

// manualClock is a broker clock a test moves by hand.
type manualClock struct{ ns atomic.Int64 }

func newManualClock() *manualClock {
	c := &manualClock{}
	c.ns.Store(time.Now().UnixNano())
	return c
}

func (c *manualClock) now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *manualClock) advance(d time.Duration) { c.ns.Add(int64(d)) }

// aMinuteLater sets a broker's clock a minute ahead.
func aMinuteLater(o *Options) { o.Now = func() time.Time { return time.Now().Add(time.Minute) } }

// willConnect is a CONNECT of client id with a will on "lwt".
func willConnect(id string, clean bool) *codec.Connect {
	return &codec.Connect{ClientID: id, CleanStart: clean, KeepAlive: 60, WillFlag: true,
		WillTopic: "lwt", WillPayload: []byte("bye " + id), WillQoS: 1}
}

// A will's Message Expiry Interval is its lifetime from its publication [5.0 3.1.3.2.4], not
// from the CONNECT that carried it.
func TestWillExpiryRunsFromItsPublication(t *testing.T) {
	clock := newManualClock()
	_, addr := startBroker(t, func(o *Options) { o.Now = clock.now })
	watcher, _ := connectClient(t, addr, codec.V5, "watcher", true)
	watcher.subscribe(1, "lwt", 1)
	dev := dial(t, addr, codec.V5)
	cp := willConnect("dev", true)
	cp.WillProps.Present.Set(codec.PropMessageExpiry)
	cp.WillProps.MessageExpiry = 10
	dev.connect(cp)
	clock.advance(30 * time.Second) // connected three times the will's lifetime
	dev.nc.Close()
	p := watcher.receive()
	if !p.Props.Present.Has(codec.PropMessageExpiry) || p.Props.MessageExpiry != 10 {
		t.Fatalf("will forwarded with expiry %d (present %v), want the whole 10 s",
			p.Props.MessageExpiry, p.Props.Present.Has(codec.PropMessageExpiry))
	}
}

// Only DISCONNECT with reason 0x00 discards the will; an error reason publishes it
// [MQTT-3.14.4-3].
func TestDisconnectWithAnErrorPublishesTheWill(t *testing.T) {
	_, addr := startBroker(t, nil)
	watcher, _ := connectClient(t, addr, codec.V311, "watcher", true)
	watcher.subscribe(1, "lwt", 1)
	dev := dial(t, addr, codec.V5)
	dev.connect(willConnect("dev", true))
	dev.send(&codec.Disconnect{Reason: codec.UnspecifiedError})
	dev.expectClosed()
	if p := watcher.receive(); string(p.Payload) != "bye dev" {
		t.Fatalf("got %q, want the will", p.Payload)
	}
}

// A delayed will pending when the broker stopped goes out when its delay, counted from the
// disconnection, runs out: at once after the restart if it ran out while the broker was down.
func TestDelayedWillAfterARestart(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "watcher", "lwt", 1)
	for _, id := range []string{"soon", "later"} {
		dev := dial(t, d.addr, codec.V5)
		cp := willConnect(id, false)
		cp.Props.Present.Set(codec.PropSessionExpiry)
		cp.Props.SessionExpiry = 3600
		cp.WillProps.Present.Set(codec.PropWillDelay)
		cp.WillProps.WillDelay = 30 // ran out while the broker was down
		if id == "later" {
			cp.WillProps.WillDelay = 600
		}
		dev.connect(cp)
		dev.nc.Close()
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		for _, id := range []string{"soon", "later"} {
			if s := d.b.session(id); s == nil || s.online() {
				return fmt.Errorf("%s still connected", id)
			}
		}
		return nil
	})
	// The disconnections must be on disk: a record of the session built now and waited for
	// (the connection's own is only committed, and a power cut may take it).
	for _, id := range []string{"soon", "later"} {
		p, err := d.b.saveSession(d.b.session(id))
		if err == nil {
			err = d.b.store.Wait(p)
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	r := d.powerCutWith(1, aMinuteLater) // to it, the clients left a minute ago
	watcher, _ := connectClient(t, r.addr, codec.V311, "watcher", false)
	if p := watcher.receive(); string(p.Payload) != "bye soon" {
		t.Fatalf("got %q, want the will whose delay ran out", p.Payload)
	}
	watcher.expectNothing(200 * time.Millisecond)
	later := r.b.session("later")
	later.mu.Lock()
	pending := later.will != nil && later.willTimer != nil
	later.mu.Unlock()
	if !pending {
		t.Fatal("the will with time left is not scheduled")
	}
}

// At shutdown the server closes every connection without a DISCONNECT from the client: each
// will goes out [MQTT-3.1.2-8], a clean session's and a persistent one's, except a delayed
// will of a persistent session, which stays with it and goes out after the restart when due.
func TestWillsAtShutdown(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "watcher", "lwt", 1)
	clean := dial(t, d.addr, codec.V311)
	clean.connect(willConnect("clean", true))
	persistent := dial(t, d.addr, codec.V311)
	persistent.connect(willConnect("persistent", false))
	delayed := dial(t, d.addr, codec.V5)
	cp := willConnect("delayed", false)
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 3600
	cp.WillProps.Present.Set(codec.PropWillDelay)
	cp.WillProps.WillDelay = 30 // runs out while the broker is down
	delayed.connect(cp)
	if err := d.b.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	s := d.b.session("delayed")
	s.mu.Lock()
	kept := s.will != nil
	s.mu.Unlock()
	if !kept {
		t.Fatal("the delayed will did not stay with its session at shutdown")
	}
	if err := d.b.store.Close(); err != nil {
		t.Fatal(err)
	}
	r := d.powerCutWith(1, aMinuteLater) // after a clean close, all of it
	watcher, _ := connectClient(t, r.addr, codec.V311, "watcher", false)
	got := map[string]bool{}
	for range 3 {
		got[string(watcher.receive().Payload)] = true
	}
	if !got["bye clean"] || !got["bye persistent"] || !got["bye delayed"] {
		t.Fatalf("wills received %v, want clean, persistent and delayed", got)
	}
	watcher.expectNothing(200 * time.Millisecond)
}

// A session connected when the broker stopped counts as disconnected from the restart, and
// that is stored: another restart does not start its expiry clock again.
func TestDisconnectionAtARestartIsStored(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	dev := dial(t, d.addr, codec.V5)
	cp := &codec.Connect{ClientID: "dev"}
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 3600
	dev.connect(cp)
	r1 := d.powerCut(1) // dev was connected: offline from now
	first := r1.b.session("dev")
	first.mu.Lock()
	at := first.disconnectedAt
	first.mu.Unlock()
	r2 := r1.powerCut(2)
	again := r2.b.session("dev")
	again.mu.Lock()
	defer again.mu.Unlock()
	if again.disconnectedAt != at {
		t.Fatalf("disconnected at %d after the second restart, want %d from the first", again.disconnectedAt, at)
	}
}

// A will with a Message Expiry stored while its client was connected runs out relative to the
// disconnection: after a crash during that connection it goes out (at once, no delay) with its
// whole lifetime, however long the client had been connected.
func TestWillExpiryAfterACrashWhileConnected(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V5, "watcher", "lwt", 1)
	dev := dial(t, d.addr, codec.V5)
	cp := willConnect("dev", false)
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 3600
	cp.WillProps.Present.Set(codec.PropMessageExpiry)
	cp.WillProps.MessageExpiry = 10
	dev.connect(cp)
	r := d.powerCutWith(1, aMinuteLater) // the client had been connected a minute
	watcher, _ := connectClient(t, r.addr, codec.V5, "watcher", false)
	p := watcher.receive()
	if string(p.Payload) != "bye dev" || p.Props.MessageExpiry < 9 || p.Props.MessageExpiry > 10 {
		t.Fatalf("got %q with expiry %d, want the will with about 10 s", p.Payload, p.Props.MessageExpiry)
	}
}
