package session

import "edgebroker/limits"

// queue is a session's queue of deliveries waiting for the in-flight window: a fixed-capacity
// ring (Options.MaxQueued) that also keeps the bytes of the message bodies it holds, for
// Options.MaxQueuedBytes. Every way out of the ring goes through it, so the count cannot drift.
// The owner (Session.mu) locks.
type queue struct {
	ring  *limits.Ring[*delivery]
	bytes int64
}

func newQueue(capacity int) queue { return queue{ring: limits.NewRing[*delivery](capacity)} }

// weight is what a delivery counts against the byte limit: its message's topic and payload.
func weight(d *delivery) int64 { return int64(len(d.msg.Topic) + len(d.msg.Payload)) }

// Len returns the number of queued deliveries.
func (q *queue) Len() int { return q.ring.Len() }

// Cap returns the capacity in deliveries.
func (q *queue) Cap() int { return q.ring.Cap() }

// Bytes returns the bytes of the queued message bodies.
func (q *queue) Bytes() int64 { return q.bytes }

// fits reports whether d fits without exceeding maxBytes (0: no byte limit). An empty queue
// takes any one message, so that a message larger than the limit is not undeliverable.
func (q *queue) fits(d *delivery, maxBytes int64) bool {
	return maxBytes == 0 || q.ring.Len() == 0 || q.bytes+weight(d) <= maxBytes
}

// Push appends d if the ring has room.
func (q *queue) Push(d *delivery) bool {
	if !q.ring.Push(d) {
		return false
	}
	q.bytes += weight(d)
	return true
}

// Pop removes the oldest delivery.
func (q *queue) Pop() (*delivery, bool) {
	d, ok := q.ring.Pop()
	if ok {
		q.bytes -= weight(d)
	}
	return d, ok
}

// Peek returns the oldest delivery without removing it.
func (q *queue) Peek() (*delivery, bool) { return q.ring.Peek() }

// Each calls fn for each delivery, oldest first, until it returns false.
func (q *queue) Each(fn func(*delivery) bool) { q.ring.Each(fn) }

// RemoveIf removes the deliveries for which drop returns true, keeping the order of the rest.
func (q *queue) RemoveIf(drop func(*delivery) bool) {
	q.ring.RemoveIf(func(d *delivery) bool {
		if drop(d) {
			q.bytes -= weight(d)
			return true
		}
		return false
	})
}

// SetCap changes the capacity and returns the oldest deliveries that no longer fit.
func (q *queue) SetCap(n int) []*delivery {
	dropped := q.ring.SetCap(n)
	for _, d := range dropped {
		q.bytes -= weight(d)
	}
	return dropped
}
