package session

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"edgebroker/codec"
	"edgebroker/limits"
	"edgebroker/session/idle"
	"edgebroker/session/store"
	"edgebroker/wal"
)

const (
	readBufferSize = 2048                   // per connection; small so idle clients stay cheap
	maxBatch       = 64                     // deliveries taken from the queue per lock
	flushThreshold = 32 << 10               // write out the buffer once this much is pending
	keepBufferCap  = 64 << 10               // a larger write buffer is released after a flush
	writeTimeout   = 30 * time.Second       // a client that reads nothing for this long is dropped
	drainTimeout   = 2 * time.Second        // how long a closing connection is drained for its peer
	takeoverGrace  = 500 * time.Millisecond // how long a takeover waits for the old reader
)

// shutdownReason is sent to 5.0 clients when the broker stops.
const shutdownReason = codec.ServerShuttingDown

var (
	errClientDisconnect = errors.New("session: client disconnected")
	errConnClosed       = errors.New("session: connection closed")
)

// conn is one client network connection. Its reader goroutine decodes packets and handles
// everything but PUBLISH routing, which a router goroutine does in order (so that a publish
// waiting for queue room does not stop acknowledgements from being read); a delivery goroutine
// moves the session's queue onto the wire. A reader with nothing to read parks the connection
// (park) and ends; the broker's poller starts another (resume) when the client speaks.
type conn struct {
	b      *Broker
	nc     net.Conn
	parker *idle.Conn // nil when nc cannot be parked (TLS, or no poller)
	// The reader's packetReader, nil while parked: pr, its buffer br (when that has nothing
	// buffered, a burst of packets ended) and the decoder r over br.
	pr     *packetReader
	br     *bufio.Reader
	r      *codec.Reader
	remote string

	// Set while handling CONNECT, read-only afterwards.
	version     codec.Version
	clientID    string
	s           *Session
	keepAlive   time.Duration // read deadline after each packet; 0 means none
	sendWindow  int           // outbound in-flight window: the client's Receive Maximum, capped
	maxOut      uint32        // the client's Maximum Packet Size, 0 when unlimited
	aliasOutMax uint16        // the client's Topic Alias Maximum
	expiryZero  bool          // CONNECT asked for Session Expiry 0 [MQTT-3.14.2-2]
	info        ClientInfo    // who the Authorizer sees

	// Reader goroutine state.
	rate     *limits.RateLimiter // nil without a publish rate limit
	aliasIn  map[uint16]string
	inbox    chan inbound
	routing  bool        // router goroutine started
	graceful bool        // a DISCONNECT that discards the will arrived
	acked    []*delivery // acknowledged deliveries whose DeleteEntry is still to be written

	inflightIn atomic.Int32 // inbound QoS 1/2 not yet fully acknowledged

	// Replies (PUBREL, PUBCOMP) that must wait for a record: the reader commits it and hands
	// the reply to the reply goroutine, which waits once for many (group commit).
	replies  chan durableReply
	replying bool // reply goroutine started (reader only)

	// Router goroutine state: acknowledgements whose records are committed but not yet known
	// durable, in arrival order, and the log position that makes them all durable.
	pending    []pendingAck
	pendingPos wal.Pos

	// Delivery goroutine state.
	aliasOut map[string]uint16
	batch    []*outbound // guarded by Session.mu between delivery loops; only one runs at a time
	msgs     []*Message  // the bodies of batch, taken under Session.mu; guarded as batch

	wmu     sync.Mutex
	wbuf    []byte
	wheld   int64 // what wbuf is charged to the memory budget: its capacity
	wclosed bool
	goodbye bool // a DISCONNECT is written: nothing may follow it [MQTT-3.14.4-1]

	delivering bool          // guarded by Session.mu: a delivery goroutine is running
	done       chan struct{} // closed when the connection is finished
	// ctx ends when the connection is killed or finished: the reader's waits for memory
	// (pressure.go) end with it.
	ctx      context.Context
	cancel   context.CancelFunc
	doneOnce sync.Once

	detached  bool // guarded by Broker.mu: the session no longer points here
	killed    atomic.Bool
	reading   atomic.Bool // a reader goroutine runs, charged readerCost: not parked
	connacked atomic.Bool // CONNACK is in the write buffer or sent: a 5.0 DISCONNECT may follow it
}

// inbound is one PUBLISH waiting for the router.
type inbound struct {
	msg    *Message
	cost   int64 // reserved in the memory budget until routed
	id     uint16
	qos    byte
	reject codec.ReasonCode // if set, acknowledge with this failure instead of routing
}

// durableReply is a packet to send once the log is durable up to pos.
type durableReply struct {
	pos wal.Pos
	ack codec.Ack
}

// replyAfter sends ack once the record at pos is durable, without holding up the reader: a
// subscriber's PUBRECs (or a publisher's PUBRELs) arriving together share one fsync.
func (c *conn) replyAfter(pos wal.Pos, ack codec.Ack) {
	if !c.replying {
		c.replying = true
		c.replies = make(chan durableReply, c.b.o().MaxInflight+8)
		go c.replyLoop()
	}
	select {
	case c.replies <- durableReply{pos, ack}:
	case <-c.done:
	case <-c.ctx.Done(): // killed: the reader must not wait on replies that may never go
	}
}

// replyLoop sends queued replies in order, each batch after one wait for the log.
func (c *conn) replyLoop() {
	var batch []durableReply
	for {
		select {
		case r := <-c.replies:
			batch = append(batch[:0], r)
		case <-c.done:
			return
		}
		for more := true; more; {
			select {
			case r := <-c.replies:
				batch = append(batch, r)
			default:
				more = false
			}
		}
		var last wal.Pos
		for _, r := range batch {
			last = max(last, r.pos)
		}
		if err := c.b.store.Wait(last); err != nil {
			c.b.storeFailed(err)
			c.kill(codec.UnspecifiedError)
			return
		}
		for i := range batch {
			c.send(&batch[i].ack)
		}
		c.flush()
	}
}

// pendingAck is a PUBACK or PUBREC waiting for its message's records to be durable (Kind 0:
// nothing to send, for QoS 0 or for the first part of a publication that waited for queue
// room), with the message's deliveries (see record).
type pendingAck struct {
	ack  codec.Ack
	held []target // its deliveries: released already unless the publication is QoS 2 (see record)
	msg  *Message // for its retained change, should the log fail
}

// deniedSilently marks a 3.x publication refused by the Authorizer: acknowledged as if
// accepted, and dropped.
const deniedSilently = codec.ReasonCode(0xff)

// maxPending bounds the acknowledgements one router keeps before waiting for the log.
const maxPending = 256

// mayPublish reports whether the client may publish to topic: never under $SYS/, which only
// the broker writes (as in Mosquitto), and otherwise as the Authorizer, if any, says.
func (c *conn) mayPublish(topic string) bool {
	if topic == "$SYS" || strings.HasPrefix(topic, "$SYS/") {
		return false
	}
	a := c.b.o().Auth
	return a == nil || a.CanPublish(c.info, topic)
}

// checkPublishProps applies the 5.0 rules on PUBLISH properties a client sends that the
// codec leaves to the engine.
func checkPublishProps(p *codec.Properties) error {
	if len(p.SubscriptionIDs) > 0 {
		return codec.ProtocolError // [MQTT-3.3.4-6] only the server sends them
	}
	if p.Present.Has(codec.PropResponseTopic) && !codec.ValidTopicName(p.ResponseTopic) {
		return codec.ProtocolError // [MQTT-3.3.2-14] a topic name, no wildcards
	}
	if len(p.User) > store.MaxUserProperties {
		return codec.ImplementationSpecific // more than the store can keep
	}
	return nil
}

