package main

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// config holds the sizes and limits of the scenarios.
type config struct {
	FanInMsgs       int           // messages per fan-in publisher
	FanOutMsgs      int           // messages of the fan-out publisher
	BacklogSessions int           // persistent sessions in the backlog scenario
	BacklogMsgs     int           // messages published to each of them while offline
	DrainWave       int           // backlog sessions reconnecting at a time; 0 = all at once
	IdleClients     int           // connections held open to measure RSS per client
	DurableMsgs     int           // messages per publisher in durable-qos1 and clean-qos1
	DiskMsgs        int           // messages per publisher in the disk-bytes scenarios
	Window          int           // QoS 1 messages a publisher keeps in flight
	PayloadSize     int           // bytes per payload, at least payloadHeader
	Timeout         time.Duration // wall-time bound of one scenario
	Quiet           time.Duration // silence after publishing that ends a drain
	Dialers         int           // connections being set up at once
	Recovery        recoveryConfig
}

// Result is one row of the report. Counts are deliveries: a message routed to ten subscribers
// is expected ten times.
type Result struct {
	Scenario     string  `json:"scenario"`
	Round        int     `json:"round,omitempty"` // with -rounds above 1: which, from 1
	Broker       string  `json:"broker"`
	Status       string  `json:"status"` // ok, timeout (partial numbers), not run, or error
	Error        string  `json:"error,omitempty"`
	Published    uint64  `json:"published"`  // PUBLISH packets written by the publishers
	Expected     uint64  `json:"expected"`   // deliveries those should make
	Received     uint64  `json:"received"`   // unique deliveries
	Lost         uint64  `json:"lost"`       // Expected - Received
	Duplicates   uint64  `json:"duplicates"` // deliveries of a message already received
	OutOfOrder   uint64  `json:"out_of_order"`
	Malformed    uint64  `json:"malformed"`
	PubRate      float64 `json:"publish_per_s"` // Published over the publishing time
	RecvRate     float64 `json:"receive_per_s"` // Received over the time to the last delivery
	PeakRSS      uint64  `json:"peak_rss_bytes"`
	IdleRSS      uint64  `json:"idle_rss_bytes,omitempty"`
	PerClientRSS uint64  `json:"rss_per_idle_client_bytes,omitempty"`
	// Disk use of flows to persistent subscribers, from /proc/PID/io over the time from the
	// first PUBLISH to the end of the drain.
	Payload       int     `json:"payload_bytes,omitempty"`
	DiskBytes     uint64  `json:"disk_write_bytes,omitempty"` // write_bytes - cancelled_write_bytes
	DiskPerMsg    float64 `json:"disk_bytes_per_delivery,omitempty"`
	DiskLimit     uint64  `json:"disk_bytes_limit,omitempty"` // 2 x (payload + topic + 64)
	WriteCalls    uint64  `json:"write_syscalls,omitempty"`   // syscw: files and sockets
	WriteCallRate float64 `json:"write_syscalls_per_s,omitempty"`
	// The fsyncs of its log the broker itself counted over the same flow (its $SYS counter),
	// when it publishes one: ours does. Exact under --fsync=always, the default here; with
	// another policy a sync after the drain may come after the count is read.
	Fsyncs    uint64  `json:"fsyncs,omitempty"`
	FsyncRate float64 `json:"fsyncs_per_s,omitempty"`
	// Recovery: the time from the stopping signal to the broker's exit, the times from exec to
	// the first accepted TCP connection and to the first CONNACK after the restart, and the
	// sample of sessions checked afterwards (Expected, Received and the other counts are the
	// sample's; PeakRSS is the restarted broker's).
	StopSecs    float64 `json:"stop_s,omitempty"`
	ListenSecs  float64 `json:"restart_to_accept_s,omitempty"`
	RestartSecs float64 `json:"restart_to_connack_s,omitempty"`
	Sampled     int     `json:"sampled_sessions,omitempty"`
	Resumed     int     `json:"resumed_sessions,omitempty"` // of Sampled, with Session Present = 1
	Note        string  `json:"note,omitempty"`
}

// scenario is one named workload. run drives the broker p and fills the counts of r.
type scenario struct {
	Name    string
	Persist bool // turn the broker's persistence on (ours always persists)
	// Counters: the run reads the broker's $SYS counters (brokerSpec.CounterArgs).
	Counters bool
	// timeout is the scenario's wall-time bound; nil means config.Timeout.
	timeout func(config) time.Duration
	run     func(ctx context.Context, p *proc, cfg config, r *Result) error
}

