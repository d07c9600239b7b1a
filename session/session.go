package session

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/codec"
)

// Session is the state the broker keeps for one client identifier: its subscriptions, the
// messages queued for it, the messages in flight in both directions and its will. A persistent
// session outlives its connections until it expires; a clean one ends with its connection.
type Session struct {
	b  *Broker
	id string

	// saveMu serializes saveSession for this session; taken before mu.
	saveMu     sync.Mutex
	mu         sync.Mutex
	version    codec.Version // of the latest connection
	v5         atomic.Bool   // version is 5.0: read by routing without taking mu
	persistent bool          // survives the end of its connection
	expiry     time.Duration // lifetime after disconnect when persistent; 0 means never expire
	conn       *conn         // the live connection, nil while offline
	unsent     bool          // some in-flight message waits to be sent again (outbound.unsent)
	ended      bool          // removed from the broker; offers are refused
	stored     bool          // written to the store: its end must be written too
	// disconnectedAt is when its last connection ended, in unix ns; 0 while connected.
	disconnectedAt int64

	queue queue
	// inflight holds outbound QoS 1/2 messages awaiting PUBACK, PUBREC or PUBCOMP; nil when
	// there are none, so that thousands of drained sessions keep no table.
	inflight map[uint16]*outbound
	sendSeq  uint64 // orders in-flight messages for resending
	lastID   uint16
	nextSeq  uint64              // the store sequence number of the next persisted delivery
	inQoS2   map[uint16]struct{} // inbound QoS 2 packet ids PUBRECed, awaiting PUBREL

	will        *Message
	willDelay   time.Duration
	willTimer   *time.Timer
	expiryTimer *time.Timer

	// room is closed (and replaced) whenever queue space is freed, waking publishers that
	// wait for it. lastProgress is when the subscriber last took a message off the queue, or
	// when the queue last became non-empty.
	room         chan struct{}
	lastProgress time.Time
	dropped      uint64
	readGrant    bool // may read its queue back from disk once, memory pressure or not
	// held is what the session has charged to the memory budget (memory.go): its own state,
	// subscriptions, will, and the deliveries it holds in RAM.
	held int64
}

// outState is where an outbound QoS 1/2 message stands in its handshake.
type outState byte

const (
	awaitPuback  outState = iota // QoS 1 sent
	awaitPubrec                  // QoS 2 PUBLISH sent
	awaitPubcomp                 // QoS 2 PUBREL sent
)

// outbound is one in-flight message towards the client.
type outbound struct {
	d     *delivery
	id    uint16
	seq   uint64
	state outState
	// unsent (guarded by Session.mu): in flight since an earlier connection and not sent
	// again on this one yet, for want of room in the client's Receive Maximum.
	unsent bool
}

func newSession(b *Broker, id string) *Session {
	s := &Session{
		b:       b,
		id:      id,
		queue:   newQueue(b.o().MaxQueued),
		inQoS2:  make(map[uint16]struct{}),
		room:    make(chan struct{}),
		nextSeq: 1,
	}
	s.queue.read = s.readQueued
	s.queue.hold = s.holdLocked
	s.holdLocked(sessionCost) // nobody else sees s yet
	return s
}

// offerResult says what became of a delivery offered to a session.
type offerResult byte

const (
	offerQueued  offerResult = iota // queued for delivery
	offerSkipped                    // not for this session (ended, or QoS 0 while offline)
	offerDropped                    // dropped, or made room by dropping, by the overflow policy
	offerWait                       // the queue is full and the subscriber is making progress: wait on the returned channel
)

// offer puts d on the session's queue, or says why it cannot. mayWait allows the offerWait
// answer (flow control); without it a full queue falls back to the overflow policy. A delivery
// of QoS 1/2 queued for a persistent session of a persisting broker is stamped with a store
// sequence number and held: the caller must write its record and then release it.
func (s *Session) offer(d *delivery, mayWait bool) (offerResult, <-chan struct{}) {
	now := s.b.now()
	s.mu.Lock()
	res, room, evicted := s.offerLocked(d, mayWait, now)
	s.mu.Unlock()
	s.b.deleteEntries(s, evicted)
	return res, room
}

