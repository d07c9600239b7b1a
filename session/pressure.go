package session

import (
	"context"
	"errors"
	"maps"
	"runtime/metrics"
	"slices"
	"time"

	"edgebroker/codec"
	"edgebroker/limits"
)

// Memory pressure: the budget (Options.MemoryLimit) is compared, every pressureEvery, with the
// larger of the broker's account (Broker.mem, memory.go) and the Go heap (its objects, garbage
// not yet collected included), which also holds what the account's estimates miss. Work the
// account cannot fit is refused or waits at once, without waiting for a sample. In order, as
// memory use grows:
//   - above spillAt (spill.go) the bodies of offline sessions' queued messages are evicted to
//     disk;
//   - above pressureHigh, until the heap is back under pressureLow, QoS 1/2 publications from
//     5.0 clients are refused with 0x97 (quota exceeded), 3.x publishers are slowed by not
//     reading from their sockets, QoS 0 publications are dropped (counted), and queues are
//     read back from disk by tightReadSlots sessions at a time instead of maxReadSlots.
//     Subscribers keep draining what is in RAM, which is what relieves it.
//
// Queues are read back from disk by a bounded number of sessions at a time, pressure or not:
// each reader holds a window of bodies and, while the store is busy, a goroutine, and
// thousands of clients come back together after an outage. A session beyond the bound waits
// (starved), without a goroutine, for a slot.
//
// The Go runtime's soft limit is set 8 MiB above the budget (cmd/edgebroker), room for the
// runtime's own memory, so that the collector runs as often as it takes to keep the whole heap,
// garbage included, under the budget; heapMax keeps the largest whole heap seen, for $SYS.
const (
	pressureEvery = 5 * time.Millisecond
	pressureHigh  = 0.80
	pressureLow   = 0.65
	// maxReadSlots is how many sessions may read their queues back from disk at a time, and
	// tightReadSlots how many while the pressure lasts: each holds a slot until it goes
	// offline or its queue has nothing more on disk, and reads a batch at a time, so what the
	// reads hold in RAM stays bounded while draining goes on at full speed.
	maxReadSlots   = 64
	tightReadSlots = 16
	// starvedWakes is how many sessions starved of reading back are let read one batch per
	// spillEvery besides, so that draining never stops altogether (slot holders whose clients
	// do not acknowledge can hold every slot).
	starvedWakes = 8
	// pressureLogEvery is the least time between two warnings about memory pressure.
	pressureLogEvery = 10 * time.Second
)

// watchMemory updates b.pressure, spills offline queues, wakes starved ones and keeps the
// highest heap seen, until the broker closes.
func (b *Broker) watchMemory() {
	t := time.NewTicker(pressureEvery)
	defer t.Stop()
	samples := []metrics.Sample{{Name: heapMetric}}
	var lastSpill, lastLog time.Time
	episodes := 0 // pressure episodes since the last log line: it can come and go every few ms
	for {
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
		metrics.Read(samples)
		heap := sampleUint(samples[0])
		if heap > b.heapMax.Load() {
			b.heapMax.Store(heap)
		}
		limit := float64(b.o().MemoryLimit)
		// The whole heap, garbage included: the live heap is known only after a collection,
		// and bodies pile up between two.
		used := float64(max(heap, uint64(max(b.mem.Used(), 0))))
		switch {
		case limit <= 0:
			b.pressure.Store(false)
		case used > limit*pressureHigh && !b.pressure.Load():
			b.pressure.Store(true)
			if episodes++; time.Since(lastLog) >= pressureLogEvery {
				b.log.Warn("memory budget nearly used: refusing and slowing publishers until subscribers drain",
					"heap", heap, "accounted", b.mem.Used(), "limit", uint64(limit), "episodes", episodes)
				lastLog, episodes = time.Now(), 0
			}
		case used < limit*pressureLow && b.pressure.Load():
			b.pressure.Store(false)
			b.log.Debug("memory pressure relieved", "heap", heap, "accounted", b.mem.Used(), "limit", uint64(limit))
		}
		b.freeReadSlots()
		if time.Since(lastSpill) >= spillEvery {
			lastSpill = time.Now()
			if limit > 0 && used > limit*spillAt && b.persisting() {
				if _, waiting := b.spill(); waiting {
					b.store.CheckpointSoon()
				}
			}
			b.wakeStarved(starvedWakes)
		}
	}
}

// heapMetric is the runtime metric the budget is compared with: the bytes of heap objects,
// garbage not yet collected included.
const heapMetric = "/memory/classes/heap/objects:bytes"

// sampleUint returns a runtime metric's value, 0 if the runtime does not have it.
func sampleUint(s metrics.Sample) uint64 {
	if s.Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return s.Value.Uint64()
}

// readSlotLocked reports whether s holds one of the read slots or now takes one; if not, it
// records s as starved, and the caller's delivery loop stops until wakeStarved lets it go on.
// s.mu is held.
func (b *Broker) readSlotLocked(s *Session) bool {
	b.starvedMu.Lock()
	defer b.starvedMu.Unlock()
	if _, ok := b.readSlots[s]; ok {
		return true
	}
	if len(b.readSlots) < b.readSlotLimit() {
		b.readSlots[s] = struct{}{}
		delete(b.starved, s) // restarted by a kick before it was woken
		return true
	}
	b.starved[s] = struct{}{}
	return false
}

// readSlotLimit is how many read slots there are now.
func (b *Broker) readSlotLimit() int {
	if b.pressure.Load() {
		return tightReadSlots
	}
	return maxReadSlots
}

