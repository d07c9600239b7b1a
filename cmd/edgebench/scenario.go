package main

import (
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
	IdleClients     int           // connections held open to measure RSS per client
	Window          int           // QoS 1 messages a publisher keeps in flight
	PayloadSize     int           // bytes per payload, at least payloadHeader
	Timeout         time.Duration // wall-time bound of one scenario
	Quiet           time.Duration // silence after publishing that ends a drain
	Dialers         int           // connections being set up at once
}

// Result is one row of the report. Counts are deliveries: a message routed to ten subscribers
// is expected ten times.
type Result struct {
	Scenario     string  `json:"scenario"`
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
	Note         string  `json:"note,omitempty"`
}

// scenario is one named workload. run drives the broker p and fills the counts of r.
type scenario struct {
	Name string
	run  func(ctx context.Context, p *proc, cfg config, r *Result) error
}

// scenarios returns every scenario, in report order.
func scenarios() []scenario {
	return []scenario{
		{"fan-in-qos0", flow(4, 1, 0, func(c config) int { return c.FanInMsgs })},
		{"fan-in-qos1", flow(4, 1, 1, func(c config) int { return c.FanInMsgs })},
		{"fan-out-qos0", flow(1, 10, 0, func(c config) int { return c.FanOutMsgs })},
		{"fan-out-qos1", flow(1, 10, 1, func(c config) int { return c.FanOutMsgs })},
		{"backlog", backlog},
		{"idle", idle},
	}
}

// runScenario starts a fresh broker from spec, runs sc against it within cfg.Timeout, records
// the broker's peak RSS and stops it.
func runScenario(ctx context.Context, spec brokerSpec, sc scenario, cfg config, base string) Result {
	r := Result{Scenario: sc.Name, Broker: spec.Name}
	p, err := startBroker(ctx, spec, base)
	if errors.Is(err, errNotRun) {
		r.Status, r.Error = "not run", err.Error()
		return r
	}
	if err != nil {
		r.Status, r.Error = "error", err.Error()
		return r
	}
	defer p.stop()
	sctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	err = sc.run(sctx, p, cfg, &r)
	if dead := p.alive(); dead != nil {
		err = dead
	}
	switch {
	case err != nil && sctx.Err() != nil:
		r.Status, r.Error = "timeout", fmt.Sprintf("after %v: %v", cfg.Timeout, err)
	case err != nil:
		r.Status, r.Error = "error", err.Error()
	default:
		r.Status = "ok"
	}
	if m, err := p.mem(); err == nil {
		r.PeakRSS = m.Peak
	}
	return r
}

// flow returns a scenario with pubs publishers, each sending msgs(cfg) messages to its own topic
// bench/N, and subs clean-session subscribers on bench/#, all at the given QoS.
func flow(pubs, subs int, qos byte, msgs func(config) int) func(context.Context, *proc, config, *Result) error {
	return func(ctx context.Context, p *proc, cfg config, r *Result) error {
		n := msgs(cfg)
		readers := make([]*subscriber, 0, subs)
		defer func() { collect(readers) }() // stops readers left running by an early return
		for i := range subs {
			c, _, err := dial(ctx, p.Addr, fmt.Sprintf("bench-sub-%d", i), true)
			if err != nil {
				return err
			}
			if err := c.subscribe("bench/#", qos); err != nil {
				c.close()
				return err
			}
			readers = append(readers, startSubscriber(c))
		}
		start := time.Now()
		sent := make([]uint64, pubs)
		pubsDone := make(chan struct{})
		var pubErr error
		var pubEnd time.Time
		go func() {
			defer close(pubsDone)
			defer func() { pubEnd = time.Now() }()
			pubErr = parallel(ctx, pubs, pubs, func(i int) error {
				topic := fmt.Sprintf("bench/%d", i)
				var err error
				sent[i], err = publish(ctx, p.Addr, uint32(i), qos, n, cfg.PayloadSize, cfg.Window,
					func(k int) (string, uint64) { return topic, uint64(k) })
				return err
			})
		}()
		err := settle(ctx, readers, uint64(pubs*n), pubsDone, cfg.Quiet)
		<-pubsDone // publishers end on their own or with ctx
		tally, last, subErr := collect(readers)
		readers = nil
		for _, s := range sent {
			r.Published += s
		}
		r.Expected = r.Published * uint64(subs)
		r.PubRate = rate(r.Published, start, pubEnd)
		r.count(tally, start, last)
		return errors.Join(err, pubErr, subErr)
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
		return c.disconnect()
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

	drain := time.Now()
	readers := make([]*subscriber, n)
	var resumed atomic.Int64
	err = parallel(ctx, n, cfg.Dialers, func(i int) error {
		c, present, err := dial(ctx, p.Addr, id(i), false)
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
		err = settle(ctx, started, uint64(m), connected, cfg.Quiet)
	}
	lo, hi := uint64(m), uint64(0)
	for _, s := range started {
		lo, hi = min(lo, s.unique.Load()), max(hi, s.unique.Load())
	}
	tally, last, subErr := collect(started)
	r.count(tally, drain, last)
	r.Note = fmt.Sprintf("%d of %d sessions resumed; %d to %d of %d messages each delivered (queue limit 100)",
		resumed.Load(), n, lo, hi, m)
	return errors.Join(err, subErr)
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
