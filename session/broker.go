package session

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/limits"
	"edgebroker/session/idle"
	"edgebroker/session/store"
	"edgebroker/session/topic"
)

// ErrClosed is returned by Serve after Close.
var ErrClosed = errors.New("session: broker closed")

// Broker is the MQTT engine: it takes connections from listeners and owns every session, the
// subscription tree and the retained messages. Create one with New; it is safe for concurrent use.
type Broker struct {
	opts atomic.Pointer[Options] // replaced whole by Reload; read with o()
	log  *slog.Logger
	now  func() time.Time

	// mu guards sessions and the lifecycle of each session (create, take over, end). Lock order:
	// Broker.mu before Session.mu before conn.wmu. The topic tree and retained index lock
	// themselves and may be called with or without these held.
	mu       sync.RWMutex
	sessions map[string]*Session
	conns    map[*conn]struct{}
	closed   bool

	lnMu      sync.Mutex
	listeners map[net.Listener]struct{}

	idle      *idle.Poller // parks quiet connections; nil where that is not supported
	subs      *topic.Tree
	retained  *topic.Retained[*Message]
	store     *store.Store // nil: memory only
	storeDown atomic.Bool  // a write failed: persistent work is refused until recoverStore succeeds
	// What could not be written while the store was down, for rewriteStore: ended sessions
	// (under mu) and retained topics (under dirtyMu).
	goneSessions  map[string]struct{}
	dirtyMu       sync.Mutex
	dirtyRetained map[string]struct{}
	closing       chan struct{}  // closed by Close
	mem           *limits.Budget // what grows with load, against Options.MemoryLimit: memory.go
	// handshakesOver counts connections accepted past the budget and still waiting for their
	// CONNECT: at most maxHandshakesOver (memory.go).
	handshakesOver atomic.Int32
	pressure       atomic.Bool   // memory is near Options.MemoryLimit: see pressure.go
	heapMax        atomic.Uint64 // the largest heap watchMemory saw
	// starved holds the connected sessions whose queue head is on disk and that did not read
	// it back for want of a read slot: watchMemory wakes them (pressure.go). readSlots holds
	// the sessions that may read back, at most maxReadSlots (tightReadSlots while memory is
	// short).
	starvedMu sync.Mutex
	starved   map[*Session]struct{}
	readSlots map[*Session]struct{}

	wg    sync.WaitGroup // connection goroutines
	stats Stats

	matchPool sync.Pool // *topic.Matches
	batchPool sync.Pool // *store.Batch, for the records of routed publications (conn.record)
}

// connected counts a client in, and in the maximum.
func (st *Stats) connected() {
	n := st.ClientsConnected.Add(1)
	for {
		m := st.ClientsMaximum.Load()
		if n <= m || st.ClientsMaximum.CompareAndSwap(m, n) {
			return
		}
	}
}

// Stats are the broker's running counters. All fields are safe to read at any time.
type Stats struct {
	ClientsConnected atomic.Int64
	ClientsMaximum   atomic.Int64  // the most clients connected at once
	MessagesReceived atomic.Uint64 // PUBLISH packets from clients
	MessagesSent     atomic.Uint64 // PUBLISH packets to clients
	// MessagesDropped counts messages dropped by a queue's overflow policy, as too large for
	// the client's Maximum Packet Size (both also per session), and QoS 0 ones dropped under
	// memory pressure (no session's: the publisher's own was refused). Expiries are counted
	// apart.
	MessagesDropped atomic.Uint64
	MessagesExpired atomic.Uint64
}

