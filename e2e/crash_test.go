package e2e

import (
	"bufio"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
)

// The crash test kills the real broker with SIGKILL in the middle of QoS 1 and QoS 2 load, starts
// it again on the same data dir, and checks the durability contract from the clients' side:
// every message a publisher saw acknowledged (PUBACK, or PUBREC for QoS 2) reaches every
// persistent subscriber, offline or online at the kill, in each publisher's order; QoS 2 arrives
// at most once; QoS 1 comes again only where a crash explains it; nothing arrives that was never
// published.

// seedEnv names the environment variable that replays a crash run: the kill points and the
// publishers' burst sizes derive from the seed (the timing of the load still varies).
const seedEnv = "EDGEBROKER_E2E_SEED"

// crashSeed returns the seed from seedEnv, or from the clock, and logs it.
func crashSeed(t *testing.T) uint64 {
	t.Helper()
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv(seedEnv); v != "" {
		var err error
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("%s=%q: %v", seedEnv, v, err)
		}
	}
	t.Logf("seed %d (replay the kill points with %s=%d)", seed, seedEnv, seed)
	return seed
}

// MQTT control packet first bytes used here: type in the high nibble, flags in the low one.
const (
	hdrConnack    = 0x20
	hdrPuback     = 0x40
	hdrPubrec     = 0x50
	hdrPubrel     = 0x62 // PUBREL has the fixed flags 0010
	hdrPubcomp    = 0x70
	hdrSuback     = 0x90
	hdrDisconnect = 0xe0
)

// persistentConnect builds a CONNECT asking for a persistent session: for level 4 Clean Session
// 0; for level 5 a Session Expiry Interval of expiry seconds and Clean Start as cleanStart says
// (a 3.1.1 client cannot both start afresh and keep the session).
// Keep alive is 0 (off), so an idle test client is never cut.
func persistentConnect(level byte, id string, expiry uint32, cleanStart bool) []byte {
	var flags byte
	if cleanStart && level == 5 {
		flags = 0x02 // Clean Start
	}
	v := str("MQTT")          // protocol name
	v = append(v, level)      // protocol level
	v = append(v, flags)      // connect flags: no will, no user name or password
	v = append(v, 0x00, 0x00) // keep alive 0
	if level == 5 {
		v = append(v, 0x05, // properties length 5
			0x11,                               // Session Expiry Interval
			byte(expiry>>24), byte(expiry>>16), // four-byte integer, big endian
			byte(expiry>>8), byte(expiry))
	}
	v = append(v, str(id)...) // client identifier
	return append(append([]byte{0x10}, encodeLen(len(v))...), v...)
}

// publishPacket builds a PUBLISH of payload to topic at qos with packet identifier id.
func publishPacket(level, qos byte, id uint16, dup bool, topic, payload string) []byte {
	h := 0x30 | qos<<1 // PUBLISH, QoS in bits 1-2, no retain
	if dup {
		h |= 0x08 // DUP
	}
	v := str(topic)                      // topic name
	v = append(v, byte(id>>8), byte(id)) // packet identifier
	if level == 5 {                      //
		v = append(v, 0x00) // properties length 0
	}
	v = append(v, payload...) // payload, to the end of the packet
	return append(append([]byte{h}, encodeLen(len(v))...), v...)
}

// subscribePacket builds a SUBSCRIBE with packet identifier 1 for filter at maximum qos.
func subscribePacket(level byte, filter string, qos byte) []byte {
	v := []byte{0x00, 0x01} // packet identifier 1
	if level == 5 {         //
		v = append(v, 0x00) // properties length 0
	}
	v = append(v, str(filter)...) // topic filter
	v = append(v, qos)            // subscription options: maximum QoS
	return append(append([]byte{0x82}, encodeLen(len(v))...), v...)
}

// ackPacket builds a two-byte acknowledgement (PUBACK, PUBREC, PUBREL, PUBCOMP) of packet id:
// reason code and properties left out, which means Success in 5.0.
func ackPacket(header byte, id uint16) []byte {
	return []byte{header, 0x02, byte(id >> 8), byte(id)}
}

// ackFields reads the packet identifier and, in 5.0, the reason code (0 when absent) of an
// acknowledgement.
func ackFields(p packet) (id uint16, reason byte, err error) {
	if len(p.body) < 2 {
		return 0, 0, fmt.Errorf("short acknowledgement %v", p)
	}
	id = uint16(p.body[0])<<8 | uint16(p.body[1])
	if len(p.body) > 2 {
		reason = p.body[2]
	}
	return id, reason, nil
}

