package session

import (
	"slices"
	"time"

	"edgebroker/session/store"
	"edgebroker/wal"
)

// Spilling (DESIGN.md section 4). When the heap passes spillAt of the memory budget, the bodies
// of offline sessions' queued messages leave RAM: they are in the store already, so a queue
// keeps only a count of them (queue.disk) and reads them back, in order and a batch at a time,
// when its client reconnects. Only deliveries whose records a checkpoint has applied are
// evicted (the store reads entries back from its checkpoint), so the broker asks for
// checkpoints while it spills. Deliveries of shared subscriptions stay in RAM: they move to
// another member of their group when the session goes offline.

const (
	// spillAt is the share of the memory budget (live heap) above which offline queues are
	// evicted: early, so that bodies arriving between two evictions never reach the budget.
	spillAt = 0.25
	// spillEvery is how often, above spillAt, the broker asks for a checkpoint and evicts.
	spillEvery = 50 * time.Millisecond
)

// spill evicts what can be evicted of every offline persistent session's queue. It returns the
// number of deliveries it evicted, and whether some queue kept a delivery only because no
// checkpoint holds it yet: then a checkpoint lets the next spill evict it. Without one, asking
// for checkpoints would only cost disk reads (a lean store drops checkpoint.db from the page
// cache after each).
func (b *Broker) spill() (evicted int, waiting bool) {
	ckpt := b.store.CheckpointPos()
	evictable := func(d *delivery) bool { return d.seq != 0 && !d.held && d.shared == nil }
	onDisk := func(d *delivery) bool { return evictable(d) && d.pos != 0 && d.pos <= ckpt }
	for _, s := range b.sessionList() {
		s.mu.Lock()
		if s.persistent && s.conn == nil && !s.ended {
			evicted += s.queue.spill(onDisk)
			if d, ok := s.queue.ring.Peek(); ok && evictable(d) {
				waiting = true
			}
		}
		s.mu.Unlock()
	}
	return evicted, waiting
}

// readQueued reads deliveries of the session's queue back from the store: queue.read. An entry
// whose body is missing (damage) is logged, deleted and skipped. It needs no lock (the
// delivery loop calls it without s.mu, queue.readBack with it).
func (s *Session) readQueued(from uint64, max int) (ds []*delivery, consumed int, next uint64, err error) {
	b := s.b
	ckpt := b.store.CheckpointPos()
	es, err := b.store.ReadQueued(s.id, from, max)
	if err != nil {
		b.log.Error("cannot read a queue back from the store; its messages wait there", "client", s.id, "err", err)
		return nil, 0, 0, err
	}
	var lost store.Batch
	for i := range es {
		e := &es[i]
		next = e.Seq + 1
		if e.Msg == nil {
			b.log.Warn("queued message without its body in the store: dropped", "client", s.id, "seq", e.Seq)
			lost.DeleteEntry(s.id, e.Seq)
			continue
		}
		ds = append(ds, b.deliveryFromEntry(e, messageFromRecord(e.Msg), ckpt))
	}
	if lost.Len() > 0 {
		b.commit(&lost)
	}
	return ds, len(es), next, nil
}

// deliveryFromEntry rebuilds a delivery from its store entry; pos is where the store has it.
func (b *Broker) deliveryFromEntry(e *store.Entry, m *Message, pos wal.Pos) *delivery {
	d := &delivery{msg: m, qos: e.QoS, retain: e.Retain, subIDs: e.SubIDs, seq: e.Seq, pos: pos, fromDisk: true}
	if e.Group != "" {
		d.shared = b.subs.Group(e.Group, e.Filter)
	}
	return d
}

// bodiesLocked appends the message of each outbound to msgs, reading back bodies that left RAM
// after an earlier send (nil, logged, if the store cannot give it). s.mu is held.
func (s *Session) bodiesLocked(out []*outbound, msgs []*Message) []*Message {
	for _, o := range out {
		d := o.d
		if d.bodyOut && o.state != awaitPubcomp {
			r, err := s.b.store.ReadMessage(d.msg.id)
			if err != nil || r == nil {
				s.b.log.Error("cannot read a message in flight back from the store", "client", s.id,
					"seq", d.seq, "err", err)
				msgs = append(msgs, nil)
				continue
			}
			before := deliverySize(d)
			d.msg, d.bodyOut = messageFromRecord(r), false
			s.holdLocked(deliverySize(d) - before)
		}
		msgs = append(msgs, d.msg)
	}
	return msgs
}

// evictSentLocking drops the bodies of sent deliveries that were read back from the store and
// are still in flight: a QoS 1/2 message waits for its acknowledgement without its body, which
// only a resend after a reconnect reads back. Memory then does not grow with the number of
// clients draining a backlog at once.
func (s *Session) evictSentLocking(sent []*outbound) {
	// fromDisk never changes after a delivery is built: read without the lock, so that the
	// common batch (nothing read back) costs no extra locking.
	if !slices.ContainsFunc(sent, func(o *outbound) bool { return o.d.fromDisk && o.d.qos > 0 }) {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, o := range sent {
		d := o.d
		if d.fromDisk && !d.bodyOut && d.qos > 0 && s.inflight[o.id] == o {
			m, before := d.msg, deliverySize(d)
			d.msg = &Message{id: m.id, Topic: m.Topic, QoS: m.QoS, expires: m.expires}
			d.bodyOut = true
			s.holdLocked(deliverySize(d) - before)
		}
	}
}