// serveConn admits a new connection, runs its handshake and reads it until it parks or ends.
// The connection holds one count of b.wg (taken by Serve) until end.
func (b *Broker) serveConn(nc net.Conn) {
	c := &conn{
		b:      b,
		nc:     nc,
		remote: nc.RemoteAddr().String(),
		done:   make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if b.idle != nil {
		c.parker = b.idle.Watch(nc, c.resume) // before c is in b.conns, where kill finds it
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		c.turnAway()
		return
	}
	if max := b.o().MaxConnections; max > 0 && len(b.conns) >= max {
		b.mu.Unlock()
		b.log.Warn("connection refused: --max-connections reached", "remote", c.remote, "max", max)
		c.turnAway()
		return
	}
	// Past the budget, whether a client is let in depends on its CONNECT (admit): a few may
	// wait for theirs over the budget.
	overBudget := !b.mem.TryReserve(connCost + readerCost)
	if overBudget {
		if b.handshakesOver.Add(1) > maxHandshakesOver {
			b.handshakesOver.Add(-1)
			b.mu.Unlock()
			b.log.Warn("connection refused: the memory budget is used up", "remote", c.remote,
				"accounted", b.mem.Used(), "limit", b.mem.Limit())
			c.turnAway()
			return
		}
		b.mem.Charge(connCost + readerCost)
	}
	c.reading.Store(true)
	b.conns[c] = struct{}{}
	b.mu.Unlock()

	c.lendReader()
	accepted := c.handshake()
	if overBudget {
		b.handshakesOver.Add(-1)
	}
	if !accepted {
		c.end()
		return
	}
	c.read(false)
}

// packetReader is a read buffer and the decoder over it, lent to a connection while its
// reader runs: a parked connection holds neither.
type packetReader struct {
	buf *bufio.Reader
	dec *codec.Reader
}

// packetReaders holds the packetReaders no connection is using.
var packetReaders = sync.Pool{New: func() any {
	buf := bufio.NewReaderSize(nil, readBufferSize)
	dec := codec.NewReader(buf, 0)
	dec.ReuseAcks()      // handleAck is done with an acknowledgement before the next read
	dec.ReusePublishes() // handlePublish copies what it keeps (newMessage) before the next read
	return &packetReader{buf: buf, dec: dec}
}}

// turnAway closes a connection that was not admitted.
func (c *conn) turnAway() {
	if c.parker != nil {
		c.parker.Release()
	}
	c.cancel()
	c.nc.Close()
	c.b.wg.Done()
}

// read runs the reader until the connection parks or ends. A resumed reader reads before it
// may park again (the poller woke it because the socket has something), under the deadline
// set before it parked.
func (c *conn) read(resumed bool) {
	if !resumed && c.park(c.setReadDeadline()) {
		return
	}
	if !c.readLoop() {
		c.end()
	}
}

// parkAfter is how long a connection stays quiet before its reader parks: a client that
// speaks again sooner (a publisher awaiting its PUBACK, a subscriber acknowledging) is read
// on by the same goroutine, sparing each packet the poller's system calls and a new goroutine.
const parkAfter = 20 * time.Millisecond

// park hands a quiet connection (between packets, nothing buffered, nothing arriving for
// parkAfter) to the broker's poller with its read buffer given back, and reports whether it
// did: then the reader goroutine ends, and resume reads on when the client speaks, its
// keep-alive deadline passes or kill stops it. deadline is the read deadline just set. While
// woken connections wait for resume slots it parks without waiting parkAfter, so that its
// goroutine and buffer go as its slot does.
func (c *conn) park(deadline time.Time) bool {
	if c.parker == nil || c.br.Buffered() > 0 {
		return false // bytes already read (a client need not wait for CONNACK) go first
	}
	crowded := c.giveSlot() // what woke it is handled
	if c.killed.Load() {
		return false
	}
	if quiet := time.Now().Add(parkAfter); !crowded && (deadline.IsZero() || quiet.Before(deadline)) {
		c.nc.SetReadDeadline(quiet)
		_, err := c.br.Peek(1)
		c.applyReadDeadline(deadline)
		if !isTimeout(err) {
			return false // bytes came (or the stream ended: the reader meets that again)
		}
	}
	c.putReader()
	if c.parker.Park(deadline) {
		return true
	}
	c.takeReader()
	return false
}

// giveSlot gives the reader's resume slot, if it holds one, to the next woken connection
// (idle.Conn.Settle), and reports whether one was waiting for it. The reader gives it before
// it waits on other clients, whose resumes must not wait for it.
func (c *conn) giveSlot() bool {
	return c.parker != nil && c.parker.Settle()
}

// resume reads a parked connection again, in a goroutine of its own (started by the poller).
func (c *conn) resume() {
	c.takeReader()
	c.read(true)
}

// takeReader lends the reader a packetReader and charges it and the goroutine's stack.
func (c *conn) takeReader() {
	c.b.mem.Charge(readerCost)
	c.reading.Store(true)
	c.lendReader()
}

// lendReader sets up a packetReader over the connection: c.br and c.r.
func (c *conn) lendReader() {
	pr := packetReaders.Get().(*packetReader)
	pr.buf.Reset(c.nc)
	pr.dec.Reset(pr.buf, c.b.o().MaxPacketSize)
	if c.version != 0 { // past CONNECT
		pr.dec.SetVersion(c.version)
	}
	c.pr, c.br, c.r = pr, pr.buf, pr.dec
}

// putReader gives back what takeReader took.
func (c *conn) putReader() {
	c.pr.buf.Reset(nil)
	c.pr.dec.Reset(nil, 0)
	packetReaders.Put(c.pr)
	c.pr, c.br, c.r = nil, nil, nil
	c.reading.Store(false)
	c.b.mem.Release(readerCost)
}

// end finishes the connection once its reader has stopped, and releases all it held.
func (c *conn) end() {
	// Detach from the session first, so that nothing is queued for a connection that is only
	// being drained.
	c.finish()
	c.giveSlot() // the peer's close is waited for (drainClose) without a resume slot
	c.drainClose()
	c.releaseBuffers()
	if c.parker != nil {
		c.parker.Release()
	}
	c.putReader()
	c.b.mem.Release(connCost)
	c.cancel()
	c.b.wg.Done()
}

// releaseBuffers returns to the memory budget what the ended connection still holds: the
// publications its router did not take and its write buffer.
func (c *conn) releaseBuffers() {
	for more := true; more; {
		select {
		case in := <-c.inbox: // nil, never ready, if no router was started
			c.b.mem.Release(in.cost)
		default:
			more = false
		}
	}
	c.wmu.Lock()
	c.wbuf = nil
	c.chargeWriteBufferLocked()
	c.wmu.Unlock()
}

// handshake reads and answers CONNECT. It reports whether the connection was accepted.
func (c *conn) handshake() bool {
	c.nc.SetReadDeadline(time.Now().Add(c.b.o().ConnectTimeout))
	p, err := c.r.ReadPacket()
	if err != nil {
		var lvl *codec.UnsupportedLevelError
		if errors.As(err, &lvl) {
			// [MQTT-3.1.2-2] answer with return code 0x01 and close; a client asking for a
			// level above 5 reads a 5.0 CONNACK with 0x84 (5.0 section 3.1.2.2).
			c.version = codec.V311
			ack := &codec.Connack{Reason: codec.V3UnacceptableVersion}
			if lvl.Level > byte(codec.V5) {
				c.version, ack.Reason = codec.V5, codec.UnsupportedProtocolVersion
			}
			c.send(ack)
		}
		c.logClose("bad CONNECT", err)
		return false
	}
	cp, ok := p.(*codec.Connect)
	if !ok {
		c.logClose("first packet is not CONNECT", errors.New(packetName(p))) // [MQTT-3.1.0-1]
		return false
	}
	return c.connect(cp)
}

// refuse answers CONNECT with a failure and closes.
func (c *conn) refuse(rc codec.ReasonCode, why string) bool {
	ack := &codec.Connack{Reason: rc}
	if c.version != codec.V5 {
		ack.Reason = rc.V3ConnackCode()
	}
	c.send(ack)
	c.logClose("connection refused: "+why, rc)
	return false
}

// connect applies an accepted CONNECT: it creates, resumes or takes over the session and
// sends CONNACK.
func (c *conn) connect(cp *codec.Connect) bool {
	b := c.b
	c.version = cp.Version
	c.r.SetVersion(cp.Version)
	c.clientID = cp.ClientID
	v5 := cp.Version == codec.V5

	if v5 && cp.Props.Present.Has(codec.PropAuthMethod) {
		return c.refuse(codec.BadAuthenticationMethod, "enhanced authentication is not supported")
	}
	var ack codec.Connack
	if c.clientID == "" {
		// [MQTT-3.1.3-8] a 3.1.1 client with no identifier must ask for a clean session; 3.1
		// requires an identifier. 5.0 gets one assigned [MQTT-3.1.3-6].
		if cp.Version == codec.V31 || (cp.Version == codec.V311 && !cp.CleanStart) {
			return c.refuse(codec.ClientIDNotValid, "empty client identifier")
		}
		c.clientID = "auto-" + randomHex(12)
		if v5 {
			ack.Props.Present.Set(codec.PropAssignedClientID)
			ack.Props.AssignedClientID = c.clientID
		}
	}

	c.info = c.clientInfo(cp)
	if a := b.o().Auth; a != nil {
		if rc := a.Authenticate(c.info, cp.Password, cp.PasswordFlag); rc != codec.Success {
			return c.refuse(rc, "not authenticated") // [MQTT-3.1.4-2]
		}
	}
	if !b.admit(c.clientID) {
		b.log.Warn("connection refused: the memory budget is used up", "client", c.clientID,
			"remote", c.remote, "accounted", b.mem.Used(), "limit", b.mem.Limit())
		return c.refuse(codec.QuotaExceeded, "memory budget used up") // 3.x: server unavailable
	}

	// Keep-alive: the server may lower a 5.0 client's (Server Keep Alive) [MQTT-3.2.2-21].
	ka := cp.KeepAlive
	if v5 && b.o().MaxKeepAlive > 0 && (ka == 0 || ka > b.o().MaxKeepAlive) {
		ka = b.o().MaxKeepAlive
		ack.Props.Present.Set(codec.PropServerKeepAlive)
		ack.Props.ServerKeepAlive = ka
	}
	c.keepAlive = time.Duration(ka) * time.Second * 3 / 2 // [MQTT-3.1.2-24]

	persistent, expiry := !cp.CleanStart, b.o().SessionExpiryMax
	if v5 {
		req := uint32(0)
		if cp.Props.Present.Has(codec.PropSessionExpiry) {
			req = cp.Props.SessionExpiry
		}
		c.expiryZero = req == 0
		persistent, expiry = req > 0, expiryDuration(req)
		if max := b.o().SessionExpiryMax; max > 0 && req > 0 && (expiry == 0 || expiry > max) {
			expiry = max
			ack.Props.Present.Set(codec.PropSessionExpiry)
			ack.Props.SessionExpiry = uint32(max / time.Second)
		}
	}

	c.sendWindow = b.o().MaxInflight
	if v5 {
		if cp.Props.Present.Has(codec.PropReceiveMaximum) {
			c.sendWindow = min(c.sendWindow, int(cp.Props.ReceiveMaximum))
		}
		if cp.Props.Present.Has(codec.PropMaximumPacketSize) {
			c.maxOut = cp.Props.MaximumPacketSize
		}
		if cp.Props.Present.Has(codec.PropTopicAliasMaximum) {
			c.aliasOutMax = cp.Props.TopicAliasMaximum
		}
		c.setServerProps(&ack.Props)
	}

	var will *Message
	var willDelay time.Duration
	if cp.WillFlag {
		if !c.mayPublish(cp.WillTopic) {
			return c.refuse(codec.NotAuthorized, "will topic not allowed")
		}
		if cp.WillProps.Present.Has(codec.PropResponseTopic) && !codec.ValidTopicName(cp.WillProps.ResponseTopic) {
			return c.refuse(codec.ProtocolError, "will response topic not a topic name") // [MQTT-3.3.2-14]
		}
		if len(cp.WillProps.User) > store.MaxUserProperties {
			return c.refuse(codec.ImplementationSpecific, "more will user properties than the store keeps")
		}
		will = newMessage(&codec.Publish{Topic: cp.WillTopic, Payload: cp.WillPayload, QoS: cp.WillQoS,
			Retain: cp.WillRetain, Props: cp.WillProps}, c.clientID, b.now())
		if cp.WillProps.Present.Has(codec.PropMessageExpiry) {
			will.willExpiry = max(time.Duration(cp.WillProps.MessageExpiry)*time.Second, 1)
		}
		if cp.WillProps.Present.Has(codec.PropWillDelay) {
			willDelay = time.Duration(cp.WillProps.WillDelay) * time.Second
		}
	}

	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return c.refuse(codec.ServerUnavailable, "broker shutting down")
	}
	s, wills, old := b.takeOverLocked(c.clientID, cp.CleanStart)
	resumed := s != nil
	if !resumed {
		s = newSession(b, c.clientID)
		b.sessions[c.clientID] = s
	}
	s.mu.Lock()
	s.conn = c
	s.version = cp.Version
	s.v5.Store(cp.Version == codec.V5)
	s.persistent, s.expiry = persistent, expiry
	s.disconnectedAt = 0
	s.setWillLocked(will)
	s.willDelay = willDelay
	s.lastProgress = b.now()
	c.s = s
	// Deliveries wait until CONNACK is out: the loop starts below.
	c.delivering = true
	s.mu.Unlock()
	b.stats.connected() // attached: detaching it (finish, takeover) counts it out
	b.mu.Unlock()
	saved, saveErr := b.saveSession(s)
	for _, w := range wills {
		b.publishNow(w)
	}
	if old != nil {
		// Let the old connection's reader apply what it has already received (a PUBACK just
		// before a dropped connection) before anything is resent with DUP.
		select {
		case <-old.done:
		case <-time.After(takeoverGrace):
		}
	}

	// A persistent session exists once CONNACK says so: its record (will and expiry included)
	// is durable first, so that a power cut cannot take a session the client was told about.
	if saveErr == nil && saved != 0 {
		if saveErr = b.store.Wait(saved); saveErr != nil {
			b.storeFailed(saveErr)
		}
	}
	if saveErr != nil {
		return c.refuse(codec.ServerUnavailable, "persistent session cannot be stored")
	}
	ack.SessionPresent = resumed // [MQTT-3.2.2-2], [MQTT-3.2.2-3]
	if c.killed.Load() {
		return false // taken over or shut down meanwhile: no CONNACK, and no DISCONNECT
	}
	if err := c.send(&ack); err != nil || c.flush() != nil {
		return false
	}
	if r := b.o().PublishRate; r > 0 {
		c.rate = limits.NewRateLimiter(r, max(1, int(r)))
	}
	b.log.Debug("client connected", "client", c.clientID, "remote", c.remote, "version", int(c.version),
		"clean", cp.CleanStart, "session_present", resumed)
	go c.deliverLoop(true)
	return true
}

