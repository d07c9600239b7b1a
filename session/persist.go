package session

import (
	"time"

	"edgebroker/codec"
	"edgebroker/session/store"
	"edgebroker/session/topic"
	"edgebroker/wal"
)

// This file maps the engine's state onto the durable store's records. Only persistent sessions
// and retained messages are written; clean sessions and QoS 0 never touch the disk.
//
// Ordering rule: a delivery bound for a persistent session is "held" (not sendable) until the
// batch holding its PutEntry is committed, so that any later DeleteEntry or ReleaseEntry for it
// comes after it in the log. Deliveries routed from a client's PUBLISH stay held until the
// batch is durable, so that a power cut can never make a subscriber receive a message whose
// publisher will send it again (a QoS 2 duplicate).

// persisting reports whether the broker writes to a store.
func (b *Broker) persisting() bool { return b.store != nil }

// commit appends a batch to the store without waiting for it to be durable; a failure is
// logged and returned.
func (b *Broker) commit(batch *store.Batch) (wal.Pos, error) {
	p, err := b.store.Commit(batch)
	if err != nil {
		b.storeFailed(err)
	}
	return p, err
}

// syncBatch commits a batch and waits until it is durable.
func (b *Broker) syncBatch(batch *store.Batch) error {
	p, err := b.commit(batch)
	if err == nil {
		if err = b.store.Wait(p); err != nil {
			b.storeFailed(err)
		}
	}
	return err
}

// storeFailed logs a store failure once: from then on nothing that needs the disk is
// acknowledged (the log refuses every write until the broker restarts on a repaired disk),
// while clean sessions keep working.
func (b *Broker) storeFailed(err error) {
	if b.storeErr.CompareAndSwap(nil, &err) {
		b.log.Error("persistent store failed: persistent sessions can no longer take new messages or "+
			"subscriptions; fix the disk (space, permissions) and restart the broker", "err", err)
	}
}

// record converts a message for the store.
func (m *Message) record() *store.Message {
	r := &store.Message{ID: m.id, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		From: m.From, Expires: m.expires}
	if p := m.Props; p != nil {
		r.HasPayloadFormat = p.Present.Has(codec.PropPayloadFormat)
		r.PayloadFormat = p.PayloadFormat
		r.ContentType = p.ContentType
		r.ResponseTopic = p.ResponseTopic
		r.CorrelationData = p.CorrelationData
		for _, u := range p.User {
			r.User = append(r.User, store.UserProperty{Key: u.Key, Value: u.Value})
		}
	}
	return r
}

// messageFromRecord converts a stored message back.
func messageFromRecord(r *store.Message) *Message {
	m := &Message{id: r.ID, Topic: r.Topic, Payload: r.Payload, QoS: r.QoS, Retain: r.Retain,
		From: r.From, expires: r.Expires}
	var p codec.Properties
	if r.HasPayloadFormat {
		p.Present.Set(codec.PropPayloadFormat)
		p.PayloadFormat = r.PayloadFormat
	}
	if r.ContentType != "" {
		p.Present.Set(codec.PropContentType)
		p.ContentType = r.ContentType
	}
	if r.ResponseTopic != "" {
		p.Present.Set(codec.PropResponseTopic)
		p.ResponseTopic = r.ResponseTopic
	}
	if r.CorrelationData != nil {
		p.Present.Set(codec.PropCorrelationData)
		p.CorrelationData = r.CorrelationData
	}
	for _, u := range r.User {
		p.User = append(p.User, codec.UserProperty{Key: u.Key, Value: u.Value})
	}
	if p.Present != 0 || len(p.User) > 0 {
		m.Props = &p
	}
	return m
}

// entry converts a delivery for the store.
func (d *delivery) entry() *store.Entry {
	e := &store.Entry{Seq: d.seq, MsgID: d.msg.id, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs}
	if d.shared != nil {
		e.Group, e.Filter = d.shared.Name, d.shared.Filter
	}
	return e
}

// recordLocked is the durable part of the session. s.mu must be held.
func (s *Session) recordLocked() *store.Session {
	r := &store.Session{ClientID: s.id, Version: byte(s.version), Expiry: int64(s.expiry),
		DisconnectedAt: s.disconnectedAt, WillDelay: int64(s.willDelay)}
	if s.will != nil {
		r.Will = s.will.record()
	}
	return r
}

// saveSession writes the session's durable part if it is persistent; it does not wait: nothing
// is acknowledged on the strength of it (SUBACK waits for its own records).
func (b *Broker) saveSession(s *Session) {
	if !b.persisting() {
		return
	}
	var batch store.Batch
	s.mu.Lock()
	if !s.persistent || s.ended {
		s.mu.Unlock()
		return
	}
	batch.PutSession(s.recordLocked())
	s.stored = true
	s.mu.Unlock()
	b.commit(&batch)
}

