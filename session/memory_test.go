package session

import (
	"bytes"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"edgebroker/codec"
	"edgebroker/limits"
)

// heldDrift recomputes from s's state what it should hold in the memory budget and returns
// how far s.held is from it: zero when every charge along the way was matched.
func heldDrift(b *Broker, s *Session) int64 {
	subs := b.subs.Subscriptions(s.id)
	s.mu.Lock()
	defer s.mu.Unlock()
	want := int64(sessionCost)
	for _, sub := range subs {
		want += subscriptionSize(sub.Group, sub.Filter)
	}
	if s.will != nil {
		want += messageSize(s.will)
	}
	s.queue.Each(func(d *delivery) bool {
		want += deliverySize(d)
		return true
	})
	for _, o := range s.inflight {
		want += deliverySize(o.d)
	}
	return s.held - want
}

// accountedTotal is what the budget should hold when nothing is on its way: every session's
// charge, every retained message and every connection (one that ended is accounted until its
// peer has closed too, or the drain timed out).
func accountedTotal(b *Broker) int64 {
	b.mu.RLock()
	defer b.mu.RUnlock()
	var n int64
	for c := range b.conns {
		n += connCost
		if c.reading.Load() {
			n += readerCost
		}
	}
	for _, s := range b.sessions {
		s.mu.Lock()
		n += s.held
		s.mu.Unlock()
	}
	b.retained.Each(func(_ string, m *Message) bool {
		n += messageSize(m)
		return true
	})
	return n
}

// expectBalanced fails the test unless every session's charge matches its state and the
// budget holds exactly the sum of what is accounted (once connections have settled).
func expectBalanced(t *testing.T, b *Broker) {
	t.Helper()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		for _, s := range b.sessionList() {
			if d := heldDrift(b, s); d != 0 {
				return fmt.Errorf("session %s holds %d bytes more than its state", s.id, d)
			}
		}
		if used, want := b.mem.Used(), accountedTotal(b); used != want {
			return fmt.Errorf("budget used %d, accounted %d", used, want)
		}
		return nil
	})
}

func TestMemoryAccountAddsUp(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.MaxQueued = 50; o.SysInterval = 0 })
	if u := b.mem.Used(); u != 0 {
		t.Fatalf("an idle broker accounts %d bytes", u)
	}
	keep, _ := connectClient(t, addr, codec.V311, "keep", false)
	keep.subscribe(1, "a/#", 1)
	keep.subscribe(2, "b", 0)
	keep.subscribe(3, "b", 1) // replaces: charged once
	keep.send(&codec.Unsubscribe{PacketID: 4, Filters: []string{"a/#"}})
	keep.next()
	keep.subscribe(5, "a/#", 1)
	keep.send(&codec.Disconnect{})
	keep.expectClosed()
	keep.nc.Close() // a connection is accounted until its peer is gone too

	willer := dial(t, addr, codec.V5)
	if ack := willer.connect(&codec.Connect{ClientID: "willer", CleanStart: true, WillFlag: true,
		WillTopic: "gone/willer", WillPayload: []byte("bye"), WillQoS: 1}); ack.Reason != 0 {
		t.Fatal(ack.Reason)
	}
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	for i := range 60 { // 10 more than the queue takes: dropped, never charged
		pub.publish(uint16(i+1), "a/x", 1, fmt.Sprintf("message %d", i))
	}
	pub.publish(0, "b", 0, "qos 0 to an offline session: not queued")
	pub.send(&codec.Publish{Topic: "r", Retain: true, Payload: []byte("retained")})
	pub.send(&codec.Publish{Topic: "r", Retain: true, Payload: []byte("replaced")})
	expectBalanced(t, b)
	if used := b.mem.Used(); used < 50*deliveryCost {
		t.Fatalf("50 queued messages, but only %d bytes accounted", used)
	}

	// Back online: part of the queue is sent and acknowledged, part in flight, part queued.
	keep, _ = connectClient(t, addr, codec.V311, "keep", false)
	for range 20 {
		keep.receive()
	}
	expectBalanced(t, b)

	// Everything ends: the budget holds nothing.
	keep.nc.Close()
	keep, _ = connectClient(t, addr, codec.V311, "keep", true) // ends the persistent session
	willer.nc.Close()                                          // its will is published to nobody
	pub.send(&codec.Publish{Topic: "r", Retain: true})         // deletes the retained message
	for _, c := range []*client{keep, pub} {
		c.send(&codec.Disconnect{})
		c.expectClosed()
		c.nc.Close()
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if n, used := b.SessionCount(), b.mem.Used(); n != 0 || used != 0 {
			return fmt.Errorf("%d sessions left, %d bytes still accounted", n, used)
		}
		return nil
	})
}