// setServerProps fills the 5.0 CONNACK properties that describe what the broker allows.
func (c *conn) setServerProps(p *codec.Properties) {
	o := c.b.o()
	p.Present.Set(codec.PropReceiveMaximum)
	p.ReceiveMaximum = uint16(o.MaxInflight)
	p.Present.Set(codec.PropMaximumPacketSize)
	p.MaximumPacketSize = o.MaxPacketSize
	p.Present.Set(codec.PropTopicAliasMaximum)
	p.TopicAliasMaximum = o.TopicAliasMax
	p.Present.Set(codec.PropRetainAvailable)
	p.RetainAvailable = 1
	p.Present.Set(codec.PropWildcardSubAvailable)
	p.WildcardSubAvailable = 1
	p.Present.Set(codec.PropSubIDAvailable)
	p.SubIDAvailable = 1
	p.Present.Set(codec.PropSharedSubAvailable)
	p.SharedSubAvailable = 1
}

// takeOverLocked detaches an existing connection of clientID [MQTT-3.1.4-3] and decides the fate
// of its session: it is returned for resuming unless cleanStart is set or it was not persistent,
// in which case it ends. It returns the wills that must now be published and the connection
// taken over, if any. b.mu must be held.
func (b *Broker) takeOverLocked(clientID string, cleanStart bool) (*Session, []*Message, *conn) {
	s := b.sessions[clientID]
	if s == nil {
		return nil, nil, nil
	}
	var wills []*Message
	s.mu.Lock()
	old := s.conn
	s.conn = nil
	resume := !cleanStart && s.persistent
	// The old connection ended abnormally: its will goes out unless the delay lets the new
	// connection cancel it [MQTT-3.1.3-9]; a pending delayed will of an offline session is
	// cancelled by the reconnect, or published if the session now ends.
	if w := s.takeWillLocked(); w != nil && (!resume || (old != nil && s.willDelay == 0)) {
		wills = append(wills, w)
	}
	if s.expiryTimer != nil {
		s.expiryTimer.Stop()
		s.expiryTimer = nil
	}
	shared := []*delivery(nil)
	if old != nil {
		shared = s.takeSharedLocked()
	}
	s.mu.Unlock()
	if old != nil {
		old.detached = true
		go old.kill(codec.SessionTakenOver)
		b.stats.ClientsConnected.Add(-1)
	}
	if len(shared) > 0 {
		// To the other members; an ended session refuses those that find no other home.
		go b.redistribute(s, shared)
	}
	if !resume {
		b.endSessionLocked(s)
		return nil, wills, old
	}
	return s, wills, old
}