// Shapes of the flow scenarios; durable ones follow the issue: 16 QoS 1 publishers to
// persistent subscribers, each subscriber taking a quarter of the publishers.
var (
	durableShape = shape{pubs: 16, subs: 4, qos: 1, persistent: true, split: true,
		msgs: func(c config) int { return c.DurableMsgs }}
	cleanShape = shape{pubs: 16, subs: 4, qos: 1, split: true, msgs: func(c config) int { return c.DurableMsgs }}
	diskShape  = shape{pubs: 16, subs: 4, qos: 1, persistent: true, split: true,
		msgs: func(c config) int { return c.DiskMsgs }}
)

// scenarios returns every scenario, in report order.
func scenarios() []scenario {
	return []scenario{
		{Name: "fan-in-qos0", run: flow(shape{pubs: 4, subs: 1, qos: 0, msgs: func(c config) int { return c.FanInMsgs }})},
		{Name: "fan-in-qos1", run: flow(shape{pubs: 4, subs: 1, qos: 1, msgs: func(c config) int { return c.FanInMsgs }})},
		{Name: "fan-out-qos0", run: flow(shape{pubs: 1, subs: 10, qos: 0, msgs: func(c config) int { return c.FanOutMsgs }})},
		{Name: "fan-out-qos1", run: flow(shape{pubs: 1, subs: 10, qos: 1, msgs: func(c config) int { return c.FanOutMsgs }})},
		{Name: "backlog", run: backlog},
		{Name: "idle", run: idle},
		{Name: "clean-qos1", run: flow(cleanShape)},
		{Name: "durable-qos1", Persist: true, Counters: true, run: flow(durableShape)},
		{Name: "disk-bytes-64", Persist: true, Counters: true, run: flow(diskShape.withPayload(64))},
		{Name: "disk-bytes-1024", Persist: true, Counters: true, run: flow(diskShape.withPayload(1024))},
		{Name: "recovery", Persist: true, timeout: func(c config) time.Duration { return c.Recovery.Timeout }, run: recovery},
	}
}

// runScenario starts a fresh broker from spec, runs sc against it within cfg.Timeout, records
// the broker's peak RSS and stops it.
func runScenario(ctx context.Context, spec brokerSpec, sc scenario, cfg config, base string) Result {
	r := Result{Scenario: sc.Name, Broker: spec.Name}
	p, err := startBroker(ctx, spec, base, sc.Persist, sc.Counters)
	if errors.Is(err, errNotRun) {
		r.Status, r.Error = "not run", err.Error()
		return r
	}
	if err != nil {
		r.Status, r.Error = "error", err.Error()
		return r
	}
	defer p.stop()
	timeout := cfg.Timeout
	if sc.timeout != nil {
		timeout = sc.timeout(cfg)
	}
	sctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	err = sc.run(sctx, p, cfg, &r)
	if dead := p.alive(); dead != nil {
		err = dead
	}
	switch {
	case err != nil && sctx.Err() != nil:
		r.Status, r.Error = "timeout", fmt.Sprintf("after %v: %v", timeout, err)
	case err != nil:
		r.Status, r.Error = "error", err.Error()
	default:
		r.Status = "ok"
	}
	if p.alive() == nil {
		time.Sleep(peakSettle)
	}
	if m, err := p.mem(); err == nil {
		r.PeakRSS = m.Peak
	}
	return r
}

// peakSettle is how long after a scenario its broker's VmHWM is read: what the scenario's last
// clients leave it (their disconnections, the sessions they take offline) counts too. With
// 2,000 clients leaving at once, that was a peak of its own, 0.2-0.3 s after they left.
const peakSettle = time.Second

// shape is the traffic of a flow scenario.
type shape struct {
	pubs, subs int
	qos        byte
	persistent bool // subscribers connect with clean session 0
	// split sends publisher i's messages to subscriber i%subs alone (pubs must be a multiple of
	// subs); otherwise every subscriber takes every publisher's messages.
	split   bool
	msgs    func(config) int // messages per publisher
	payload int              // payload size; 0 means config.PayloadSize
}

// withPayload returns s with payloads of size bytes.
func (s shape) withPayload(size int) shape {
	s.payload = size
	return s
}

// topic returns publisher i's topic.
func (s shape) topic(i int) string {
	if s.split {
		return fmt.Sprintf("bench/%d/%02d", i%s.subs, i)
	}
	return fmt.Sprintf("bench/%d", i)
}

// filter returns subscriber j's topic filter.
func (s shape) filter(j int) string {
	if s.split {
		return fmt.Sprintf("bench/%d/+", j)
	}
	return "bench/#"
}

