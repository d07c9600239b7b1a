package session

import (
	"slices"
	"time"

	"edgebroker/session/store"
	"edgebroker/session/topic"
)

// target is one delivery bound for one session.
type target struct {
	s *Session
	d *delivery
}

// offerAll routes m: it stores or clears it as a retained message in memory, finds the
// sessions with a matching subscription and offers each its delivery. It returns how many
// queued it, the deliveries held for their store records (the caller records them, then
// releases them) and, when mayWait is set, the targets whose full queue asks the publisher to
// wait (flow control).
func (b *Broker) offerAll(m *Message, mayWait bool) (queued int, held, waits []target) {
	if b.persisting() && m.id == 0 && !m.sys {
		m.id = b.store.NextMessageID() // before anyone else can see the message
	}
	if m.Retain {
		if len(m.Payload) == 0 {
			b.deleteRetained(m.Topic) // [MQTT-3.3.1-6]
		} else {
			b.setRetained(m) // [MQTT-3.3.1-5]
		}
	}
	ms := b.matchPool.Get().(*topic.Matches)
	ms.Reset()
	b.subs.Match(m.Topic, ms)
	targets := b.targets(m, ms, nil)
	b.matchPool.Put(ms)
	for _, t := range targets {
		switch res, _ := t.s.offer(t.d, mayWait); res {
		case offerQueued:
			queued++
			if t.d.held {
				held = append(held, t)
			}
		case offerWait:
			waits = append(waits, t)
		}
	}
	return queued, held, waits
}

// needsStore reports whether routing m, published by from, writes to the store: its publisher's
// session or a session it would be queued for at QoS 1 or 2 is persistent (any member of a
// shared group counts), or it changes a retained message. Only the store's failure asks.
func (b *Broker) needsStore(from *Session, m *Message) bool {
	switch {
	case !b.persisting():
		return false
	case m.Retain || from.isPersistent():
		return true
	}
	ms := b.matchPool.Get().(*topic.Matches)
	defer b.matchPool.Put(ms)
	ms.Reset()
	b.subs.Match(m.Topic, ms)
	stored := func(sub topic.Sub) bool {
		s := b.session(sub.ClientID)
		return s != nil && min(m.QoS, sub.QoS) > 0 && s.isPersistent()
	}
	for _, sub := range ms.Subs {
		if !(sub.NoLocal && sub.ClientID == m.From) && stored(sub) {
			return true
		}
	}
	for _, g := range ms.Groups {
		if slices.ContainsFunc(g.Members(), stored) {
			return true
		}
	}
	return false
}

// publishNow routes a message no client waits an acknowledgement for (a will): its records are
// committed before its deliveries are released, but nobody waits for them to be durable.
func (b *Broker) publishNow(m *Message) int {
	if m.willExpiry > 0 { // a will's expiry interval runs from its publication
		m.expires = b.now().Add(m.willExpiry).UnixNano()
	}
	queued, held, _ := b.offerAll(m, false)
	b.commitHeld(m, held)
	return queued
}

// commitHeld writes the records of held deliveries (and of m's retained change, if m is given)
// and releases the deliveries; if the store fails they are taken off their queues instead.
func (b *Broker) commitHeld(m *Message, held []target) {
	if !b.persisting() {
		return
	}
	var batch store.Batch
	b.recordRouted(&batch, m, held)
	if batch.Len() == 0 {
		return
	}
	pos, err := b.commit(&batch)
	if err != nil {
		b.noteRetainedUnwritten(m)
		unqueue(held)
		return
	}
	release(held, pos)
}

// recordRouted adds to batch the retained change of m (if m is given) and the entries of held
// deliveries, with each message body they refer to once. Every batch that refers to a body
// carries it: a checkpoint drops bodies that nothing refers to any more, so an earlier batch
// holding it proves nothing (storing a body again is harmless).
func (b *Broker) recordRouted(batch *store.Batch, m *Message, held []target) {
	var room [2]*Message
	put := room[:0]
	body := func(msg *Message) {
		if !slices.Contains(put, msg) {
			put = append(put, msg)
			r := msg.record()
			batch.PutMessage(&r)
		}
	}
	if m != nil && m.Retain && !m.sys {
		if len(m.Payload) == 0 {
			batch.DeleteRetained(m.Topic)
		} else {
			body(m)
			batch.PutRetained(m.Topic, m.id)
		}
	}
	for _, t := range held {
		if !t.d.bodyOut { // else the store has the body, and d.msg is only its stub
			body(t.d.msg)
		}
		e := t.d.entry()
		batch.PutEntry(t.s.id, &e)
	}
}