// expiryDuration converts a 5.0 Session Expiry Interval; 0xFFFFFFFF (and 0) map to 0, which for
// a persistent session means it never expires (5.0 section 3.1.2.11.2).
func expiryDuration(secs uint32) time.Duration {
	if secs == 0xFFFFFFFF {
		return 0
	}
	return time.Duration(secs) * time.Second
}

// readLoop handles packets until the connection parks (true), fails or the client
// disconnects.
func (c *conn) readLoop() (parked bool) {
	for {
		p, err := c.r.ReadPacket()
		if err == nil {
			err = c.handle(p)
		}
		if len(c.acked) > 0 && (err != nil || c.br.Buffered() == 0 || len(c.acked) >= maxBatch) {
			c.b.deleteEntries(c.s, c.acked) // one record for a burst of acknowledgements
			clear(c.acked)
			c.acked = c.acked[:0]
		}
		if err == nil {
			if c.park(c.setReadDeadline()) {
				return true
			}
			continue
		}
		switch {
		case errors.Is(err, errClientDisconnect):
		case c.killed.Load():
			// Taken over or shut down: kill already said why.
		case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
			c.logClose("connection closed by client", err)
		case errors.Is(err, errConnClosed):
			c.logClose("write failed", err)
		case isTimeout(err):
			c.fail(codec.KeepAliveTimeout)
		default:
			c.fail(err)
		}
		return false
	}
}

// handle dispatches one packet from a connected client.
func (c *conn) handle(p codec.Packet) error {
	switch p := p.(type) {
	case *codec.Publish:
		return c.handlePublish(p)
	case *codec.Ack:
		return c.handleAck(p)
	case *codec.Subscribe:
		return c.handleSubscribe(p)
	case *codec.Unsubscribe:
		return c.handleUnsubscribe(p)
	case *codec.Pingreq:
		if err := c.send(&codec.Pingresp{}); err != nil {
			return err
		}
		return c.flush()
	case *codec.Disconnect:
		return c.handleDisconnect(p)
	case *codec.Connect:
		return codec.ProtocolError // [MQTT-3.1.0-2] a second CONNECT
	default:
		return codec.ProtocolError // AUTH without an authentication method, or a server packet
	}
}

// handlePublish resolves the topic alias and hands the message to the router.
func (c *conn) handlePublish(p *codec.Publish) error {
	c.b.stats.MessagesReceived.Add(1)
	if c.rate != nil {
		// Over its rate, the client waits: nothing more is read from its socket meanwhile.
		if d := c.rate.Delay(c.b.now()); d > 0 {
			time.Sleep(d)
		}
		c.rate.Allow(c.b.now())
	}
	if c.version == codec.V5 {
		if p.Props.Present.Has(codec.PropTopicAlias) {
			a := p.Props.TopicAlias
			if a == 0 || a > c.b.o().TopicAliasMax {
				return codec.TopicAliasInvalid // [MQTT-3.3.2-9], [MQTT-3.3.2-10]
			}
			if p.Topic == "" {
				t, ok := c.aliasIn[a]
				if !ok {
					return codec.ProtocolError // alias never set
				}
				p.Topic = t
			} else {
				if c.aliasIn == nil {
					c.aliasIn = make(map[uint16]string)
				}
				c.aliasIn[a] = strings.Clone(p.Topic) // not a view of the whole packet body
			}
		} else if p.Topic == "" {
			return codec.ProtocolError
		}
	}
	if p.QoS > 0 && c.inflightIn.Add(1) > int32(c.b.o().MaxInflight) && c.version == codec.V5 {
		return codec.ReceiveMaximumExceeded // [MQTT-3.3.4-9]
	}
	if err := checkPublishProps(&p.Props); err != nil {
		return err
	}
	if !c.b.topicWithinLimits(p.Topic) {
		return codec.TopicNameInvalid
	}
	in := inbound{id: p.PacketID, qos: p.QoS}
	drop, reject, err := c.underPressure(p.QoS)
	if err != nil || drop {
		return err
	}
	if reject != 0 {
		in.reject = reject
	} else if !c.mayPublish(p.Topic) {
		// 5.0 says why (0x87); a 3.x client gets its acknowledgement and the message goes
		// nowhere, as Mosquitto does, so that it does not resend it forever.
		in.reject = codec.NotAuthorized
		if c.version != codec.V5 {
			in.reject = deniedSilently
		}
		c.logClose("publish denied", errors.New(p.Topic))
	} else if p.Props.Present.Has(codec.PropPayloadFormat) && p.Props.PayloadFormat == 1 && !utf8.Valid(p.Payload) {
		in.reject = codec.PayloadFormatInvalid // 5.0 section 3.3.2.3.2: refused, not routed
	} else {
		in.msg = newMessage(p, c.clientID, c.b.now())
		in.cost = messageSize(in.msg)
		if drop, in.reject, err = c.reserve(in.cost, p.QoS); err != nil || drop {
			return err
		}
		if in.reject != 0 {
			in.msg, in.cost = nil, 0
		}
	}
	if !c.routing {
		c.routing = true
		c.inbox = make(chan inbound, c.b.o().MaxInflight+8)
		go c.routeLoop()
	}
	if len(c.inbox) == cap(c.inbox) { // only this reader sends: the send below would wait
		c.giveSlot() // for the router, which waits for room that subscribers' acknowledgements free
	}
	select {
	case c.inbox <- in:
		return nil
	case <-c.done:
		c.b.mem.Release(in.cost)
		return errConnClosed
	case <-c.ctx.Done():
		// Killed: the router may be waiting for a slow subscriber, and only the reader's
		// end (finish) releases it.
		c.b.mem.Release(in.cost)
		return errConnClosed
	}
}

