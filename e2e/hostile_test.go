package e2e

import (
	"errors"
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
)

// Hostile and broken clients against the real broker. Each test runs a healthy publisher and
// subscriber beside the attack: they must keep working throughout and lose nothing.

// healthy is a well-behaved pair of 3.1.1 clients beside an attack: pub publishes name-0,
// name-1, … at QoS 1 to one topic at a steady pace, waiting for each PUBACK; sub receives them.
type healthy struct {
	name     string
	pub, sub *client3
	acked    atomic.Int64
	stop     chan struct{}
	done     chan struct{}
	once     sync.Once
	err      error // the publisher's failure; read only after done is closed
}

// healthyMax bounds how many messages a healthy publisher sends, so that no test runs unbounded.
const healthyMax = 3000

// startHealthy connects the healthy pair on b and starts publishing.
func startHealthy(t *testing.T, b *broker, name string) *healthy {
	t.Helper()
	h := &healthy{name: name, stop: make(chan struct{}), done: make(chan struct{})}
	h.sub = connect3(t, b, name+"-sub", opts3{clean: true})
	h.sub.subscribe(t, h.topic(), 1)
	h.pub = connect3(t, b, name+"-pub", opts3{clean: true})
	go h.run()
	t.Cleanup(h.halt)
	return h
}

func (h *healthy) topic() string { return "healthy/" + h.name }

func (h *healthy) run() {
	defer close(h.done)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for n := range healthyMax {
		select {
		case <-h.stop:
			return
		case <-tick.C:
		}
		tok := h.pub.Publish(h.topic(), 1, false, fmt.Sprintf("%s-%d", h.name, n))
		if !tok.WaitTimeout(waitLong) {
			h.err = fmt.Errorf("healthy publish %d not acknowledged within %v", n, waitLong)
			return
		}
		if err := tok.Error(); err != nil {
			h.err = fmt.Errorf("healthy publish %d: %w", n, err)
			return
		}
		h.acked.Store(int64(n + 1))
	}
}

// halt stops the publisher and waits for it.
func (h *healthy) halt() {
	h.once.Do(func() { close(h.stop) })
	<-h.done
}

// progress fails t unless the publisher gets three more messages acknowledged within waitLong.
func (h *healthy) progress(t *testing.T) {
	t.Helper()
	from := h.acked.Load()
	checkFor(t, waitLong, pollEvery, func() error {
		if h.failed() {
			return fmt.Errorf("healthy publisher stopped at %d", h.acked.Load())
		}
		if n := h.acked.Load(); n < from+3 {
			return fmt.Errorf("healthy publisher acknowledged %d, want %d", n, from+3)
		}
		return nil
	})
}

// failed reports whether the publisher ended early.
func (h *healthy) failed() bool {
	select {
	case <-h.done:
		return h.err != nil
	default:
		return false
	}
}

// finish stops the publisher and checks that the subscriber received every acknowledged message
// exactly once, in order.
func (h *healthy) finish(t *testing.T) {
	t.Helper()
	h.halt()
	if h.err != nil {
		t.Fatal(h.err)
	}
	n := int(h.acked.Load())
	if n == 0 {
		t.Fatal("the healthy publisher got nothing acknowledged")
	}
	equalStrings(t, "healthy subscriber", payloads(h.sub.in.waitExactly(t, n)), seq(h.name, 0, n))
}

// $SYS topics the tests read.
const (
	sysConnected = "$SYS/broker/clients/connected"
	sysDropped   = "$SYS/broker/publish/messages/dropped"
)

// sysArgs makes the broker publish $SYS often enough to poll.
var sysArgs = []string{"--sys-interval", "100ms"}

// sysWatch is a client subscribed to the $SYS counters the tests read.
type sysWatch struct{ c *client3 }

