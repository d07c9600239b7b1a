package session

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"edgebroker/codec"
	"edgebroker/session/store"
	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// syncHookFS runs before ahead of every fsync of the files of an in-memory file system.
type syncHookFS struct {
	*waltest.MemFS
	before func()
}

type syncHookFile struct {
	wal.File
	before func()
}

func (f syncHookFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	file, err := f.MemFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return syncHookFile{file, f.before}, nil
}

func (f syncHookFile) Sync() error {
	f.before()
	return f.File.Sync()
}

const syncLatency = 5 * time.Millisecond

// slowSyncFS gives the in-memory file system the fsync latency of an SD card, so that a power
// cut right after an acknowledgement finds unsynced data whenever the acknowledgement did not
// wait for the fsync: without it the log's writer syncs so fast that a test could not tell.
func slowSyncFS(mem *waltest.MemFS) wal.FS {
	return syncHookFS{mem, func() { time.Sleep(syncLatency) }}
}

// syncGate holds fsyncs from hold until open.
type syncGate struct {
	mu   sync.Mutex
	held chan struct{} // closed by open; nil while open
}

func (g *syncGate) hold() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held == nil {
		g.held = make(chan struct{})
	}
}

func (g *syncGate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.held != nil {
		close(g.held)
		g.held = nil
	}
}

func (g *syncGate) wait() {
	g.mu.Lock()
	held := g.held
	g.mu.Unlock()
	if held != nil {
		<-held
	}
}

// durableBroker is a broker whose store keeps its log in a crashable in-memory file system,
// so a test can cut the power at any moment and recover a second broker from what survived.
type durableBroker struct {
	t    *testing.T
	b    *Broker
	addr string
	mem  *waltest.MemFS
	dir  string // checkpoint.db lives here, on the real disk
}

func startDurable(t *testing.T, mem *waltest.MemFS, dir string, tweak func(*Options)) *durableBroker {
	t.Helper()
	return startDurableFS(t, mem, slowSyncFS(mem), dir, tweak)
}

// startDurableFS is startDurable with the log on fsys, a file system built on mem.
func startDurableFS(t *testing.T, mem *waltest.MemFS, fsys wal.FS, dir string, tweak func(*Options)) *durableBroker {
	t.Helper()
	so := store.DefaultOptions(dir)
	so.WAL.FS = fsys
	so.CheckpointBytes = 1 << 30 // no background checkpoint: checkpoint.db can be copied at will
	so.CheckpointEvery = time.Hour
	so.WAL.PadTo = 512 // padded as on disk, but to less than a page: mem holds every byte
	opts := DefaultOptions()
	if tweak != nil {
		tweak(&opts)
	}
	if opts.Now != nil {
		so.Now = opts.Now // one clock for the broker and its recovery
	}
	st, state, err := store.Open(so)
	if err != nil {
		t.Fatal(err)
	}
	opts.Store = st
	b, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	b.Restore(state)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go b.Serve(ln)
	t.Cleanup(func() {
		// Not t.Context(): it is done before cleanups run, and Close would return before it
		// stops the sessions' timers, which would keep this broker and its log in memory.
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		b.Close(ctx)
		st.Close()
	})
	return &durableBroker{t: t, b: b, addr: ln.Addr().String(), mem: mem, dir: dir}
}

// powerCut returns a broker recovered from what a power cut at this instant would leave: the
// log keeps only what was synced (plus a random part of the rest), checkpoint.db is copied.
// The original broker keeps running on its own copy, undisturbed.
func (d *durableBroker) powerCut(seed int64) *durableBroker {
	d.t.Helper()
	return d.powerCutWith(seed, nil)
}

// powerCutWith is powerCut with the recovered broker's options changed by tweak.
func (d *durableBroker) powerCutWith(seed int64, tweak func(*Options)) *durableBroker {
	d.t.Helper()
	mem := d.mem.Clone()
	mem.Crash(rand.New(rand.NewPCG(uint64(seed), 0)))
	dir := d.t.TempDir()
	for _, sub := range []string{"wal", "bodies"} { // the log and the body files
		if err := mem.CopyDir(filepath.Join(d.dir, sub), filepath.Join(dir, sub)); err != nil {
			d.t.Fatal(err)
		}
	}
	db, err := os.ReadFile(filepath.Join(d.dir, "checkpoint.db"))
	if err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "checkpoint.db"), db, 0o600); err != nil {
		d.t.Fatal(err)
	}
	d.t.Logf("power cut with seed %d", seed)
	return startDurable(d.t, mem, dir, tweak)
}