// flow returns a scenario with the publishers and subscribers of shape s, each publisher sending
// to its own topic. Flows to persistent subscribers also measure the broker's disk writes
// and, where the scenario reads its counters, its log's fsyncs.
func flow(s shape) func(context.Context, *proc, config, *Result) error {
	return func(ctx context.Context, p *proc, cfg config, r *Result) error {
		n, size := s.msgs(cfg), cmp.Or(s.payload, cfg.PayloadSize)
		readers := make([]*subscriber, 0, s.subs)
		defer func() { collect(readers) }() // stops readers left running by an early return
		for i := range s.subs {
			c, _, err := dial(ctx, p.Addr, fmt.Sprintf("bench-sub-%d", i), !s.persistent)
			if err != nil {
				return err
			}
			if err := c.subscribe(s.filter(i), s.qos); err != nil {
				c.close()
				return err
			}
			readers = append(readers, startSubscriber(c))
		}
		var fsyncsBefore uint64
		var fsyncsKnown bool
		if s.persistent {
			var err error
			if fsyncsBefore, fsyncsKnown, err = p.fsyncs(ctx); err != nil {
				return err
			}
		}
		ioBefore, err := p.io()
		if err != nil {
			return err
		}
		start := time.Now()
		sent := make([]uint64, s.pubs)
		pubsDone := make(chan struct{})
		var pubErr error
		var pubEnd time.Time
		go func() {
			defer close(pubsDone)
			defer func() { pubEnd = time.Now() }()
			pubErr = parallel(ctx, s.pubs, s.pubs, func(i int) error {
				topic := s.topic(i)
				var err error
				sent[i], err = publish(ctx, p.Addr, uint32(i), s.qos, n, size, cfg.Window,
					func(k int) (string, uint64) { return topic, uint64(k) })
				return err
			})
		}()
		perSub := uint64(s.pubs * n)
		if s.split {
			perSub /= uint64(s.subs)
		}
		err = settle(ctx, readers, perSub, pubsDone, cfg.Quiet)
		<-pubsDone // publishers end on their own or with ctx
		ioAfter, ioErr := p.io()
		var fsyncsAfter uint64
		var fsyncErr error
		if fsyncsKnown && err == nil && ioErr == nil { // before the subscribers leave, which is not the flow's
			fsyncsAfter, _, fsyncErr = p.fsyncs(ctx)
		}
		tally, last, subErr := collect(readers)
		readers = nil
		for _, n := range sent {
			r.Published += n
		}
		r.Expected = r.Published
		if !s.split {
			r.Expected *= uint64(s.subs)
		}
		r.PubRate = rate(r.Published, start, pubEnd)
		r.count(tally, start, last)
		if s.persistent && ioErr == nil {
			// The rates are over the busy time, not the quiet wait that may end the drain.
			busy := latest(pubEnd, last).Sub(start)
			r.disk(ioAfter.Sub(ioBefore), busy, size, len(s.topic(s.pubs-1)))
			if fsyncsKnown && err == nil && fsyncErr == nil {
				r.fsyncs(fsyncsAfter-min(fsyncsAfter, fsyncsBefore), busy)
			}
		}
		return errors.Join(err, pubErr, subErr, ioErr, fsyncErr)
	}
}

// disk sets r's disk figures from the broker's I/O during a flow that lasted d and delivered
// r.Received messages of payload bytes on topics of topicLen bytes.
func (r *Result) disk(use IO, d time.Duration, payload, topicLen int) {
	r.Payload = payload
	r.DiskBytes = use.Disk()
	r.DiskLimit = 2 * uint64(payload+topicLen+64)
	r.WriteCalls = use.SysCW
	if r.Received > 0 {
		r.DiskPerMsg = float64(r.DiskBytes) / float64(r.Received)
	}
	if d > 0 {
		r.WriteCallRate = float64(use.SysCW) / d.Seconds()
	}
}

// fsyncs sets r's fsync figures from the n fsyncs the broker counted during a flow that lasted
// d (every one of them in it: the broker is idle before and after).
func (r *Result) fsyncs(n uint64, d time.Duration) {
	r.Fsyncs = n
	if d > 0 {
		r.FsyncRate = float64(n) / d.Seconds()
	}
}

// count sets r's delivery counts from the subscribers' tally, and the receive rate from the
// time between since and the last delivery.
func (r *Result) count(t Tally, since, last time.Time) {
	r.Received, r.Duplicates, r.OutOfOrder, r.Malformed = t.Unique, t.Duplicates, t.OutOfOrder, t.Malformed
	r.Lost = r.Expected - min(r.Expected, r.Received)
	r.RecvRate = rate(r.Received, since, last)
}