func (s *Session) offerLocked(d *delivery, mayWait bool, now time.Time) (offerResult, <-chan struct{}, []*delivery) {
	if s.ended {
		return offerSkipped, nil, nil
	}
	if d.qos == 0 && s.conn == nil && !s.b.o().QueueQoS0 {
		return offerSkipped, nil, nil
	}
	if s.queue.Len() == 0 {
		// Idle time is not a lack of progress: the clock starts when something waits.
		s.lastProgress = now
	}
	maxBytes := s.b.o().MaxQueuedBytes
	if s.queue.fits(d, maxBytes) && s.queue.Push(d) {
		s.stampLocked(d)
		s.kickLocked()
		return offerQueued, nil, nil
	}
	// Full. A connected subscriber that keeps taking messages slows its publishers down
	// instead of losing their messages.
	if mayWait && s.conn != nil && now.Sub(s.lastProgress) < s.b.patience(d.qos) {
		return offerWait, s.room, nil
	}
	if s.dropped == 0 || s.dropped%10000 == 0 {
		s.b.log.Warn("session queue full: dropping messages", "client", s.id, "online", s.conn != nil,
			"policy", s.b.o().Overflow, "dropped_so_far", s.dropped, "qos", d.qos)
	}
	s.countDropsLocked(1)
	if s.b.o().Overflow != DropOldest {
		return offerDropped, nil, nil
	}
	// Drop the oldest until the new one fits in both limits.
	var evicted []*delivery
	dropped := 0
	for s.queue.Len() > 0 && (s.queue.Len() >= s.queue.Cap() || !s.queue.fits(d, maxBytes)) {
		old, ok := s.queue.Pop()
		if !ok { // the oldest is on disk and the store cannot read it back: drop the new one
			break
		}
		if dropped++; old.held {
			// Its record is not written yet: a deletion written now could reach the log
			// before it, and the entry would outlive the message. release writes it.
			old.evicted = true
			continue
		}
		evicted = append(evicted, old)
	}
	if dropped > 1 { // the first one is counted above
		s.countDropsLocked(dropped - 1)
	}
	if !s.queue.Push(d) {
		return offerDropped, nil, evicted // a queue capacity of 0 holds nothing
	}
	s.stampLocked(d)
	s.kickLocked()
	return offerQueued, nil, evicted
}

// countDropsLocked counts n messages dropped on their way to s's client, for the session and
// in total ($SYS/broker/clients/<id>/dropped and publish/messages/dropped). s.mu is held.
func (s *Session) countDropsLocked(n int) {
	s.dropped += uint64(n)
	s.b.stats.MessagesDropped.Add(uint64(n))
}

// stampLocked gives a newly queued delivery its store sequence number and holds it, when it
// is to be persisted.
func (s *Session) stampLocked(d *delivery) {
	d.seq, d.held = 0, false
	if s.persistent && d.qos > 0 && s.b.persisting() {
		d.seq, d.held = s.nextSeq, true
		s.nextSeq++
	}
}

// kickLocked makes the connection's delivery loop run, if connected.
func (s *Session) kickLocked() {
	if s.conn != nil {
		s.conn.kickLocked()
	}
}

// signalRoomLocked wakes every publisher waiting for queue space.
func (s *Session) signalRoomLocked() {
	close(s.room)
	s.room = make(chan struct{})
}

// nextIDLocked returns a packet identifier not in use by an in-flight message [MQTT-2.2.1-3].
func (s *Session) nextIDLocked() uint16 {
	for {
		s.lastID++
		if s.lastID == 0 {
			s.lastID = 1
		}
		if _, used := s.inflight[s.lastID]; !used {
			return s.lastID
		}
	}
}