// Rules 1 and 3 of the durability contract: what was PUBACKed or PUBRECed for a persistent
// session, and a retained message set by QoS 1, survive a power cut, in order.
func TestAcknowledgedMessagesSurvivePowerCut(t *testing.T) {
	for seed := int64(1); seed <= 5; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
			parkSubscriber(t, d.addr, codec.V5, "sub", "q/#", 2)
			pub, _ := connectClient(t, d.addr, codec.V5, "pub", false)
			want := payloads(30, "m")
			for i, p := range want {
				qos := byte(1 + i%2)
				pub.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "q/a", QoS: qos, Payload: []byte(p)})
				if a := pub.next().(*codec.Ack); a.PacketID != uint16(i+1) {
					t.Fatalf("ack %+v", a)
				}
				if qos == 2 {
					pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: uint16(i + 1)})
					pub.next()
				}
			}
			pub.send(&codec.Publish{PacketID: 100, Topic: "r", QoS: 1, Retain: true, Payload: []byte("kept")})
			pub.next()

			r := d.powerCut(seed)
			// Receive Maximum 1: one message at a time, so that each exchange can be checked.
			sub := resumeWithReceiveMaximum(t, r.addr, "sub", 1)
			for i, w := range want {
				if got := sub.receive(); string(got.Payload) != w || got.QoS != byte(1+i%2) {
					t.Fatalf("message %d: got %q QoS %d, want %q", i, got.Payload, got.QoS, w)
				}
			}
			sub.expectNothing(100 * time.Millisecond)
			other, _ := connectClient(t, r.addr, codec.V311, "other", true)
			other.subscribe(1, "r", 1)
			if got := other.receive(); string(got.Payload) != "kept" || !got.Retain {
				t.Fatalf("retained message after the power cut: %+v", got)
			}
		})
	}
}

// Rule 2: a SUBACK for a persistent session means the subscription survives.
func TestSubscriptionSurvivesPowerCut(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	sub.subscribe(1, "s/+", 1)
	r := d.powerCut(7)
	pub, _ := connectClient(t, r.addr, codec.V311, "pub", true)
	pub.publish(1, "s/x", 1, "after")
	sub, ack := connectClient(t, r.addr, codec.V311, "sub", false)
	if !ack.SessionPresent {
		t.Fatal("session lost")
	}
	if got := sub.receive(); string(got.Payload) != "after" {
		t.Fatalf("got %q", got.Payload)
	}
}

// Rule 4: once the subscriber's PUBREC is answered with PUBREL, a restart resends PUBREL, never
// the PUBLISH the client already has.
func TestReleasedQoS2ResendsPubrelAfterPowerCut(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	sub, _ := connectClient(t, d.addr, codec.V5, "sub", false)
	sub.subscribe(1, "two", 2)
	pub, _ := connectClient(t, d.addr, codec.V5, "pub", true)
	pub.send(&codec.Publish{PacketID: 1, Topic: "two", QoS: 2, Payload: []byte("x")})
	pub.next()
	got := sub.next().(*codec.Publish)
	sub.send(&codec.Ack{Kind: codec.PUBREC, PacketID: got.PacketID})
	if rel := sub.next().(*codec.Ack); rel.Kind != codec.PUBREL {
		t.Fatalf("want PUBREL, got %+v", rel)
	}
	r := d.powerCut(3)
	sub, _ = connectClient(t, r.addr, codec.V5, "sub", false)
	p := sub.next()
	if a, ok := p.(*codec.Ack); !ok || a.Kind != codec.PUBREL || a.PacketID != got.PacketID {
		t.Fatalf("after the power cut got %T %+v, want PUBREL %d", p, p, got.PacketID)
	}
	sub.send(&codec.Ack{Kind: codec.PUBCOMP, PacketID: got.PacketID})
	sub.expectNothing(200 * time.Millisecond)
}