// rate is n per second over the time from..to, or 0 when that is not a positive span.
func rate(n uint64, from, to time.Time) float64 {
	if d := to.Sub(from).Seconds(); !from.IsZero() && !to.IsZero() && d > 0 {
		return float64(n) / d
	}
	return 0
}

// backlog subscribes cfg.BacklogSessions persistent sessions at QoS 1 to their own topics and
// disconnects them, publishes cfg.BacklogMsgs QoS 1 messages to each (interleaved, so all queues
// fill evenly), then reconnects them all and counts what they drain.
func backlog(ctx context.Context, p *proc, cfg config, r *Result) error {
	n, m := cfg.BacklogSessions, cfg.BacklogMsgs
	id := func(i int) string { return fmt.Sprintf("bench-backlog-%d", i) }
	topics := make([]string, n)
	for i := range topics {
		topics[i] = fmt.Sprintf("bench/backlog/%d", i)
	}
	err := parallel(ctx, n, cfg.Dialers, func(i int) error {
		c, _, err := dial(ctx, p.Addr, id(i), false)
		if err != nil {
			return err
		}
		if err := c.subscribe(topics[i], 1); err != nil {
			c.close()
			return err
		}
		return c.park()
	})
	if err != nil {
		return err
	}

	start := time.Now()
	r.Published, err = publish(ctx, p.Addr, 0, 1, n*m, cfg.PayloadSize, cfg.Window,
		func(k int) (string, uint64) { return topics[k%n], uint64(k / n) })
	r.Expected = r.Published
	r.PubRate = rate(r.Published, start, time.Now())
	if err != nil {
		return err
	}

	// The sessions come back all at once, or cfg.DrainWave at a time, each wave draining its
	// queues and leaving before the next.
	wave := cfg.DrainWave
	if wave <= 0 {
		wave = n
	}
	drain := time.Now()
	var tally Tally
	var last time.Time
	resumed, lo, hi := 0, uint64(m), uint64(0)
	for from := 0; from < n && err == nil; from += wave {
		var started []*subscriber
		var k int
		started, k, err = resume(ctx, cfg, p.Addr, min(wave, n-from), func(i int) string { return id(from + i) }, uint64(m))
		resumed += k
		for _, s := range started {
			lo, hi = min(lo, s.unique.Load()), max(hi, s.unique.Load())
		}
		t, l, subErr := collect(started)
		tally.Add(t)
		if l.After(last) {
			last = l
		}
		err = errors.Join(err, subErr)
	}
	r.count(tally, drain, last)
	r.Note = fmt.Sprintf("%d of %d sessions resumed, %d at a time; %d to %d of %d messages each delivered (queue limit %d)",
		resumed, n, wave, lo, hi, m, queueLimit)
	return err
}

// resume reconnects the persistent sessions id(0) to id(n-1), counts those that come back with
// Session Present, and waits until each has received want messages or the quiet period ends.
func resume(ctx context.Context, cfg config, addr string, n int, id func(int) string, want uint64) ([]*subscriber, int, error) {
	readers := make([]*subscriber, n)
	var resumed atomic.Int64
	err := parallel(ctx, n, cfg.Dialers, func(i int) error {
		c, present, err := dial(ctx, addr, id(i), false)
		if err != nil {
			return err
		}
		if present {
			resumed.Add(1)
		}
		readers[i] = startSubscriber(c)
		return nil
	})
	started := readers[:0:0]
	for _, s := range readers {
		if s != nil {
			started = append(started, s)
		}
	}
	if err == nil {
		connected := make(chan struct{})
		close(connected)
		err = settle(ctx, started, want, connected, cfg.Quiet)
	}
	return started, int(resumed.Load()), err
}

// idle measures the broker's RSS right after start, then holds cfg.IdleClients clean-session
// connections open and reports the growth of RSS per connection.
func idle(ctx context.Context, p *proc, cfg config, r *Result) error {
	before, err := p.mem()
	if err != nil {
		return err
	}
	r.IdleRSS = before.RSS
	clients := make([]*client, cfg.IdleClients)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	err = parallel(ctx, len(clients), cfg.Dialers, func(i int) error {
		var err error
		clients[i], _, err = dial(ctx, p.Addr, fmt.Sprintf("bench-idle-%d", i), true)
		return err
	})
	if err != nil {
		return err
	}
	after, err := p.mem()
	if err != nil {
		return err
	}
	r.PerClientRSS = (after.RSS - min(after.RSS, before.RSS)) / uint64(len(clients))
	r.Note = fmt.Sprintf("%d idle clients", len(clients))
	return nil
}
