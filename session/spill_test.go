package session

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"edgebroker/codec"
	"edgebroker/session/store"
	"edgebroker/wal/waltest"
)

// queueState reports a session's queue length and the deliveries of it on disk.
func queueState(b *Broker, id string) (n, spilled int) {
	s := b.session(id)
	s.mu.Lock()
	defer s.mu.Unlock()
	n, _ = s.queue.Spilled()
	return s.queue.Len(), n
}

// An offline session's queue leaves RAM once checkpointed and comes back in order; the bodies of
// messages read back leave RAM again once sent, and a resend after a reconnect reads them once
// more (with DUP and the same packet id). QoS 2 messages too, and a power cut after the spill
// keeps everything.
func TestSpilledQueueDeliversInOrder(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "sub", "s/#", 2)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	want := payloads(60, "m")
	for i, p := range want {
		pub.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "s/a", QoS: byte(1 + i%2), Payload: []byte(p)})
		a := pub.next().(*codec.Ack)
		if a.Kind == codec.PUBREC {
			pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: a.PacketID})
			pub.next()
		}
	}
	// Nothing is evicted before the checkpoint holds it, and the spill says it waits for one.
	if n, waiting := d.b.spill(); n != 0 || !waiting {
		t.Fatalf("spilled %d deliveries before any checkpoint, waiting %v; want 0, true", n, waiting)
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n, waiting := d.b.spill(); n != len(want) || waiting {
		t.Fatalf("spilled %d deliveries, waiting %v; want %d, false", n, waiting, len(want))
	}
	if n, spilled := queueState(d.b, "sub"); n != len(want) || spilled != len(want) {
		t.Fatalf("queue %d, on disk %d; want %d, %d", n, spilled, len(want), len(want))
	}
	expectBalanced(t, d.b) // spilled deliveries are no longer charged

	// Take the first 20 (the in-flight window) without acknowledging them, and leave.
	sub, ack := connectClient(t, d.addr, codec.V311, "sub", false)
	if !ack.SessionPresent {
		t.Fatal("Session Present = 0")
	}
	first := map[uint16]string{}
	for i := range 20 {
		p := sub.next().(*codec.Publish)
		if string(p.Payload) != want[i] || p.Dup {
			t.Fatalf("message %d: got %q (DUP %v), want %q", i, p.Payload, p.Dup, want[i])
		}
		first[p.PacketID] = want[i]
	}
	expectBodiesOut(t, d.b, "sub")
	sub.nc.Close()
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		if d.b.session("sub").online() {
			return fmt.Errorf("still online")
		}
		return nil
	})

	// The same broker resends them, bodies read back, with DUP and their ids.
	sub, _ = connectClient(t, d.addr, codec.V311, "sub", false)
	for range 20 {
		p := sub.next().(*codec.Publish)
		if !p.Dup || first[p.PacketID] != string(p.Payload) {
			t.Fatalf("resend of an in-flight message whose body left RAM: %+v", p)
		}
	}
	sub.nc.Close()
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		if d.b.session("sub").online() {
			return fmt.Errorf("still online")
		}
		return nil
	})

	expectBalanced(t, d.b) // bodies read back and evicted again were charged and released
	// QoS 1 ids are committed without a wait: sync them, so that the power cut keeps them.
	var none store.Batch
	if err := d.b.store.Sync(&none); err != nil {
		t.Fatal(err)
	}
	r := d.powerCut(7)
	// After a restart the 20 in flight come again first, with DUP and their ids, then the rest.
	sub, _ = connectClient(t, r.addr, codec.V311, "sub", false)
	for i, w := range want {
		p := sub.receiveWindowed()
		if string(p.Payload) != w {
			t.Fatalf("after the power cut, message %d: got %q, want %q", i, p.Payload, w)
		}
		if i < 20 && (!p.Dup || first[p.PacketID] != w) {
			t.Fatalf("in-flight message %d resent without DUP or under another id: %+v", i, p)
		}
	}
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		if p, err := sub.tryNext(5 * time.Millisecond); err == nil {
			if a, ok := p.(*codec.Ack); ok && a.Kind == codec.PUBREL {
				sub.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: a.PacketID})
				return fmt.Errorf("PUBRELs still coming")
			}
			t.Fatalf("unexpected %T %+v", p, p)
		}
		return nil
	})
	if n, _ := queueState(r.b, "sub"); n != 0 {
		t.Fatalf("%d deliveries left after draining", n)
	}
	expectBalanced(t, r.b) // the restored session's charges were all matched
}