// Rule 5: an inbound QoS 2 packet id PUBRECed for a persistent session survives, so a resent
// PUBLISH with DUP after a restart is not delivered twice.
func TestInboundQoS2NotDuplicatedAfterPowerCut(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "sub", "t", 2)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", false)
	p := &codec.Publish{PacketID: 77, Topic: "t", QoS: 2, Payload: []byte("once")}
	pub.send(p)
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBREC {
		t.Fatalf("want PUBREC, got %+v", a)
	}
	r := d.powerCut(11)
	pub, _ = connectClient(t, r.addr, codec.V311, "pub", false)
	p.Dup = true
	pub.send(p)
	if a := pub.next().(*codec.Ack); a.Kind != codec.PUBREC || a.PacketID != 77 {
		t.Fatalf("want PUBREC 77, got %+v", a)
	}
	pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: 77})
	pub.next()
	sub, _ := connectClient(t, r.addr, codec.V311, "sub", false)
	if got := sub.receive(); string(got.Payload) != "once" {
		t.Fatalf("got %q", got.Payload)
	}
	sub.expectNothing(200 * time.Millisecond)
}

// Clean sessions and QoS 0 never write: the log stays empty.
func TestCleanSessionsDoNotWrite(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", true)
	sub.subscribe(1, "c", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	for i := range 20 {
		pub.publish(uint16(i+1), "c", 1, "x")
		sub.receive()
	}
	if n := d.b.store.Stats().Log.Records; n != 0 {
		t.Fatalf("%d log records written for clean sessions", n)
	}
}

// Wills and expiry times survive a restart: an offline session with a pending will keeps it
// and publishes it when the session expires.
func TestWillAndExpirySurviveRestart(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	c := dial(t, d.addr, codec.V5)
	cp := &codec.Connect{ClientID: "dev", WillFlag: true, WillTopic: "lwt", WillPayload: []byte("bye")}
	cp.Props.Present.Set(codec.PropSessionExpiry)
	cp.Props.SessionExpiry = 2
	cp.WillProps.Present.Set(codec.PropWillDelay)
	cp.WillProps.WillDelay = 60 // longer than the session: published when the session ends
	c.connect(cp)
	c.nc.Close()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d.b.session("dev").online() {
			return fmt.Errorf("still connected")
		}
		return nil
	})
	r := d.powerCut(5)
	watcher, _ := connectClient(t, r.addr, codec.V311, "watcher", true)
	watcher.subscribe(1, "lwt", 1)
	if got := watcher.receive(); string(got.Payload) != "bye" {
		t.Fatalf("got %q", got.Payload)
	}
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if r.b.session("dev") != nil {
			return fmt.Errorf("session not expired")
		}
		return nil
	})
}

// A full disk: persistent publishing is refused (no acknowledgement, the publisher is
// disconnected) while clean sessions keep working; when space returns the store recovers by
// itself, and afterwards everything acknowledged, before and after, survives a power cut.
func TestFullDiskRefusesThenRecovers(t *testing.T) {
	d, faults := startFaulty(t)
	parkSubscriber(t, d.addr, codec.V311, "sub", "p", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	pub.publish(1, "p", 1, "before")

	faults.FailAt(1, syscall.ENOSPC, true)
	pub.send(&codec.Publish{PacketID: 2, Topic: "p", QoS: 1, Payload: []byte("refused")})
	if got := pub.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want no acknowledgement for a message that could not be stored", got)
	}
	// Clean sessions do not need the disk.
	cs, _ := connectClient(t, d.addr, codec.V311, "clean-sub", true)
	cs.subscribe(1, "c", 1)
	cp, _ := connectClient(t, d.addr, codec.V311, "clean-pub", true)
	cp.publish(1, "c", 1, "works")
	if got := cs.receive(); string(got.Payload) != "works" {
		t.Fatalf("clean session got %q", got.Payload)
	}

	healStore(t, d.b, faults)
	pub, _ = connectClient(t, d.addr, codec.V311, "pub", true)
	pub.publish(3, "p", 1, "after")

	r := d.powerCut(13)
	sub, _ := connectClient(t, r.addr, codec.V311, "sub", false)
	for _, want := range []string{"before", "after"} {
		if got := sub.receive(); string(got.Payload) != want {
			t.Fatalf("got %q, want %q", got.Payload, want)
		}
	}
	sub.expectNothing(200 * time.Millisecond)
}

