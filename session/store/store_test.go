package store

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"edgebroker/wal"
)

func msg(id uint64, topic string) *Message {
	return &Message{ID: id, Topic: topic, Payload: []byte("payload " + topic), QoS: 1}
}

// roundTripCases each write some batches (one per function) through a Batch and the model.
var roundTripCases = []struct {
	name    string
	batches []func(ops)
}{
	{"session with will", []func(ops){func(o ops) {
		w := &Message{Topic: "will/c", Payload: []byte("gone"), QoS: 2, Retain: true, Expires: testNow.Add(time.Hour).UnixNano()}
		o.PutSession(&Session{ClientID: "c", Version: 5, Expiry: int64(time.Hour), Will: w, WillDelay: int64(time.Minute)})
	}}},
	{"disconnect and reconnect", []func(ops){
		func(o ops) { o.PutSession(&Session{ClientID: "c", Version: 4}) },
		func(o ops) { o.Disconnected("c", testNow.Add(-time.Minute)) },
		func(o ops) { o.PutSession(&Session{ClientID: "d", Version: 3}); o.Disconnected("d", testNow) },
		func(o ops) { o.Connected("d") },
	}},
	{"reconnect after another client's disconnect", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 4})
			o.PutSession(&Session{ClientID: "d", Version: 4})
		},
		func(o ops) { o.Disconnected("d", testNow.Add(-time.Minute)) },
		func(o ops) { o.Disconnected("c", testNow.Add(-time.Hour)) },
		func(o ops) { o.Connected("d") }, // not disconnected at c's time
	}},
	{"bodies larger than 64 KiB", []func(ops){func(o ops) {
		o.PutSession(&Session{ClientID: "c", Version: 4})
		for i := range 3 { // queued, and then retained too
			m := msg(uint64(i+1), "big")
			m.Payload = []byte(strings.Repeat(fmt.Sprint(i), 200<<10))
			o.PutMessage(m)
			o.PutEntry("c", &Entry{Seq: uint64(i + 1), MsgID: m.ID, QoS: 1})
		}
		o.PutRetained("big", 3)
	}}},
	{"subscriptions", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 5})
			o.PutSub("c", Sub{Filter: "a/+", QoS: 1, SubID: 7, NoLocal: true, RetainAsPublished: true, RetainHandling: 2})
			o.PutSub("c", Sub{Filter: "a/+", Group: "g", QoS: 2})
			o.PutSub("c", Sub{Filter: "b/#", QoS: 0})
		},
		func(o ops) {
			o.PutSub("c", Sub{Filter: "a/+", QoS: 2}) // replaces
			o.DeleteSub("c", "", "b/#")
			o.DeleteSub("c", "", "never/subscribed")
		},
	}},
	{"queue, release, ack", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 5})
			m := msg(1, "a/1")
			m.HasPayloadFormat, m.PayloadFormat, m.ContentType, m.ResponseTopic = true, 1, "text/plain", "r/1"
			m.CorrelationData, m.User, m.From = []byte{0, 1, 2}, []UserProperty{{"k", "v"}, {"k", "w"}}, "pub"
			o.PutMessage(m)
			o.PutMessage(msg(2, "a/2"))
			o.PutEntry("c", &Entry{Seq: 1, MsgID: 1, QoS: 2, SubIDs: []uint32{7, 9}})
			o.PutEntry("c", &Entry{Seq: 2, MsgID: 2, QoS: 1, Retain: true, Group: "g", Filter: "a/+"})
			o.PutEntry("c", &Entry{Seq: 3, MsgID: 1, QoS: 1})
		},
		func(o ops) { o.ReleaseEntry("c", 1, 42); o.DeleteEntry("c", 2) },
		func(o ops) { o.ReleaseEntry("c", 2, 43); o.DeleteEntry("c", 99) }, // both of absent entries
	}},
	{"packet ids and deletions in lists", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 4})
			o.PutSession(&Session{ClientID: "d", Version: 4})
			o.PutMessage(msg(1, "a/1"))
			for seq := range uint64(6) {
				o.PutEntry("c", &Entry{Seq: seq + 1, MsgID: 1, QoS: 1})
				o.PutEntry("d", &Entry{Seq: seq + 1, MsgID: 1, QoS: 1})
			}
			o.SetPacketID("c", 1, 11)
			o.SetPacketID("c", 2, 12)
			o.SetPacketID("d", 1, 21)
		},
		func(o ops) { // "mixed" checkpoints before this one: then the entries are stored
			o.SetPacketID("c", 3, 13)
			o.SetPacketID("c", 4, 14)
			o.SetPacketID("c", 99, 1) // an absent entry
			o.DeleteEntry("c", 1)
			o.DeleteEntry("c", 3)
			o.DeleteEntry("d", 2)
			o.DeleteEntry("d", 3)
			o.DeleteEntry("d", 99) // absent
		},
		func(o ops) { o.ReleaseEntry("c", 4, 40); o.SetPacketID("c", 4, 41) }, // stays released
		func(o ops) { // a packet id, then the entry put again: the put's entry stands, without it
			o.SetPacketID("c", 5, 15)
			o.PutEntry("c", &Entry{Seq: 5, MsgID: 1, QoS: 1})
			o.SetPacketID("d", 6, 26)
			o.PutEntry("d", &Entry{Seq: 6, MsgID: 1, QoS: 1, PacketID: 27})
		},
	}},
	{"one body in many sessions", []func(ops){
		func(o ops) {
			o.PutMessage(msg(5, "x"))
			for _, c := range []string{"a", "b", "c"} {
				o.PutSession(&Session{ClientID: c, Version: 4})
				o.PutEntry(c, &Entry{Seq: 10, MsgID: 5, QoS: 1})
			}
		},
		func(o ops) { o.DeleteEntry("a", 10); o.DeleteSession("b") },
	}},
	{"inbound QoS 2", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 4})
			o.PutInQoS2("c", 1)
			o.PutInQoS2("c", 65535)
			o.PutInQoS2("c", 300)
		},
		func(o ops) { o.DeleteInQoS2("c", 300) },
	}},
	{"retained", []func(ops){
		func(o ops) {
			o.PutMessage(msg(1, "r/1"))
			o.PutRetained("r/1", 1)
			o.PutMessage(msg(2, "r/2"))
			o.PutRetained("r/2", 2)
		},
		func(o ops) { o.PutMessage(msg(3, "r/1")); o.PutRetained("r/1", 3); o.DeleteRetained("r/2") },
	}},
	{"session deleted and created again", []func(ops){
		func(o ops) {
			o.PutSession(&Session{ClientID: "c", Version: 5})
			o.PutSub("c", Sub{Filter: "t"})
			o.PutMessage(msg(1, "t"))
			o.PutEntry("c", &Entry{Seq: 1, MsgID: 1, QoS: 1})
			o.PutInQoS2("c", 9)
		},
		func(o ops) { o.DeleteSession("c"); o.PutSession(&Session{ClientID: "c", Version: 3}) },
	}},
}