// watchSys connects a $SYS watcher to b (one more connected client).
func watchSys(t *testing.T, b *broker) *sysWatch {
	t.Helper()
	w := &sysWatch{c: connect3(t, b, "sys-watch", opts3{clean: true})}
	w.c.subscribe(t, sysConnected, 0)
	w.c.subscribe(t, sysDropped, 0)
	return w
}

// latest returns the most recent value received on topic.
func (w *sysWatch) latest(topic string) (int64, error) {
	msgs := w.c.in.all()
	for i := len(msgs) - 1; i >= 0; i-- {
		if msgs[i].topic == topic {
			return strconv.ParseInt(msgs[i].payload, 10, 64)
		}
	}
	return 0, fmt.Errorf("nothing received on %s yet", topic)
}

// waitFor polls topic until ok accepts its latest value, which it returns.
func (w *sysWatch) waitFor(t *testing.T, topic string, what string, ok func(int64) bool) int64 {
	t.Helper()
	var v int64
	checkFor(t, waitLong, pollEvery, func() error {
		var err error
		if v, err = w.latest(topic); err != nil {
			return err
		}
		if !ok(v) {
			return fmt.Errorf("%s is %d, want %s", topic, v, what)
		}
		return nil
	})
	return v
}

// waitConnected waits until $SYS reports exactly n connected clients.
func (w *sysWatch) waitConnected(t *testing.T, n int64) {
	t.Helper()
	w.waitFor(t, sysConnected, strconv.FormatInt(n, 10), func(v int64) bool { return v == n })
}

// pid is the broker process's id.
func (b *broker) pid() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.cmd == nil {
		b.t.Fatal("broker not running")
	}
	return b.cmd.Process.Pid
}

// procStatus reads a "Name: value" field of /proc/PID/status as a number (kB for memory).
func procStatus(t *testing.T, pid int, field string) int64 {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if name, rest, ok := strings.Cut(line, ":"); ok && name == field {
			v, err := strconv.ParseInt(strings.Fields(rest)[0], 10, 64)
			if err != nil {
				t.Fatalf("%s: %v", line, err)
			}
			return v
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, pid)
	return 0
}

// openFiles counts the broker process's open file descriptors: each connection holds one for as
// long as a goroutine serves it.
func openFiles(t *testing.T, pid int) int {
	t.Helper()
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(fds)
}

// logCount counts the lines of the broker's log that contain s.
func (b *broker) logCount(s string) int { return strings.Count(b.log.String(), s) }

// closedWithin reads from c until the broker closes it or d passes; it reports whether the
// broker closed it, and when. Data the broker sends first is read and discarded.
func closedWithin(c net.Conn, d time.Duration) (bool, time.Time) {
	_ = c.SetReadDeadline(time.Now().Add(d))
	buf := make([]byte, 512)
	for {
		if _, err := c.Read(buf); err != nil {
			var ne net.Error
			return !(errors.As(err, &ne) && ne.Timeout()), time.Now()
		}
	}
}