// receiveWindowed reads the next PUBLISH while many are in flight, acknowledging as it goes:
// PUBACK, PUBREC, and PUBCOMP for each PUBREL met on the way.
func (c *client) receiveWindowed() *codec.Publish {
	c.t.Helper()
	for {
		switch p := c.next().(type) {
		case *codec.Publish:
			switch p.QoS {
			case 1:
				c.send(&codec.Ack{Kind: codec.PUBACK, PacketID: p.PacketID})
			case 2:
				c.send(&codec.Ack{Kind: codec.PUBREC, PacketID: p.PacketID})
			}
			return p
		case *codec.Ack:
			if p.Kind != codec.PUBREL {
				c.t.Fatalf("unexpected %+v", p)
			}
			c.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: p.PacketID})
		default:
			c.t.Fatalf("unexpected %T", p)
		}
	}
}

// A queue on disk is read back at least half an in-flight window at a time, not one message
// per acknowledgement, even from a client that acknowledges one message and then waits for
// the next (which must come: reading ahead never waits for more room).
func TestSpilledQueueReadsBackInBatches(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil) // window: 20
	_, want := spillBacklog(t, d, 100)
	before := d.b.store.Stats().QueueReads
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	var held []*codec.Publish // received, not yet acknowledged: the window is full
	for i, w := range want {
		p := sub.next().(*codec.Publish)
		if string(p.Payload) != w {
			t.Fatalf("message %d: got %q, want %q", i, p.Payload, w)
		}
		held = append(held, p)
		if len(held) == 20 || i == len(want)-1 {
			// From now on, one acknowledgement per message received.
			sub.send(&codec.Ack{Kind: codec.PUBACK, PacketID: held[0].PacketID})
			held = held[1:]
		}
	}
	// One read for the first window, then one per ten messages: 9. One per acknowledgement
	// would be 81.
	if reads := d.b.store.Stats().QueueReads - before; reads > 10 {
		t.Fatalf("%d reads to bring back 100 messages", reads)
	}
}

// spillBacklog parks the persistent subscriber "sub" on s/#, publishes n QoS 1 messages to it
// through the clean publisher "pub", checkpoints and evicts them all to disk. It returns the
// publisher and the payloads, in order.
func spillBacklog(t *testing.T, d *durableBroker, n int) (*client, []string) {
	t.Helper()
	parkSubscriber(t, d.addr, codec.V311, "sub", "s/#", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	want := payloads(n, "m")
	for i, p := range want {
		pub.publish(uint16(i+1), "s/a", 1, p)
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.b.spill(); got != n {
		t.Fatalf("spilled %d, want %d", got, n)
	}
	return pub, want
}

// A full queue partly on disk meets drop-oldest: the oldest go, read back from disk, and the
// newest arrive in order.
func TestSpilledQueueDropOldest(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), func(o *Options) {
		o.MaxQueued, o.Overflow = 10, DropOldest
	})
	parkSubscriber(t, d.addr, codec.V311, "sub", "s/#", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	want := payloads(25, "m")
	for i, p := range want[:10] {
		pub.publish(uint16(i+1), "s/a", 1, p)
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.b.spill(); n != 10 {
		t.Fatalf("spilled %d, want 10", n)
	}
	for i, p := range want[10:] {
		pub.publish(uint16(i+11), "s/a", 1, p)
	}
	if n, _ := queueState(d.b, "sub"); n != 10 {
		t.Fatalf("queue %d, want 10", n)
	}
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	for i, w := range want[15:] {
		if p := sub.receive(); string(p.Payload) != w {
			t.Fatalf("message %d: got %q, want %q", i, p.Payload, w)
		}
	}
	sub.expectNothing(100 * time.Millisecond)
	if got := d.b.Stats().MessagesDropped.Load(); got != 15 {
		t.Fatalf("dropped %d, want 15", got)
	}
}

// A store that fails and recovers rewrites every persistent session, its subscriptions and the
// part of its queue on disk included: it reads that part back first, or the rewrite would
// delete it.
func TestSpilledQueueSurvivesStoreRewrite(t *testing.T) {
	d, faults := startFaulty(t)
	pub, want := spillBacklog(t, d, 30)

	faults.FailAt(1, syscall.ENOSPC, true)
	pub.send(&codec.Publish{PacketID: 100, Topic: "s/a", QoS: 1, Payload: []byte("refused")})
	pub.expectClosed()
	healStore(t, d.b, faults)
	if err := d.b.store.Checkpoint(); err != nil { // the rewrite reaches checkpoint.db
		t.Fatal(err)
	}

	r := d.powerCut(21)
	sub, _ := connectClient(t, r.addr, codec.V311, "sub", false)
	for i, w := range want {
		if got := sub.receiveWindowed(); string(got.Payload) != w {
			t.Fatalf("message %d after the rewrite and a power cut: got %q, want %q", i, got.Payload, w)
		}
	}
	sub.expectNothing(200 * time.Millisecond)
	// The rewrite kept the subscription too.
	pub, _ = connectClient(t, r.addr, codec.V311, "pub", true)
	pub.publish(1, "s/a", 1, "new")
	if got := sub.receive(); string(got.Payload) != "new" {
		t.Fatalf("after the rewrite and a power cut: got %q, want %q", got.Payload, "new")
	}
}

// expectBodiesOut waits (bounded) until every in-flight message of session id has let its body
// leave RAM.
func expectBodiesOut(t *testing.T, b *Broker, id string) {
	t.Helper()
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		s := b.session(id)
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, o := range s.inflight {
			if !o.d.bodyOut {
				return fmt.Errorf("in-flight message %d still holds its body", o.id)
			}
		}
		return nil
	})
}