// A message dropped instead of sent (over the client's Maximum Packet Size) releases its charge.
func TestMemoryAccountAfterDiscard(t *testing.T) {
	b, addr := startBroker(t, func(o *Options) { o.SysInterval = 0 })
	sub := connectLimited(t, addr, "small", 200, "t")
	pub, _ := connectClient(t, addr, codec.V311, "pub", true)
	pub.publish(1, "t", 1, strings.Repeat("x", 1000)) // too large for sub: discarded
	pub.publish(2, "t", 1, "fits")
	if got := sub.receive(); string(got.Payload) != "fits" {
		t.Fatalf("got %q", got.Payload)
	}
	expectBalanced(t, b)
}

func TestMemoryAccountRefusesWhatDoesNotFit(t *testing.T) {
	const limit = 48 << 20 // far above this test's heap, which therefore never makes pressure
	runtime.GC()           // nor the garbage of earlier tests
	b, addr := startBroker(t, func(o *Options) { o.MemoryLimit = limit; o.MaxPacketSize = 32 << 20 })
	sub, _ := connectClient(t, addr, codec.V5, "sub", true)
	sub.subscribe(1, "t", 1)
	p5, _ := connectClient(t, addr, codec.V5, "p5", true)
	p3, _ := connectClient(t, addr, codec.V311, "p3", true)
	parkSubscriber(t, addr, codec.V311, "parked", "elsewhere", 1)

	// 78% used (just under the pressure threshold): a publication of the rest does not fit.
	// A 3.x publisher waits, unread, for room. The heap holds that publication three times
	// (here, in the client's encoding, in the broker reading it): it must stay under the
	// threshold too.
	const fill = limit * 78 / 100 // and the clients' own
	b.mem.Charge(fill)
	big := bytes.Repeat([]byte("x"), limit-fill+1)
	p3.send(&codec.Publish{PacketID: 7, Topic: "t", QoS: 1, Payload: big})
	p3.expectNothing(200 * time.Millisecond)
	if b.pressure.Load() {
		t.Fatal("memory pressure: the heap sample, not the account, may have held the publisher")
	}
	// A 5.0 one is refused, a QoS 0 one dropped.
	p5.send(&codec.Publish{PacketID: 1, Topic: "t", QoS: 1, Payload: big})
	if a := p5.next().(*codec.Ack); a.Reason != codec.QuotaExceeded {
		t.Fatalf("PUBACK %v for a publication over the budget, want 0x97", a.Reason)
	}
	dropped := b.Stats().MessagesDropped.Load()
	p5.send(&codec.Publish{Topic: "t", Payload: big})
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if d := b.Stats().MessagesDropped.Load(); d != dropped+1 {
			return fmt.Errorf("dropped %d, want %d", d, dropped+1)
		}
		return nil
	})
	sub.expectNothing(100 * time.Millisecond)

	// Full: no new subscription, no new client; one with a session here may come back.
	b.mem.Charge(limit)
	sub.send(&codec.Subscribe{PacketID: 2, Subs: []codec.Subscription{{Filter: "u", QoS: 1}}})
	if sa := sub.next().(*codec.Suback); sa.Reasons[0] != codec.QuotaExceeded {
		t.Fatalf("SUBACK %v with the budget full, want 0x97", sa.Reasons)
	}
	late := dial(t, addr, codec.V311)
	if ack := late.connect(&codec.Connect{ClientID: "late", CleanStart: true}); ack.Reason != codec.V3ServerUnavailable {
		t.Fatalf("CONNACK %v for a new client over the budget, want 0x03", ack.Reason)
	}
	late.expectClosed()
	late.nc.Close()
	if _, ack := connectClient(t, addr, codec.V311, "parked", false); !ack.SessionPresent {
		t.Fatal("a client with a session here was not let in to resume it")
	}

	// Room again: the waiting 3.x publication goes through.
	b.mem.Release(limit + fill)
	if a, ok := p3.next().(*codec.Ack); !ok || a.PacketID != 7 || a.Reason != codec.Success {
		t.Fatalf("want PUBACK 7 once there is room, got %+v", a)
	}
	if got := sub.receive(); len(got.Payload) != len(big) {
		t.Fatalf("received %d bytes, want %d", len(got.Payload), len(big))
	}
	expectBalanced(t, b)
}