// TestHostileConnectionFlood: 300 sockets opened at once against --max-connections 50. Those
// beyond the limit are closed at once with one log line each, the broker stays up, the healthy
// clients keep working, and once the flood is gone new clients connect again.
func TestHostileConnectionFlood(t *testing.T) {
	onlyOurs(t, "--max-connections")
	t.Parallel()
	const limit, flood = 50, 300
	b := startBroker(t, brokerOptions{
		connectTimeout: time.Minute,
		extraArgs:      append([]string{"--max-connections", strconv.Itoa(limit)}, sysArgs...),
	})
	h := startHealthy(t, b, "flood")
	w := watchSys(t, b)
	w.waitConnected(t, 3)

	var wg sync.WaitGroup // the readers of the flood sockets, which end when the sockets close
	defer wg.Wait()
	conns := make([]net.Conn, 0, flood)
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for range flood {
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		conns = append(conns, c)
	}
	// The flood never sends CONNECT, and the connect timeout is longer than the test: every
	// socket the broker closes was refused. Exactly the limit less the healthy clients stay.
	var refused atomic.Int64
	for _, c := range conns {
		wg.Go(func() {
			if closed, _ := closedWithin(c, 2*waitLong); closed {
				refused.Add(1)
			}
		})
	}
	want := int64(flood - (limit - 3))
	checkFor(t, waitLong, pollEvery, func() error {
		if n := refused.Load(); n < want {
			return fmt.Errorf("%d flood sockets closed, want %d (all but the limit %d less the 3 healthy clients)", n, want, limit)
		}
		return nil
	})
	h.progress(t)
	time.Sleep(waitAbsent) // bounded wait to observe that no admitted socket is closed
	if n := refused.Load(); n != want {
		t.Fatalf("%d flood sockets closed, want %d", n, want)
	}
	refusedLine := "connection refused: --max-connections reached"
	checkFor(t, waitLong, pollEvery, func() error {
		if n := int64(b.logCount(refusedLine)); n != want {
			return fmt.Errorf("%d log lines %q, want %d", n, refusedLine, want)
		}
		return nil
	})
	if _, err := dial3(b, "while-full", opts3{clean: true}); err == nil {
		t.Fatal("a client connected while the limit was reached")
	}

	for _, c := range conns {
		c.Close()
	}
	conns = nil
	w.waitConnected(t, 3)
	for i := range limit - 3 {
		connect3(t, b, fmt.Sprintf("after-flood-%d", i), opts3{clean: true})
	}
	h.finish(t)
}

// TestHostileSilentSockets: sockets that open and never speak are closed after
// --connect-timeout, no sooner, and every one of them is.
func TestHostileSilentSockets(t *testing.T) {
	onlyOurs(t, "--connect-timeout")
	t.Parallel()
	const timeout, silent = 500 * time.Millisecond, 100
	b := startBroker(t, brokerOptions{connectTimeout: timeout, extraArgs: sysArgs})
	h := startHealthy(t, b, "silent")
	w := watchSys(t, b)

	type result struct {
		closed bool
		after  time.Duration
	}
	results := make([]result, silent)
	var wg sync.WaitGroup
	for i := range silent {
		opened := time.Now() // before the dial, so before the broker's accept
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		wg.Go(func() {
			closed, at := closedWithin(c, timeout+waitLong)
			results[i] = result{closed, at.Sub(opened)}
		})
	}
	h.progress(t)
	wg.Wait()
	for i, r := range results {
		switch {
		case !r.closed:
			t.Errorf("silent socket %d still open after %v", i, r.after)
		case r.after < timeout:
			t.Errorf("silent socket %d closed after %v, before the connect timeout %v", i, r.after, timeout)
		}
	}
	w.waitConnected(t, 3)
	h.finish(t)
}

// TestHostileSlowloris: clients sending a CONNECT one byte a second are closed by the connect
// timeout, which runs from the accept and is not extended by each byte.
func TestHostileSlowloris(t *testing.T) {
	onlyOurs(t, "--connect-timeout")
	t.Parallel()
	const timeout, slow = 2 * time.Second, 10
	b := startBroker(t, brokerOptions{connectTimeout: timeout})
	h := startHealthy(t, b, "slowloris")
	connect := connectPacket(4, "slowloris", 60, nil)

	type result struct {
		closed bool
		after  time.Duration
		sent   int
	}
	results := make([]result, slow)
	var wg sync.WaitGroup
	for i := range slow {
		opened := time.Now() // before the dial, so before the broker's accept
		c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		defer c.Close()
		wg.Go(func() {
			r := &results[i]
			for r.sent < len(connect) {
				if _, err := c.Write(connect[r.sent : r.sent+1]); err != nil {
					r.closed = true
					break
				}
				r.sent++
				// The one-second pause is a read: the broker closing the socket ends it early.
				if r.closed, _ = closedWithin(c, time.Second); r.closed {
					break
				}
			}
			r.after = time.Since(opened)
		})
	}
	h.progress(t)
	wg.Wait()
	for i, r := range results {
		switch {
		case !r.closed:
			t.Errorf("slow client %d sent its whole CONNECT (%d bytes in %v) and was not closed", i, r.sent, r.after)
		case r.after < timeout:
			t.Errorf("slow client %d closed after %v, before the connect timeout %v", i, r.after, timeout)
		case r.sent > 5:
			t.Errorf("slow client %d sent %d bytes before it was closed after %v: the timeout was extended", i, r.sent, r.after)
		}
	}
	h.finish(t)
}

