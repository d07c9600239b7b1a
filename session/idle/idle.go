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

	// Resume slots: see Settle.
	rmu         sync.Mutex
	maxResuming int           // slots; more resumes run only once overdue
	resumeWait  time.Duration // how long a woken connection waits for a slot at most
	resuming    int           // resumes holding a slot
	waiting     []waitingWake // woken connections waiting for a slot, oldest first from head
	head        int
	overdue     *time.Timer // starts the waiting connections that have waited resumeWait
}

// Defaults for a Poller's resume slots.
const (
	// maxResuming bounds the resumes at work at once: every resume is a goroutine, whose stack
	// the runtime starts at the average size it has seen (deep, in a busy broker), and a
	// reader's buffer. Two thousand clients leaving at once would otherwise bring back two
	// thousand readers at once, several megabytes for a moment.
	maxResuming = 64
	// resumeWait is the longest a woken connection waits for a slot: a resume that blocks
	// (on a client that reads nothing, say) holds its slot, and the connection that would
	// relieve it may be the one waiting.
	resumeWait = 100 * time.Millisecond
)

// waitingWake is a woken connection waiting for a resume slot.
type waitingWake struct {
	c     *Conn
	since time.Time
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
	slot    atomic.Bool // its resume holds a slot: set before it starts, cleared by Settle
}

// New starts a Poller and its dispatch goroutine.
func New() (*Poller, error) {
	ep, err := openEpoll()
	if err != nil {
		return nil, err
	}
	p := &Poller{ep: ep, conns: make(map[int32]*Conn), done: make(chan struct{}),
		maxResuming: maxResuming, resumeWait: resumeWait}
	p.overdue = time.AfterFunc(time.Hour, p.startOverdue)
	p.overdue.Stop()
	go p.dispatch()
	return p, nil
}

// Close stops the Poller. Connections still parked are not resumed: stop them first. Woken
// connections waiting for a resume slot still get one.
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
// left in its read buffer. It settles the resume it is called from first. On true, resume will
// run and the caller must leave the connection alone; on false, the caller goes on reading.
func (c *Conn) Park(deadline time.Time) bool {
	c.Settle()
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

// Release forgets the connection (and settles its resume). Call it once, after the
// connection has ended, never while it is parked.
func (c *Conn) Release() {
	c.Settle()
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
		c.p.start(c)
	}
}

// Settle frees the resume slot the connection's resume holds, for the next woken connection,
// and reports whether one was waiting for it (and now runs). Call it from the goroutine the
// resume runs in, once the bytes that woke the connection are handled and before it waits for
// anything that other clients' resumes may bring (room in memory or in a queue that
// subscribers' acknowledgements free, say). Park and Release settle too; a resume that never
// settles holds its slot until it parks or the connection ends, and delays the wakes behind
// it by resumeWait at most. Settling again does nothing.
func (c *Conn) Settle() (handedOn bool) {
	if !c.slot.Swap(false) {
		return false
	}
	p := c.p
	p.rmu.Lock()
	if p.head == len(p.waiting) {
		p.resuming--
		p.rmu.Unlock()
		return false
	}
	next := p.popLocked() // the slot passes on
	p.rmu.Unlock()
	next.run()
	return true
}

// start runs a woken connection's resume if a slot is free, or queues it.
func (p *Poller) start(c *Conn) {
	p.rmu.Lock()
	if p.resuming < p.maxResuming {
		p.resuming++
		p.rmu.Unlock()
		c.run()
		return
	}
	p.waiting = append(p.waiting, waitingWake{c: c, since: time.Now()})
	if len(p.waiting)-p.head == 1 {
		p.overdue.Reset(p.resumeWait)
	}
	p.rmu.Unlock()
}

// run starts the connection's resume in a slot taken for it.
func (c *Conn) run() {
	c.slot.Store(true)
	go c.resume()
}

// popLocked takes the connection that has waited longest for a slot. p.rmu is held. The
// queue's storage is reused once half of it is taken, so that it never grows beyond twice
// the connections waiting.
func (p *Poller) popLocked() *Conn {
	c := p.waiting[p.head].c
	p.waiting[p.head] = waitingWake{}
	p.head++
	if p.head > len(p.waiting)/2 {
		n := copy(p.waiting, p.waiting[p.head:])
		clear(p.waiting[n:])
		p.waiting, p.head = p.waiting[:n], 0
	}
	return c
}

// startOverdue runs the resumes that have waited resumeWait for a slot, in slots of their own
// beyond maxResuming.
func (p *Poller) startOverdue() {
	var late []*Conn
	p.rmu.Lock()
	for p.head < len(p.waiting) && time.Since(p.waiting[p.head].since) >= p.resumeWait {
		late = append(late, p.popLocked())
		p.resuming++
	}
	if p.head < len(p.waiting) {
		p.overdue.Reset(p.resumeWait - time.Since(p.waiting[p.head].since))
	}
	p.rmu.Unlock()
	for _, c := range late {
		c.run()
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