// routeLoop routes the connection's publications in arrival order. Acknowledgements are sent
// once what they confirm is durable: the loop commits each message's records as it routes it
// and waits for the log only when it runs out of work (or has many waiting), so a burst of
// publications shares one fsync (group commit).
func (c *conn) routeLoop() {
	for {
		select {
		case in := <-c.inbox:
			c.route(in)
			c.b.mem.Release(in.cost) // its deliveries are charged to their sessions now
			if len(c.inbox) == 0 || len(c.pending) >= maxPending {
				c.settle()
			}
		case <-c.done:
			return
		}
	}
}

// route delivers one publication and queues its PUBACK or PUBREC behind its records.
func (c *conn) route(in inbound) {
	s, b := c.s, c.b
	if b.persisting() {
		b.store.Throttle() // the checkpointer keeps up, so that a restart replays little
	}
	ack := codec.Ack{Kind: codec.PUBACK, PacketID: in.id, Reason: in.reject}
	if in.qos == 2 {
		ack.Kind = codec.PUBREC
	}
	if in.reject != 0 {
		if in.reject == deniedSilently {
			ack.Reason = codec.Success
			if in.qos == 2 { // its PUBREL must find the exchange
				s.mu.Lock()
				s.inQoS2[in.id] = struct{}{}
				s.mu.Unlock()
			}
		}
		c.pending = append(c.pending, pendingAck{ack: ack})
		return
	}
	if in.qos == 2 {
		s.mu.Lock()
		_, dup := s.inQoS2[in.id]
		s.mu.Unlock()
		if dup { // [MQTT-4.3.3-10] deliver once; a resent PUBLISH is only acknowledged again
			if b.persisting() && s.isPersistent() {
				if b.storeDown.Load() {
					// The id may be in RAM only (record kept it when the store failed),
					// and PUBREC says it is stored: the resend waits for the store.
					c.kill(codec.UnspecifiedError)
					return
				}
				// The first copy's id is committed, perhaps not yet durable (a client
				// can resend on a new connection sooner than a sync): PUBREC waits.
				c.pendingPos = max(c.pendingPos, b.store.Committed())
			}
			c.pending = append(c.pending, pendingAck{ack: ack})
			return
		}
	}
	if in.qos == 2 && b.storeDown.Load() && b.needsStore(s, in.msg) {
		// Its records cannot be written: refused before anyone has it. Routed, its clean
		// subscribers would get it now and again with the resend, no packet id being
		// recorded to recognise it by.
		c.kill(codec.UnspecifiedError)
		return
	}
	queued, held, waits := b.offerAll(in.msg, true)
	if len(waits) > 0 {
		// Queues make room by delivering: what is routed must be released first (a QoS 2
		// publication's deliveries wait for its record to be durable), and acknowledged.
		if !c.record(in.msg, held, nil) {
			return
		}
		c.settle()
		held = nil
		for _, t := range waits {
			if b.offerWaiting(t, c) {
				queued++
				if t.d.held {
					held = append(held, t)
				}
			}
		}
	}
	if queued == 0 {
		ack.Reason = codec.NoMatchingSubscribers
	}
	if in.qos == 0 {
		ack.Kind = 0
	}
	c.record(in.msg, held, &ack)
}

// record commits the records of a routed message (its held deliveries, its retained change
// and, for QoS 2 from a persistent session, its packet id) and queues ack behind them. A QoS
// 0 or 1 publication's deliveries are released at once, before the records are durable, as
// deliveries to clean sessions always are: whatever a subscriber's session records about
// them comes later in the log, so a power cut that takes the message takes that too, and the
// publisher, not acknowledged, sends it again (QoS 1 allows the duplicate). A QoS 2
// publication's deliveries wait for settle, until the records are durable (waitsForSync): a
// subscriber that had one whose records were then lost would get it again with the resend.
// On a store failure nothing is acknowledged and the connection closes; the deliveries are
// taken back, but those of a persistent session's QoS 2 publication, which keeps its packet
// id (see settle). It reports whether the records were committed.
func (c *conn) record(m *Message, held []target, ack *codec.Ack) bool {
	s, b := c.s, c.b
	var pos wal.Pos
	qos2 := ack != nil && ack.Kind == codec.PUBREC
	if b.persisting() {
		// Pooled, not one per connection: a buffer kept by each of thousands of
		// connections would be memory outside the budget.
		batch := b.batchPool.Get().(*store.Batch)
		defer b.batchPool.Put(batch)
		batch.Reset()
		b.recordRouted(batch, m, held)
		persistent := s.isPersistent()
		if qos2 && persistent {
			batch.PutInQoS2(s.id, ack.PacketID) // [MQTT-4.3.3-10] across a restart too
		}
		if batch.Len() > 0 {
			p, err := b.commit(batch)
			if err != nil {
				b.noteRetainedUnwritten(m)
				// As settle does when the sync fails, a persistent session's QoS 2
				// publication keeps its deliveries and id: clean subscribers may have it
				// already (the store can fail while it waits for queue room), so the
				// resend must be taken for the duplicate it is. The deliveries stay,
				// unstored (position 0: never spilled), for the store's recovery to write
				// with the id, unless it has run already.
				kept := false
				if qos2 && persistent {
					kept = b.whileStoreDown(func() {
						release(held, 0)
						s.mu.Lock()
						s.inQoS2[ack.PacketID] = struct{}{}
						s.mu.Unlock()
					})
				}
				if !kept {
					unqueue(held)
				}
				c.kill(codec.UnspecifiedError)
				return false
			}
			pos = p
		}
	}
	if !waitsForSync(m) {
		release(held, pos)
	}
	if qos2 {
		s.mu.Lock()
		s.inQoS2[ack.PacketID] = struct{}{}
		s.mu.Unlock()
	}
	if pos > c.pendingPos {
		c.pendingPos = pos
	}
	p := pendingAck{held: held, msg: m}
	if ack != nil {
		p.ack = *ack
	}
	c.pending = append(c.pending, p)
	return true
}

