package main

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"edgebroker/codec"
)

// window is a QoS 1 publisher's set of packet identifiers: taking one is taking a slot of the
// in-flight window, and a PUBACK gives it back.
type window struct {
	ids      chan uint16
	inflight []atomic.Bool // indexed by packet identifier
	done     chan struct{} // closed when the PUBACK reader stops
	err      error         // why it stopped, valid after done is closed
}

// newWindow returns a window of size packet identifiers, 1 to size, all free.
func newWindow(size int) *window {
	w := &window{ids: make(chan uint16, size), inflight: make([]atomic.Bool, size+1), done: make(chan struct{})}
	for id := 1; id <= size; id++ {
		w.ids <- uint16(id)
	}
	return w
}

// acquire takes a free packet identifier. When none is free it first flushes the connection, so
// the broker sees the messages whose PUBACKs it waits for, then blocks.
func (w *window) acquire(ctx context.Context, c *client) (uint16, error) {
	select {
	case id := <-w.ids:
		return id, nil
	default:
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	select {
	case id := <-w.ids:
		return id, nil
	case <-w.done:
		return 0, w.err
	case <-ctx.Done():
		return 0, ctx.Err()
	}
}

// readAcks returns the identifiers of acknowledged messages to the window until the connection
// fails or the broker sends anything but a PUBACK for a message in flight.
func (w *window) readAcks(c *client) {
	defer close(w.done)
	for {
		p, err := c.read()
		if err != nil {
			w.err = err
			return
		}
		ack, ok := p.(*codec.Ack)
		if !ok || ack.Kind != codec.PUBACK || int(ack.PacketID) >= len(w.inflight) ||
			!w.inflight[ack.PacketID].CompareAndSwap(true, false) {
			w.err = fmt.Errorf("%w: publisher got %s %+v", errProtocol, describe(p), p)
			return
		}
		w.ids <- ack.PacketID
	}
}

// route names the topic and sequence number of a publisher's i-th message.
type route func(i int) (topic string, seq uint64)

// publish connects as publisher pub and sends n messages of the given QoS and payload size,
// keeping at most win QoS 1 messages unacknowledged. It returns once the broker has read every
// message (QoS 0: a PINGRESP came back after them) or acknowledged it (QoS 1), with the number
// of PUBLISH packets written.
func publish(ctx context.Context, addr string, pub uint32, qos byte, n, size, win int, r route) (uint64, error) {
	c, _, err := dial(ctx, addr, fmt.Sprintf("bench-pub-%d", pub), true)
	if err != nil {
		return 0, err
	}
	var w *window
	if qos > 0 {
		w = newWindow(win)
		go w.readAcks(c)
	}
	defer func() {
		c.close()
		if w != nil {
			<-w.done
		}
	}()
	msg := codec.Publish{QoS: qos, Payload: make([]byte, max(size, payloadHeader))}
	var sent uint64
	for i := range n {
		var seq uint64
		msg.Topic, seq = r(i)
		putPayload(msg.Payload, pub, seq)
		if w != nil {
			if msg.PacketID, err = w.acquire(ctx, c); err != nil {
				return sent, err
			}
			w.inflight[msg.PacketID].Store(true)
		}
		if err := c.send(&msg); err != nil {
			return sent, err
		}
		sent++
	}
	if w != nil { // take the whole window back: then every PUBACK is in
		for range win {
			if _, err := w.acquire(ctx, c); err != nil {
				return sent, err
			}
		}
	} else if err := c.ping(); err != nil { // the broker has read every QoS 0 message
		return sent, err
	}
	return sent, c.disconnect()
}

// subscriber reads PUBLISH packets on one connection, acknowledges QoS 1 and tracks payloads.
type subscriber struct {
	c      *client
	tr     Tracker       // owned by run until done is closed
	ack    codec.Ack     // reused for every PUBACK
	unique atomic.Uint64 // copy of tr's unique count, for the watcher
	last   atomic.Int64  // UnixNano of the latest PUBLISH, 0 before the first
	done   chan struct{}
	err    error // why run stopped, valid after done is closed
}

// startSubscriber starts reading c in a new goroutine.
func startSubscriber(c *client) *subscriber {
	s := &subscriber{c: c, ack: codec.Ack{Kind: codec.PUBACK}, done: make(chan struct{})}
	go s.run()
	return s
}

// run reads until the connection fails or is closed, flushing PUBACKs whenever it is about to
// wait for the network.
func (s *subscriber) run() {
	defer close(s.done)
	for {
		if !s.c.buffered() {
			if s.err = s.c.flush(); s.err != nil {
				return
			}
		}
		p, err := s.c.read()
		if err != nil {
			s.err = err
			return
		}
		pub, ok := p.(*codec.Publish)
		if !ok || pub.QoS > 1 {
			s.err = fmt.Errorf("%w: subscriber got %s %+v", errProtocol, describe(p), p)
			return
		}
		s.tr.Observe(pub.Payload)
		s.unique.Store(s.tr.Tally().Unique)
		s.last.Store(time.Now().UnixNano())
		if pub.QoS == 1 {
			s.ack.PacketID = pub.PacketID
			if s.err = s.c.send(&s.ack); s.err != nil {
				return
			}
		}
	}
}

// failed returns the subscriber's error if it has already stopped on its own.
func (s *subscriber) failed() error {
	select {
	case <-s.done:
		return s.err
	default:
		return nil
	}
}

// stop closes the connection and waits for run to return.
func (s *subscriber) stop() {
	s.c.close()
	<-s.done
}

// settle waits until every subscriber has want unique messages, or until publishing is over
// (pubsDone closed) and no subscriber has received anything for quiet, or every subscriber has
// stopped. It returns ctx's error if ctx ends first.
func settle(ctx context.Context, subs []*subscriber, want uint64, pubsDone <-chan struct{}, quiet time.Duration) error {
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var over time.Time // when publishing ended
	for {
		complete, stopped, last := true, true, int64(0)
		for _, s := range subs {
			complete = complete && s.unique.Load() >= want
			stopped = stopped && s.failed() != nil
			last = max(last, s.last.Load())
		}
		if complete || stopped {
			return nil
		}
		if over.IsZero() {
			select {
			case <-pubsDone:
				over = time.Now()
			default:
			}
		}
		if !over.IsZero() && time.Since(latest(over, time.Unix(0, last))) >= quiet {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// latest returns the later of a and b.
func latest(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// collect stops the subscribers and sums their tallies. It returns the first error of a
// subscriber that stopped on its own before being told to, and the time of the last delivery.
func collect(subs []*subscriber) (Tally, time.Time, error) {
	var first error
	for _, s := range subs {
		if err := s.failed(); err != nil && first == nil {
			first = err
		}
	}
	var sum Tally
	var last int64
	for _, s := range subs {
		s.stop()
		sum.Add(s.tr.Tally())
		last = max(last, s.last.Load())
	}
	if last == 0 {
		return sum, time.Time{}, first
	}
	return sum, time.Unix(0, last), first
}

// parallel calls f(0) ... f(n-1) on up to workers goroutines and returns the first error; after
// an error or the end of ctx no new call starts.
func parallel(ctx context.Context, n, workers int, f func(i int) error) error {
	var next atomic.Int64
	var mu sync.Mutex
	var first error
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				mu.Lock()
				stop := first != nil
				mu.Unlock()
				if i >= n || stop || ctx.Err() != nil {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	if first == nil {
		first = ctx.Err()
	}
	return first
}
