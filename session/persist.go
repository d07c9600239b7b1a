package session

import (
	"errors"
	"slices"
	"sync/atomic"
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
// comes after it in the log. For a QoS 0 or 1 publication nothing more: a subscriber may
// receive it before it is durable. A power cut then takes the message and whatever the
// subscriber's session recorded after it, and the publisher, not acknowledged, sends it again:
// a QoS 1 duplicate. A QoS 2 publication's deliveries stay held until its records are durable
// (conn.settle), so that no subscriber can have one whose publisher will send it again.

// persisting reports whether the broker writes to a store.
func (b *Broker) persisting() bool { return b.store != nil }

// errStoreDown is returned for writes refused while the store is failed.
var errStoreDown = errors.New("session: persistent store is down")

// errQueueUnread stops a rewrite of the store that could not read a queue back from it: the
// rewrite would otherwise delete what it could not read.
var errQueueUnread = errors.New("session: a queue could not be read back from the store")

// commit appends a batch to the store without waiting for it to be durable. While the store is
// failed it refuses at once.
func (b *Broker) commit(batch *store.Batch) (wal.Pos, error) {
	if b.storeDown.Load() {
		return 0, errStoreDown
	}
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

// storeFailed takes the store down after a failed write: from then on nothing that needs the
// disk is acknowledged (publishers to persistent sessions are disconnected, subscriptions of
// persistent sessions refused), clean sessions keep working, and recoverStore retries in the
// background until the disk takes writes again.
func (b *Broker) storeFailed(err error) {
	if b.storeDown.CompareAndSwap(false, true) {
		b.log.Error("persistent store failed: persistent sessions take no new messages or subscriptions "+
			"until it recovers; check the data dir's disk (space, permissions, health)", "err", err)
		go b.recoverStore()
	}
}

// recoverStore reopens the failed store every StoreRetry and, once the log takes writes again,
// writes the persistent state afresh; then the store is up again.
func (b *Broker) recoverStore() {
	for {
		select {
		case <-b.closing:
			return
		case <-time.After(b.o().StoreRetry):
		}
		err := b.store.Reopen()
		if err == nil {
			err = b.rewriteStore()
		}
		if errors.Is(err, store.ErrClosed) {
			return
		}
		if err != nil {
			b.log.Warn("persistent store still failing; retrying", "err", err, "retry_in", b.o().StoreRetry)
			continue
		}
		b.log.Info("persistent store recovered: persistent sessions accept messages again")
		return
	}
}

// rewriteStore writes every persistent session and the retained changes that could not be
// written while the store was down, so that the log again describes the broker's state: what
// the failed log holds beyond its last durable record may or may not have survived. Every
// other write is refused meanwhile (the store is still down), and no session comes or goes
// (b.mu is held). Once the state is durable it marks the store up, before letting go of b.mu:
// what whileStoreDown left in RAM is in the rewrite.
func (b *Broker) rewriteStore() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	var batch store.Batch
	for id := range b.goneSessions {
		if b.sessions[id] == nil {
			batch.DeleteSession(id)
		}
	}
	b.dirtyMu.Lock()
	for name := range b.dirtyRetained {
		if m, ok := b.retained.Get(name); ok {
			r := m.record()
			batch.PutMessage(&r)
			batch.PutRetained(name, m.id)
		} else {
			batch.DeleteRetained(name)
		}
	}
	b.dirtyMu.Unlock()
	var last wal.Pos
	flush := func() error {
		if batch.Len() == 0 {
			return nil
		}
		p, err := b.store.Commit(&batch)
		batch.Reset()
		last = max(last, p)
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	for _, s := range b.sessions {
		s.mu.Lock()
		var err error
		if s.persistent && !s.ended {
			if err = s.snapshotLocked(&batch); err == nil {
				s.stored = true
			}
		}
		s.mu.Unlock()
		if err != nil {
			return err
		}
		if err := flush(); err != nil {
			return err
		}
	}
	if err := b.store.Wait(last); err != nil {
		return err
	}
	for _, s := range b.sessions { // their records are the rewritten ones now
		s.mu.Lock()
		s.queue.Each(func(d *delivery) bool {
			if d.seq != 0 && !d.held {
				d.pos = last
			}
			return true
		})
		s.mu.Unlock()
	}
	clear(b.goneSessions)
	b.dirtyMu.Lock()
	clear(b.dirtyRetained)
	b.dirtyMu.Unlock()
	b.storeDown.Store(false)
	return nil
}

// whileStoreDown runs f with b.mu held if the store is down, and reports whether it did: what
// f leaves in RAM, unwritten, is then written by the store's recovery (rewriteStore, which
// runs under b.mu and marks the store up before releasing it). If the store is up again, what
// f would leave was written by no one.
func (b *Broker) whileStoreDown(f func()) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.storeDown.Load() {
		return false
	}
	f()
	return true
}

// snapshotLocked adds the whole durable state of the session to batch, replacing whatever the
// store held for it: one batch, so that a power cut keeps the old state or the new one.
func (s *Session) snapshotLocked(batch *store.Batch) error {
	// DeleteSession drops what is on disk too: it is read back to be written again.
	if !s.queue.readAll() {
		return errQueueUnread
	}
	batch.DeleteSession(s.id)
	batch.PutSession(s.recordLocked())
	for _, sub := range s.b.subs.Subscriptions(s.id) {
		batch.PutSub(s.id, subRecord(sub))
	}
	var bodies []*Message
	put := func(d *delivery) {
		// A body out of RAM is in the checkpoint, referred to by this entry: DeleteSession and
		// PutEntry in one batch leave its reference count as it was.
		if !d.bodyOut && !slices.Contains(bodies, d.msg) {
			bodies = append(bodies, d.msg)
			r := d.msg.record()
			batch.PutMessage(&r)
		}
		e := d.entry()
		batch.PutEntry(s.id, &e)
	}
	for _, o := range s.inflightInOrderLocked() {
		if o.d.seq != 0 {
			put(o.d)
			if o.d.qos == 2 {
				e := o.entry() // with its packet id
				batch.PutEntry(s.id, &e)
			}
		}
	}
	s.queue.Each(func(d *delivery) bool {
		if d.seq != 0 && !d.held { // held ones belong to a router whose write failed
			put(d)
		}
		return true
	})
	for id := range s.inQoS2 {
		batch.PutInQoS2(s.id, id)
	}
	return nil
}

// noteRetainedUnwritten remembers a retained change the store could not take, for rewriteStore.
func (b *Broker) noteRetainedUnwritten(m *Message) {
	if m == nil || !m.Retain {
		return
	}
	b.dirtyMu.Lock()
	b.dirtyRetained[m.Topic] = struct{}{}
	b.dirtyMu.Unlock()
}

// record converts a message for the store. The publisher's client id (From) is left out: it
// decides No Local when the message is routed, and a stored body is past that. Left in, it
// was about 6% of the log bytes of a 64-byte message. A will, stored before it is routed, keeps
// it (Session.recordLocked).
func (m *Message) record() store.Message {
	r := store.Message{ID: m.id, Topic: m.Topic, Payload: m.Payload, QoS: m.QoS, Retain: m.Retain,
		Expires: m.expires}
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
	// Not != nil: an absent one decodes as an empty slice. An empty one that was sent is
	// dropped with it, which loses nothing a responder could use.
	if len(r.CorrelationData) > 0 {
		p.Present.Set(codec.PropCorrelationData)
		p.CorrelationData = r.CorrelationData
	}
	for _, u := range r.User {
		p.User = append(p.User, codec.UserProperty{Key: u.Key, Value: u.Value})
	}
	if p.Present != 0 || len(p.User) > 0 {
		m.Props = new(p) // only then on the heap: most messages have no properties
	}
	return m
}

// entry converts a delivery for the store.
func (d *delivery) entry() store.Entry {
	e := store.Entry{Seq: d.seq, MsgID: d.msg.id, QoS: d.qos, Retain: d.retain, SubIDs: d.subIDs}
	if d.shared != nil {
		e.Group, e.Filter = d.shared.Name, d.shared.Filter
	}
	return e
}

// entry converts an in-flight message for the store, with its packet id, and whether its
// PUBREC has been received.
func (o *outbound) entry() store.Entry {
	e := o.d.entry()
	e.PacketID, e.Released = o.id, o.state == awaitPubcomp
	return e
}

// recordSent records the packet ids of outgoing QoS 1/2 messages of a persistent session
// before they are sent, so that after a restart the broker resends such a message with the
// same id and DUP. For QoS 2 the record must be durable first: otherwise the client could take
// a resend under a new id for a new message (a duplicate), or a new message under a reused id
// for a resend (a loss) [MQTT-4.3.3-9], [MQTT-2.2.1-3]. For QoS 1 it is only committed (group
// commit syncs it with the next wait): if a power cut takes it, the message is resent without
// DUP, which QoS 1 allows.
func (b *Broker) recordSent(s *Session, batch []*outbound) error {
	if !b.persisting() {
		return nil
	}
	var rec store.Batch
	mustWait := false
	for _, o := range batch {
		switch {
		case o.d.seq == 0:
		case o.d.qos == 2 && o.state == awaitPubrec:
			e := o.entry()
			rec.PutEntry(s.id, &e)
			mustWait = true
		case o.d.qos == 1:
			rec.SetPacketID(s.id, o.d.seq, o.id)
		}
	}
	switch {
	case rec.Len() == 0:
		return nil
	case mustWait:
		return b.syncBatch(&rec)
	}
	b.commit(&rec) // a failure takes the store down; the messages go out without the record
	return nil
}

// recordLocked is the durable part of the session. s.mu must be held.
func (s *Session) recordLocked() *store.Session {
	r := &store.Session{ClientID: s.id, Version: byte(s.version), Expiry: int64(s.expiry),
		DisconnectedAt: s.disconnectedAt, WillDelay: int64(s.willDelay)}
	if s.will != nil {
		will := s.will.record()
		r.Will = &will
		r.Will.From = s.will.From
		if s.will.willExpiry > 0 {
			// Stored as when it runs out if published when its delay ends: counted from the
			// disconnection, or relative to it while connected (negative, see store.Message).
			// A recovered will has an absolute expiry and no interval.
			r.Will.Expires = -int64(s.willDelay + s.will.willExpiry)
			if s.disconnectedAt != 0 {
				r.Will.Expires = s.disconnectedAt - r.Will.Expires
			}
		}
	}
	return r
}

// saveSession writes the session's durable part if it is persistent, and returns the
// position to wait on (0 when nothing was written). Nothing is acknowledged on the strength of
// it except CONNACK, which waits (see conn.connect).
//
// Saves of one session are serialized (Session.saveMu), so that its records reach the log in
// the order they were built: otherwise a disconnect's record, built first but committed last,
// could stand for a session that has reconnected with a new will since.
func (b *Broker) saveSession(s *Session) (wal.Pos, error) {
	if !b.persisting() {
		return 0, nil
	}
	s.saveMu.Lock()
	defer s.saveMu.Unlock()
	var batch store.Batch
	s.mu.Lock()
	if !s.persistent || s.ended {
		s.mu.Unlock()
		return 0, nil
	}
	batch.PutSession(s.recordLocked())
	s.stored = true
	s.mu.Unlock()
	if hook := beforeSessionCommit.Load(); hook != nil {
		(*hook)()
	}
	return b.commit(&batch)
}

// beforeSessionCommit, when a test sets it, runs between building a session record and
// committing it.
var beforeSessionCommit atomic.Pointer[func()]

// forgetStored writes the end of a session that was stored; if the store is down it is
// remembered for rewriteStore. Called with b.mu held.
func (b *Broker) forgetStored(id string) {
	var batch store.Batch
	batch.DeleteSession(id)
	if _, err := b.commit(&batch); err != nil {
		b.goneSessions[id] = struct{}{}
	}
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

// release makes held deliveries sendable; pos is (at least) the position of their record.
// One evicted meanwhile (drop-oldest, a shared subscription's redistribution) has its
// deletion written now, after its record.
func release(held []target, pos wal.Pos) {
	for _, t := range held {
		t.s.mu.Lock()
		t.d.held, t.d.pos = false, pos
		evicted := t.d.evicted
		t.s.kickLocked()
		t.s.mu.Unlock()
		if evicted {
			t.s.b.deleteEntries(t.s, []*delivery{t.d})
		}
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

// Restore loads the sessions and retained messages recovered from the store, consuming st (its
// sessions are removed as they are converted). Call it once, before Serve.
func (b *Broker) Restore(st *store.State) {
	now := b.now()
	// By id, not by the store's pointer, so that the store's copy can be collected as soon as
	// its session is converted: the state is consumed as it goes, keeping the peak heap down.
	msgs := map[uint64]*Message{}
	msg := func(r *store.Message) *Message {
		m, ok := msgs[r.ID]
		if !ok {
			m = messageFromRecord(r)
			msgs[r.ID] = m
		}
		return m
	}
	for _, r := range st.Retained {
		b.setRetained(msg(r))
	}
	var withWill []*Session
	b.mu.Lock()
	for id, ss := range st.Sessions {
		s := newSession(b, id)
		s.version = codec.Version(ss.Session.Version)
		s.v5.Store(s.version == codec.V5)
		s.persistent, s.stored = true, true
		s.expiry = time.Duration(ss.Session.Expiry)
		// Never 0: store.Open gives a session connected when the broker stopped the time of
		// the Open, and stores it.
		s.disconnectedAt = ss.Session.DisconnectedAt
		s.willDelay = time.Duration(ss.Session.WillDelay)
		if ss.Session.Will != nil {
			s.setWillLocked(messageFromRecord(ss.Session.Will))
			withWill = append(withWill, s)
		}
		s.nextSeq = max(ss.NextSeq, 1)
		for _, r := range ss.Subs {
			b.restoreSub(s, r)
		}
		ckpt := b.store.CheckpointPos() // recovery applied the whole log
		for i := range ss.Entries {     // in flight: resent with its id, as PUBREL if PUBRECed
			e := &ss.Entries[i]
			if e.Msg == nil {
				b.log.Warn("recovered queue entry without its message body: skipped", "client", id, "seq", e.Seq)
				continue
			}
			state := awaitPubrec
			switch {
			case e.QoS == 1:
				state = awaitPuback
			case e.Released:
				state = awaitPubcomp
			}
			s.sendSeq++
			d := b.deliveryFromEntry(e, msg(e.Msg), ckpt)
			s.putInflightLocked(&outbound{d: d, id: e.PacketID, seq: s.sendSeq, state: state})
		}
		// The queue stays on disk until its client comes back for it.
		s.queue.disk = spilled{n: ss.Queued, from: ss.QueuedFrom, unknown: ss.Queued}
		for _, pid := range ss.InQoS2 {
			s.inQoS2[pid] = struct{}{}
		}
		b.sessions[id] = s
		delete(st.Sessions, id) // consumed
		// It is offline now: its expiry clock runs from when its connection ended, or from
		// now if the broker stopped while it was connected.
		if s.expiry > 0 {
			left := s.expiry - now.Sub(time.Unix(0, s.disconnectedAt))
			s.expiryTimer = time.AfterFunc(max(left, 0), func() { b.expireSession(s) })
		}
	}
	b.mu.Unlock()
	// A pending will goes out when its delay, counted from the disconnection, runs out (at
	// once if it did while the broker was down), unless its client comes back first; only
	// now that every subscription is back.
	for _, s := range withWill {
		s.mu.Lock()
		s.scheduleWillLocked(s.willDelay - now.Sub(time.Unix(0, s.disconnectedAt)))
		s.mu.Unlock()
	}
}

// restoreSub puts a recovered subscription of s back into the tree, charging it to s.
func (b *Broker) restoreSub(s *Session, r store.Sub) {
	s.holdLocked(subscriptionSize(r.Group, r.Filter)) // nobody else sees s yet
	b.subs.Subscribe(topic.Sub{ClientID: s.id, Filter: r.Filter, Group: r.Group, QoS: r.QoS, NoLocal: r.NoLocal,
		RetainAsPublished: r.RetainAsPublished, RetainHandling: r.RetainHandling, SubID: r.SubID})
}

// subRecord converts a subscription for the store.
func subRecord(s topic.Sub) store.Sub {
	return store.Sub{Filter: s.Filter, Group: s.Group, QoS: s.QoS, NoLocal: s.NoLocal,
		RetainAsPublished: s.RetainAsPublished, RetainHandling: s.RetainHandling, SubID: s.SubID}
}