// waitsForSync reports whether the deliveries of publication m wait for its records to be
// durable (settle) rather than only committed (record): QoS 2 ones do.
func waitsForSync(m *Message) bool { return m != nil && m.QoS == 2 }

// settle waits until the pending records are durable, then releases the deliveries of QoS 2
// publications and sends the acknowledgements, in order. If the log fails, nothing is
// acknowledged. A QoS 2 publication whose packet id is recorded (its PUBREC is pending) has
// its deliveries released all the same, and keeps the id: clean subscribers have it already,
// so its resend must be taken for the duplicate it is, and the store's recovery
// (rewriteStore) writes the sessions again with the deliveries in them. The deliveries of
// the other publications still queued are taken back before that; what a subscriber has
// received stays in flight, and the resend may come twice, as QoS 1 allows.
func (c *conn) settle() {
	if len(c.pending) == 0 {
		return
	}
	var err error
	if c.pendingPos != 0 {
		if err = c.b.store.Wait(c.pendingPos); err != nil {
			for _, p := range c.pending {
				// The first part of a publication that waited for queue room (route) has
				// no acknowledgement, and is settled alone: no id is recorded for it.
				if p.ack.Kind == codec.PUBREC && p.msg != nil {
					release(p.held, c.pendingPos)
				} else {
					unqueue(p.held)
				}
			}
			c.b.storeFailed(err)
		}
	}
	for i := range c.pending {
		p := &c.pending[i] // not a copy: send takes the ack's address, which would move a copy to the heap
		if err != nil {
			c.b.noteRetainedUnwritten(p.msg)
			c.pending[i] = pendingAck{}
			continue
		}
		if waitsForSync(p.msg) {
			release(p.held, c.pendingPos)
		}
		if p.ack.Kind != 0 {
			// The slot frees before the PUBACK goes: a send that flushes lets the client
			// send its next publication at once, which must find the slot free.
			if p.ack.Kind == codec.PUBACK || p.ack.Reason.IsFailure() {
				c.inflightIn.Add(-1)
			}
			c.send(&p.ack)
		}
		c.pending[i] = pendingAck{}
	}
	c.pending, c.pendingPos = c.pending[:0], 0
	if err != nil {
		c.kill(codec.UnspecifiedError) // nothing unstored is acknowledged: the client will resend
		return
	}
	c.flush()
}

// handleAck applies PUBACK, PUBREC, PUBREL and PUBCOMP.
func (c *conn) handleAck(a *codec.Ack) error {
	s, b := c.s, c.b
	switch a.Kind {
	case codec.PUBREL:
		s.mu.Lock()
		_, ok := s.inQoS2[a.PacketID]
		delete(s.inQoS2, a.PacketID)
		persistent := s.persistent
		s.mu.Unlock()
		comp := &codec.Ack{Kind: codec.PUBCOMP, PacketID: a.PacketID}
		if !ok {
			comp.Reason = codec.PacketIDNotFound
		} else {
			c.inflightIn.Add(-1)
			if persistent && b.persisting() {
				// Durable before PUBCOMP: else a restart could take a reused packet id for a
				// duplicate and drop a new message.
				var batch store.Batch
				batch.DeleteInQoS2(s.id, a.PacketID)
				pos, err := b.commit(&batch)
				if err != nil {
					return err
				}
				c.replyAfter(pos, *comp)
				return nil
			}
		}
		if err := c.send(comp); err != nil {
			return err
		}
		return c.flush()
	case codec.PUBREC:
		known, done, released := s.ack(a.Kind, a.PacketID, a.Reason)
		if done != nil {
			b.deleteEntries(s, []*delivery{done})
		}
		if known && a.Reason.IsFailure() {
			return nil
		}
		rel := &codec.Ack{Kind: codec.PUBREL, PacketID: a.PacketID}
		if !known {
			rel.Reason = codec.PacketIDNotFound
		}
		if released != nil && released.d.seq != 0 {
			// Durable before PUBREL [DESIGN 3.4]: after a restart the broker must resend
			// PUBREL, never the PUBLISH the client has already received.
			var batch store.Batch
			batch.ReleaseEntry(s.id, released.d.seq, released.id)
			pos, err := b.commit(&batch)
			if err != nil {
				return err
			}
			c.replyAfter(pos, *rel)
			return nil
		}
		if err := c.send(rel); err != nil {
			return err
		}
		return c.flush()
	default:
		// PUBACK or PUBCOMP; an unknown id is ignored, as the spec allows. The record goes
		// without waiting, with those of the acknowledgements read with it (readLoop): losing
		// it only means a redelivery with DUP.
		if _, done, _ := s.ack(a.Kind, a.PacketID, a.Reason); done != nil && done.seq != 0 {
			c.acked = append(c.acked, done)
		}
		return nil
	}
}

// handleDisconnect applies a client's DISCONNECT [MQTT-3.14.4-3].
func (c *conn) handleDisconnect(p *codec.Disconnect) error {
	if c.version == codec.V5 && p.Props.Present.Has(codec.PropSessionExpiry) {
		if c.expiryZero && p.Props.SessionExpiry != 0 {
			return codec.ProtocolError // [MQTT-3.14.2-2]
		}
		exp := expiryDuration(p.Props.SessionExpiry)
		if max := c.b.o().SessionExpiryMax; max > 0 && p.Props.SessionExpiry > 0 && (exp == 0 || exp > max) {
			exp = max
		}
		c.s.mu.Lock()
		c.s.persistent, c.s.expiry = p.Props.SessionExpiry > 0, exp
		c.s.mu.Unlock()
	}
	// Only a normal disconnection discards the will: 0x04 asks for it, and so does any error
	// reason [MQTT-3.14.4-3].
	c.graceful = p.Reason == codec.Success
	return errClientDisconnect
}

// deliverLoop writes the session's queue onto the wire as the in-flight window allows, after
// resending (with DUP) what was in flight when resend is set. It exits when there is nothing
// left to send, so an idle connection costs no goroutine for delivery; kickLocked starts it
// again.
func (c *conn) deliverLoop(resend bool) {
	s := c.s
	if resend {
		s.mu.Lock()
		again := s.resendLocked(c.sendWindow)
		msgs := s.bodiesLocked(again, nil)
		s.mu.Unlock()
		if !c.writeAll(again, msgs, true) {
			return
		}
	}
	batch, msgs := c.batch, c.msgs
	for {
		s.mu.Lock()
		if s.conn == c && s.unsent {
			// What the client's Receive Maximum had no room for at the resend goes first.
			if batch = s.takeUnsentLocked(c.sendWindow, batch[:0]); len(batch) > 0 {
				msgs = s.bodiesLocked(batch, msgs[:0])
				s.mu.Unlock()
				if !c.writeAll(batch, msgs, true) {
					return
				}
				continue
			}
		}
		var expired []*delivery
		var want readRequest
		if s.conn == c {
			batch, expired, want = s.takeBatchLocked(c, batch[:0], maxBatch)
		} else {
			batch = batch[:0]
		}
		if len(batch) == 0 && want.max > 0 {
			// The next deliveries are on disk: read them without the lock, so that the
			// client's acknowledgements and publishers offering to this session need not wait
			// for the disk.
			s.mu.Unlock()
			c.b.deleteEntries(s, expired)
			expired = nil
			ds, consumed, next, err := s.readQueued(want.from, want.max)
			s.mu.Lock()
			if err == nil {
				s.queue.applyRead(want, ds, consumed, next)
				s.mu.Unlock()
				continue
			}
			// Logged by readQueued: the deliveries wait on disk for the next wake-up, and
			// the loop stops as when there is nothing to send.
		}
		if len(batch) == 0 {
			c.batch, c.msgs = batch, msgs[:0] // handed to the next loop, which cannot start before the unlock
			c.delivering = false
			s.mu.Unlock()
			c.b.deleteEntries(s, expired)
			c.flush()
			return
		}
		msgs = s.bodiesLocked(batch, msgs[:0])
		s.mu.Unlock()
		c.b.deleteEntries(s, expired)
		if err := c.b.recordSent(s, batch); err != nil {
			// The ids could not be stored: send nothing. The messages stay in flight and go
			// out again, with their ids, on the next connection.
			c.stopDelivering()
			c.kill(codec.UnspecifiedError)
			return
		}
		if !c.writeAll(batch, msgs, false) {
			return
		}
	}
}

