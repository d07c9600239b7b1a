package session

import "edgebroker/limits"

// queue is a session's queue of deliveries waiting for the in-flight window: at most
// Options.MaxQueued deliveries and Options.MaxQueuedBytes of bodies. The deliveries in RAM
// (front and ring) are charged to the memory budget (memory.go) from the moment they enter
// until they leave. It has three parts, oldest
// first:
//
//	front  deliveries read back from the store, next to be sent
//	disk   deliveries whose bodies were evicted from RAM: only a count and a sequence number
//	       here, the entries and bodies are in the store's checkpoint
//	ring   deliveries in RAM, newest last (the fixed-capacity ring)
//
// Deliveries reach the disk part only in the order they were queued, when the session is
// offline and memory is short (Broker.spill); Peek and Pop read them back a batch at a time,
// in order. Every way in and out goes through the queue, so the counts cannot drift. The
// owner (Session.mu) locks.
type queue struct {
	front []*delivery
	disk  spilled
	ring  *limits.Ring[*delivery]
	// bytes is what counts against MaxQueuedBytes: the bodies in RAM and those on disk whose
	// size is known.
	bytes int64
	// hold charges (or, negative, releases) the memory budget for deliveries entering (or
	// leaving) RAM: Session.holdLocked.
	hold func(n int64)
	// read reads up to max queued entries with seq at least from back from the store, in
	// order; consumed counts the entries it looked at (those it could not use included) and
	// next is the seq after the last of them.
	read func(from uint64, max int) (ds []*delivery, consumed int, next uint64, err error)
}

// spilled is the disk part of a queue.
type spilled struct {
	n    int    // deliveries
	from uint64 // no delivery of the part has a lower seq: where reading back starts
	// unknown counts the oldest deliveries of the part whose size is not known (recovered at
	// startup without reading their bodies): they are not in queue.bytes until read back.
	unknown int
	bytes   int64 // size of the others, included in queue.bytes
}

// readBatch is how many deliveries a queue reads back from the store at a time.
const readBatch = 32

func newQueue(capacity int) queue {
	return queue{ring: limits.NewRing[*delivery](capacity), hold: func(int64) {}}
}

// weight is what a delivery counts against the byte limit: its message's topic and payload.
func weight(d *delivery) int64 { return int64(len(d.msg.Topic) + len(d.msg.Payload)) }

// Len returns the number of queued deliveries.
func (q *queue) Len() int { return len(q.front) + q.disk.n + q.ring.Len() }

// Cap returns the capacity in deliveries.
func (q *queue) Cap() int { return q.ring.Cap() }

// Bytes returns the bytes of the queued message bodies (those recovered at startup and not yet
// read back are not counted).
func (q *queue) Bytes() int64 { return q.bytes }

// Spilled returns the number of deliveries whose bodies are on disk only, and their known size.
func (q *queue) Spilled() (int, int64) { return q.disk.n, q.disk.bytes }

// fits reports whether d fits without exceeding maxBytes (0: no byte limit). An empty queue
// takes any one message, so that a message larger than the limit is not undeliverable.
func (q *queue) fits(d *delivery, maxBytes int64) bool {
	return maxBytes == 0 || q.Len() == 0 || q.bytes+weight(d) <= maxBytes
}

// Push appends d if the queue has room.
func (q *queue) Push(d *delivery) bool {
	if q.Len() >= q.Cap() || !q.ring.Push(d) {
		return false
	}
	q.bytes += weight(d)
	q.hold(deliverySize(d))
	return true
}

// headOnDisk reports whether the oldest delivery has to be read back from the store.
func (q *queue) headOnDisk() bool { return len(q.front) == 0 && q.disk.n > 0 }

// Peek returns the oldest delivery without removing it, reading it back from the store if it
// is on disk. It reports false when the queue is empty, or the store could not be read (the
// deliveries stay on disk, for a later try).
func (q *queue) Peek() (*delivery, bool) {
	if len(q.front) == 0 && q.disk.n > 0 && !q.readBack(readBatch) {
		return nil, false
	}
	if len(q.front) > 0 {
		return q.front[0], true
	}
	return q.ring.Peek()
}

// Pop removes the oldest delivery, as Peek finds it.
func (q *queue) Pop() (*delivery, bool) {
	d, ok := q.Peek()
	if !ok {
		return nil, false
	}
	if len(q.front) > 0 {
		q.front[0] = nil
		q.front = q.front[1:]
		if len(q.front) == 0 {
			q.front = nil
		}
	} else {
		q.ring.Pop()
	}
	q.bytes -= weight(d)
	q.hold(-deliverySize(d))
	return d, true
}

// readRequest is a read of the disk part planned under the owner's lock, so that the store's
// disk I/O can run without it (see applyRead).
type readRequest struct {
	from uint64 // the disk part's first seq when planned
	max  int    // deliveries to read
}

// planRead plans reading back up to limit deliveries of the disk part.
func (q *queue) planRead(limit int) readRequest {
	return readRequest{from: q.disk.from, max: min(limit, q.disk.n)}
}

// readBack moves up to limit deliveries from the disk part to front, reading them with the
// owner's lock held. It reports whether front has something now.
func (q *queue) readBack(limit int) bool {
	r := q.planRead(limit)
	ds, consumed, next, err := q.read(r.from, r.max)
	if err != nil {
		return false
	}
	return q.take(r, ds, consumed, next)
}