// startFaulty starts a durable broker whose log's file operations can be made to fail, and
// whose store retries its recovery every 20 ms.
func startFaulty(t *testing.T) (*durableBroker, *waltest.FaultFS) {
	t.Helper()
	mem := waltest.NewMemFS()
	faults := waltest.NewFaultFS(slowSyncFS(mem))
	return startDurableFS(t, mem, faults, t.TempDir(), func(o *Options) { o.StoreRetry = 20 * time.Millisecond }), faults
}

// healStore ends the injected faults and waits (bounded) until b's store is up again.
func healStore(t *testing.T, b *Broker, faults *waltest.FaultFS) {
	t.Helper()
	faults.Heal()
	checkFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if b.storeDown.Load() {
			return fmt.Errorf("store still down after space returned")
		}
		return nil
	})
}

// resendQoS2 connects clientID again and resends its QoS 2 publication id with DUP, as a client
// whose connection closed before PUBREC does, and expects the PUBREC.
func resendQoS2(t *testing.T, addr, clientID string, clean bool, id uint16, topic, payload string) *client {
	t.Helper()
	c, _ := connectClient(t, addr, codec.V311, clientID, clean)
	c.send(&codec.Publish{Dup: true, PacketID: id, Topic: topic, QoS: 2, Payload: []byte(payload)})
	if a, ok := c.next().(*codec.Ack); !ok || a.Kind != codec.PUBREC || a.PacketID != id {
		t.Fatalf("%s: want PUBREC %d for the resend, got %+v", clientID, id, a)
	}
	return c
}

// expectOnly has c (named who) receive a message with payload want, and then nothing more.
func expectOnly(t *testing.T, c *client, who, want string) {
	t.Helper()
	if got := c.receive(); string(got.Payload) != want {
		t.Fatalf("%s got %q, want %q", who, got.Payload, want)
	}
	c.expectNothing(200 * time.Millisecond)
}

// A persistent subscriber gets a QoS 1 message once its records are in the log, before they
// are durable: the fsync holds only the publisher's PUBACK (DESIGN 3, rule 1). A QoS 2 one
// waits for the fsync: a subscriber that had it before its records were lost would get it
// again with the publisher's resend.
func TestDeliveryDoesNotWaitForTheSync(t *testing.T) {
	mem := waltest.NewMemFS()
	gate := &syncGate{}
	d := startDurableFS(t, mem, syncHookFS{mem, gate.wait}, t.TempDir(), nil)
	t.Cleanup(gate.open) // before the broker's cleanup, whose Close syncs
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	sub.subscribe(1, "p", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", false)

	gate.hold()
	pub.send(&codec.Publish{PacketID: 1, Topic: "p", QoS: 1, Payload: []byte("early")})
	if got := sub.receive(); string(got.Payload) != "early" {
		t.Fatalf("got %q, want %q", got.Payload, "early")
	}
	if p, err := pub.tryNext(100 * time.Millisecond); err == nil {
		t.Fatalf("got %T %+v before the record was durable", p, p)
	}
	gate.open()
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBACK || a.PacketID != 1 {
		t.Fatalf("want PUBACK 1, got %+v", a)
	}

	gate.hold()
	pub.send(&codec.Publish{PacketID: 2, Topic: "p", QoS: 2, Payload: []byte("synced")})
	sub.expectNothing(100 * time.Millisecond)
	gate.open()
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBREC || a.PacketID != 2 {
		t.Fatalf("want PUBREC 2, got %+v", a)
	}
	if got := sub.receive(); string(got.Payload) != "synced" {
		t.Fatalf("got %q, want %q", got.Payload, "synced")
	}
}

// A QoS 2 publication whose records could not be written is delivered once: neither lost
// (its queued delivery stays, and the store's recovery writes it) nor delivered again when the
// publisher, sent no PUBREC, sends it again (its packet id stays too), not even to a clean
// subscriber that had it before the failure.
func TestRefusedQoS2DeliveredOnce(t *testing.T) {
	d, faults := startFaulty(t)
	parkSubscriber(t, d.addr, codec.V311, "sub", "p", 2)
	watch, _ := connectClient(t, d.addr, codec.V311, "watch", true)
	watch.subscribe(1, "p", 2)
	live, _ := connectClient(t, d.addr, codec.V311, "live", false)
	live.subscribe(1, "p", 2)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", false)

	faults.FailAt(1, syscall.ENOSPC, true)
	pub.send(&codec.Publish{PacketID: 7, Topic: "p", QoS: 2, Payload: []byte("once")})
	if got := pub.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want no PUBREC for a message that could not be stored", got)
	}
	if got := watch.receive(); string(got.Payload) != "once" { // clean: never waits for the disk
		t.Fatalf("clean subscriber got %q, want %q", got.Payload, "once")
	}
	// The online persistent subscriber's packet id cannot be stored: it gets nothing now.
	if got := live.expectClosed(); len(got) != 0 {
		t.Fatalf("persistent subscriber got %v while its packet id could not be stored", got)
	}
	healStore(t, d.b, faults)

	pub = resendQoS2(t, d.addr, "pub", false, 7, "p", "once")
	pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: 7})
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBCOMP || a.PacketID != 7 || a.Reason != codec.Success {
		t.Fatalf("want PUBCOMP 7, got %+v", a)
	}
	watch.expectNothing(100 * time.Millisecond)
	for _, id := range []string{"sub", "live"} {
		c, _ := connectClient(t, d.addr, codec.V311, id, false)
		expectOnly(t, c, id, "once")
	}
}