// inPublish is a PUBLISH received by a raw client.
type inPublish struct {
	topic, payload string
	qos            byte
	dup            bool
	id             uint16
}

// parsePublish decodes a PUBLISH of protocol level 4 or 5 without trusting it.
func parsePublish(level byte, p packet) (inPublish, error) {
	m := inPublish{qos: p.header >> 1 & 3, dup: p.header&0x08 != 0}
	b := p.body
	if len(b) < 2 {
		return m, fmt.Errorf("no topic in %v", p)
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b) < 2+n {
		return m, fmt.Errorf("topic past the end of %v", p)
	}
	m.topic, b = string(b[2:2+n]), b[2+n:]
	if m.qos > 0 {
		if len(b) < 2 {
			return m, fmt.Errorf("no packet identifier in %v", p)
		}
		m.id, b = uint16(b[0])<<8|uint16(b[1]), b[2:]
	}
	if level == 5 {
		plen, mult, i := 0, 1, 0
		for ; ; i++ {
			if i >= len(b) || i == 4 {
				return m, fmt.Errorf("malformed property length in %v", p)
			}
			plen += int(b[i]&0x7f) * mult
			mult *= 128
			if b[i]&0x80 == 0 {
				break
			}
		}
		if len(b) < i+1+plen {
			return m, fmt.Errorf("properties past the end of %v", p)
		}
		b = b[i+1+plen:]
	}
	m.payload = string(b)
	return m, nil
}

// tryRaw is dialRaw for goroutines other than the test's: it returns the error instead of
// failing the test. Its connection's send must not be used there either (it fails the test);
// such goroutines write with Write.
func tryRaw(t *testing.T, b *broker) (*rawConn, error) {
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		return nil, err
	}
	return &rawConn{t: t, Conn: c, r: bufio.NewReader(c)}, nil
}

// write writes b within 5 s. Each write sets its own deadline: a deadline left from an earlier
// write would fail every later one.
func (c *rawConn) write(b []byte) error {
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.Write(b)
	return err
}

// handshake writes the CONNECT packet connect and reads the CONNACK, returning its Session
// Present flag; a refusal is an error.
func (c *rawConn) handshake(connect []byte) (sessionPresent bool, err error) {
	if err := c.write(connect); err != nil {
		return false, err
	}
	p, err := c.read(waitLong)
	if err != nil {
		return false, fmt.Errorf("waiting for CONNACK: %w", err)
	}
	if p.header != hdrConnack || len(p.body) < 2 || p.body[1] != 0 {
		return false, fmt.Errorf("got %v, want a CONNACK accepting the connection", p)
	}
	return p.body[0]&1 == 1, nil
}

// crashPub is one publisher of the crash test. It publishes name:1, name:2, … to crash/name on a
// new clean connection in each round, numbering on, and records which numbers it sent and
// which the broker acknowledged. Its kind says how: paho3 (the 3.1.1 library, one message at a
// time), paho5 (the 5.0 library, one at a time), raw4 and raw5 (bursts of up to 8 PUBLISH
// packets written at once, acknowledgements read as they come).
type crashPub struct {
	name string
	kind string
	qos  byte
	rng  *rand.Rand // burst sizes; used only by the goroutine running the publisher

	mu       sync.Mutex
	sent     int          // the highest number handed to a connection
	acked    map[int]bool // numbers acknowledged with PUBACK or PUBREC (reason below 0x80)
	problems []string     // refusals and protocol errors
}

func newCrashPub(name, kind string, qos byte, seed uint64) *crashPub {
	return &crashPub{name: name, kind: kind, qos: qos, rng: rand.New(rand.NewPCG(seed, 1)), acked: map[int]bool{}}
}

func (p *crashPub) topic() string        { return "crash/" + p.name }
func (p *crashPub) payload(n int) string { return p.name + ":" + strconv.Itoa(n) }

// next takes the next number. It counts as sent from here on, before it is written, so that a
// subscriber can never receive a number above sent.
func (p *crashPub) next() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent++
	return p.sent
}

func (p *crashPub) ack(n int, acks *atomic.Int64) {
	p.mu.Lock()
	p.acked[n] = true
	p.mu.Unlock()
	acks.Add(1)
}

func (p *crashPub) problem(format string, args ...any) {
	p.mu.Lock()
	p.problems = append(p.problems, fmt.Sprintf(p.name+": "+format, args...))
	p.mu.Unlock()
}