// sentBodyOut leaves member a of shared group g holding, in flight and unacknowledged, a
// message read back from the store after a power cut: its body has left RAM.
func sentBodyOut(t *testing.T) (*durableBroker, *client) {
	t.Helper()
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "a", "$share/g/s", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	pub.publish(1, "s", 1, "the body")
	r := d.powerCut(5)
	a, _ := connectClient(t, r.addr, codec.V311, "a", false)
	if p := a.next().(*codec.Publish); string(p.Payload) != "the body" {
		t.Fatalf("a got %q", p.Payload)
	}
	expectBodiesOut(t, r.b, "a")
	return r, a
}

// A shared delivery whose body left RAM moves to another member of its group when its session
// goes offline; the stored body stays whole, so the new member's resend reads it back intact
// after a checkpoint.
func TestRedistributedDeliveryKeepsStoredBody(t *testing.T) {
	r, a := sentBodyOut(t)
	b, _ := connectClient(t, r.addr, codec.V311, "b", false)
	b.subscribe(1, "$share/g/s", 1)
	a.nc.Close() // the delivery moves to b
	if p := b.next().(*codec.Publish); string(p.Payload) != "the body" {
		t.Fatalf("b got %q", p.Payload)
	}
	if err := r.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	b.nc.Close() // unacknowledged: sent again on return, its body read from the checkpoint
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		if r.b.session("b").online() {
			return fmt.Errorf("b still online")
		}
		return nil
	})
	b, _ = connectClient(t, r.addr, codec.V311, "b", false)
	if p := b.next().(*codec.Publish); string(p.Payload) != "the body" {
		t.Fatalf("b's resend: %q, want the body", p.Payload)
	}
}

// The same delivery moving to a clean session, which stores nothing: it takes the body with
// it, since the store forgets a body no entry refers to.
func TestRedistributedToCleanSessionKeepsBody(t *testing.T) {
	r, a := sentBodyOut(t)
	b := dial(t, r.addr, codec.V5)
	cp := &codec.Connect{ClientID: "b", CleanStart: true}
	cp.Props.Present.Set(codec.PropReceiveMaximum)
	cp.Props.ReceiveMaximum = 1
	b.connect(cp)
	b.subscribe(1, "$share/g/s", 1)
	b.subscribe(2, "busy", 1)
	pub, _ := connectClient(t, r.addr, codec.V311, "pub", true)
	pub.publish(1, "busy", 1, "fills b's window")
	first := b.next().(*codec.Publish)
	a.nc.Close() // the delivery moves to b's queue, behind the window
	checkFor(t, time.Second, 5*time.Millisecond, func() error {
		if n, _ := queueState(r.b, "b"); n != 1 {
			return fmt.Errorf("b's queue holds %d, want the redistributed message", n)
		}
		return nil
	})
	if err := r.b.store.Checkpoint(); err != nil { // a's entry is gone: so is its body there
		t.Fatal(err)
	}
	b.send(&codec.Ack{Kind: codec.PUBACK, PacketID: first.PacketID})
	if p := b.next().(*codec.Publish); string(p.Payload) != "the body" {
		t.Fatalf("b got %q, want the body", p.Payload)
	}
}