// TestRoundTrip writes every case, then reopens: recovering from the log alone, from the
// checkpoint alone (Close checkpoints), and from a checkpoint taken halfway plus the log.
func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripCases {
		for _, mode := range []string{"log", "checkpoint", "mixed"} {
			t.Run(tc.name+"/"+mode, func(t *testing.T) {
				mem := newMem()
				o := testOptions(t, mem)
				s, _ := mustOpen(t, o)
				m := newModel()
				var b Batch
				for i, f := range tc.batches {
					f(&b)
					f(m)
					mustSync(t, s, &b)
					if mode == "mixed" && i == len(tc.batches)/2 {
						if err := s.Checkpoint(); err != nil {
							t.Fatal(err)
						}
					}
				}
				if mode == "log" {
					// Leave the log as a crash would: no final checkpoint.
					s.quitCheckpointer()
					if err := s.wal().Close(); err != nil {
						t.Fatal(err)
					}
					s.db.Close()
				} else if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				s2, st := mustOpen(t, o)
				defer s2.Close()
				assertShared(t, st)
				if got, want := dump(withQueued(t, s2, st)), dump(m.state()); got != want {
					t.Fatalf("recovered state:\n%s\nwant:\n%s", got, want)
				}
			})
		}
	}
}

// quitCheckpointer stops the background checkpointer, for tests that then abandon the store as
// a crash would.
func (s *Store) quitCheckpointer() {
	s.ckptMu.Lock()
	s.closed = true
	s.ckptMu.Unlock()
	close(s.quit)
	<-s.done
}

// assertShared checks that entries and retained topics referring to one message ID share one
// *Message.
func assertShared(t *testing.T, st *State) {
	t.Helper()
	seen := map[uint64]*Message{}
	check := func(id uint64, m *Message) {
		if m == nil || m.ID != id {
			t.Fatalf("message %d resolved to %+v", id, m)
		}
		if p, ok := seen[id]; ok && p != m {
			t.Fatalf("message %d is not shared: %p and %p", id, p, m)
		}
		seen[id] = m
	}
	for _, ss := range st.Sessions {
		for _, e := range ss.Entries {
			check(e.MsgID, e.Msg)
		}
	}
	for _, m := range st.Retained {
		check(m.ID, m)
	}
}