// While the store is down, a QoS 2 publication that needs it is refused before anyone gets it:
// its clean subscribers would otherwise have it twice, once now and once with the resend,
// since no packet id could be recorded. One that needs no store still goes through.
func TestQoS2RefusedWhileStoreDown(t *testing.T) {
	d, faults := startFaulty(t)
	parkSubscriber(t, d.addr, codec.V311, "sub", "p", 2)
	watch, _ := connectClient(t, d.addr, codec.V311, "watch", true)
	watch.subscribe(1, "p", 2)
	watch.subscribe(2, "clean-only", 2)

	faults.FailAt(1, syscall.ENOSPC, true)
	d.b.storeFailed(syscall.ENOSPC)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	pub.send(&codec.Publish{PacketID: 8, Topic: "p", QoS: 2, Payload: []byte("once")})
	if got := pub.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want no PUBREC while the store is down", got)
	}
	watch.expectNothing(100 * time.Millisecond)

	pub, _ = connectClient(t, d.addr, codec.V311, "pub", true)
	pub.send(&codec.Publish{PacketID: 9, Topic: "clean-only", QoS: 2, Payload: []byte("clean")})
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBREC || a.PacketID != 9 {
		t.Fatalf("clean-only publication while the store is down: want PUBREC 9, got %+v", a)
	}
	if got := watch.receive(); string(got.Payload) != "clean" {
		t.Fatalf("clean subscriber got %q, want %q", got.Payload, "clean")
	}
	if !d.b.storeDown.Load() {
		t.Fatal("the store came back while its faults lasted")
	}
	healStore(t, d.b, faults)

	resendQoS2(t, d.addr, "pub", true, 8, "p", "once")
	expectOnly(t, watch, "clean subscriber", "once")
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	expectOnly(t, sub, "persistent subscriber", "once")
}

// While the store is down, a persistent session's resent QoS 2 publication is not acknowledged
// again (its id might be in RAM only); once the store is back it is, and delivered once.
func TestQoS2ResendNotAcknowledgedWhileStoreDown(t *testing.T) {
	d, faults := startFaulty(t)
	parkSubscriber(t, d.addr, codec.V311, "sub", "p", 2)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", false)
	pub.send(&codec.Publish{PacketID: 5, Topic: "p", QoS: 2, Payload: []byte("once")})
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBREC || a.PacketID != 5 {
		t.Fatalf("want PUBREC 5, got %+v", a)
	}

	faults.FailAt(1, syscall.ENOSPC, true)
	d.b.storeFailed(syscall.ENOSPC)
	pub.send(&codec.Publish{Dup: true, PacketID: 5, Topic: "p", QoS: 2, Payload: []byte("once")})
	if got := pub.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want no second PUBREC while the store is down", got)
	}
	healStore(t, d.b, faults)

	pub = resendQoS2(t, d.addr, "pub", false, 5, "p", "once")
	pub.send(&codec.Ack{Kind: codec.PUBREL, PacketID: 5})
	if a, ok := pub.next().(*codec.Ack); !ok || a.Kind != codec.PUBCOMP || a.PacketID != 5 {
		t.Fatalf("want PUBCOMP 5, got %+v", a)
	}
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	expectOnly(t, sub, "sub", "once")
}