// freeReadSlots frees the read slots of sessions that went offline or have nothing more on
// disk, and those beyond the bound under pressure, and hands the free slots to starved
// sessions, restarting their delivery.
func (b *Broker) freeReadSlots() {
	b.starvedMu.Lock()
	holders := slices.Collect(maps.Keys(b.readSlots))
	b.starvedMu.Unlock()
	var done []*Session
	for _, s := range holders { // not under starvedMu: the lock order is s.mu, then starvedMu
		s.mu.Lock()
		if s.conn == nil || s.queue.disk.n == 0 {
			done = append(done, s)
		}
		s.mu.Unlock()
	}
	b.starvedMu.Lock()
	for _, s := range done {
		delete(b.readSlots, s)
	}
	// Pressure came: the slots beyond the tight bound are taken back. Their sessions finish
	// the read they are in and then wait, starved, like the rest.
	for s := range b.readSlots {
		if len(b.readSlots) <= b.readSlotLimit() {
			break
		}
		delete(b.readSlots, s)
	}
	var woken []*Session
	for s := range b.starved {
		if len(b.readSlots) >= b.readSlotLimit() {
			break
		}
		delete(b.starved, s)
		b.readSlots[s] = struct{}{}
		woken = append(woken, s)
	}
	b.starvedMu.Unlock()
	for _, s := range woken {
		s.mu.Lock()
		s.kickLocked()
		s.mu.Unlock()
	}
}

// wakeStarved lets up to n starved sessions read one batch back, whatever the
// pressure, and restarts their delivery.
func (b *Broker) wakeStarved(n int) {
	b.starvedMu.Lock()
	if len(b.starved) == 0 {
		b.starvedMu.Unlock()
		return
	}
	var woken []*Session
	for s := range b.starved {
		if len(woken) >= n {
			break
		}
		woken = append(woken, s)
		delete(b.starved, s)
	}
	b.starvedMu.Unlock()
	for _, s := range woken {
		s.mu.Lock()
		s.readGrant = true
		s.kickLocked()
		s.mu.Unlock()
	}
}

// mayReadBackLocked reports whether the session may read its queue head back from disk now:
// it was granted one read, or it holds a read slot; if not, it is recorded as starved. s.mu
// is held.
func (s *Session) mayReadBackLocked() bool {
	if s.readGrant {
		s.readGrant = false
		return true
	}
	return s.b.readSlotLocked(s)
}

// underPressure applies memory pressure to an arriving publication, as memoryShort says: a
// 3.x publisher waits until the pressure is relieved.
func (c *conn) underPressure(qos byte) (drop bool, reject codec.ReasonCode, err error) {
	b := c.b
	if !b.pressure.Load() {
		return false, 0, nil
	}
	return c.memoryShort(qos, func(ctx context.Context) error {
		for b.pressure.Load() {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(10 * pressureEvery):
			}
		}
		return nil
	})
}

// memoryShort answers a publication that memory cannot take now: drop tells the caller to
// forget it (QoS 0, counted), reject is the reason to refuse it with (5.0 QoS 1/2); a 3.x QoS
// 1/2 publisher waits, unread, until wait returns (err: the wait ended without room, and the
// connection must close).
func (c *conn) memoryShort(qos byte, wait func(context.Context) error) (drop bool, reject codec.ReasonCode, err error) {
	switch {
	case qos == 0:
		c.b.stats.MessagesDropped.Add(1)
		return true, 0, nil
	case c.version == codec.V5:
		return false, codec.QuotaExceeded, nil
	}
	c.giveSlot() // subscribers' acknowledgements relieve the pressure
	ctx, cancel := c.memoryWait()
	defer cancel()
	switch err := wait(ctx); {
	case errors.Is(err, limits.ErrTooLarge):
		return false, 0, errOverBudget
	case err != nil && c.ctx.Err() != nil:
		return false, 0, errConnClosed
	case err != nil:
		return false, 0, errMemoryWait
	}
	return false, 0, nil
}

// errMemoryWait closes a 3.x connection that waited a keep-alive period for memory.
var errMemoryWait = errors.New("session: waited a keep-alive period for memory")

// memoryWait bounds a 3.x publisher's wait for memory. Nothing is read from the client while it
// waits, so its keep-alive cannot be checked: after one keep-alive period (1.5 times the
// client's) the connection is closed, which also ends a client that waits on itself (its own
// subscriptions' acknowledgements are unread too). The wait also ends with the connection.
func (c *conn) memoryWait() (context.Context, context.CancelFunc) {
	if c.keepAlive > 0 {
		return context.WithTimeout(c.ctx, c.keepAlive)
	}
	return context.WithCancel(c.ctx)
}

// errOverBudget closes a 3.x connection whose QoS 1/2 publication is larger than the whole
// memory budget: no amount of waiting would make room for it, and refusing it would need a
// reason code 3.x does not have.
var errOverBudget = errors.New("session: publication larger than the memory budget")

// reserve reserves n bytes of the memory budget for an arriving publication, until the router
// has routed it. When they do not fit it answers as memoryShort says: a 3.x publisher waits for
// room.
func (c *conn) reserve(n int64, qos byte) (drop bool, reject codec.ReasonCode, err error) {
	b := c.b
	if b.mem.TryReserve(n) {
		return false, 0, nil
	}
	return c.memoryShort(qos, func(ctx context.Context) error { return b.mem.Wait(ctx, n) })
}