// offerWaiting retries a delivery to a full queue until it is queued, the subscriber has made no
// progress for the slow-consumer timeout (the overflow policy then applies), or the publisher
// goes away. It reports whether the delivery was queued.
func (b *Broker) offerWaiting(t target, from *conn) bool {
	patience := b.patience(t.d.qos)
	timer := time.NewTimer(patience)
	defer timer.Stop()
	for {
		res, room := t.s.offer(t.d, true)
		if res != offerWait {
			return res == offerQueued
		}
		select {
		case <-room:
		case <-timer.C:
			timer.Reset(patience)
		case <-from.done:
			return false
		}
	}
}

// qos0Patience is how recently a subscriber must have taken a message off its full queue for a
// QoS 0 publisher to wait for room rather than lose the message: long enough to ride out a
// reading subscriber's scheduling hiccups on a busy single-board computer, short enough that a
// subscriber that gets stuck holds QoS 0 traffic up once, for a moment, and then never again.
const qos0Patience = time.Second

// patience is how long a subscriber may make no progress before a full queue stops slowing
// publishers of messages of the given QoS down.
func (b *Broker) patience(qos byte) time.Duration {
	if qos == 0 {
		return min(qos0Patience, b.o().SlowConsumerTimeout)
	}
	return b.o().SlowConsumerTimeout
}

// targets turns the matching subscriptions into deliveries. An MQTT 3 session with several
// matching subscriptions gets one copy at the highest granted QoS [MQTT-3.3.5-1]; a 5.0 session
// gets one copy per subscription, each with its subscription identifier. Each shared group
// gives the message to one member.
func (b *Broker) targets(m *Message, ms *topic.Matches, dst []target) []target {
	var merged copyIndex
	for _, sub := range ms.Subs {
		if sub.NoLocal && sub.ClientID == m.From {
			continue // [MQTT-3.8.3-3]
		}
		s := b.session(sub.ClientID)
		if s == nil {
			continue
		}
		qos := min(m.QoS, sub.QoS)
		if !s.v5.Load() { // 3.x: one copy at the highest QoS
			if i := merged.find(dst, s); i >= 0 {
				dst[i].d.qos = max(dst[i].d.qos, qos)
				continue
			}
			merged.add(s, len(dst))
		}
		dst = append(dst, target{s: s, d: newDelivery(m, sub, qos)})
	}
	for _, g := range ms.Groups {
		if t, ok := b.pickMember(g, m); ok {
			dst = append(dst, t)
		}
	}
	return dst
}

// copyIndex finds the copies of MQTT 3 sessions among the targets of one message: one by
// one while the list is short (most messages go to a few sessions, and a map for each cost
// two allocations a message), then through a map of it.
type copyIndex map[*Session]int

// shortScan is the number of targets copyIndex searches one by one before it maps them.
const shortScan = 16

// find returns the index in dst of session s's target, -1 if none.
func (x *copyIndex) find(dst []target, s *Session) int {
	if *x == nil {
		if len(dst) <= shortScan {
			return slices.IndexFunc(dst, func(t target) bool { return t.s == s })
		}
		*x = make(copyIndex, 2*len(dst))
		for i, t := range dst {
			(*x)[t.s] = i // a 5.0 session's last copy: never looked up
		}
	}
	if i, ok := (*x)[s]; ok {
		return i
	}
	return -1
}

// add records that dst[i] is session s's target, once the list is mapped.
func (x copyIndex) add(s *Session, i int) {
	if x != nil {
		x[s] = i
	}
}