// takeBatchLocked moves up to max deliveries from the queue to the wire for connection c,
// respecting the in-flight window: QoS 0 goes straight out, QoS 1/2 become in-flight entries.
// Expired messages are dropped here [MQTT-3.3.2-5] and returned, for the store. When the next
// deliveries are on disk it takes nothing more and returns the read to do (max 0 if none):
// the caller reads without the lock (Session.readQueued) and applies it (queue.applyRead).
func (s *Session) takeBatchLocked(c *conn, out []*outbound, limit int) (_ []*outbound, expired []*delivery, want readRequest) {
	now := s.b.now()
	took := false
	for len(out) < limit {
		if s.queue.headOnDisk() {
			// What is on disk is QoS 1 or 2: it waits for room in the window (before it asks
			// for a read slot, which it would hold idle). Then what the window takes, and at
			// least half a window, so that one read serves several acknowledgements; the rest
			// stays on disk, not in RAM.
			free := c.sendWindow - len(s.inflight)
			if free <= 0 {
				break
			}
			if !s.mayReadBackLocked() {
				break // no read slot: wakeStarved restarts the loop
			}
			want = s.queue.planRead(min(readBatch, max(free, (c.sendWindow+1)/2)))
			break
		}
		d, ok := s.queue.Peek()
		if !ok || d.held {
			break // a held delivery waits for its record, and everything behind it for order
		}
		if d.msg.expired(now) {
			s.queue.Pop()
			took = true
			s.b.stats.MessagesExpired.Add(1)
			expired = append(expired, d)
			continue
		}
		if d.qos > 0 && len(s.inflight) >= c.sendWindow {
			break
		}
		s.queue.Pop()
		took = true
		o := &outbound{d: d}
		if d.qos > 0 {
			o.id = s.nextIDLocked()
			s.sendSeq++
			o.seq = s.sendSeq
			o.state = awaitPubrec
			if d.qos == 1 {
				o.state = awaitPuback
			}
			s.putInflightLocked(o)
		}
		out = append(out, o)
	}
	if took {
		s.lastProgress = now
		s.signalRoomLocked()
	}
	return out, expired, want
}

// resendLocked returns what a new connection sends again of what is in flight, in order:
// every PUBREL, and PUBLISHes while the client's Receive Maximum (window) has room
// [MQTT-3.3.4-7], counting the PUBRELs, whose messages it still counts. The other PUBLISHes
// are marked unsent, for takeUnsentLocked.
func (s *Session) resendLocked(window int) []*outbound {
	all := s.inflightInOrderLocked()
	room := window
	for _, o := range all {
		if o.state == awaitPubcomp {
			room--
		}
	}
	again := all[:0] // filtered in place: it never passes the element being read
	s.unsent = false
	for _, o := range all {
		o.unsent = o.state != awaitPubcomp && room <= 0
		if o.unsent {
			s.unsent = true
			continue
		}
		if o.state != awaitPubcomp {
			room--
		}
		again = append(again, o)
	}
	return again
}

// takeUnsentLocked appends to out, in order, the unsent in-flight PUBLISHes the client's
// Receive Maximum (window) now has room for, and marks them sent.
func (s *Session) takeUnsentLocked(window int, out []*outbound) []*outbound {
	if !s.unsent {
		return out
	}
	all := s.inflightInOrderLocked()
	waiting := 0
	for _, o := range all {
		if o.unsent {
			waiting++
		}
	}
	room := window - (len(all) - waiting)
	for _, o := range all {
		if !o.unsent {
			continue
		}
		if room <= 0 {
			return out
		}
		o.unsent = false
		room--
		out = append(out, o)
	}
	s.unsent = false // none waits any more
	return out
}

// inflightInOrderLocked returns the in-flight messages in the order they were first sent, for
// resending after a reconnect [MQTT-4.4.0-1].
func (s *Session) inflightInOrderLocked() []*outbound {
	out := make([]*outbound, 0, len(s.inflight))
	for _, o := range s.inflight {
		out = append(out, o)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].seq < out[j].seq })
	return out
}

