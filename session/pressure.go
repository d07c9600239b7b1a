package session

import (
	"time"

	"edgebroker/codec"
)

// Memory pressure: the budget (Options.MemoryLimit) is compared with what the Go heap really
// holds, sampled every pressureEvery, rather than with a hand-kept account that could drift.
// Above pressureHigh of the budget the broker protects itself until the heap is back under
// pressureLow: QoS 1/2 publications from 5.0 clients are refused with 0x97 (quota exceeded),
// 3.x publishers are slowed by not reading from their sockets, and QoS 0 publications are
// dropped (counted). Subscribers keep draining their queues, which is what relieves it.
const (
	pressureEvery = 5 * time.Millisecond
	pressureHigh  = 0.90
	pressureLow   = 0.75
)

// watchMemory updates b.pressure until the broker closes.
func (b *Broker) watchMemory() {
	t := time.NewTicker(pressureEvery)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-b.closing:
			return
		}
		limit := float64(b.o().MemoryLimit)
		if limit <= 0 {
			b.pressure.Store(false)
			continue
		}
		used := float64(heapBytes())
		switch {
		case used > limit*pressureHigh && !b.pressure.Load():
			b.pressure.Store(true)
			b.log.Warn("memory budget nearly used: refusing and slowing publishers until subscribers drain",
				"heap", uint64(used), "limit", uint64(limit))
		case used < limit*pressureLow && b.pressure.Load():
			b.pressure.Store(false)
			b.log.Info("memory pressure relieved", "heap", uint64(used), "limit", uint64(limit))
		}
	}
}

// underPressure applies memory pressure to an arriving publication: drop tells the caller to
// forget it (QoS 0), reject is the reason to refuse it with (5.0 QoS 1/2); a 3.x QoS 1/2
// publisher waits here, unread, until the pressure is relieved.
func (c *conn) underPressure(qos byte) (drop bool, reject codec.ReasonCode) {
	b := c.b
	if !b.pressure.Load() {
		return false, 0
	}
	switch {
	case qos == 0:
		b.stats.MessagesDropped.Add(1)
		return true, 0
	case c.version == codec.V5:
		return false, codec.QuotaExceeded
	}
	for b.pressure.Load() {
		select {
		case <-c.done:
			return true, 0
		case <-time.After(10 * pressureEvery):
		}
	}
	return false, 0
}