// TestHostileHugePacket: a PUBLISH declaring 256 MB against --max-packet-size 1MiB closes the
// connection at once, before and after CONNECT, and no buffer of that size is filled: each
// attacker streams 8 MB of body behind the header, which a broker reading into such a buffer
// would take in, and the broker's peak resident memory does not grow by anything near that.
func TestHostileHugePacket(t *testing.T) {
	onlyOurs(t, "memory of our process")
	t.Parallel()
	b := startBroker(t, brokerOptions{maxPacketSize: "1MiB"})
	h := startHealthy(t, b, "huge")
	pid := b.pid()
	peak0 := procStatus(t, pid, "VmHWM")
	huge := []byte{
		0x30,                   // PUBLISH, QoS 0
		0xff, 0xff, 0xff, 0x7f, // remaining length 268,435,455: the largest the 4 bytes can say
		0x00, 0x01, 'h', // topic "h"
	}
	body := make([]byte, 8<<20)
	const attackers = 20
	for i := range attackers {
		c := dialRaw(t, b)
		if i%2 == 1 {
			c.connect(4, fmt.Sprintf("huge-%d", i), 60)
		}
		start := time.Now()
		c.send(huge)
		_ = c.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.Write(body) // fails once the broker has closed: that is the point
		closed, at := closedWithin(c, 5*time.Second)
		if !closed {
			t.Fatalf("attacker %d (CONNECT first: %v): connection still open after %v", i, i%2 == 1, at.Sub(start))
		}
	}
	h.progress(t)
	peak := procStatus(t, pid, "VmHWM")
	t.Logf("broker peak VmRSS %d -> %d kB", peak0, peak)
	if peak-peak0 > 64<<10 {
		t.Errorf("broker peak VmRSS grew by %d kB", peak-peak0)
	}
	h.finish(t)
}