// applyRead moves to front what the read r, planned when front was empty and done without the
// lock, brought back (as queue.read returns it), unless the disk part changed while the lock
// was released: something read it back, dropped or spilled it, and the deliveries are dropped
// here (the store keeps them). It reports whether front has something now.
func (q *queue) applyRead(r readRequest, ds []*delivery, consumed int, next uint64) bool {
	if len(q.front) > 0 {
		return true // read back meanwhile
	}
	return q.take(r, ds, consumed, next)
}

// take appends to front what the read r brought back, unless the disk part is no longer
// where r started. front, if not empty, holds deliveries older than the disk part: a read
// may come back short (the store bounds its bytes), and the next one goes after it. It
// reports whether front has something now.
func (q *queue) take(r readRequest, ds []*delivery, consumed int, next uint64) bool {
	if q.disk.n == 0 || q.disk.from != r.from || q.disk.n < consumed {
		return len(q.front) > 0
	}
	if consumed == 0 {
		// The store holds fewer entries than counted: nothing more to find there.
		q.bytes -= q.disk.bytes
		q.disk = spilled{}
		return len(q.front) > 0
	}
	for _, d := range ds {
		q.hold(deliverySize(d))
		if q.disk.unknown > 0 {
			q.disk.unknown--
			q.bytes += weight(d)
		} else {
			q.disk.bytes -= weight(d)
		}
	}
	q.disk.unknown = max(q.disk.unknown-(consumed-len(ds)), 0) // unusable ones are recovered ones
	q.disk.n = max(q.disk.n-consumed, 0)
	q.disk.from = next
	if q.disk.n == 0 {
		q.bytes -= q.disk.bytes // zero unless the store disagreed with the count
		q.disk = spilled{}
	}
	q.front = append(q.front, ds...)
	return len(q.front) > 0
}

// readAll reads the whole disk part back into RAM; it reports false if the store failed.
func (q *queue) readAll() bool {
	for q.disk.n > 0 {
		if !q.readBack(q.disk.n) && q.disk.n > 0 {
			return false
		}
	}
	return true
}

// spill evicts the oldest deliveries in RAM to the disk part, as long as onDisk says their
// entries and bodies are in the store's checkpoint, and returns how many it evicted. Those in
// front came from there; the ring's are evicted from its head, in order.
func (q *queue) spill(onDisk func(*delivery) bool) int {
	moved := 0
	if len(q.front) > 0 {
		q.disk.from = q.front[0].seq
		for _, d := range q.front {
			q.hold(-deliverySize(d))
			if q.disk.unknown > 0 {
				// The unknown ones stay the oldest: these join them, uncounted.
				q.disk.unknown++
				q.bytes -= weight(d)
			} else {
				q.disk.bytes += weight(d)
			}
		}
		q.disk.n += len(q.front)
		moved += len(q.front)
		clear(q.front)
		q.front = nil
	}
	for {
		d, ok := q.ring.Peek()
		if !ok || !onDisk(d) {
			return moved
		}
		q.ring.Pop()
		q.hold(-deliverySize(d))
		if q.disk.n == 0 {
			q.disk.from = d.seq
		}
		q.disk.n++
		q.disk.bytes += weight(d)
		moved++
	}
}

// Each calls fn for each delivery in RAM, oldest first, until it returns false. Deliveries on
// disk are not visited: readAll first to include them.
func (q *queue) Each(fn func(*delivery) bool) {
	for _, d := range q.front {
		if !fn(d) {
			return
		}
	}
	q.ring.Each(fn)
}

// RemoveIf removes the deliveries in RAM for which drop returns true, keeping the order of the
// rest. Deliveries on disk stay.
func (q *queue) RemoveIf(drop func(*delivery) bool) {
	remove := func(d *delivery) bool {
		if drop(d) {
			q.bytes -= weight(d)
			q.hold(-deliverySize(d))
			return true
		}
		return false
	}
	kept := q.front[:0]
	for _, d := range q.front {
		if !remove(d) {
			kept = append(kept, d)
		}
	}
	clear(q.front[len(kept):])
	q.front = kept
	q.ring.RemoveIf(remove)
}

// SetCap changes the capacity and returns the oldest deliveries that no longer fit (read back
// from the store if they were on disk; those it could not read stay until it can).
func (q *queue) SetCap(n int) []*delivery {
	var dropped []*delivery
	for q.Len() > n {
		d, ok := q.Pop()
		if !ok {
			break
		}
		dropped = append(dropped, d)
	}
	for _, d := range q.ring.SetCap(n) { // only if the store could not be read
		q.bytes -= weight(d)
		q.hold(-deliverySize(d))
		dropped = append(dropped, d)
	}
	return dropped
}

// Clear forgets every delivery, on disk too (the caller deletes the session's entries from the
// store).
func (q *queue) Clear() {
	for _, d := range q.front {
		q.hold(-deliverySize(d))
	}
	clear(q.front)
	q.front = nil
	q.disk = spilled{}
	for {
		d, ok := q.ring.Pop()
		if !ok {
			break
		}
		q.hold(-deliverySize(d))
	}
	q.bytes = 0
}
