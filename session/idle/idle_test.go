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