// TestHostileRandomStreams: thousands of short connections sending random bytes, some after a
// valid CONNECT. The broker never panics or dies, and when they are gone its connection count
// and open file descriptors are back where they were (no goroutine is left serving a socket).
func TestHostileRandomStreams(t *testing.T) {
	onlyOurs(t, "$SYS counters and /proc of our process")
	t.Parallel()
	streams := 10000
	if testing.Short() {
		streams = 3000
	}
	seed := crashSeed(t)
	b := startBroker(t, brokerOptions{extraArgs: sysArgs})
	h := startHealthy(t, b, "random")
	w := watchSys(t, b)
	w.waitConnected(t, 3)
	pid := b.pid()
	fds0 := openFiles(t, pid)

	const workers = 8
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1)); i <= streams; i = int(next.Add(1)) {
				// Each stream's bytes follow from the seed and its number alone.
				if err := randomStream(b, rand.New(rand.NewPCG(seed, uint64(i))), i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	h.progress(t)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if !b.Running() {
		t.Fatal("broker died")
	}
	if strings.Contains(b.log.String(), "panic") {
		t.Fatal("broker log mentions a panic")
	}
	w.waitConnected(t, 3)
	checkFor(t, waitLong, pollEvery, func() error {
		if n := openFiles(t, pid); n > fds0+2 {
			return fmt.Errorf("broker has %d open files, %d before the streams", n, fds0)
		}
		return nil
	})
	h.finish(t)
}

// randomStream opens one connection and sends it random bytes of random length: alone, after a
// valid CONNECT, or as packets with valid fixed headers and random bodies after one. Half the
// streams are cut at once (often a reset); the other half half-close and wait for the broker
// to close its side. Dial failures are errors: the broker must keep accepting.
func randomStream(b *broker, rng *rand.Rand, i int) error {
	c, err := net.DialTimeout("tcp", b.Addr(), 5*time.Second)
	if err != nil {
		return fmt.Errorf("stream %d: %w", i, err)
	}
	defer c.Close()
	var data []byte
	kind := rng.IntN(3)
	if kind > 0 {
		data = connectPacket(byte(3+rng.IntN(3)), "rnd-"+strconv.Itoa(i), uint16(rng.IntN(120)), nil)
	}
	noise := func(n int) []byte {
		p := make([]byte, n)
		for j := range p {
			p[j] = byte(rng.Uint32())
		}
		return p
	}
	switch kind {
	case 0, 1:
		data = append(data, noise(1+rng.IntN(256))...)
	case 2:
		for range 1 + rng.IntN(4) {
			n := rng.IntN(64)
			data = append(data, byte(1+rng.IntN(15))<<4|byte(rng.IntN(16))) // any type but 0, any flags
			data = append(data, encodeLen(n)...)
			data = append(data, noise(n)...)
		}
	}
	_ = c.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, _ = c.Write(data) // the broker may close mid-write: that is fine
	if rng.IntN(2) == 0 {
		return nil
	}
	_ = c.(*net.TCPConn).CloseWrite()
	if closed, _ := closedWithin(c, waitLong); !closed {
		return fmt.Errorf("stream %d (% x): the broker did not close after our half-close within %v", i, data, waitLong)
	}
	return nil
}

// TestHostileSlowConsumer: a QoS 1 subscriber that never reads its socket. Its queue fills and,
// after --slow-consumer-timeout, the overflow policy drops for it (visible in $SYS), while the
// publisher gets every PUBACK within a bound and a healthy subscriber of the same topic receives
// everything.
func TestHostileSlowConsumer(t *testing.T) {
	onlyOurs(t, "--slow-consumer-timeout")
	t.Parallel()
	const slowTimeout = time.Second
	b := startBroker(t, brokerOptions{
		maxQueued:           100,
		maxInflight:         20,
		slowConsumerTimeout: slowTimeout,
		extraArgs:           append([]string{"--memory-limit", "256MiB"}, sysArgs...),
	})
	h := startHealthy(t, b, "beside-slow")
	w := watchSys(t, b)

	stuck := dialRaw(t, b)
	if err := stuck.Conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
		t.Fatal(err)
	}
	stuck.connect(4, "stuck", 0)
	stuck.subscribeRaw("slow/t", false)
	// From here on nothing reads stuck's socket.

	reader := connect3(t, b, "reader", opts3{clean: true})
	reader.subscribe(t, "slow/t", 1)
	pub := connect3(t, b, "slow-pub", opts3{clean: true})
	const n, size = 600, 16 << 10
	pad := strings.Repeat("x", size)
	var slowest time.Duration
	start := time.Now()
	for i := range n {
		t0 := time.Now()
		pub.publish(t, "slow/t", 1, false, fmt.Sprintf("slow-%d|%s", i, pad))
		slowest = max(slowest, time.Since(t0))
	}
	total := time.Since(start)
	t.Logf("%d PUBLISH of %d bytes acknowledged in %v, the slowest in %v", n, size, total, slowest)
	if bound := slowTimeout + 4*time.Second; slowest > bound {
		t.Errorf("a PUBACK took %v, want at most %v (the slow-consumer timeout and a margin)", slowest, bound)
	}
	got := reader.in.waitExactly(t, n)
	want := seq("slow", 0, n)
	for i, m := range got {
		if p, _, _ := strings.Cut(m.payload, "|"); p != want[i] {
			t.Fatalf("reader message %d is %q, want %q", i, p, want[i])
		}
	}
	w.waitFor(t, sysDropped, "above 0", func(v int64) bool { return v > 0 })
	h.finish(t)
}