// A 3.x publisher waiting for memory is not read from, so its keep-alive cannot be checked:
// after one keep-alive period the connection is closed.
func TestMemoryWaitEndsAfterKeepAlive(t *testing.T) {
	const limit = 8 << 20
	b, addr := startBroker(t, func(o *Options) { o.MemoryLimit = limit })
	c := dial(t, addr, codec.V311)
	if ack := c.connect(&codec.Connect{ClientID: "p", CleanStart: true, KeepAlive: 1}); ack.Reason != 0 {
		t.Fatal(ack.Reason)
	}
	b.mem.Charge(limit)
	defer b.mem.Release(limit)
	start := time.Now()
	c.send(&codec.Publish{PacketID: 1, Topic: "t", QoS: 1, Payload: []byte("x")})
	if got := c.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want the connection closed without an acknowledgement", got)
	}
	if waited := time.Since(start); waited < 1400*time.Millisecond {
		t.Fatalf("closed after %v, before the keep-alive period of 1.5 s", waited)
	}
}

// Past the budget, a bounded number of connections may wait for their CONNECT (a returning
// client must be able to get in); more are closed at once.
func TestHandshakesPastTheBudgetAreBounded(t *testing.T) {
	const limit = 8 << 20
	b, addr := startBroker(t, func(o *Options) { o.MemoryLimit = limit })
	b.mem.Charge(limit)
	defer b.mem.Release(limit)
	var waiting []*client
	for range maxHandshakesOver {
		waiting = append(waiting, dial(t, addr, codec.V311)) // and send nothing
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := b.handshakesOver.Load(); n != maxHandshakesOver {
			return fmt.Errorf("%d connections waiting past the budget, want %d", n, maxHandshakesOver)
		}
		return nil
	})
	if got := dial(t, addr, codec.V311).expectClosed(); len(got) != 0 {
		t.Fatalf("one more got %v, want it closed", got)
	}
	for _, c := range waiting {
		c.nc.Close()
	}
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if n := b.handshakesOver.Load(); n != 0 {
			return fmt.Errorf("%d connections still counted as waiting past the budget", n)
		}
		return nil
	})
}