func TestNextMessageIDNeverReused(t *testing.T) {
	o := testOptions(t, newMem())
	s, st := mustOpen(t, o)
	if st.NextMessageID != 1 || s.NextMessageID() != 1 || s.NextMessageID() != 2 {
		t.Fatalf("fresh store: NextMessageID %d", st.NextMessageID)
	}
	var b Batch
	id := s.NextMessageID()
	b.PutMessage(msg(id, "t"))
	b.PutRetained("t", id)
	mustSync(t, s, &b)
	b.DeleteRetained("t") // the body goes at the next checkpoint, its ID must stay used
	mustSync(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, st = mustOpen(t, o)
	defer s.Close()
	if st.NextMessageID != id+1 || s.NextMessageID() != id+1 {
		t.Fatalf("after reopen NextMessageID = %d, want %d", st.NextMessageID, id+1)
	}
}

func TestCommitInvalid(t *testing.T) {
	s, _ := mustOpen(t, testOptions(t, newMem()))
	defer s.Close()
	for name, f := range map[string]func(*Batch){
		"empty client":       func(b *Batch) { b.PutSession(&Session{}) },
		"empty client entry": func(b *Batch) { b.PutEntry("", &Entry{Seq: 1, MsgID: 1}) },
		"message id 0":       func(b *Batch) { b.PutMessage(&Message{Topic: "t"}) },
		"empty topic":        func(b *Batch) { b.DeleteRetained("") },
		"too many user properties": func(b *Batch) {
			b.PutMessage(&Message{ID: 1, Topic: "t", User: make([]UserProperty, MaxUserProperties+1)})
		},
		"too many will user properties": func(b *Batch) {
			b.PutSession(&Session{ClientID: "w", Will: &Message{Topic: "t", User: make([]UserProperty, MaxUserProperties+1)}})
		},
	} {
		var b Batch
		b.PutSession(&Session{ClientID: "ok"})
		f(&b)
		before := s.wal().LastPos()
		if _, err := s.Commit(&b); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Commit = %v, want ErrInvalid", name, err)
		}
		if s.wal().LastPos() != before {
			t.Errorf("%s: an invalid batch was written", name)
		}
		b.Reset()
		if _, err := s.Commit(&b); err != nil || b.Len() != 0 {
			t.Errorf("%s: Reset did not clear the error: %v", name, err)
		}
	}
}

// TestCheckpointTruncatesAndCollects checks that a checkpoint deletes the segments below it and
// the bodies no longer referred to, and that more log after it plus a crash recovers all.
func TestCheckpointTruncatesAndCollects(t *testing.T) {
	mem := newMem()
	o := testOptions(t, mem)
	s, _ := mustOpen(t, o)
	m := newModel()
	var b Batch
	both := func(f func(ops)) { f(&b); f(m); mustSync(t, s, &b) }
	both(func(o ops) { o.PutSession(&Session{ClientID: "c", Version: 4}) })
	for i := uint64(1); i <= 40; i++ {
		both(func(o ops) {
			o.PutMessage(msg(i, fmt.Sprint("t/", i)))
			o.PutEntry("c", &Entry{Seq: i, MsgID: i, QoS: 1})
		})
	}
	for i := uint64(1); i <= 30; i++ {
		both(func(o ops) { o.DeleteEntry("c", i) })
	}
	before := s.Stats().Log.Segments
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	st := s.Stats()
	if st.Log.Segments != 1 || before < 5 || st.Checkpoints != 1 || st.CheckpointPos != s.wal().LastPos() {
		t.Fatalf("segments %d before, stats after checkpoint %+v", before, st)
	}
	if s.wal().FirstPos() > st.CheckpointPos+1 || s.wal().FirstPos() <= 2 {
		t.Fatalf("log starts at %d, checkpoint %d", s.wal().FirstPos(), st.CheckpointPos)
	}
	if n := countMessages(t, s); n != 10 {
		t.Fatalf("%d bodies in checkpoint.db, want 10 (30 of 40 acknowledged)", n)
	}
	for i := uint64(41); i <= 45; i++ {
		both(func(o ops) { o.PutMessage(msg(i, "u")); o.PutEntry("c", &Entry{Seq: i, MsgID: i, QoS: 1}) })
	}
	both(func(o ops) { o.DeleteEntry("c", 31) })
	s.quitCheckpointer() // crash: no final checkpoint
	s.wal().Close()
	s.db.Close()
	s, got := mustOpen(t, o)
	defer s.Close()
	if g, w := dump(withQueued(t, s, got)), dump(m.state()); g != w {
		t.Fatalf("recovered:\n%s\nwant:\n%s", g, w)
	}
	if n := countMessages(t, s); n != 14 {
		t.Fatalf("%d bodies after recovery, want 14", n)
	}
}