// run publishes up to count messages, stopping early when the connection fails (the broker was
// killed). acks counts acknowledgements across publishers, for the kill trigger.
func (p *crashPub) run(t *testing.T, b *broker, count int, acks *atomic.Int64) {
	switch p.kind {
	case "paho3":
		p.runPaho3(b, count, acks)
	case "paho5":
		p.runPaho5(b, count, acks)
	case "raw4":
		p.runRaw(t, b, 4, count, acks)
	case "raw5":
		p.runRaw(t, b, 5, count, acks)
	}
}

func (p *crashPub) runPaho3(b *broker, count int, acks *atomic.Int64) {
	c, err := dial3(b, p.name, opts3{clean: true})
	if err != nil {
		return
	}
	defer c.Disconnect(0)
	for range count {
		n := p.next()
		tok := c.Publish(p.topic(), p.qos, false, p.payload(n))
		if !tok.WaitTimeout(waitLong) || tok.Error() != nil {
			return
		}
		p.ack(n, acks)
	}
}

func (p *crashPub) runPaho5(b *broker, count int, acks *atomic.Int64) {
	c, err := dial5(b, &paho.Connect{ClientID: p.name, CleanStart: true, KeepAlive: 30})
	if err != nil {
		return
	}
	defer c.Disconnect(&paho.Disconnect{})
	// The library's Publish does not return when the connection fails: stop waiting then.
	gone, stop := context.WithCancel(context.Background())
	defer stop()
	go func() {
		select {
		case <-c.closed:
			stop()
		case <-gone.Done():
		}
	}()
	for range count {
		n := p.next()
		ctx, cancel := context.WithTimeout(gone, waitLong)
		r, err := c.Publish(ctx, &paho.Publish{Topic: p.topic(), QoS: p.qos, Payload: []byte(p.payload(n))})
		cancel()
		if r != nil && r.ReasonCode >= 0x80 {
			p.problem("message %d refused with reason 0x%02x", n, r.ReasonCode)
			return
		}
		if err != nil {
			return
		}
		p.ack(n, acks)
	}
}

func (p *crashPub) runRaw(t *testing.T, b *broker, level byte, count int, acks *atomic.Int64) {
	c, err := tryRaw(t, b)
	if err != nil {
		return
	}
	defer c.Close()
	if _, err := c.handshake(connectPacket(level, p.name, 0, nil)); err != nil {
		return
	}
	for count > 0 {
		k := min(count, 1+p.rng.IntN(8))
		count -= k
		open := map[uint16]int{} // packet id → number, until PUBACK or PUBCOMP
		var burst []byte
		for id := uint16(1); id <= uint16(k); id++ {
			open[id] = p.next()
			burst = append(burst, publishPacket(level, p.qos, id, false, p.topic(), p.payload(open[id]))...)
		}
		if err := c.write(burst); err != nil {
			return
		}
		for len(open) > 0 {
			pk, err := c.read(waitLong)
			if err != nil {
				return
			}
			id, reason, err := ackFields(pk)
			n, ok := open[id]
			if err != nil || !ok {
				p.problem("unexpected %v (open: %v)", pk, open)
				return
			}
			switch {
			case reason >= 0x80:
				p.problem("message %d refused with %v", n, pk)
				return
			case pk.header == hdrPuback && p.qos == 1:
				p.ack(n, acks)
				delete(open, id)
			case pk.header == hdrPubrec && p.qos == 2:
				p.ack(n, acks)
				if err := c.write(ackPacket(hdrPubrel, id)); err != nil {
					return
				}
			case pk.header == hdrPubcomp && p.qos == 2:
				delete(open, id)
			default:
				p.problem("unexpected %v for QoS %d message %d", pk, p.qos, n)
				return
			}
		}
	}
	_ = c.write([]byte{hdrDisconnect, 0x00})
}

// delivery is one message as a crash subscriber's application saw it.
type delivery struct {
	topic, payload string
	qos            byte
	dup            bool
	conn           int // which of the subscriber's connections it came on, from 1
}