// While memory is short, tightReadSlots connected sessions read their queues back from disk
// and the rest wait; a slot whose session went offline, or has nothing more on disk, passes
// to a waiting one. Without pressure maxReadSlots may read back.
func TestReadSlots(t *testing.T) {
	// A broker without its goroutines: no memory watcher turns the pressure off or wakes
	// sessions behind the test's back.
	b := &Broker{mem: limits.NewBudget(0), starved: map[*Session]struct{}{}, readSlots: map[*Session]struct{}{},
		now: time.Now}
	opts := DefaultOptions()
	b.opts.Store(&opts)
	b.pressure.Store(true)
	reading := func(id string) *Session {
		s := newSession(b, id)
		s.conn = &conn{delivering: true} // connected; a kick finds its loop already running
		s.queue.disk.n = 1               // its queue's head is on disk
		return s
	}
	mayRead := func(s *Session) bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.mayReadBackLocked()
	}
	var holders []*Session
	for i := range tightReadSlots {
		s := reading(fmt.Sprint("holder", i))
		if !mayRead(s) {
			t.Fatalf("session %d of %d may not read back", i+1, tightReadSlots)
		}
		holders = append(holders, s)
	}
	if !mayRead(holders[0]) {
		t.Fatal("a slot holder may not read its next batch")
	}
	waiting, later := reading("waiting"), reading("later")
	if mayRead(waiting) || mayRead(later) {
		t.Fatal("a session beyond the slots may read back")
	}
	b.freeReadSlots() // every holder still has work: nothing changes
	if holdsSlot(b, waiting) || holdsSlot(b, later) || waiting.readGrant || later.readGrant {
		t.Fatal("woken while every slot is held")
	}
	holders[0].conn = nil             // went offline
	holders[1].queue.disk = spilled{} // read everything back
	b.freeReadSlots()
	if !holdsSlot(b, waiting) || !holdsSlot(b, later) {
		t.Fatalf("after two slots were freed: slots %v, %v; want both handed over", holdsSlot(b, waiting), holdsSlot(b, later))
	}
	if !mayRead(waiting) || !mayRead(later) {
		t.Fatal("the sessions handed the freed slots may not read back")
	}
	third := reading("third")
	if mayRead(third) {
		t.Fatal("a slot taken twice")
	}
	// A starved session that takes a slot (a kick restarted its loop) is starved no more, so
	// that a wake-up goes to one still waiting.
	b.starvedMu.Lock()
	delete(b.readSlots, holders[2]) // freed, the starved not woken yet
	b.starvedMu.Unlock()
	if !mayRead(third) {
		t.Fatal("the woken session may not take the freed slot")
	}
	if _, starved := b.starved[third]; starved {
		t.Fatal("a slot holder is still among the starved")
	}
	// A session whose window is full does not ask for a slot: it would hold it idle.
	holders[3].conn = nil
	b.freeReadSlots()
	full := reading("full")
	full.conn.sendWindow = 0
	full.mu.Lock()
	_, _, want := full.takeBatchLocked(full.conn, nil, 10)
	full.mu.Unlock()
	if _, slot := b.readSlots[full]; slot || want.max != 0 {
		t.Fatalf("a session with a full window took a read slot (%v) or planned a read of %d", slot, want.max)
	}
	full.conn.sendWindow = 20
	full.mu.Lock()
	_, _, want = full.takeBatchLocked(full.conn, nil, 10)
	full.mu.Unlock()
	if _, slot := b.readSlots[full]; !slot || want.max != 1 {
		t.Fatalf("with room in its window: slot %v, read of %d; want a slot and a read of 1", slot, want.max)
	}
	// Without memory pressure there are maxReadSlots: the starved are woken for the new ones,
	// and the sessions beyond those wait.
	more := reading("more")
	if mayRead(more) {
		t.Fatal("a session beyond the tight slots may read back under pressure")
	}
	b.pressure.Store(false)
	b.freeReadSlots()
	if !holdsSlot(b, more) || !mayRead(more) {
		t.Fatal("a starved session not handed a slot when the pressure ended")
	}
	var relaxed []*Session
	for len(b.readSlots) < maxReadSlots {
		s := reading(fmt.Sprint("relaxed", len(b.readSlots)))
		if !mayRead(s) {
			t.Fatalf("without pressure, session %d of %d may not read back", len(b.readSlots)+1, maxReadSlots)
		}
		relaxed = append(relaxed, s)
	}
	if beyond := reading("beyond"); mayRead(beyond) {
		t.Fatalf("without pressure, a session beyond %d slots may read back", maxReadSlots)
	}
	// Back under pressure, the slots beyond the tight bound are taken back, and no starved
	// session gets one.
	b.pressure.Store(true)
	b.freeReadSlots()
	if len(b.readSlots) != tightReadSlots || len(b.starved) == 0 {
		t.Fatalf("%d read slots held, %d starved; want %d held and the rest starved", len(b.readSlots), len(b.starved), tightReadSlots)
	}
	revoked := 0
	for _, s := range relaxed {
		if !holdsSlot(b, s) {
			revoked++
			if mayRead(s) {
				t.Fatalf("session %s read back after its slot was taken back", s.id)
			}
		}
	}
	if revoked == 0 {
		t.Fatal("no slot taken back from the sessions that took one without pressure")
	}
}

// holdsSlot reports whether s holds a read slot.
func holdsSlot(b *Broker, s *Session) bool {
	b.starvedMu.Lock()
	defer b.starvedMu.Unlock()
	_, ok := b.readSlots[s]
	return ok
}

// TestStarvedWokenWithoutMemoryLimit: with no memory limit too, a session starved of a read
// slot (every slot held by a client that does not acknowledge) is let read a batch now and
// then, so that its queue keeps draining.
func TestStarvedWokenWithoutMemoryLimit(t *testing.T) {
	b, _ := startBroker(t, func(o *Options) { o.MemoryLimit = 0; o.SysInterval = 0 })
	stuck := func(id string) *Session {
		s := newSession(b, id)
		s.conn = &conn{delivering: true} // connected, its loop running: a kick does nothing
		s.queue.disk.n = 1               // its queue's head is on disk
		return s
	}
	for i := range maxReadSlots {
		s := stuck(fmt.Sprint("holder", i))
		s.mu.Lock()
		ok := s.mayReadBackLocked()
		s.mu.Unlock()
		if !ok {
			t.Fatalf("holder %d of %d may not read back", i+1, maxReadSlots)
		}
	}
	waiting := stuck("waiting")
	waiting.mu.Lock()
	ok := waiting.mayReadBackLocked()
	waiting.mu.Unlock()
	if ok {
		t.Fatal("a session beyond the slots may read back")
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		waiting.mu.Lock()
		defer waiting.mu.Unlock()
		if !waiting.readGrant {
			return fmt.Errorf("the starved session was not let read a batch")
		}
		return nil
	})
}