// writeAll writes the PUBLISHes (or PUBRELs) of batch, whose bodies are msgs, then lets the
// bodies read back for them go and empties both for reuse. After a failed write it marks the
// delivery loop stopped and returns false.
func (c *conn) writeAll(batch []*outbound, msgs []*Message, dup bool) bool {
	for i, o := range batch {
		if c.writeOutbound(o, msgs[i], dup) != nil {
			c.stopDelivering()
			return false
		}
		msgs[i] = nil
	}
	c.s.evictSentLocking(batch)
	clear(batch)
	return true
}

// stopDelivering marks the delivery loop stopped after a write failed.
func (c *conn) stopDelivering() {
	c.s.mu.Lock()
	c.delivering = false
	c.s.mu.Unlock()
}

// kickLocked makes sure a delivery loop runs for the connection. Session.mu must be held.
func (c *conn) kickLocked() {
	if c.delivering {
		return // it takes the new work on its next pass
	}
	select {
	case <-c.done:
		return
	default:
	}
	c.delivering = true
	go c.deliverLoop(false)
}

// outPublishes holds the Publish values outgoing messages are encoded from: encoding copies
// one out at once, and few connections send at any moment.
var outPublishes = sync.Pool{New: func() any { return new(codec.Publish) }}

// writeOutbound encodes one outgoing PUBLISH (or, for a QoS 2 message already PUBRECed, its
// PUBREL) into the write buffer.
func (c *conn) writeOutbound(o *outbound, m *Message, dup bool) error {
	if o.state == awaitPubcomp {
		return c.send(&codec.Ack{Kind: codec.PUBREL, PacketID: o.id})
	}
	if m == nil {
		c.discard(o) // its body could not be read back from the store (logged)
		return nil
	}
	if a := c.b.o().Auth; a != nil && !a.CanRead(c.info, m.Topic) {
		// Not for this client after all (an ACL narrower than its subscription): dropped as
		// if delivered.
		c.discard(o)
		return nil
	}
	p := outPublishes.Get().(*codec.Publish)
	defer func() {
		*p = codec.Publish{} // keeps nothing of the message alive in the pool
		outPublishes.Put(p)
	}()
	fresh := "" // the topic of an alias handed out for the first time
	*p = codec.Publish{Dup: dup && o.d.qos > 0, QoS: o.d.qos, Retain: o.d.retain, Topic: m.Topic,
		PacketID: o.id, Payload: m.Payload}
	if c.version == codec.V5 {
		if m.Props != nil {
			p.Props = *m.Props
		}
		p.Props.SubscriptionIDs = o.d.subIDs
		if m.expires != 0 {
			left := time.Duration(m.expires - c.b.now().UnixNano())
			p.Props.Present.Set(codec.PropMessageExpiry) // [MQTT-3.3.2-6] the time remaining
			p.Props.MessageExpiry = uint32(max(1, (left+time.Second-1)/time.Second))
		}
		fresh = c.applyAlias(p)
	}
	err := c.send(p)
	if errors.Is(err, codec.PacketTooLarge) {
		c.discard(o) // [MQTT-3.1.2-25] a packet over the client's limit is dropped as if delivered
		c.s.mu.Lock()
		c.s.countDropsLocked(1) // as any other drop
		c.s.mu.Unlock()
		return nil
	}
	if err == nil {
		c.b.stats.MessagesSent.Add(1)
		if fresh != "" { // the client knows the alias only once the packet went out
			if c.aliasOut == nil {
				c.aliasOut = make(map[string]uint16)
			}
			c.aliasOut[fresh] = p.Props.TopicAlias
		}
	}
	return err
}

// discard ends the exchange of an outgoing message that is not to be sent after all.
func (c *conn) discard(o *outbound) {
	if o.d.qos == 0 {
		return
	}
	s := c.s
	s.mu.Lock()
	mine := s.inflight[o.id] == o // else a takeover handed it (and its entry) elsewhere
	if mine {
		s.deleteInflightLocked(o)
	}
	s.kickLocked()
	s.mu.Unlock()
	if mine {
		c.b.deleteEntries(s, []*delivery{o.d})
	}
}

// applyAlias replaces a repeated topic by a topic alias when the client allows aliases: bytes
// matter on cellular links. Aliases are handed out first come, first served, and kept. For an
// alias handed out now it returns the topic, which the caller records in c.aliasOut once the
// packet is sent: a packet dropped instead (too large for the client) teaches it nothing.
func (c *conn) applyAlias(p *codec.Publish) (fresh string) {
	if c.aliasOutMax == 0 {
		return ""
	}
	if a, ok := c.aliasOut[p.Topic]; ok {
		p.Props.Present.Set(codec.PropTopicAlias)
		p.Props.TopicAlias = a
		p.Topic = ""
		return ""
	}
	if len(c.aliasOut) >= int(c.aliasOutMax) {
		return ""
	}
	p.Props.Present.Set(codec.PropTopicAlias)
	p.Props.TopicAlias = uint16(len(c.aliasOut) + 1)
	return p.Topic
}

// send encodes p into the write buffer. It returns codec.PacketTooLarge, leaving the buffer as
// it was, when p exceeds the client's Maximum Packet Size.
func (c *conn) send(p codec.Packet) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed || c.goodbye {
		return errConnClosed
	}
	if c.wbuf == nil {
		c.wbuf = getWriteBuffer()
	}
	start := len(c.wbuf)
	buf, err := p.Encode(c.wbuf, c.version)
	if err != nil {
		c.wbuf = buf[:start]
		return err
	}
	if c.maxOut > 0 && len(buf)-start > int(c.maxOut) {
		c.wbuf = buf[:start]
		return codec.PacketTooLarge
	}
	c.wbuf = buf
	c.chargeWriteBufferLocked()
	if p.Type() == codec.CONNACK {
		// Set as CONNACK enters the buffer, before its client can act on it: a DISCONNECT
		// sent from now on follows it.
		c.connacked.Store(true)
	}
	c.goodbye = p.Type() == codec.DISCONNECT
	if len(c.wbuf) >= flushThreshold {
		return c.flushLocked()
	}
	return nil
}

// chargeWriteBufferLocked keeps the memory budget's charge for the write buffer equal to its
// capacity (nothing once it went back to the pool). c.wmu is held.
func (c *conn) chargeWriteBufferLocked() {
	n := int64(cap(c.wbuf))
	if n > c.wheld {
		c.b.mem.Charge(n - c.wheld)
	} else {
		c.b.mem.Release(c.wheld - n)
	}
	c.wheld = n
}