// New returns a broker with the given options.
func New(opts Options) (*Broker, error) {
	if err := opts.validate(); err != nil {
		return nil, err
	}
	b := &Broker{
		log:       opts.Logger,
		now:       opts.Now,
		sessions:  make(map[string]*Session),
		conns:     make(map[*conn]struct{}),
		listeners: make(map[net.Listener]struct{}),
		subs:      topic.NewTree(),
		retained:  topic.NewRetained[*Message](),
		store:     opts.Store,
		mem:       limits.NewBudget(budgetLimit(opts.MemoryLimit)),

		goneSessions:  make(map[string]struct{}),
		dirtyRetained: make(map[string]struct{}),
		starved:       make(map[*Session]struct{}),
		readSlots:     make(map[*Session]struct{}),
		closing:       make(chan struct{}),
	}
	if b.log == nil {
		b.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if b.now == nil {
		b.now = time.Now
	}
	b.matchPool.New = func() any { return new(topic.Matches) }
	b.batchPool.New = func() any { return new(store.Batch) }
	b.opts.Store(&opts)
	if p, err := idle.New(); err == nil {
		b.idle = p
	} else {
		b.log.Debug("quiet connections keep a reader goroutine each", "err", err)
	}
	if opts.SysInterval > 0 {
		go b.sysLoop(opts.SysInterval)
	}
	go b.watchMemory()
	return b, nil
}

// o returns the options in force. They never change under the caller: Reload swaps in a new
// value.
func (b *Broker) o() *Options { return b.opts.Load() }

// Reloadable are the settings that can change while the broker runs (SIGHUP).
type Reloadable struct {
	MaxQueued           int
	MaxQueuedBytes      int64
	MemoryLimit         int64
	Overflow            Overflow
	QueueQoS0           bool
	SlowConsumerTimeout time.Duration
	MaxKeepAlive        uint16
	ConnectTimeout      time.Duration
}

// Reload applies new values of the reloadable settings. Connections and sessions keep running;
// a lower queue capacity drops the oldest messages of queues that are over it, counted as
// overflow drops.
func (b *Broker) Reload(r Reloadable) error {
	cur := *b.o()
	want := cur
	want.MaxQueued, want.Overflow, want.QueueQoS0 = r.MaxQueued, r.Overflow, r.QueueQoS0
	want.MaxQueuedBytes, want.MemoryLimit = r.MaxQueuedBytes, r.MemoryLimit
	want.SlowConsumerTimeout, want.MaxKeepAlive, want.ConnectTimeout = r.SlowConsumerTimeout, r.MaxKeepAlive, r.ConnectTimeout
	if err := want.validate(); err != nil {
		return err
	}
	b.opts.Store(&want)
	b.mem.SetLimit(budgetLimit(want.MemoryLimit))
	if want.MaxQueued == cur.MaxQueued {
		return nil
	}
	for _, s := range b.sessionList() {
		s.mu.Lock()
		dropped := s.queue.SetCap(want.MaxQueued)
		s.countDropsLocked(len(dropped))
		s.signalRoomLocked()
		s.mu.Unlock()
		b.deleteEntries(s, dropped)
	}
	return nil
}

// Stats returns the broker's live counters.
func (b *Broker) Stats() *Stats { return &b.stats }

// Serve accepts connections on ln until the listener fails or Close is called; it then returns
// the listener's error, or ErrClosed after Close.
func (b *Broker) Serve(ln net.Listener) error {
	b.lnMu.Lock()
	if b.listeners == nil {
		b.lnMu.Unlock()
		return ErrClosed
	}
	b.listeners[ln] = struct{}{}
	b.lnMu.Unlock()
	var delay time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			b.lnMu.Lock()
			closed := b.listeners == nil
			b.lnMu.Unlock()
			if closed {
				return ErrClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				// Out of file descriptors and similar: back off instead of spinning.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				time.Sleep(delay)
				continue
			}
			return err
		}
		delay = 0
		b.wg.Add(1) // done when the connection ends (conn.end), parked or not meanwhile
		go b.serveConn(nc)
	}
}

// Close stops the listeners, tells 5.0 clients the server is shutting down, closes every
// connection and waits for their goroutines, or until ctx is done.
func (b *Broker) Close(ctx context.Context) error {
	b.lnMu.Lock()
	lns := b.listeners
	b.listeners = nil
	b.lnMu.Unlock()
	for ln := range lns {
		ln.Close()
	}
	b.mu.Lock()
	if !b.closed {
		close(b.closing)
	}
	b.closed = true
	conns := make([]*conn, 0, len(b.conns))
	for c := range b.conns {
		conns = append(conns, c)
	}
	b.mu.Unlock()
	for _, c := range conns {
		go c.kill(shutdownReason) // each may wait on a client that does not read
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	if b.idle != nil {
		b.idle.Close() // every connection has ended: none is parked
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.sessions {
		s.stopTimers()
	}
	return nil
}

// SessionCount returns the number of sessions, connected or not.
func (b *Broker) SessionCount() int {
	b.mu.RLock()
	defer b.mu.RUnlock()
	return len(b.sessions)
}

// sessionList returns the sessions there are now, for work that goes through them one at a
// time without holding b.mu.
func (b *Broker) sessionList() []*Session {
	b.mu.RLock()
	defer b.mu.RUnlock()
	sessions := make([]*Session, 0, len(b.sessions))
	for _, s := range b.sessions {
		sessions = append(sessions, s)
	}
	return sessions
}

// session returns the session of clientID, or nil.
func (b *Broker) session(clientID string) *Session {
	b.mu.RLock()
	s := b.sessions[clientID]
	b.mu.RUnlock()
	return s
}

// endSessionLocked removes s from the broker for good: its subscriptions leave the tree, its
// queue is released and its will (if any is still pending) is returned for publishing. b.mu
// must be held; s.mu must not be.
func (b *Broker) endSessionLocked(s *Session) *Message {
	if b.sessions[s.id] == s {
		delete(b.sessions, s.id)
	}
	b.subs.UnsubscribeAll(s.id)
	b.forgetSysClientLocked(s.id)
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stored {
		b.forgetStored(s.id)
	}
	will := s.takeWillLocked()
	s.ended = true
	s.stopTimersLocked()
	s.dropAllLocked()
	s.releaseAllLocked()
	s.signalRoomLocked()
	return will
}

// expireSession ends s if it is still offline when its expiry timer fires.
func (b *Broker) expireSession(s *Session) {
	b.mu.Lock()
	s.mu.Lock()
	live := b.sessions[s.id] == s && s.conn == nil && !s.ended
	s.mu.Unlock()
	var will *Message
	if live {
		will = b.endSessionLocked(s)
		b.log.Debug("session expired", "client", s.id)
	}
	b.mu.Unlock()
	if will != nil {
		b.publishNow(will)
	}
}