// A persistent session's QoS 2 publication that reached a clean subscriber and then waited
// for room in another one's queue, while the store failed, keeps its packet id and its
// deliveries, which the store's recovery writes: its resend after the store is back, or after
// a power cut following that, is taken for a duplicate, and nobody gets it twice.
func TestQoS2KeepsItsIDWhenTheStoreFailsWhileItWaits(t *testing.T) {
	mem := waltest.NewMemFS()
	faults := waltest.NewFaultFS(slowSyncFS(mem))
	d := startDurableFS(t, mem, faults, t.TempDir(), func(o *Options) {
		o.StoreRetry = 20 * time.Millisecond
		o.MaxQueued, o.MaxInflight, o.SlowConsumerTimeout = 1, 1, time.Minute
	})
	parkSubscriber(t, d.addr, codec.V311, "sub", "p", 2)
	watch, _ := connectClient(t, d.addr, codec.V311, "watch", true)
	watch.subscribe(1, "p", 2)
	slow, _ := connectClient(t, d.addr, codec.V311, "slow", false)
	slow.subscribe(1, "p", 1)
	slow.subscribe(2, "fill", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", false)
	pub.publish(1, "fill", 1, "f1") // in flight to slow, unacknowledged
	pub.publish(2, "fill", 1, "f2") // fills slow's queue
	first, ok := slow.next().(*codec.Publish)
	if !ok || string(first.Payload) != "f1" {
		t.Fatalf("slow got %+v, want f1", first)
	}
	fsyncs := d.b.store.Stats().Log.Fsyncs

	pub.send(&codec.Publish{PacketID: 8, Topic: "p", QoS: 2, Payload: []byte("once")})
	if got := watch.receive(); string(got.Payload) != "once" {
		t.Fatalf("clean subscriber got %q, want %q", got.Payload, "once")
	}
	// The records of its first part (the parked session's delivery) are durable before the
	// store fails; the rest waits for room in slow's queue.
	checkFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		if d.b.store.Stats().Log.Fsyncs == fsyncs {
			return fmt.Errorf("the first part's records are not synced yet")
		}
		return nil
	})
	time.Sleep(50 * time.Millisecond)
	faults.FailAt(1, syscall.ENOSPC, true)
	d.b.storeFailed(syscall.ENOSPC)
	slow.send(&codec.Ack{Kind: codec.PUBACK, PacketID: first.PacketID}) // room: the wait ends
	if got := pub.expectClosed(); len(got) != 0 {
		t.Fatalf("got %v, want no PUBREC for a packet id that could not be stored", got)
	}
	healStore(t, d.b, faults)

	resendQoS2(t, d.addr, "pub", false, 8, "p", "once")
	watch.expectNothing(100 * time.Millisecond)

	r := d.powerCut(1)
	resendQoS2(t, r.addr, "pub", false, 8, "p", "once")
	slow, _ = connectClient(t, r.addr, codec.V311, "slow", false)
	if got := slow.receive(); string(got.Payload) != "f2" { // in flight at the cut
		t.Fatalf("slow got %q first, want f2", got.Payload)
	}
	expectOnly(t, slow, "slow", "once")
	sub, _ := connectClient(t, r.addr, codec.V311, "sub", false)
	expectOnly(t, sub, "sub", "once")
}