// writeBuffers holds the write buffers of connections with nothing pending: a connection takes
// one when it has something to send and gives it back once written, so that thousands of
// clients draining their queues at once do not each keep a buffer.
var writeBuffers = sync.Pool{New: func() any { b := make([]byte, 0, flushThreshold+4096); return &b }}

func getWriteBuffer() []byte { return (*writeBuffers.Get().(*[]byte))[:0] }

// putWriteBuffer returns a buffer to the pool, unless it grew too large to keep.
func putWriteBuffer(b []byte) {
	if cap(b) <= keepBufferCap {
		writeBuffers.Put(&b)
	}
}

// flush writes out the write buffer.
func (c *conn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *conn) flushLocked() error {
	if c.wclosed {
		return errConnClosed
	}
	if len(c.wbuf) == 0 {
		return nil
	}
	c.nc.SetWriteDeadline(time.Now().Add(writeTimeout))
	_, err := c.nc.Write(c.wbuf)
	putWriteBuffer(c.wbuf)
	c.wbuf = nil
	c.chargeWriteBufferLocked()
	if err != nil {
		c.wclosed = true
		c.nc.Close()
		if c.parker != nil {
			c.parker.Stop() // its reader, if parked, is not woken by the close
		}
		return errConnClosed
	}
	return nil
}

// fail answers a protocol violation or error, telling a 5.0 client the reason code
// [MQTT-4.13.1-1]; the connection is then closed.
func (c *conn) fail(err error) {
	var rc codec.ReasonCode
	if !errors.As(err, &rc) {
		rc = codec.UnspecifiedError
		if errors.Is(err, io.ErrUnexpectedEOF) {
			rc = codec.MalformedPacket
		}
	}
	if rc == codec.UnsupportedProtocolVersion {
		// Only a CONNECT can carry it, and after the first one a CONNECT is a protocol error
		// [MQTT-3.1.0-2]; 0x84 is no DISCONNECT reason [MQTT-3.14.2-1].
		rc = codec.ProtocolError
	}
	if c.version == codec.V5 && c.s != nil {
		c.send(&codec.Disconnect{Reason: rc})
	}
	c.logClose("closing connection", err)
}

// setReadDeadline bounds the wait for the next packet by 1.5 keep-alive periods (not at all
// without keep-alive) until the connection is killed; from then on by the end of its drain,
// which a client that keeps sending must not push back.
// It returns the keep-alive deadline (zero: none).
func (c *conn) setReadDeadline() time.Time {
	var d time.Time
	if c.keepAlive > 0 {
		d = time.Now().Add(c.keepAlive)
	}
	c.applyReadDeadline(d)
	return d
}

// applyReadDeadline sets d as the read deadline, unless kill has set its own.
func (c *conn) applyReadDeadline(d time.Time) {
	if c.killed.Load() {
		return // kill set it
	}
	c.nc.SetReadDeadline(d)
	if c.killed.Load() { // kill ran meanwhile, and may have set its deadline before this one
		c.nc.SetReadDeadline(time.Now().Add(drainTimeout))
	}
}

// kill closes the connection from another goroutine (takeover, shutdown), telling a 5.0 client
// why. The reader goroutine then finishes.
func (c *conn) kill(rc codec.ReasonCode) {
	if c.killed.Swap(true) {
		return
	}
	// First, so that the reader ends the connection in time even if the writes below wait
	// on a client that does not read.
	c.nc.SetReadDeadline(time.Now().Add(drainTimeout))
	c.cancel() // a reader waiting for memory stops waiting
	if c.parker != nil {
		c.parker.Stop() // a parked reader runs again, and sees the deadline
	}
	if c.version == codec.V5 && c.connacked.Load() { // a DISCONNECT only after a CONNACK [MQTT-3.14.0-1]
		c.send(&codec.Disconnect{Reason: rc})
	}
	c.flush()
	c.closeWrite()
}

// drainClose stops sending, half-closes and keeps reading briefly, so that the client reads the
// last packet (a reason code) instead of a connection reset; then it closes.
func (c *conn) drainClose() {
	c.flush()
	c.closeWrite()
	c.nc.SetReadDeadline(time.Now().Add(drainTimeout))
	io.Copy(io.Discard, io.LimitReader(c.nc, 1<<20))
	c.nc.Close()
}

// closeWrite stops all further writes and half-closes a TCP connection.
func (c *conn) closeWrite() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wclosed {
		return
	}
	c.flushLocked()
	c.wclosed = true
	if cw, ok := c.nc.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}

// finish stops the connection's goroutines and detaches it from its session: a clean session ends, a
// persistent one starts its expiry clock, and the will is published or scheduled unless the
// client disconnected normally.
func (c *conn) finish() {
	c.doneOnce.Do(func() { close(c.done) })
	b := c.b
	b.mu.Lock()
	delete(b.conns, c)
	s := c.s
	if s == nil || c.detached {
		b.mu.Unlock()
		return
	}
	c.detached = true
	b.stats.ClientsConnected.Add(-1)
	s.mu.Lock()
	if s.conn != c {
		s.mu.Unlock()
		b.mu.Unlock()
		return
	}
	s.conn = nil
	s.disconnectedAt = b.now().UnixNano()
	shared := s.takeSharedLocked()
	var will *Message
	switch {
	case c.graceful:
		s.takeWillLocked() // normal disconnect discards the will [MQTT-3.14.4-3]
	case s.will != nil && s.persistent && s.willDelay > 0:
		// At shutdown the delayed will stays with the session, stored: Restore schedules it.
		if !b.closed {
			s.scheduleWillLocked(s.willDelay)
		}
	case s.persistent:
		// A connection the server closes, at shutdown too, sends its will [MQTT-3.1.2-8].
		will = s.takeWillLocked()
	}
	persistent := s.persistent
	if persistent && s.expiry > 0 {
		s.expiryTimer = time.AfterFunc(s.expiry, func() { b.expireSession(s) })
	}
	s.mu.Unlock()
	if !persistent {
		w := b.endSessionLocked(s)
		if !c.graceful {
			will = w
		}
	}
	b.mu.Unlock()
	b.saveSession(s)
	if will != nil {
		b.publishNow(will)
	}
	if len(shared) > 0 {
		b.redistribute(s, shared)
	}
	b.log.Debug("client disconnected", "client", c.clientID, "remote", c.remote)
}

// publishDelayedWill publishes w when the will delay of an offline session runs out, unless the
// session was resumed or ended in the meantime.
func (b *Broker) publishDelayedWill(s *Session, w *Message) {
	s.mu.Lock()
	ok := s.will == w && s.conn == nil
	if ok {
		s.setWillLocked(nil)
		s.willTimer = nil
	}
	s.mu.Unlock()
	if ok {
		b.saveSession(s)
		b.publishNow(w)
	}
}

// logClose writes one line about a connection closing.
func (c *conn) logClose(msg string, err error) {
	c.b.log.Info(msg, "client", c.clientID, "remote", c.remote, "err", err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

func randomHex(n int) string {
	buf := make([]byte, n)
	rand.Read(buf)
	return hex.EncodeToString(buf)
}

// packetName names a packet type for log lines.
func packetName(p codec.Packet) string {
	names := [...]string{"", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
		"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "AUTH"}
	if t := int(p.Type()); t < len(names) {
		return names[t]
	}
	return "unknown packet"
}
