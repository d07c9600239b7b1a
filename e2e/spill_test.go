package e2e

import (
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Strict memory budgets: offline queues that spill to disk, publishers flooding a full budget,
// and the drop counter of both overflow policies.

// $SYS topics of the memory budget.
const (
	sysHeapMax      = "$SYS/broker/heap/maximum"
	sysHeapCurrent  = "$SYS/broker/heap/current"
	sysSpilled      = "$SYS/broker/memory/spilled/messages"
	sysSpilledBytes = "$SYS/broker/memory/spilled/bytes"
	sysPressure     = "$SYS/broker/memory/pressure"
	sysMemoryUsed   = "$SYS/broker/memory/used"
	sysQueued       = "$SYS/broker/store/messages/count"
)

// watchSysTopics connects a $SYS watcher with client id id subscribed to filters.
func watchSysTopics(t *testing.T, b *broker, id string, filters ...string) *sysWatch {
	t.Helper()
	w := &sysWatch{c: connect3(t, b, id, opts3{clean: true})}
	for _, f := range filters {
		w.c.subscribe(t, f, 0)
	}
	return w
}

// count returns how many values arrived on topic so far.
func (w *sysWatch) count(topic string) int {
	n := 0
	for _, m := range w.c.in.all() {
		if m.topic == topic {
			n++
		}
	}
	return n
}

// highest returns the highest value received on topic so far (0 if none).
func (w *sysWatch) highest(topic string) int64 {
	var hi int64
	for _, m := range w.c.in.all() {
		if m.topic == topic {
			if v, err := strconv.ParseInt(m.payload, 10, 64); err == nil && v > hi {
				hi = v
			}
		}
	}
	return hi
}

// fresh waits (bounded) until two more values have arrived on topic than now, so that the
// latest was computed after this call, and returns it.
func (w *sysWatch) fresh(t *testing.T, topic string) int64 {
	t.Helper()
	n := w.count(topic)
	checkFor(t, waitLong, pollEvery, func() error {
		if w.count(topic) < n+2 {
			return fmt.Errorf("no fresh value on %s", topic)
		}
		return nil
	})
	v, err := w.latest(topic)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// forEach runs fn(0) … fn(n-1) on at most workers goroutines at once. It stops handing out
// work after the tenth error and returns the errors.
func forEach(n, workers int, fn func(i int) error) []error {
	var (
		next   atomic.Int64
		mu     sync.Mutex
		errs   []error
		failed atomic.Bool
		wg     sync.WaitGroup
	)
	for range min(workers, n) {
		wg.Go(func() {
			for i := int(next.Add(1)) - 1; i < n && !failed.Load(); i = int(next.Add(1)) - 1 {
				if err := fn(i); err != nil {
					mu.Lock()
					errs = append(errs, err)
					if len(errs) >= 10 {
						failed.Store(true)
					}
					mu.Unlock()
				}
			}
		})
	}
	wg.Wait()
	return errs
}

// failOn fails t with up to ten of errs.
func failOn(t *testing.T, what string, errs []error) {
	t.Helper()
	if len(errs) > 0 {
		t.Fatalf("%s: %d errors, first ones:\n%v", what, len(errs), errors.Join(errs...))
	}
}

// bye sends DISCONNECT and waits (bounded) for the broker to close the connection; any packet
// before the close is an error.
func (c *rawConn) bye() error {
	if err := c.write([]byte{hdrDisconnect, 0x00}); err != nil {
		return err
	}
	p, err := c.read(waitLong)
	switch {
	case err == nil:
		return fmt.Errorf("got %v after DISCONNECT, want the connection closed", p)
	case !errors.Is(err, errClosed):
		return fmt.Errorf("connection still open %v after DISCONNECT: %v", waitLong, err)
	}
	return nil
}

// spillID and spillTopic name session i of the spill test and its topic.
func spillID(i int) string    { return "spill-" + strconv.Itoa(i) }
func spillTopic(i int) string { return "spill/" + strconv.Itoa(i) }

// spillPayload is message j for session i: "i|j|" padded to size bytes.
func spillPayload(i, j, size int) string {
	p := strconv.Itoa(i) + "|" + strconv.Itoa(j) + "|"
	return p + strings.Repeat("x", size-len(p))
}

// TestSpillOfflineBacklog: persistent sessions whose queues hold many times the memory budget
// while their clients are offline. With --memory-limit 16MiB the broker evicts the queued
// bodies to its store (visible in $SYS), reads them back in order when the clients return, and
// its Go heap never exceeds the budget. Full size: 2000 sessions × 100 messages of 1 KiB
// (200 MB); -short: 300 sessions (30 MB, still twice the budget).
func TestSpillOfflineBacklog(t *testing.T) {
	onlyOurs(t, "--memory-limit and the spill counters in $SYS")
	sessions, perSession := 2000, 100
	if testing.Short() {
		sessions = 300
	}
	const (
		budget      = 16 << 20
		size        = 1 << 10
		publishers  = 8
		window      = 16 // QoS 1 messages each publisher keeps in flight (--max-inflight is 20)
		concurrency = 50 // sessions connected at once while setting up and draining
		ackWait     = time.Minute
	)
	total := sessions * perSession
	b := startBroker(t, brokerOptions{
		maxQueued: perSession,
		extraArgs: []string{"--memory-limit", "16MiB", "--fsync=always", "--sys-interval=1s", "--max-queued-bytes", "1MiB"},
	})
	w := watchSysTopics(t, b, "spill-sys", "$SYS/broker/memory/#", "$SYS/broker/heap/#", sysDropped, sysQueued)

	// The sessions: each subscribes to its own topic at QoS 1 and goes offline.
	start := time.Now()
	failOn(t, "setting up the sessions", forEach(sessions, concurrency, func(i int) error {
		c, err := tryRaw(t, b)
		if err != nil {
			return err
		}
		defer c.Close()
		sp, err := c.handshake(persistentConnect(4, spillID(i), 0, false))
		if err != nil {
			return fmt.Errorf("%s: %w", spillID(i), err)
		}
		if sp {
			return fmt.Errorf("%s: Session Present = 1 on its first connection", spillID(i))
		}
		if err := c.write(subscribePacket(4, spillTopic(i), 1)); err != nil {
			return err
		}
		p, err := c.read(waitLong)
		if err != nil || p.header != hdrSuback || len(p.body) != 3 || p.body[2] != 1 {
			return fmt.Errorf("%s: got %v %v, want a SUBACK granting QoS 1", spillID(i), p, err)
		}
		return c.bye()
	}))
	t.Logf("%d persistent sessions set up in %v", sessions, time.Since(start))

	// The backlog: publisher p publishes every topic i with i%publishers == p, interleaved
	// (message 0 to each of its topics, then message 1 to each, …), so that each topic has a
	// single publisher and its order is defined.
	start = time.Now()
	failOn(t, "publishing", forEach(publishers, publishers, func(p int) error {
		c, err := tryRaw(t, b)
		if err != nil {
			return err
		}
		defer c.Close()
		if _, err := c.handshake(connectPacket(4, "spill-pub-"+strconv.Itoa(p), 0, nil)); err != nil {
			return fmt.Errorf("publisher %d: %w", p, err)
		}
		var topics []int
		for i := p; i < sessions; i += publishers {
			topics = append(topics, i)
		}
		count := len(topics) * perSession
		open := map[uint16]int{} // packet identifier → message number, until PUBACK
		sent, acked := 0, 0
		for acked < count {
			var burst []byte
			for len(open) < window && sent < count {
				id := uint16(sent%65535 + 1)
				i, j := topics[sent%len(topics)], sent/len(topics)
				open[id] = sent
				burst = append(burst, publishPacket(4, 1, id, false, spillTopic(i), spillPayload(i, j, size))...)
				sent++
			}
			if len(burst) > 0 {
				if err := c.write(burst); err != nil {
					return fmt.Errorf("publisher %d after %d acknowledged: %w", p, acked, err)
				}
			}
			pk, err := c.read(ackWait)
			if err != nil {
				return fmt.Errorf("publisher %d: no PUBACK within %v after %d acknowledged: %w", p, ackWait, acked, err)
			}
			id, _, err := ackFields(pk)
			if _, ok := open[id]; err != nil || pk.header != hdrPuback || !ok {
				return fmt.Errorf("publisher %d: got %v, want a PUBACK of one of %v", p, pk, open)
			}
			delete(open, id)
			acked++
		}
		return c.bye()
	}))
	publishTime := time.Since(start)
	t.Logf("%d QoS 1 messages of %d bytes (%d MiB) acknowledged in %v (%.0f/s)",
		total, size, total*size>>20, publishTime, float64(total)/publishTime.Seconds())

	// Offline, the backlog is many times the budget: the broker must have evicted it. Bodies in
	// RAM are at least size bytes each, so at most budget/size of them can be unspilled.
	if err := poll(time.Minute, 100*time.Millisecond, func() error {
		v, err := w.latest(sysSpilled)
		if err != nil {
			return err
		}
		if v <= 0 {
			return fmt.Errorf("%s is %d with %d messages queued for offline sessions", sysSpilled, v, total)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	minSpilled := int64(total - budget/size)
	if err := poll(time.Minute, 100*time.Millisecond, func() error {
		if v, _ := w.latest(sysSpilled); v < minSpilled {
			return fmt.Errorf("%s is %d, want at least %d (%d queued, at most %d bodies of %d bytes fit the budget)",
				sysSpilled, v, minSpilled, total, budget/size, size)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	spilled, _ := w.latest(sysSpilled)
	spilledBytes, _ := w.latest(sysSpilledBytes)
	heapNow, _ := w.latest(sysHeapCurrent)
	heapMaxOffline, _ := w.latest(sysHeapMax)
	t.Logf("offline: %d messages (%d bytes) spilled, heap %d bytes, heap maximum so far %d bytes",
		spilled, spilledBytes, heapNow, heapMaxOffline)

	// The clients return, at most concurrency at once; each must find its session and receive
	// messages 0 … perSession-1 of its topic exactly once, in order.
	start = time.Now()
	failOn(t, "draining", forEach(sessions, concurrency, func(i int) error {
		id := spillID(i)
		c, err := tryRaw(t, b)
		if err != nil {
			return err
		}
		defer c.Close()
		sp, err := c.handshake(persistentConnect(4, id, 0, false))
		if err != nil {
			return fmt.Errorf("%s: %w", id, err)
		}
		if !sp {
			return fmt.Errorf("%s: Session Present = 0 when resuming", id)
		}
		for next := 0; next < perSession; next++ {
			p, err := c.read(ackWait)
			if err != nil {
				return fmt.Errorf("%s: waiting for message %d of %d: %w", id, next, perSession, err)
			}
			if p.header&0xf0 != 0x30 {
				return fmt.Errorf("%s: got %v, want PUBLISH", id, p)
			}
			m, err := parsePublish(4, p)
			if err != nil {
				return fmt.Errorf("%s: %w", id, err)
			}
			if want := spillPayload(i, next, size); m.topic != spillTopic(i) || m.qos != 1 || m.payload != want {
				head, _, _ := strings.Cut(m.payload, "|x")
				return fmt.Errorf("%s: got topic %q QoS %d payload %q… (%d bytes), want message %d on %s at QoS 1 (lost, duplicated or out of order)",
					id, m.topic, m.qos, head, len(m.payload), next, spillTopic(i))
			}
			if err := c.write(ackPacket(hdrPuback, m.id)); err != nil {
				return err
			}
		}
		return c.bye()
	}))
	drainTime := time.Since(start)
	t.Logf("%d sessions drained in %v (%.0f messages/s)", sessions, drainTime, float64(total)/drainTime.Seconds())

	// Nothing is left queued or on disk, nothing was dropped, and the heap stayed in budget.
	if err := poll(waitLong, pollEvery, func() error {
		q, err1 := w.latest(sysQueued)
		s, err2 := w.latest(sysSpilled)
		if err := errors.Join(err1, err2); err != nil {
			return err
		}
		if q != 0 || s != 0 {
			return fmt.Errorf("after the drain %s is %d and %s is %d, want 0 and 0", sysQueued, q, sysSpilled, s)
		}
		return nil
	}); err != nil {
		t.Error(err)
	}
	heapMax := w.fresh(t, sysHeapMax)
	dropped, _ := w.latest(sysDropped)
	t.Logf("heap maximum %d bytes (%.2f MiB, budget %d); highest spilled seen %d messages, %d bytes; highest heap/current seen %d; dropped %d",
		heapMax, float64(heapMax)/(1<<20), budget, w.highest(sysSpilled), w.highest(sysSpilledBytes), w.highest(sysHeapCurrent), dropped)
	if dropped != 0 {
		t.Errorf("%s is %d, want 0", sysDropped, dropped)
	}
	if heapMax > budget {
		t.Errorf("%s is %d bytes, want at most the budget %d", sysHeapMax, heapMax, budget)
	}
	// Drained, the memory account holds the parked sessions and their subscriptions (under
	// 1 KiB each), the watcher and $SYS: a delivery left charged in each session would be more.
	used, bound := w.fresh(t, sysMemoryUsed), int64(sessions)<<10+256<<10
	t.Logf("%s %d bytes after the drain (highest seen %d)", sysMemoryUsed, used, w.highest(sysMemoryUsed))
	if used > bound {
		t.Errorf("%s is %d bytes after the drain, want at most %d", sysMemoryUsed, used, bound)
	}
}

// publish0v5 builds a 5.0 QoS 0 PUBLISH (no packet identifier).
func publish0v5(topic, payload string) []byte {
	v := str(topic)           // topic name
	v = append(v, 0x00)       // properties length 0
	v = append(v, payload...) // payload
	return append(append([]byte{0x30}, encodeLen(len(v))...), v...)
}

// TestMemoryBudgetFlood: a 5.0 publisher floods a 16 MiB budget with messages that online
// subscribers never read (their queues stay in RAM). Once the budget is nearly used, QoS 1
// publications from 5.0 are refused with 0x97 (quota exceeded), QoS 0 ones are dropped and
// counted, a 3.1.1 publisher is slowed (its PUBACK waits) rather than refused, and the broker
// stays up. When the subscribers go, the pressure lifts: the 5.0 publisher is accepted again and
// the waiting 3.1.1 publication is acknowledged.
func TestMemoryBudgetFlood(t *testing.T) {
	onlyOurs(t, "--memory-limit")
	t.Parallel()
	const (
		stuckSubs = 8
		size      = 16 << 10
		maxMsgs   = 3000 // 48 MiB: three times the budget
		quota     = 0x97
	)
	b := startBroker(t, brokerOptions{
		maxQueued:           10000,
		slowConsumerTimeout: time.Hour,
		// 8 queues of 4 MiB hold twice the budget: memory runs out before any queue is full.
		extraArgs: append([]string{"--memory-limit", "16MiB", "--max-queued-bytes", "4MiB"}, sysArgs...),
	})
	w := watchSysTopics(t, b, "flood-sys", sysPressure, sysDropped)

	// Subscribers that never read, each on its own topic so that every body is its own.
	var stuck []*rawConn
	for s := range stuckSubs {
		c := dialRaw(t, b)
		if err := c.Conn.(*net.TCPConn).SetReadBuffer(4 << 10); err != nil {
			t.Fatal(err)
		}
		c.connect(4, "flood-stuck-"+strconv.Itoa(s), 0)
		c.subscribeRaw("flood/"+strconv.Itoa(s), false)
		stuck = append(stuck, c)
	}

	pub5 := dialRaw(t, b)
	pub5.connect(5, "flood-pub5", 0)
	pad := strings.Repeat("x", size)
	id := uint16(0)
	publish5 := func(topic string) byte {
		t.Helper()
		id++
		pub5.send(publishPacket(5, 1, id, false, topic, pad))
		p, err := pub5.read(waitLong)
		if err != nil {
			t.Fatalf("no PUBACK for 5.0 publication %d within %v: %v", id, waitLong, err)
		}
		got, reason, err := ackFields(p)
		if err != nil || p.header != hdrPuback || got != id {
			t.Fatalf("got %v, want a PUBACK for packet %d", p, id)
		}
		return reason
	}
	// pressureShown reports whether $SYS shows the pressure on within a few of its intervals.
	// A refusal alone may come from a moment's garbage, which the next collection frees and
	// the pressure with it; what follows needs the pressure to last, as queued bodies make it.
	pressureShown := func() bool {
		for end := time.Now().Add(time.Second); time.Now().Before(end); time.Sleep(pollEvery) {
			if v, err := w.latest(sysPressure); err == nil && v == 1 {
				return true
			}
		}
		return false
	}
	const maxRefused = 20 // each waits up to a second for $SYS
	accepted, refused := 0, 0
	for accepted < maxMsgs {
		reason := publish5("flood/" + strconv.Itoa(accepted%stuckSubs))
		if reason == quota {
			if refused++; pressureShown() {
				break
			}
			if refused == maxRefused {
				p, err := w.latest(sysPressure)
				t.Fatalf("%d publications refused with 0x%02x, but %s never showed the pressure (last %d, %v)",
					refused, quota, sysPressure, p, err)
			}
			continue
		}
		if reason >= 0x80 {
			t.Fatalf("5.0 publication %d refused with 0x%02x, want success or 0x%02x", accepted, reason, quota)
		}
		accepted++
	}
	if accepted == maxMsgs {
		t.Fatalf("%d publications of %d bytes accepted against a 16 MiB budget, and no refusal with 0x%02x lasted (%d refused)",
			maxMsgs, size, quota, refused)
	}
	t.Logf("%d publications of %d bytes (%.1f MiB) accepted before 0x%02x (%d refusals)", accepted, size,
		float64(accepted*size)/(1<<20), quota, refused)
	if d, err := w.latest(sysDropped); err != nil || d != 0 {
		t.Fatalf("%s is %d (%v) before any QoS 0 publication, want 0", sysDropped, d, err)
	}

	// Under pressure, QoS 0 publications are dropped and counted.
	const qos0 = 10
	for n := range qos0 {
		pub5.send(publish0v5("flood/0", "q0-"+strconv.Itoa(n)))
	}
	w.waitFor(t, sysDropped, strconv.Itoa(qos0), func(v int64) bool { return v == qos0 })

	// A 3.1.1 publisher is slowed, not refused: no PUBACK while the pressure lasts.
	pub3 := dialRaw(t, b)
	pub3.connect(4, "flood-pub3", 0)
	pub3.send(publishPacket(4, 1, 1, false, "flood/0", "waits"))
	if p, err := pub3.read(2 * waitAbsent); err == nil {
		t.Fatalf("3.1.1 publisher got %v under memory pressure, want its PUBACK held back", p)
	} else if errors.Is(err, errClosed) {
		t.Fatalf("3.1.1 publisher disconnected under memory pressure: %v", err)
	}
	if !b.Running() {
		t.Fatal("broker died under memory pressure")
	}

	// The subscribers go, their queues with them: the pressure must lift. The 5.0 publisher
	// retries as a client would after 0x97; every answer is 0x97 or success.
	for _, c := range stuck {
		c.Close()
	}
	refused = 0
	checkFor(t, waitLong, 20*time.Millisecond, func() error {
		switch reason := publish5("flood/after"); {
		case reason == quota:
			refused++
			return fmt.Errorf("5.0 publications still refused with 0x%02x after %d retries", quota, refused)
		case reason >= 0x80:
			t.Fatalf("5.0 publication refused with 0x%02x, want success or 0x%02x", reason, quota)
		}
		return nil
	})
	t.Logf("5.0 publisher accepted again after %d refused retries", refused)
	p, err := pub3.read(waitLong)
	if err != nil || p.header != hdrPuback || len(p.body) != 2 || p.body[1] != 1 {
		t.Fatalf("3.1.1 publisher: got %v %v, want the PUBACK of packet 1 once the pressure lifted", p, err)
	}
	w.waitFor(t, sysPressure, "0", func(v int64) bool { return v == 0 })

	// The broker works normally again.
	sub := connect3(t, b, "flood-after-sub", opts3{clean: true})
	sub.subscribe(t, "flood/check", 1)
	after := connect3(t, b, "flood-after-pub", opts3{clean: true})
	after.publishSeq(t, "flood/check", 1, "ok", 5)
	equalStrings(t, "after the pressure", payloads(sub.in.waitExactly(t, 5)), seq("ok", 0, 5))
	if !b.Running() {
		t.Fatal("broker died")
	}
}

// TestOverflowDropCount: messages published to an offline session with a full queue are
// dropped by its overflow policy, and $SYS/broker/publish/messages/dropped counts each lost
// message exactly once: for drop-new the refused newcomers, for drop-oldest every evicted
// message (a large newcomer can evict several under --max-queued-bytes).
func TestOverflowDropCount(t *testing.T) {
	onlyOurs(t, "drop-oldest and exact drop counts")
	t.Parallel()
	const topic = "ovf/t" // 5 bytes: with a 507-byte payload a message weighs 512
	small := func(n int) string {
		p := "m-" + strconv.Itoa(n) + "|"
		return p + strings.Repeat("x", 507-len(p))
	}
	big := "big|" + strings.Repeat("x", 2048-len(topic)-4) // weighs 2048
	for _, tc := range []struct {
		name      string
		opts      brokerOptions
		publish   []string
		dropped   int64
		delivered []string // payloads up to the "|"
	}{
		{"drop-new/messages", brokerOptions{maxQueued: 100, overflow: "drop-new"},
			seqPayloads(small, 0, 150), 50, seq("m", 0, 100)},
		{"drop-oldest/messages", brokerOptions{maxQueued: 100, overflow: "drop-oldest"},
			seqPayloads(small, 0, 150), 50, seq("m", 50, 150)},
		// 8 messages of 512 bytes fill 4 KiB; the 2 KiB newcomer is dropped, or evicts four.
		{"drop-new/bytes", brokerOptions{overflow: "drop-new", extraArgs: []string{"--max-queued-bytes", "4KiB"}},
			append(seqPayloads(small, 0, 8), big), 1, seq("m", 0, 8)},
		{"drop-oldest/bytes", brokerOptions{overflow: "drop-oldest", extraArgs: []string{"--max-queued-bytes", "4KiB"}},
			append(seqPayloads(small, 0, 8), big), 4, append(seq("m", 4, 8), "big")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.extraArgs = append(tc.opts.extraArgs, sysArgs...)
			b := startBroker(t, tc.opts)
			w := watchSysTopics(t, b, "ovf-sys", sysDropped)
			sub := connect3(t, b, "ovf", opts3{})
			sub.subscribe(t, topic, 1)
			sub.disconnect()

			pub := connect3(t, b, "ovf-pub", opts3{clean: true})
			for _, p := range tc.publish {
				pub.publish(t, topic, 1, false, p)
			}
			w.waitFor(t, sysDropped, strconv.FormatInt(tc.dropped, 10), func(v int64) bool { return v == tc.dropped })

			again := connect3(t, b, "ovf", opts3{})
			var got []string
			for _, m := range again.in.waitExactly(t, len(tc.delivered)) {
				head, _, _ := strings.Cut(m.payload, "|")
				got = append(got, head)
			}
			equalStrings(t, "delivered after overflow", got, tc.delivered)
			// Delivering the rest drops nothing more.
			if v := w.fresh(t, sysDropped); v != tc.dropped {
				t.Fatalf("%s is %d after the delivery, want still %d", sysDropped, v, tc.dropped)
			}
		})
	}
}

// seqPayloads returns f(from) … f(to-1).
func seqPayloads(f func(int) string, from, to int) []string {
	var out []string
	for i := from; i < to; i++ {
		out = append(out, f(i))
	}
	return out
}