// A full drop-oldest queue whose oldest deliveries are on disk, when the store cannot read
// them back, drops the new message instead: the offer does not spin under the session's lock.
func TestDropOldestWhenTheStoreCannotReadBack(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), func(o *Options) {
		o.MaxQueued, o.Overflow = 10, DropOldest
	})
	parkSubscriber(t, d.addr, codec.V311, "sub", "s/#", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	for i := range 10 {
		pub.publish(uint16(i+1), "s/a", 1, "m")
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.b.spill(); n != 10 {
		t.Fatalf("spilled %d deliveries, want 10", n)
	}
	s := d.b.session("sub")
	var reads atomic.Int64
	s.mu.Lock()
	s.queue.read = func(uint64, int) ([]*delivery, int, uint64, error) {
		if reads.Add(1) > 1000 {
			time.Sleep(time.Hour) // the old code's endless loop: stop it here, still locked
		}
		return nil, 0, 0, errors.New("read failed")
	}
	s.mu.Unlock()
	dropped := d.b.stats.MessagesDropped.Load()
	pub.publish(99, "s/a", 1, "new")
	if n := reads.Load(); n > 2 {
		t.Fatalf("%d reads back for one offer", n)
	}
	if got := d.b.stats.MessagesDropped.Load() - dropped; got != 1 {
		t.Fatalf("%d messages counted dropped, want 1", got)
	}
	if !s.mu.TryLock() {
		t.Fatal("the session's lock is still held")
	}
	s.mu.Unlock()
}

// Shared deliveries read back from the store after a restart stay in the queue when their
// member leaves: taking them from the middle of the read-back part, which a spill then puts
// back on disk whole, delivered some twice and lost others.
func TestSharedReadBackStaysWhenItsMemberLeaves(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	c, _ := connectClient(t, d.addr, codec.V311, "S", false)
	c.subscribe(1, "$share/g/a", 1)
	c.subscribe(2, "b", 1)
	c.send(&codec.Disconnect{})
	c.expectClosed()
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	var want []string
	for i := range 10 {
		topic := []string{"b", "a"}[i%2]
		want = append(want, fmt.Sprint(topic, i))
		pub.publish(uint16(i+1), topic, 1, want[i])
	}
	r := d.powerCut(1) // after a restart every queued entry is on disk, shared ones too
	s := r.b.session("S")
	s.mu.Lock()
	s.queue.readBack(32) // as drop-oldest's Pop, a reload's SetCap or a store rewrite do
	shared := s.takeSharedLocked()
	s.mu.Unlock()
	r.b.redistribute(s, shared)
	if n, _ := r.b.spill(); n == 0 {
		t.Fatal("nothing spilled")
	}
	sub, _ := connectClient(t, r.addr, codec.V311, "S", false)
	var got []string
	for range want {
		got = append(got, string(sub.receive().Payload))
	}
	sub.expectNothing(300 * time.Millisecond)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("received %v, want %v", got, want)
	}
}

// The disk's $SYS values count the body files: their size, and what was written to them with
// the log.
func TestSysDiskCountsBodyFiles(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), func(o *Options) { o.SysInterval = 20 * time.Millisecond })
	parkSubscriber(t, d.addr, codec.V311, "sub", "s", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	for i := range 5 {
		pub.publish(uint16(i+1), "s", 1, strings.Repeat("x", 300))
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	st := d.b.store.Stats()
	if st.BodyBytes < 5*300 {
		t.Fatalf("body files hold %d bytes after a checkpoint of five 300-byte bodies", st.BodyBytes)
	}
	c, _ := connectClient(t, d.addr, codec.V311, "watcher", true)
	c.subscribe(1, "$SYS/broker/disk/#", 0)
	got := map[string]int64{}
	for n := 0; got["bodies bytes"] != st.BodyBytes || got["bytes written"] < st.BodyWritten+st.Log.BytesWritten; n++ {
		if n == 500 {
			t.Fatalf("after %d $SYS messages: %v; want bodies bytes %d, bytes written at least %d (log) + %d (bodies)",
				n, got, st.BodyBytes, st.Log.BytesWritten, st.BodyWritten)
		}
		p := c.receive()
		v, err := strconv.ParseInt(string(p.Payload), 10, 64)
		if err != nil {
			t.Fatalf("%s: %q is not a number", p.Topic, p.Payload)
		}
		got[strings.TrimPrefix(p.Topic, "$SYS/broker/disk/")] = v
	}
}

// A spilled queue of large messages reads back a few at a time (the store's byte bound) and
// drains whole, in order.
func TestSpilledLargeMessagesDrainInOrder(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "sub", "s", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	const n, size = 12, 200 << 10 // two a read
	for i := range n {
		pub.publish(uint16(i+1), "s", 1, fmt.Sprintf("%03d", i)+strings.Repeat("x", size))
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if got, _ := d.b.spill(); got != n {
		t.Fatalf("spilled %d deliveries, want %d", got, n)
	}
	reads := d.b.store.Stats().QueueReads
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	for i := range n {
		p := sub.receive()
		if want := fmt.Sprintf("%03d", i); len(p.Payload) != 3+size || string(p.Payload[:3]) != want {
			t.Fatalf("message %d: %d bytes starting %q; want %d starting %q", i, len(p.Payload), p.Payload[:3], 3+size, want)
		}
	}
	if r := d.b.store.Stats().QueueReads - reads; r < n/2 {
		t.Fatalf("%d messages of %d KiB read back in %d reads; want at least %d", n, size>>10, r, n/2)
	}
}