// pickMember chooses the member of a shared group that gets m: round robin among connected
// members with queue room, else among connected members, else among any.
func (b *Broker) pickMember(g *topic.Group, m *Message) (target, bool) {
	accepts := []func(*Session) bool{
		func(s *Session) bool { return s.online() && s.hasRoom() },
		(*Session).online,
		func(*Session) bool { return true },
	}
	for _, accept := range accepts {
		var picked *Session
		sub, ok := g.Pick(func(sub topic.Sub) bool {
			s := b.session(sub.ClientID)
			if s == nil || !accept(s) {
				return false
			}
			picked = s
			return true
		})
		if ok {
			d := newDelivery(m, sub, min(m.QoS, sub.QoS))
			d.shared = g
			return target{s: picked, d: d}, true
		}
	}
	return target{}, false
}

// newDelivery builds the delivery of m through sub at the granted qos.
func newDelivery(m *Message, sub topic.Sub, qos byte) *delivery {
	d := &delivery{msg: m, qos: qos, retain: sub.RetainAsPublished && m.Retain}
	if sub.SubID != 0 {
		d.subIDs = []uint32{sub.SubID}
	}
	return d
}

// sendRetained queues the retained messages matching a new subscription [MQTT-3.8.4-4]; they are
// sent with RETAIN set [MQTT-3.3.1-8]. Shared subscriptions get none (5.0 section 4.8.2).
func (b *Broker) sendRetained(s *Session, sub topic.Sub) {
	if sub.Group != "" {
		return
	}
	now := b.now()
	var expired []string
	var held []target
	b.retained.Match(sub.Filter, func(name string, m *Message) bool {
		if m.expired(now) {
			expired = append(expired, name)
			return true
		}
		d := newDelivery(m, sub, min(m.QoS, sub.QoS))
		d.retain = true
		if res, _ := s.offer(d, false); res == offerQueued && d.held {
			held = append(held, target{s: s, d: d})
		}
		return true
	})
	b.commitHeld(nil, held)
	for _, name := range expired {
		if m, ok := b.retained.Get(name); ok && m.expired(now) {
			b.deleteRetained(name)
		}
	}
}

// bodyBack reads back the body of a delivery that left RAM after it was sent (bodyOut), before
// it moves to another session: one that does not store it could not read it back later, since
// the store forgets a body no entry refers to. On a store failure it stays a stub, logged.
func (b *Broker) bodyBack(d *delivery) {
	if !d.bodyOut {
		return
	}
	r, err := b.store.ReadMessage(d.msg.id)
	if err != nil || r == nil {
		b.log.Error("cannot read a message body back from the store", "id", d.msg.id, "err", err)
		return
	}
	d.msg, d.bodyOut = messageFromRecord(r), false
}

// redistribute gives deliveries taken from a departed shared-subscription member to the other
// members of their groups; those with no other member online go back to the departed session.
// The departed session's entries are deleted in the same batch that stores their new places,
// except those of held deliveries, which their routers delete (takeSharedLocked).
func (b *Broker) redistribute(from *Session, ds []*delivery) {
	var batch store.Batch
	if b.persisting() {
		for _, d := range ds {
			if d.seq != 0 { // before the offers below give it a new sequence number
				batch.DeleteEntry(from.id, d.seq)
			}
		}
	}
	var held []target
	for _, d := range ds { // copies (takeSharedLocked): the offers below restamp them
		b.bodyBack(d)
		to := from
		for _, sub := range d.shared.Members() {
			if sub.ClientID == from.id {
				continue
			}
			if s := b.session(sub.ClientID); s != nil && s.online() {
				if res, _ := s.offer(d, false); res == offerQueued {
					to = s
					break
				}
			}
		}
		if to == from {
			if res, _ := from.offer(d, false); res != offerQueued {
				continue
			}
		}
		if d.held {
			held = append(held, target{s: to, d: d})
		}
	}
	if batch.Len() == 0 && len(held) == 0 {
		return
	}
	b.recordRouted(&batch, nil, held)
	pos, err := b.commit(&batch)
	if err != nil {
		unqueue(held)
		return
	}
	release(held, pos)
}

// online reports whether the session has a live connection.
func (s *Session) online() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn != nil
}

// isPersistent reports whether the session outlives its connection (and is stored).
func (s *Session) isPersistent() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.persistent
}

// hasRoom reports whether the session's queue is under both its limits.
func (s *Session) hasRoom() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	max := s.b.o().MaxQueuedBytes
	return s.queue.Len() < s.queue.Cap() && (max == 0 || s.queue.Bytes() < max)
}