// Bodies larger than 64 KiB (the decoder's limit for other byte strings) are stored, spilled,
// read back from the checkpoint and recovered after a power cut.
func TestLargeMessagesSurvivePowerCut(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "sub", "big", 1)
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	var want []string
	for i := range 3 {
		p := strings.Repeat(fmt.Sprint(i), 200<<10)
		want = append(want, p)
		pub.publish(uint16(i+1), "big", 1, p)
	}
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n, _ := d.b.spill(); n != len(want) {
		t.Fatalf("spilled %d, want %d", n, len(want))
	}
	sub, _ := connectClient(t, d.addr, codec.V311, "sub", false)
	for i, w := range want {
		if got := sub.receive(); string(got.Payload) != w {
			t.Fatalf("message %d read back from the checkpoint: %d bytes, want %d", i, len(got.Payload), len(w))
		}
	}
	sub.nc.Close()

	pub.publish(4, "big", 1, want[0]) // queued for the offline session, in the log only
	r := d.powerCut(3)
	sub, ack := connectClient(t, r.addr, codec.V311, "sub", false)
	if !ack.SessionPresent {
		t.Fatal("Session Present = 0 after the power cut")
	}
	if got := sub.receive(); string(got.Payload) != want[0] {
		t.Fatalf("after the power cut: %d bytes, want %d", len(got.Payload), len(want[0]))
	}
}

// A stored body leaves out its publisher's client id, which only routing needs (No Local); a
// stored will keeps it, since it is routed after a restart.
func TestStoredPublisherID(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "sub", "t", 1)
	dev := dial(t, d.addr, codec.V311)
	dev.connect(&codec.Connect{ClientID: "dev", KeepAlive: 60, WillFlag: true, WillTopic: "lwt", WillPayload: []byte("bye")})
	dev.publish(1, "t", 1, "m")
	if err := d.b.store.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	es, err := d.b.store.ReadQueued("sub", 0, 10)
	if err != nil || len(es) != 1 || es[0].Msg == nil || string(es[0].Msg.Payload) != "m" {
		t.Fatalf("queue of sub: %+v, %v", es, err)
	}
	if from := es[0].Msg.From; from != "" {
		t.Fatalf("stored body says it is from %q, want nothing", from)
	}
	s := d.b.session("dev")
	s.mu.Lock()
	r := s.recordLocked()
	s.mu.Unlock()
	if r.Will == nil || r.Will.From != "dev" {
		t.Fatalf("stored will %+v, want one from dev", r.Will)
	}
}

// A message comes back from the store with the properties it had, and no others: an absent
// Correlation Data decodes as an empty slice, which was once sent on as the property.
func TestStoredMessageProperties(t *testing.T) {
	roundTrip := func(m *Message) *Message {
		t.Helper()
		rec := m.record()
		raw, err := rec.MarshalMsg(nil)
		if err != nil {
			t.Fatal(err)
		}
		var r store.Message
		if _, err := r.UnmarshalMsg(raw); err != nil {
			t.Fatal(err)
		}
		return messageFromRecord(&r)
	}
	if got := roundTrip(&Message{id: 7, Topic: "t", Payload: []byte("p"), QoS: 1}); got.Props != nil {
		t.Fatalf("a message without properties came back with %+v", *got.Props)
	}
	props := &codec.Properties{CorrelationData: []byte("req-1"), ContentType: "text/plain"}
	props.Present.Set(codec.PropCorrelationData)
	props.Present.Set(codec.PropContentType)
	got := roundTrip(&Message{id: 8, Topic: "t", Payload: []byte("p"), QoS: 1, Props: props})
	if got.Props == nil || got.Props.Present != props.Present || string(got.Props.CorrelationData) != "req-1" ||
		got.Props.ContentType != "text/plain" {
		t.Fatalf("properties came back as %+v, want %+v", got.Props, *props)
	}
}

// Session records reach the log in the order they were built: of two saves of one session
// racing each other, the store keeps the one made from the later state, not an older one
// committed late.
func TestSessionSavesKeepTheirOrder(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	parkSubscriber(t, d.addr, codec.V311, "dev", "t", 1)
	s := d.b.session("dev")
	s.mu.Lock()
	s.willDelay = time.Hour // the will stays pending, after the power cut too
	s.mu.Unlock()
	pause := func() { time.Sleep(time.Millisecond) } // let the other save overtake, if it can
	beforeSessionCommit.Store(&pause)
	t.Cleanup(func() { beforeSessionCommit.Store(nil) })
	for round := range 40 {
		var wg sync.WaitGroup
		var last atomic.Uint64
		for g := range 2 {
			wg.Go(func() {
				s.mu.Lock()
				s.setWillLocked(&Message{Topic: "lwt", Payload: fmt.Appendf(nil, "%d-%d", round, g)})
				s.mu.Unlock()
				p, err := d.b.saveSession(s)
				if err != nil {
					t.Error(err)
				}
				for old := last.Load(); uint64(p) > old && !last.CompareAndSwap(old, uint64(p)); old = last.Load() {
				}
			})
		}
		wg.Wait()
		if err := d.b.store.Wait(wal.Pos(last.Load())); err != nil {
			t.Fatal(err)
		}
		s.mu.Lock()
		want := string(s.will.Payload)
		s.mu.Unlock()
		rs := d.powerCut(int64(round)).b.session("dev")
		rs.mu.Lock()
		got := rs.will
		rs.mu.Unlock()
		if got == nil || string(got.Payload) != want {
			t.Fatalf("round %d: recovered will %+v, want the last one set, %q", round, got, want)
		}
	}
}