// crashSub is a persistent subscriber to crash/# speaking raw MQTT, so that the test sees every
// PUBLISH with its flags and controls every acknowledgement. Like a correct client it keeps its
// half of the session across connections: the QoS 2 packet identifiers it has PUBRECed and not
// yet seen released, so that a PUBLISH the broker sends again after a crash is acknowledged
// again but not delivered twice [MQTT-4.3.3-9].
type crashSub struct {
	id     string
	level  byte
	qos    byte // maximum QoS of its subscription
	online bool // connected while the broker is killed; otherwise it connects between loads

	mu       sync.Mutex
	conns    int
	pending  map[uint16]string // packet id → payload
	got      []delivery
	problems []string

	conn *rawConn
	done chan struct{} // closed when the current connection's reader has returned
}

// connect opens the subscriber's next connection and starts reading. The first connection
// creates the session and subscribes; every later one must find the session (Session Present).
func (s *crashSub) connect(t *testing.T, b *broker) {
	t.Helper()
	c := dialRaw(t, b)
	first := s.conns == 0
	sp, err := c.handshake(persistentConnect(s.level, s.id, 3600, first))
	if err != nil {
		t.Fatalf("%s: %v", s.id, err)
	}
	if sp == first {
		t.Errorf("%s: Session Present = %v on connection %d", s.id, sp, s.conns+1)
	}
	if first {
		s.pending = map[uint16]string{}
		c.send(subscribePacket(s.level, "crash/#", s.qos))
		p, err := c.read(waitLong)
		if err != nil || p.header != hdrSuback || len(p.body) < 3 || p.body[len(p.body)-1] != s.qos {
			t.Fatalf("%s: got %v %v, want a SUBACK granting QoS %d", s.id, p, err, s.qos)
		}
	}
	s.mu.Lock()
	s.conns++
	conn := s.conns
	s.mu.Unlock()
	s.conn, s.done = c, make(chan struct{})
	go s.read(c, conn, s.done)
}

// read receives on connection number conn until it fails.
func (s *crashSub) read(c *rawConn, conn int, done chan struct{}) {
	defer close(done)
	for {
		p, err := c.read(10 * time.Minute)
		if err != nil {
			return
		}
		var reply []byte
		switch p.header & 0xf0 {
		case 0x30: // PUBLISH
			m, err := parsePublish(s.level, p)
			if err != nil {
				s.problem("%v", err)
				return
			}
			s.mu.Lock()
			was, resent := s.pending[m.id]
			switch {
			case m.qos < 2 || !resent:
				s.got = append(s.got, delivery{topic: m.topic, payload: m.payload, qos: m.qos, dup: m.dup, conn: conn})
			case was != m.payload:
				// [MQTT-2.2.1-3]: an identifier is free again only after PUBCOMP.
				s.problems = append(s.problems, fmt.Sprintf("%s: packet id %d, still awaiting PUBREL for %s, reused for %s (dup=%v)",
					s.id, m.id, was, m.payload, m.dup))
			}
			if m.qos == 2 {
				s.pending[m.id] = m.payload
			}
			s.mu.Unlock()
			switch m.qos {
			case 1:
				reply = ackPacket(hdrPuback, m.id)
			case 2:
				reply = ackPacket(hdrPubrec, m.id)
			}
		case hdrPubrel & 0xf0:
			id, _, err := ackFields(p)
			if err != nil || p.header != hdrPubrel {
				s.problem("bad PUBREL %v", p)
				return
			}
			s.mu.Lock()
			delete(s.pending, id)
			s.mu.Unlock()
			reply = ackPacket(hdrPubcomp, id)
		default:
			s.problem("unexpected %v", p)
			return
		}
		if reply != nil {
			if err := c.write(reply); err != nil {
				return
			}
		}
	}
}

func (s *crashSub) problem(format string, args ...any) {
	s.mu.Lock()
	s.problems = append(s.problems, fmt.Sprintf(s.id+": "+format, args...))
	s.mu.Unlock()
}

// disconnect sends DISCONNECT and waits for the broker to close the connection.
func (s *crashSub) disconnect(t *testing.T) {
	t.Helper()
	_ = s.conn.write([]byte{hdrDisconnect, 0x00})
	s.gone(t)
}

// gone waits for the reader of the current connection to stop (after DISCONNECT or a kill), and
// fails t when the broker does not close the connection in time.
func (s *crashSub) gone(t *testing.T) {
	t.Helper()
	select {
	case <-s.done:
	case <-time.After(waitLong):
		t.Errorf("%s: connection still open %v after DISCONNECT or the kill", s.id, waitLong)
	}
	s.conn.Close()
	<-s.done
}

