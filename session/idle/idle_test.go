package idle

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pair returns both ends of a loopback TCP connection: the server's end and the client's.
func pair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- nc
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, ok := <-accepted
	if !ok {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { server.Close(); client.Close() })
	return server, client
}

func newPoller(t *testing.T) *Poller {
	t.Helper()
	p, err := New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// watch watches nc and returns a channel that gets a value for every resume.
func watch(t *testing.T, p *Poller, nc net.Conn) (*Conn, chan struct{}) {
	t.Helper()
	resumed := make(chan struct{}, 16)
	c := p.Watch(nc, func() { resumed <- struct{}{} })
	if c == nil {
		t.Fatal("Watch refused a TCP connection")
	}
	t.Cleanup(c.Release)
	return c, resumed
}

// parkedPair watches the server's end of a new loopback connection and parks it without a
// deadline.
func parkedPair(t *testing.T) (c *Conn, resumed chan struct{}, server, client net.Conn) {
	t.Helper()
	server, client = pair(t)
	c, resumed = watch(t, newPoller(t), server)
	if !c.Park(time.Time{}) {
		t.Fatal("Park refused")
	}
	return c, resumed, server, client
}

func expectResume(t *testing.T, resumed chan struct{}, why string) {
	t.Helper()
	select {
	case <-resumed:
	case <-time.After(10 * time.Second):
		t.Fatalf("not resumed %s", why)
	}
}

func expectNoResume(t *testing.T, resumed chan struct{}, why string) {
	t.Helper()
	select {
	case <-resumed:
		t.Fatalf("resumed %s", why)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestResumesWhenReadable(t *testing.T) {
	c, resumed, server, client := parkedPair(t)
	expectNoResume(t, resumed, "with nothing to read")
	client.Write([]byte("ping"))
	expectResume(t, resumed, "after the client wrote")
	buf := make([]byte, 4)
	if _, err := server.Read(buf); err != nil || string(buf) != "ping" {
		t.Fatalf("read after resume: %q, %v", buf, err)
	}
	// Parked again, it waits for the next bytes, not the ones already read.
	if !c.Park(time.Time{}) {
		t.Fatal("second Park refused")
	}
	expectNoResume(t, resumed, "a second time for bytes already read")
	client.Write([]byte("pong"))
	expectResume(t, resumed, "after the client wrote again")
}

func TestBytesBeforeParkResumeAtOnce(t *testing.T) {
	p := newPoller(t)
	server, client := pair(t)
	c, resumed := watch(t, p, server)
	client.Write([]byte("early"))
	buf := make([]byte, 1)
	server.Read(buf) // the runtime has seen the socket readable and consumed that readiness
	if !c.Park(time.Time{}) {
		t.Fatal("Park refused")
	}
	expectResume(t, resumed, "with bytes unread when it parked")
}

func TestResumesAtDeadline(t *testing.T) {
	p := newPoller(t)
	server, _ := pair(t)
	c, resumed := watch(t, p, server)
	deadline := time.Now().Add(50 * time.Millisecond)
	if !c.Park(deadline) {
		t.Fatal("Park refused")
	}
	expectResume(t, resumed, "at its deadline")
	if now := time.Now(); now.Before(deadline) {
		t.Fatalf("resumed %v before its deadline", deadline.Sub(now))
	}
	// A deadline already past resumes at once.
	if !c.Park(time.Now().Add(-time.Second)) {
		t.Fatal("Park refused")
	}
	expectResume(t, resumed, "with a deadline in the past")
}

func TestResumesWhenThePeerCloses(t *testing.T) {
	_, resumed, _, client := parkedPair(t)
	client.Close()
	expectResume(t, resumed, "after the client closed")
}

func TestStop(t *testing.T) {
	c, resumed, _, _ := parkedPair(t)
	c.Stop()
	expectResume(t, resumed, "by Stop")
	c.Stop() // again: nothing is parked, nothing resumes
	expectNoResume(t, resumed, "by a second Stop")
	if c.Park(time.Time{}) {
		t.Fatal("parked after Stop")
	}
	expectNoResume(t, resumed, "by a refused Park")
}

func TestParkOfAClosedSocketFails(t *testing.T) {
	p := newPoller(t)
	server, _ := pair(t)
	c, resumed := watch(t, p, server)
	server.Close()
	if c.Park(time.Now().Add(time.Hour)) {
		t.Fatal("parked a closed socket")
	}
	expectNoResume(t, resumed, "after a refused Park")
}

func TestWatchRefusesWhatHasNoSocket(t *testing.T) {
	p := newPoller(t)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	if c := p.Watch(a, func() {}); c != nil {
		t.Fatal("Watch accepted a net.Pipe")
	}
}

// TestOneResumePerPark parks and wakes connections many times, with bytes, deadlines and Stop
// racing each other, and counts that every successful Park is followed by exactly one resume.
func TestOneResumePerPark(t *testing.T) {
	p := newPoller(t)
	const conns, rounds = 8, 200
	var wg sync.WaitGroup
	for i := 0; i < conns; i++ {
		server, client := pair(t)
		var parks, resumes atomic.Int64
		var stopped sync.WaitGroup
		resumed := make(chan struct{}, 1)
		c := p.Watch(server, func() {
			resumes.Add(1)
			resumed <- struct{}{}
		})
		if c == nil {
			t.Fatal("Watch refused a TCP connection")
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			defer c.Release()
			buf := make([]byte, 64)
			for r := 0; r < rounds; r++ {
				var deadline time.Time
				if r%3 == 0 {
					deadline = time.Now().Add(time.Duration(r%5) * time.Microsecond)
				}
				go client.Write([]byte{byte(r)})
				if r == rounds/2+i {
					stopped.Add(1)
					go func() { defer stopped.Done(); c.Stop() }() // racing the Park below
				}
				if !c.Park(deadline) {
					continue
				}
				parks.Add(1)
				select {
				case <-resumed:
				case <-time.After(10 * time.Second):
					t.Errorf("conn %d round %d: not resumed", i, r)
					return
				}
				server.SetReadDeadline(time.Now().Add(time.Millisecond))
				server.Read(buf)
			}
			if parks.Load() != resumes.Load() {
				t.Errorf("conn %d: %d parks, %d resumes", i, parks.Load(), resumes.Load())
			}
			if parks.Load() == 0 {
				t.Errorf("conn %d: never parked in %d rounds", i, rounds)
			}
			stopped.Wait()
			if c.Park(time.Time{}) {
				t.Errorf("conn %d: parked after Stop returned", i)
			}
		}(i)
	}
	wg.Wait()
}

// wakeAll watches n new loopback connections with p, parks them and makes each readable; it
// returns the channel their resumes report on, which sends the resumed connection, and when
// each was made readable (it cannot have been woken before).
func wakeAll(t *testing.T, p *Poller, n int) (chan *Conn, map[*Conn]time.Time) {
	t.Helper()
	running := make(chan *Conn, n)
	written := make(map[*Conn]time.Time)
	for range n {
		server, client := pair(t)
		var c *Conn
		c = p.Watch(server, func() { running <- c })
		if c == nil {
			t.Fatal("Watch refused a TCP connection")
		}
		if !c.Park(time.Time{}) {
			t.Fatal("Park refused")
		}
		written[c] = time.Now()
		client.Write([]byte{1})
	}
	return running, written
}

func expectRunning(t *testing.T, running chan *Conn, why string) *Conn {
	t.Helper()
	select {
	case c := <-running:
		return c
	case <-time.After(10 * time.Second):
		t.Fatalf("no resume %s", why)
		return nil
	}
}

func expectNoneRunning(t *testing.T, running chan *Conn, why string) {
	t.Helper()
	select {
	case <-running:
		t.Fatalf("a resume ran %s", why)
	case <-time.After(100 * time.Millisecond):
	}
}

// setSlots sets the Poller's resume slots before any connection is woken.
func setSlots(p *Poller, n int, wait time.Duration) {
	p.rmu.Lock()
	p.maxResuming, p.resumeWait = n, wait
	p.rmu.Unlock()
}

// TestResumeSlots wakes more connections than there are slots: the others wait until a resume
// settles (once: settling twice frees one slot), parks or is released.
func TestResumeSlots(t *testing.T) {
	p := newPoller(t)
	setSlots(p, 2, time.Hour)
	running, _ := wakeAll(t, p, 5)
	first := expectRunning(t, running, "in the first slot")
	second := expectRunning(t, running, "in the second slot")
	expectNoneRunning(t, running, "with both slots held")

	if !first.Settle() {
		t.Fatal("Settle did not report the connections waiting")
	}
	third := expectRunning(t, running, "after a resume settled")
	if first.Settle() {
		t.Fatal("a second Settle reported handing on a slot")
	}
	expectNoneRunning(t, running, "after the same resume settled again")

	// Its byte unread, the second connection is woken again as soon as it parks: behind the
	// two already waiting.
	if !second.Park(time.Time{}) {
		t.Fatal("Park refused")
	}
	fourth := expectRunning(t, running, "after a resume parked")
	if fourth == second {
		t.Fatal("the connection that parked took the slot before those waiting")
	}
	third.Release()
	if fifth := expectRunning(t, running, "after a connection was released"); fifth == second {
		t.Fatal("the connection that parked took the slot before the last one waiting")
	}
	expectNoneRunning(t, running, "with both slots held again")
	fourth.Settle()
	last := expectRunning(t, running, "after a resume settled")
	if last != second {
		t.Fatal("the last resume to run is not the reparked connection")
	}
	if last.Settle() {
		t.Fatal("Settle reported handing on a slot with no connection waiting")
	}
}

// TestOverdueResumesRun wakes connections while every slot is held and never settled: each
// runs anyway once it has waited resumeWait, so a resume blocked on what another client would
// bring cannot stall the rest for good.
func TestOverdueResumesRun(t *testing.T) {
	p := newPoller(t)
	const wait = 50 * time.Millisecond
	setSlots(p, 1, wait)
	running, written := wakeAll(t, p, 3)
	expectRunning(t, running, "in the only slot")
	for i := range 2 {
		c := expectRunning(t, running, "once overdue")
		if waited := time.Since(written[c]); waited < wait {
			t.Fatalf("resume %d ran %v after its connection was readable, before it was overdue (%v)", i+2, waited, wait)
		}
	}
	p.rmu.Lock()
	resuming := p.resuming
	p.rmu.Unlock()
	if resuming != 3 {
		t.Fatalf("%d resumes hold slots, want 3 (one in the slot, two overdue)", resuming)
	}
}

// TestWaitingQueueStaysSmall passes a thousand wakes through one slot, with three always
// waiting: the queue's storage is reused, not grown by every wake.
func TestWaitingQueueStaysSmall(t *testing.T) {
	p := newPoller(t)
	setSlots(p, 1, time.Hour)
	ran := make(chan *Conn, 1)
	newConn := func() *Conn {
		c := &Conn{p: p}
		c.resume = func() { ran <- c }
		return c
	}
	p.start(newConn())
	holder := <-ran
	for range 3 {
		p.start(newConn())
	}
	for range 1000 {
		p.start(newConn())
		holder.Settle()
		holder = <-ran
	}
	p.rmu.Lock()
	stored, waiting := len(p.waiting), len(p.waiting)-p.head
	p.rmu.Unlock()
	if waiting != 3 || stored > 2*waiting+1 {
		t.Fatalf("%d entries stored for %d waiting after 1000 wakes, want 3 waiting in at most 7", stored, waiting)
	}
}
