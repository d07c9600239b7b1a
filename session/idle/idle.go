package idle

import (
	"errors"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// ErrClosed is returned by Watch and Park after the Poller is closed.
var ErrClosed = errors.New("idle: poller closed")

// A connection's states.
const (
	active int32 = iota // a goroutine reads it
	parked              // waiting in the epoll set; resume runs when it is woken
)

// Poller watches parked connections. Create one with New; it is safe for concurrent use.
type Poller struct {
	ep epoll // the system's readiness set

	mu     sync.Mutex
	conns  map[int32]*Conn // by key; the epoll set reports keys
	next   int32           // the last key handed out
	closed bool

	done chan struct{} // closed when the dispatch loop ends
}

// Conn is one watched connection.
type Conn struct {
	p      *Poller
	rc     syscall.RawConn
	key    int32
	resume func()
	timer  *time.Timer // fires wake at a parked connection's deadline; stopped otherwise

	state   atomic.Int32
	stopped atomic.Bool // Stop was called: never park again
}

// New starts a Poller and its dispatch goroutine.
func New() (*Poller, error) {
	ep, err := openEpoll()
	if err != nil {
		return nil, err
	}
	p := &Poller{ep: ep, conns: make(map[int32]*Conn), done: make(chan struct{})}
	go p.dispatch()
	return p, nil
}

// Close stops the Poller. Connections still parked are not resumed: stop them first.
func (p *Poller) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	p.mu.Unlock()
	p.ep.interrupt()
	<-p.done
	return p.ep.close()
}

// Watch prepares nc for parking; resume is what runs, in a new goroutine, when a parked nc is
// woken. It returns nil when nc cannot be parked (not a plain socket).
func (p *Poller) Watch(nc any, resume func()) *Conn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	key := p.next + 1
	if key <= 0 { // wrapped around: keys start at 1 again, skipping those in use
		key = 1
	}
	for p.conns[key] != nil {
		key++
	}
	p.next = key
	c := &Conn{p: p, rc: rc, key: key, resume: resume}
	p.conns[key] = c
	p.mu.Unlock()

	// Registered now, disarmed, so that Park only ever re-arms it: the registration is never
	// in doubt while another goroutine may be resuming the connection.
	var ctlErr error
	if err := rc.Control(func(fd uintptr) { ctlErr = p.ep.add(int(fd), key) }); err != nil || ctlErr != nil {
		c.Release()
		return nil
	}
	c.timer = time.AfterFunc(time.Hour, c.wake)
	c.timer.Stop()
	return c
}

// Park hands the connection to the Poller until it is readable, until deadline (none if zero)
// or until Stop. Call it only from the goroutine that reads the connection, when nothing is
// left in its read buffer. On true, resume will run and the caller must leave the connection
// alone; on false, the caller goes on reading.
func (c *Conn) Park(deadline time.Time) bool {
	if c.stopped.Load() {
		return false
	}
	c.state.Store(parked)
	if !deadline.IsZero() {
		c.timer.Reset(time.Until(deadline))
	}
	var ctlErr error
	err := c.rc.Control(func(fd uintptr) { ctlErr = c.p.ep.arm(int(fd), c.key) })
	if err == nil && ctlErr == nil && !c.stopped.Load() {
		return true
	}
	// Not parked (closed socket, or stopped meanwhile), unless a wake came first and resume
	// already runs.
	if c.state.CompareAndSwap(parked, active) {
		c.timer.Stop()
		return false
	}
	return true
}

// Stop wakes the connection if it is parked and keeps it from parking again: call it when
// the connection is to end, so that its reader runs and sees it.
func (c *Conn) Stop() {
	c.stopped.Store(true)
	c.wake()
}

// Release forgets the connection. Call it once, after the connection has ended, never while
// it is parked.
func (c *Conn) Release() {
	if c.timer != nil {
		c.timer.Stop()
	}
	c.p.mu.Lock()
	delete(c.p.conns, c.key)
	c.p.mu.Unlock()
}

// wake resumes a parked connection; it does nothing to an active one.
func (c *Conn) wake() {
	if c.state.CompareAndSwap(parked, active) {
		c.timer.Stop()
		go c.resume()
	}
}

// dispatch wakes the connections the epoll set reports ready, until Close.
func (p *Poller) dispatch() {
	defer close(p.done)
	var keys []int32
	var woken []*Conn
	for {
		var err error
		keys, err = p.ep.wait(keys[:0])
		if err != nil {
			return // interrupted by Close
		}
		p.mu.Lock()
		for _, key := range keys {
			if c := p.conns[key]; c != nil {
				woken = append(woken, c)
			}
		}
		p.mu.Unlock()
		for i, c := range woken {
			c.wake()
			woken[i] = nil
		}
		woken = woken[:0]
	}
}