// ack applies a PUBACK, PUBREC or PUBCOMP from the client. known reports whether the packet id
// was in flight in the expected state; done is the delivery whose exchange ended (its record
// can go), rel the QoS 2 message that was PUBRECed (the caller records that durably and then
// answers with PUBREL).
func (s *Session) ack(kind codec.Type, id uint16, reason codec.ReasonCode) (known bool, done *delivery, rel *outbound) {
	s.mu.Lock()
	defer s.mu.Unlock()
	o := s.inflight[id]
	if o == nil {
		return false, nil, nil
	}
	switch {
	case kind == codec.PUBACK && o.state == awaitPuback,
		kind == codec.PUBCOMP && o.state == awaitPubcomp:
		s.deleteInflightLocked(o)
		done = o.d
	case kind == codec.PUBREC && o.state == awaitPubrec:
		if reason.IsFailure() {
			// The receiver refused it: the exchange ends here (5.0 section 4.3.3).
			s.deleteInflightLocked(o)
			done = o.d
		} else {
			o.state = awaitPubcomp
			rel = o
		}
	case kind == codec.PUBREC && o.state == awaitPubcomp:
		// A resent PUBREC: answer it again; its release is recorded already.
	default:
		return false, nil, nil
	}
	s.lastProgress = s.b.now()
	s.kickLocked()
	return true, done, rel
}

// putInflightLocked records o as in flight and charges its delivery to the budget.
func (s *Session) putInflightLocked(o *outbound) {
	if old := s.inflight[o.id]; old != nil { // only a damaged store repeats an id
		s.holdLocked(-deliverySize(old.d))
	}
	if s.inflight == nil {
		s.inflight = make(map[uint16]*outbound) // grown as the window fills, not sized for it
	}
	s.inflight[o.id] = o
	s.holdLocked(deliverySize(o.d))
}

// deleteInflightLocked ends o's exchange and releases its charge.
func (s *Session) deleteInflightLocked(o *outbound) {
	delete(s.inflight, o.id)
	if len(s.inflight) == 0 {
		s.inflight = nil
	}
	s.holdLocked(-deliverySize(o.d))
}

// scheduleWillLocked publishes the pending will after the given time, unless its client comes
// back or the session ends first (publishDelayedWill).
func (s *Session) scheduleWillLocked(after time.Duration) {
	w := s.will
	s.willTimer = time.AfterFunc(max(after, 0), func() { s.b.publishDelayedWill(s, w) })
}

// takeWillLocked returns the pending will, if any, and forgets it.
func (s *Session) takeWillLocked() *Message {
	w := s.will
	s.setWillLocked(nil)
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	return w
}

func (s *Session) stopTimers() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.stopTimersLocked()
}

func (s *Session) stopTimersLocked() {
	if s.willTimer != nil {
		s.willTimer.Stop()
		s.willTimer = nil
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
}

// dropAllLocked forgets queued and in-flight messages (the session starts clean or ends).
func (s *Session) dropAllLocked() {
	s.queue.Clear()
	for _, o := range s.inflight {
		s.holdLocked(-deliverySize(o.d))
	}
	s.inflight = nil
	clear(s.inQoS2)
}

// takeSharedLocked removes the deliveries that came through a shared subscription and that
// another member of the group may have: those queued, and QoS 1 ones in flight. A QoS 2 one
// in flight stays: its delivery is completed with this client when it reconnects, and if the
// session ends first no other client gets it (5.0 section 4.8.2, [MQTT-4.8.2-4] and
// [MQTT-4.8.2-5]). So do queued ones read back from the store (after a restart): they are a
// run of the queue's disk part, which a spill puts back whole, and a gap in it would make
// the store's entries and the queue's count disagree.
func (s *Session) takeSharedLocked() []*delivery {
	var out []*delivery
	// Copies, made under s.mu: the connection's delivery loop may still read an original
	// (recording a batch it sent), and a router may still release one. One whose record is
	// not written yet (held) is marked evicted, so that its router writes its deletion after
	// that record; its copy has no entry of this session to delete.
	take := func(d *delivery) {
		c := new(*d)
		if d.held {
			d.evicted = true
			c.seq = 0
		}
		out = append(out, c)
	}
	for _, o := range s.inflightInOrderLocked() {
		if o.d.shared != nil && o.d.qos == 1 {
			s.deleteInflightLocked(o)
			take(o.d)
		}
	}
	s.queue.RemoveIf(func(d *delivery) bool {
		if d.shared != nil && !d.fromDisk {
			take(d)
			return true
		}
		return false
	})
	return out
}
