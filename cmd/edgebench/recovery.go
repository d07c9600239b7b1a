package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// recoveryConfig sizes the recovery scenario.
type recoveryConfig struct {
	Sessions   int           // persistent sessions, each with its own topic
	Msgs       int           // QoS 1 messages queued for each while it is offline, at most queueLimit
	Payload    int           // payload size of those messages
	Publishers int           // publishers sharing the sessions between them
	Sample     int           // sessions reconnected after the restart to check what they get back
	Timeout    time.Duration // wall-time bound of the whole scenario
}

// probeEvery is the pause between attempts to connect to a starting broker.
const probeEvery = 2 * time.Millisecond

// recovery fills cfg.Recovery.Sessions offline persistent sessions with Msgs QoS 1 messages
// each, stops the broker the way its persistence is meant to survive (p.crash), starts it again
// on the same data and address, and measures the times from exec to the first accepted TCP
// connection and to the first successful CONNACK. Then a sample of the sessions reconnects and
// drains: r's counts are the sample's.
func recovery(ctx context.Context, p *proc, cfg config, r *Result) error {
	rc := cfg.Recovery
	n, m, pubs := rc.Sessions, rc.Msgs, min(rc.Publishers, rc.Sessions)
	id := func(i int) string { return fmt.Sprintf("bench-rec-%d", i) }
	topic := func(i int) string { return fmt.Sprintf("bench/r/%d", i) }
	err := parallel(ctx, n, cfg.Dialers, func(i int) error {
		c, _, err := dial(ctx, p.Addr, id(i), false)
		if err != nil {
			return err
		}
		if err := c.subscribe(topic(i), 1); err != nil {
			c.close()
			return err
		}
		return c.park()
	})
	if err != nil {
		return err
	}

	// Publisher k serves sessions k, k+pubs, k+2*pubs, ... in turn, so all queues fill evenly;
	// each session receives sequence numbers 0 to m-1 from one publisher.
	start := time.Now()
	sent := make([]uint64, pubs)
	err = parallel(ctx, pubs, pubs, func(k int) error {
		share := (n - k + pubs - 1) / pubs
		var err error
		sent[k], err = publish(ctx, p.Addr, uint32(k), 1, share*m, rc.Payload, cfg.Window,
			func(x int) (string, uint64) { return topic(k + pubs*(x%share)), uint64(x / share) })
		return err
	})
	for _, s := range sent {
		r.Published += s
	}
	r.PubRate = rate(r.Published, start, time.Now())
	if err != nil {
		return err
	}
	var peak string
	if mem, err := p.mem(); err == nil {
		peak = fmt.Sprintf("; peak RSS %s before the restart", mib(mem.Peak))
	}

	remaining := rc.Timeout
	if deadline, ok := ctx.Deadline(); ok {
		remaining = time.Until(deadline)
	}
	// Mosquitto writes its whole store on SIGTERM: let it take the time there is.
	stopped, launched, err := p.restart(p.crash, remaining)
	r.StopSecs = stopped.Seconds()
	if err != nil {
		return err
	}
	if err := p.waitReady(ctx, remaining); err != nil {
		return err
	}
	r.ListenSecs = time.Since(launched).Seconds()
	if err := probe(ctx, p); err != nil {
		return err
	}
	r.RestartSecs = time.Since(launched).Seconds()

	sample := make([]int, min(rc.Sample, n))
	for k := range sample {
		sample[k] = k * n / len(sample)
	}
	drain := time.Now()
	started, resumed, err := resume(ctx, cfg, p.Addr, len(sample), func(k int) string { return id(sample[k]) }, uint64(m))
	tally, last, subErr := collect(started)
	r.Sampled, r.Resumed = len(sample), resumed
	r.Expected = uint64(len(sample) * m)
	r.count(tally, drain, last)
	r.Note = fmt.Sprintf("%d sessions x %d queued %d-byte QoS 1 messages by %d publishers, stopped with %v; "+
		"after the restart %d of %d sampled sessions resumed with Session Present = 1 and got %d of %d messages%s",
		n, m, rc.Payload, pubs, unix.SignalName(p.crash), r.Resumed, r.Sampled, r.Received, r.Expected, peak)
	return errors.Join(err, subErr)
}

// probe connects fresh clean-session clients to p until one gets a successful CONNACK, p exits,
// or ctx ends.
func probe(ctx context.Context, p *proc) error {
	for {
		c, _, err := dial(ctx, p.Addr, "bench-rec-probe", true)
		if err == nil {
			return c.disconnect()
		}
		if dead := p.alive(); dead != nil {
			return dead
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("edgebench: no CONNACK after the restart: %w (last attempt: %w)", ctx.Err(), err)
		case <-time.After(probeEvery):
		}
	}
}