// A persistent member of a shared subscription that keeps leaving while messages arrive: what
// it had taken goes to the other member while its delivery loop may still be recording the
// batch it sent (the hand-over offers copies, so the two never touch the same delivery: run
// with -race). Every message reaches one of the two.
func TestSharedMemberLeavingWhileSending(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), nil)
	stay, _ := connectClient(t, d.addr, codec.V311, "stay", false)
	stay.subscribe(1, "$share/g/w", 1)
	var mu sync.Mutex
	got := map[string]bool{}
	record := func(payload string) {
		mu.Lock()
		got[payload] = true
		mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		stay.ackUntilQuiet(2*time.Second, record)
	}()
	pub, _ := connectClient(t, d.addr, codec.V311, "pub", true)
	const rounds, each = 20, 10
	for round := range rounds {
		flap, _ := connectClient(t, d.addr, codec.V311, "flap", false)
		if round == 0 {
			flap.subscribe(1, "$share/g/w", 1)
		}
		for i := range each {
			pub.send(&codec.Publish{PacketID: uint16(i + 1), Topic: "w", QoS: 1, Payload: fmt.Append(nil, round, "-", i)})
		}
		flap.nc.Close() // without acknowledging what it was sent
		for range each {
			pub.next() // PUBACKs
		}
	}
	flap, _ := connectClient(t, d.addr, codec.V311, "flap", false)
	flap.ackUntilQuiet(500*time.Millisecond, record)
	<-done
	for round := range rounds {
		for i := range each {
			if !got[fmt.Sprint(round, "-", i)] {
				t.Errorf("message %d-%d reached neither member", round, i)
			}
		}
	}
}

// Drop-oldest evicting a delivery whose router has not written its record yet: the deletion
// must follow that record into the log, or the entry outlives the message and comes back
// after a restart.
func TestDropOldestOfAHeldDelivery(t *testing.T) {
	d := startDurable(t, waltest.NewMemFS(), t.TempDir(), func(o *Options) {
		o.MaxQueued, o.Overflow = 1, DropOldest
	})
	parkSubscriber(t, d.addr, codec.V311, "dev", "t", 1)
	first := &Message{Topic: "t", QoS: 1, Payload: []byte("first")}
	_, held1, _ := d.b.offerAll(first, false) // routed, its record not yet written
	second := &Message{Topic: "t", QoS: 1, Payload: []byte("second")}
	_, held2, _ := d.b.offerAll(second, false) // evicts the first
	if len(held1) != 1 || len(held2) != 1 {
		t.Fatalf("held %d and %d deliveries, want 1 and 1", len(held1), len(held2))
	}
	d.b.commitHeld(second, held2)
	d.b.commitHeld(first, held1) // the slower router's record comes last
	s := d.b.session("dev")
	p, err := d.b.saveSession(s) // a record after all of them, to wait on
	if err == nil {
		err = d.b.store.Wait(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	if got := d.b.Stats().MessagesDropped.Load(); got != 1 {
		t.Fatalf("%d messages dropped, want 1", got)
	}
	rs := d.powerCut(1).b.session("dev")
	rs.mu.Lock()
	defer rs.mu.Unlock()
	if !rs.queue.readAll() {
		t.Fatal("the recovered queue cannot be read back")
	}
	var got []string
	rs.queue.Each(func(q *delivery) bool {
		got = append(got, string(q.msg.Payload))
		return true
	})
	if len(got) != 1 || got[0] != "second" {
		t.Fatalf("recovered queue %q, want only the second message", got)
	}
}