func countMessages(t *testing.T, s *Store) int {
	t.Helper()
	r, err := readReport(s)
	if err != nil {
		t.Fatal(err)
	}
	return r.Messages
}

// readReport reads the report of an open store through its own database handle.
func readReport(s *Store) (Report, error) {
	var r Report
	return r, s.db.View(r.read)
}

func TestExpiryAtOpen(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	var b Batch
	past, future := testNow.Add(-time.Second).UnixNano(), testNow.Add(time.Hour).UnixNano()
	b.PutSession(&Session{ClientID: "expired", Version: 5, Expiry: int64(time.Minute)})
	b.Disconnected("expired", testNow.Add(-time.Minute))
	b.PutSession(&Session{ClientID: "never", Version: 4, DisconnectedAt: testNow.Add(-1000 * time.Hour).UnixNano()})
	b.PutSession(&Session{ClientID: "live", Version: 5, Expiry: int64(time.Hour), DisconnectedAt: testNow.Add(-time.Minute).UnixNano()})
	old, fresh, rel := msg(1, "old"), msg(2, "fresh"), msg(3, "released")
	old.Expires, fresh.Expires, rel.Expires = past, future, past
	for _, m := range []*Message{old, fresh, rel} {
		b.PutMessage(m)
		b.PutRetained(m.Topic, m.ID)
	}
	b.PutEntry("expired", &Entry{Seq: 1, MsgID: 2, QoS: 1})
	b.PutEntry("live", &Entry{Seq: 1, MsgID: 1, QoS: 1})
	b.PutEntry("live", &Entry{Seq: 2, MsgID: 2, QoS: 1})
	b.PutEntry("live", &Entry{Seq: 3, MsgID: 3, QoS: 2, PacketID: 5, Released: true})
	mustSync(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the drop is written: the second Open finds the same
		s, st := mustOpen(t, o)
		var sessions []string
		for id := range st.Sessions {
			sessions = append(sessions, id)
		}
		if len(st.Sessions) != 2 || st.Sessions["never"] == nil || st.Sessions["live"] == nil {
			t.Fatalf("sessions after expiry: %v", sessions)
		}
		// Queued entries stay on disk, bodies unread: the engine drops an expired one when it
		// reads it back for delivery. An expired entry in flight goes now, unless it was
		// released (it still owes its PUBREL).
		live := st.Sessions["live"]
		var seqs []uint64
		for _, e := range live.Entries {
			seqs = append(seqs, e.Seq)
		}
		if fmt.Sprint(seqs) != "[3]" || live.Queued != 2 || live.QueuedFrom != 1 {
			t.Fatalf("live in flight %v, queued %d from %d; want [3], 2 from 1", seqs, live.Queued, live.QueuedFrom)
		}
		if len(st.Retained) != 1 || st.Retained["fresh"] == nil {
			t.Fatalf("retained after expiry: %v", st.Retained)
		}
		if n := countMessages(t, s); n != 3 {
			t.Fatalf("%d bodies left, want 3 (old, still queued; fresh; released)", n)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestBackgroundCheckpoint(t *testing.T) {
	o := testOptions(t, newMem())
	o.CheckpointBytes = 2000
	s, _ := mustOpen(t, o)
	defer s.Close()
	var b Batch
	b.PutSession(&Session{ClientID: "c"})
	mustSync(t, s, &b)
	for i := uint64(1); i <= 100; i++ {
		b.PutMessage(msg(i, "t"))
		b.PutEntry("c", &Entry{Seq: i, MsgID: i})
		mustSync(t, s, &b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Checkpoints == 0 {
		if time.Now().After(deadline) {
			t.Fatal("no background checkpoint after 100 batches over CheckpointBytes")
		}
		time.Sleep(5 * time.Millisecond) // poll
	}
}

func TestLockedByAnotherStore(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	defer s.Close()
	_, _, err := Open(o)
	if err == nil || !strings.Contains(err.Error(), "locked") {
		t.Fatalf("second Open = %v, want a locked error", err)
	}
}

func TestPadAfterLostTail(t *testing.T) {
	// A checkpoint under SyncNever, then a power cut that takes the log's tail: new records must
	// not reuse the checkpointed positions.
	mem := newMem()
	o := testOptions(t, mem)
	o.WAL.Sync = wal.SyncNever
	o.WAL.SegmentSize = 1 << 20
	s, _ := mustOpen(t, o)
	var b Batch
	b.PutSession(&Session{ClientID: "c"})
	mustSync(t, s, &b)
	for i := range 5 {
		b.PutSub("c", Sub{Filter: fmt.Sprint("f", i)})
		mustSync(t, s, &b)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	c := s.Stats().CheckpointPos
	lost := mem.Clone() // the records were never synced: a crash of this copy may drop them
	s.Close()
	lost.Crash(newRand(t))
	o.WAL.FS = lost
	s, st := mustOpen(t, o)
	if len(st.Sessions["c"].Subs) != 5 {
		t.Fatalf("subs %v", st.Sessions["c"].Subs)
	}
	b.PutSub("c", Sub{Filter: "after"})
	p, err := s.Commit(&b)
	if err != nil || p <= c {
		t.Fatalf("Commit after recovery = %d, %v; the checkpoint is at %d", p, err, c)
	}
	s.Wait(p)
	s.Close()
	s, st = mustOpen(t, o)
	defer s.Close()
	if len(st.Sessions["c"].Subs) != 6 {
		t.Fatalf("the record after recovery was lost: subs %v", st.Sessions["c"].Subs)
	}
}

// What recovery expires after replaying a log that no checkpoint had applied goes with its
// bodies and entries: a session that expired while the broker was down, a retained message
// whose expiry passed, and an in-flight entry whose message expired. Before, the replay's
// bodies and entries looked absent to the purge that followed it, and stayed for good.
func TestExpiryAfterReplayLeavesNothing(t *testing.T) {
	o := testOptions(t, newMem())
	o.CheckpointOps = 0
	s, _ := mustOpen(t, o)
	var b Batch
	past := testNow.Add(-time.Second).UnixNano()
	b.PutSession(&Session{ClientID: "gone", Version: 5, Expiry: int64(time.Minute)})
	b.Disconnected("gone", testNow.Add(-time.Hour))
	b.PutMessage(msg(7, "t"))
	b.PutEntry("gone", &Entry{Seq: 1, MsgID: 7, QoS: 1})
	lapsed := msg(8, "ret")
	lapsed.Expires = past
	b.PutMessage(lapsed)
	b.PutRetained("ret", 8)
	b.PutSession(&Session{ClientID: "c", Version: 5})
	stale := msg(9, "t")
	stale.Expires = past
	b.PutMessage(stale)
	b.PutEntry("c", &Entry{Seq: 1, MsgID: 9, QoS: 1, PacketID: 3})
	mustSync(t, s, &b)
	s.quitCheckpointer() // crash: Open replays all of it
	s.wal().Close()
	s.db.Close()
	s, st := mustOpen(t, o)
	defer s.Close()
	if len(st.Retained) != 0 || st.Sessions["gone"] != nil || len(st.Sessions["c"].Entries) != 0 {
		t.Fatalf("recovered %d retained, session gone %v, %d entries of c; want none of them",
			len(st.Retained), st.Sessions["gone"] != nil, len(st.Sessions["c"].Entries))
	}
	if n := countMessages(t, s); n != 0 {
		t.Fatalf("%d bodies left in checkpoint.db, want 0", n)
	}
	r, err := readReport(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, sr := range r.Sessions {
		if sr.Entries != 0 {
			t.Fatalf("%d entries of %s left in checkpoint.db, want 0", sr.Entries, sr.ClientID)
		}
	}
}

// A will's negative Expires counts from the session's disconnection: Open gives it as an
// absolute time, from the stored disconnection or, for a session connected at the stop, from
// the time of Open.
func TestRelativeWillExpiry(t *testing.T) {
	o := testOptions(t, newMem())
	s, _ := mustOpen(t, o)
	var b Batch
	will := func() *Message { return &Message{Topic: "lwt", Payload: []byte("bye"), Expires: -5e9} }
	b.PutSession(&Session{ClientID: "connected", Version: 5, Will: will()})
	b.PutSession(&Session{ClientID: "left", Version: 5, DisconnectedAt: 1e18, Will: will()})
	mustSync(t, s, &b)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, st := mustOpen(t, o)
	defer s.Close()
	if got, want := st.Sessions["connected"].Session.Will.Expires, testNow.UnixNano()+5e9; got != want {
		t.Errorf("connected at the stop: will expires %d, want %d", got, want)
	}
	if got, want := st.Sessions["left"].Session.Will.Expires, int64(1e18+5e9); got != want {
		t.Errorf("disconnected: will expires %d, want %d", got, want)
	}
}