// forgetStored writes the end of a session that was stored. Called with b.mu held.
func (b *Broker) forgetStored(id string) {
	var batch store.Batch
	batch.DeleteSession(id)
	b.commit(&batch)
}

// deleteEntries writes that the given deliveries of s left its queue (acknowledged, expired,
// evicted or moved); it does not wait: a lost DeleteEntry only means a redelivery with DUP.
func (b *Broker) deleteEntries(s *Session, ds []*delivery) {
	if !b.persisting() || len(ds) == 0 {
		return
	}
	var batch store.Batch
	for _, d := range ds {
		if d.seq != 0 {
			batch.DeleteEntry(s.id, d.seq)
		}
	}
	if batch.Len() > 0 {
		b.commit(&batch)
	}
}

// release makes held deliveries sendable.
func release(held []target) {
	for _, t := range held {
		t.s.mu.Lock()
		t.d.held = false
		t.s.kickLocked()
		t.s.mu.Unlock()
	}
}

// unqueue removes held deliveries whose records could not be written: nothing that is not
// stored may be acknowledged or delivered as if it were.
func unqueue(held []target) {
	for _, t := range held {
		t.s.mu.Lock()
		t.s.queue.RemoveIf(func(d *delivery) bool { return d == t.d })
		t.s.signalRoomLocked()
		t.s.mu.Unlock()
	}
}

// Restore loads the sessions and retained messages recovered from the store. Call it once,
// before Serve.
func (b *Broker) Restore(st *store.State) {
	now := b.now()
	msgs := make(map[*store.Message]*Message)
	msg := func(r *store.Message) *Message {
		m, ok := msgs[r]
		if !ok {
			m = messageFromRecord(r)
			msgs[r] = m
		}
		return m
	}
	for topicName, r := range st.Retained {
		b.retained.Set(topicName, msg(r))
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for id, ss := range st.Sessions {
		s := newSession(b, id)
		s.version = codec.Version(ss.Session.Version)
		s.persistent, s.stored = true, true
		s.expiry = time.Duration(ss.Session.Expiry)
		s.disconnectedAt = ss.Session.DisconnectedAt
		if s.disconnectedAt == 0 {
			s.disconnectedAt = now.UnixNano() // the broker stopped while it was connected
		}
		s.willDelay = time.Duration(ss.Session.WillDelay)
		if ss.Session.Will != nil {
			s.will = messageFromRecord(ss.Session.Will)
		}
		s.nextSeq = max(ss.NextSeq, 1)
		for _, r := range ss.Subs {
			sub := b.restoreSub(id, r)
			s.subs[subKey{sub.Group, sub.Filter}] = sub
		}
		var dropped []*delivery
		for i := range ss.Entries {
			e := &ss.Entries[i]
			if e.Msg == nil {
				b.log.Warn("recovered queue entry without its message body: skipped", "client", id, "seq", e.Seq)
				continue
			}
			d := &delivery{msg: msg(e.Msg), qos: e.QoS, retain: e.Retain, subIDs: e.SubIDs, seq: e.Seq}
			if e.Group != "" {
				d.shared = b.subs.Group(e.Group, e.Filter)
			}
			if e.Released {
				s.sendSeq++
				s.inflight[e.PacketID] = &outbound{d: d, id: e.PacketID, seq: s.sendSeq, state: awaitPubcomp}
				continue
			}
			if !s.queue.Push(d) {
				dropped = append(dropped, d) // the queue limit was lowered since
				s.dropped++
			}
		}
		for _, pid := range ss.InQoS2 {
			s.inQoS2[pid] = struct{}{}
		}
		b.sessions[id] = s
		if len(dropped) > 0 {
			go b.deleteEntries(s, dropped)
		}
		// It is offline now: its expiry clock runs from when its connection ended, or from
		// now if the broker stopped while it was connected.
		if s.expiry > 0 {
			left := s.expiry - now.Sub(time.Unix(0, s.disconnectedAt))
			s.expiryTimer = time.AfterFunc(max(left, 0), func() { b.expireSession(s) })
		}
	}
}

// restoreSub puts a recovered subscription back into the tree.
func (b *Broker) restoreSub(clientID string, r store.Sub) (sub topic.Sub) {
	sub = topic.Sub{ClientID: clientID, Filter: r.Filter, Group: r.Group, QoS: r.QoS, NoLocal: r.NoLocal,
		RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling, SubID: r.SubID}
	b.subs.Subscribe(sub)
	return sub
}

// subRecord converts a subscription for the store.
func subRecord(s topic.Sub) store.Sub {
	return store.Sub{Filter: s.Filter, Group: s.Group, QoS: s.QoS, NoLocal: s.NoLocal,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, SubID: s.SubID}
}