// missing lists up to a few acknowledged messages the subscriber has not received yet.
func (s *crashSub) missing(pubs []*crashPub) []string {
	s.mu.Lock()
	seen := map[string]bool{}
	for _, d := range s.got {
		seen[d.payload] = true
	}
	s.mu.Unlock()
	var out []string
	for _, p := range pubs {
		p.mu.Lock()
		for n := 1; n <= p.sent && len(out) < 5; n++ {
			if p.acked[n] && !seen[p.payload(n)] {
				out = append(out, p.payload(n))
			}
		}
		p.mu.Unlock()
	}
	return out
}

// waitAll waits until the subscriber has received every message acknowledged so far; it
// fails t (without stopping it, so that check can say more) when that takes too long.
func (s *crashSub) waitAll(t *testing.T, pubs []*crashPub) {
	t.Helper()
	deadline := time.Now().Add(2 * waitLong)
	for {
		m := s.missing(pubs)
		if len(m) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s has not received acknowledged messages %v after %v", s.id, m, 2*waitLong)
			return
		}
		time.Sleep(pollEvery)
	}
}

// check returns every way what the subscriber received breaks the contract, given what the
// publishers sent and had acknowledged. It returns the number of QoS 1 redeliveries too.
func (s *crashSub) check(pubs []*crashPub) (problems []string, redelivered int) {
	byName := map[string]*crashPub{}
	for _, p := range pubs {
		byName[p.name] = p
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	problems = append(problems, s.problems...)
	firstConn := map[string]int{} // payload → connection it first came on
	lastNew := map[string]int{}   // publisher → the last number received for the first time
	newConn := map[string]int{}   // publisher → connection of that receipt
	for i, d := range s.got {
		bad := func(format string, args ...any) {
			problems = append(problems, fmt.Sprintf("%s: delivery %d %+v: %s", s.id, i, d, fmt.Sprintf(format, args...)))
		}
		name, num, _ := strings.Cut(d.payload, ":")
		n, err := strconv.Atoi(num)
		p := byName[name]
		if p == nil || err != nil || d.topic != "crash/"+name || n < 1 || n > p.sent {
			bad("never published")
			continue
		}
		if want := min(p.qos, s.qos); d.qos != want {
			bad("delivered at QoS %d, want %d", d.qos, want)
		}
		if c, ok := firstConn[d.payload]; ok {
			switch {
			case d.qos == 2:
				bad("QoS 2 message delivered a second time (first on connection %d)", c)
			case c == d.conn:
				bad("delivered twice on one connection")
			case newConn[name] == d.conn:
				bad("redelivered after newer messages of %s on the same connection", name)
			default:
				redelivered++
			}
			continue
		}
		if n <= lastNew[name] {
			bad("out of order: %s:%d came before it", name, lastNew[name])
		}
		firstConn[d.payload], lastNew[name], newConn[name] = d.conn, n, d.conn
	}
	for _, p := range pubs {
		for n := 1; n <= p.sent; n++ {
			if _, ok := firstConn[p.payload(n)]; p.acked[n] && !ok {
				problems = append(problems, fmt.Sprintf("%s: acknowledged %s lost", s.id, p.payload(n)))
			}
		}
	}
	return problems, redelivered
}

// TestCrashKillUnderLoad kills the broker with SIGKILL at many points of a QoS 1 and QoS 2 load
// and restarts it on the same data dir each time; see the top of this file for what it checks.
// Its subscriptions are QoS 1, so QoS 2 is checked on the publishers' side (PUBREC means
// stored) and delivered at QoS 1; TestCrashKillQoS2Subscribers (pending) adds QoS 2 deliveries.
func TestCrashKillUnderLoad(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	killLoop(t, []*crashSub{
		{id: "on5", level: 5, qos: 1, online: true},
		{id: "on4", level: 4, qos: 1, online: true},
		{id: "off5", level: 5, qos: 1},
		{id: "off4", level: 4, qos: 1},
	})
}

// killLoop runs the crash test with the given subscribers. Publishers: the 3.1.1 and 5.0 client
// libraries (QoS 1) and raw 3.1.1 and 5.0 clients (QoS 1 and 2). Subscribers that are online
// stay connected through the kills and reconnect after each restart; the others are offline
// during the load and catch up after about every other restart (their queues build up on disk
// across kills).
func killLoop(t *testing.T, subs []*crashSub) {
	// Kill points: after a random number of acknowledgements in the round below maxAcks, or
	// after a random delay below maxDelay. The publishers publish until the kill, or perRound.
	rounds, maxAcks, maxDelay, perRound := 200, 400, 500*time.Millisecond, 1000
	if testing.Short() {
		rounds, maxAcks, maxDelay, perRound = 20, 60, 100*time.Millisecond, 200
	}
	seed := crashSeed(t)
	rng := rand.New(rand.NewPCG(seed, 0))
	// A queue limit no load here reaches: the offline sessions hold several rounds of messages,
	// and no overflow policy may drop an acknowledged message in this test.
	b := startBroker(t, brokerOptions{maxQueued: 100000})
	pubs := []*crashPub{
		newCrashPub("p3q1", "paho3", 1, seed+1),
		newCrashPub("p5q1", "paho5", 1, seed+2),
		newCrashPub("r4q1", "raw4", 1, seed+3),
		newCrashPub("r4q2", "raw4", 2, seed+4),
		newCrashPub("r5q2", "raw5", 2, seed+5),
	}
	for _, s := range subs {
		s.connect(t, b)
		if !s.online {
			s.disconnect(t)
		}
	}
	var acks atomic.Int64
	for round := range rounds {
		if t.Failed() {
			break
		}
		for _, s := range subs {
			if s.online && round > 0 {
				s.connect(t, b)
			}
		}
		afterAcks := rng.IntN(maxAcks)
		afterDelay := time.Duration(rng.Int64N(int64(maxDelay)))
		byAcks := rng.IntN(2) == 0
		var wg sync.WaitGroup
		base, began := acks.Load(), time.Now()
		for _, p := range pubs {
			wg.Go(func() { p.run(t, b, perRound, &acks) })
		}
		loaded := make(chan struct{})
		go func() { wg.Wait(); close(loaded) }()
		checkFor(t, time.Minute, time.Millisecond, func() error {
			select {
			case <-loaded:
				return nil // a kill of a quiet broker is a kill point too
			default:
			}
			if byAcks && acks.Load()-base >= int64(afterAcks) || !byAcks && time.Since(began) >= afterDelay {
				return nil
			}
			return fmt.Errorf("round %d: kill point not reached", round)
		})
		b.Kill()
		<-loaded // every publisher returns once its connection is gone
		how := fmt.Sprintf("after %d acknowledgements", afterAcks)
		if !byAcks {
			how = fmt.Sprintf("after %v", afterDelay)
		}
		t.Logf("round %d: killed %s, at %d acknowledgements in the round (%v)", round, how, acks.Load()-base, time.Since(began).Round(time.Millisecond))
		for _, s := range subs {
			if s.online {
				s.gone(t)
			}
		}
		b.Start()
		for _, s := range subs {
			if !s.online && (rng.IntN(2) == 0 || round == rounds-1) {
				s.connect(t, b)
				s.waitAll(t, pubs)
				s.disconnect(t)
			}
		}
	}
	for _, s := range subs {
		if s.online {
			s.connect(t, b)
			s.waitAll(t, pubs)
			s.disconnect(t)
		}
	}
	for _, p := range pubs {
		for _, msg := range p.problems {
			t.Error(msg)
		}
		t.Logf("%s: %d sent, %d acknowledged", p.name, p.sent, len(p.acked))
	}
	for _, s := range subs {
		problems, redelivered := s.check(pubs)
		for i, msg := range problems {
			if i == 20 {
				t.Errorf("%s: %d more problems", s.id, len(problems)-i)
				break
			}
			t.Error(msg)
		}
		t.Logf("%s: %d connections, %d deliveries, %d QoS 1 redeliveries after a crash", s.id, s.conns, len(s.got), redelivered)
	}
}

// TestCrashKillQoS2Subscribers is TestCrashKillUnderLoad with QoS 2 subscriptions, so QoS 2
// is delivered as QoS 2 across the kills and must reach each subscriber exactly once.
// The broker records an outbound QoS 2 message's packet identifier durably before sending it,
// and resends it with the same identifier and DUP after a restart: a client that still holds
// the identifier awaiting PUBREL must neither deliver it twice nor mistake another message
// for a resend of it. [MQTT-4.3.3-9], [MQTT-2.2.1-3]
func TestCrashKillQoS2Subscribers(t *testing.T) {
	onlyOurs(t, "kills the broker and needs its store")
	t.Parallel()
	killLoop(t, []*crashSub{
		{id: "on5", level: 5, qos: 2, online: true},
		{id: "on4", level: 4, qos: 2, online: true},
		{id: "off5", level: 5, qos: 2},
		{id: "off4", level: 4, qos: 2},
	})
}
