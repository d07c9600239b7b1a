package store

import (
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgebroker/wal"
)

// txID is the id of checkpoint.db's last committed write transaction.
func txID(t *testing.T, s *Store) int {
	t.Helper()
	var id int
	if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// openBounded opens a test store whose checkpoint transactions apply at most 10 operations.
func openBounded(t *testing.T) *Store {
	o := testOptions(t, newMem())
	o.CheckpointOps = 10
	s, _ := mustOpen(t, o)
	t.Cleanup(func() { s.Close() })
	return s
}

// queueMessages stores session "c" and n messages queued for it, one record (2 operations)
// each.
func queueMessages(t *testing.T, s *Store, n uint64) {
	var b Batch
	b.PutSession(&Session{ClientID: "c", Version: 4})
	mustSync(t, s, &b)
	for seq := uint64(1); seq <= n; seq++ {
		id := s.NextMessageID()
		b.PutMessage(msg(id, "t"))
		b.PutEntry("c", &Entry{Seq: seq, MsgID: id, QoS: 1})
		mustSync(t, s, &b)
	}
}

func TestCheckpointCommitsInBoundedTransactions(t *testing.T) {
	s := openBounded(t)
	queueMessages(t, s, 100)
	before := txID(t, s)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n := txID(t, s) - before; n < 20 || n > 21 {
		t.Fatalf("checkpoint of 201 operations took %d transactions, want 20 or 21 (10 operations, whole records)", n)
	}
	if s.CheckpointPos() != s.wal().LastPos() {
		t.Fatalf("checkpoint at %d, log ends at %d", s.CheckpointPos(), s.wal().LastPos())
	}
	es, err := s.ReadQueued("c", 1, 1000)
	if err != nil || len(es) != 100 || es[99].Seq != 100 || es[99].Msg == nil || es[99].Msg.Topic != "t" {
		t.Fatalf("ReadQueued after the checkpoint: %d entries, %v", len(es), err)
	}
	m, err := s.ReadMessage(es[42].MsgID)
	if err != nil || m == nil || m.ID != es[42].MsgID {
		t.Fatalf("ReadMessage(%d) = %+v, %v", es[42].MsgID, m, err)
	}
	if m, err := s.ReadMessage(1 << 40); m != nil || err != nil {
		t.Fatalf("ReadMessage of an unknown id = %+v, %v; want nil, nil", m, err)
	}
}

// Each entry of a list operation counts against CheckpointOps: one record deleting a drained
// backlog must not make one transaction hold every page it touches.
func TestCheckpointCountsListEntries(t *testing.T) {
	s := openBounded(t)
	var b Batch
	b.PutSession(&Session{ClientID: "c", Version: 4})
	for seq := uint64(1); seq <= 100; seq++ {
		id := s.NextMessageID()
		b.PutMessage(msg(id, "t"))
		b.PutEntry("c", &Entry{Seq: seq, MsgID: id, QoS: 1})
	}
	mustSync(t, s, &b)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	for i := range 10 { // 10 records: 10 packet ids, then 10 deletions each
		for seq := uint64(i*10 + 1); seq <= uint64(i*10+10); seq++ {
			b.SetPacketID("c", seq, uint16(seq))
		}
		for seq := uint64(i*10 + 1); seq <= uint64(i*10+10); seq++ {
			b.DeleteEntry("c", seq)
		}
		mustSync(t, s, &b)
	}
	before := txID(t, s)
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	if n := txID(t, s) - before; n != 10 {
		t.Fatalf("checkpoint of 10 records of 20 entries each took %d transactions, want 10 (one per record)", n)
	}
	if es, err := s.ReadQueued("c", 1, 1000); err != nil || len(es) != 0 {
		t.Fatalf("ReadQueued after the checkpoint: %d entries, %v", len(es), err)
	}
}

// ReadQueued sees only the checkpoint, skips in-flight entries and reads from a position on.
func TestReadQueued(t *testing.T) {
	s, _ := mustOpen(t, testOptions(t, newMem()))
	defer s.Close()
	var b Batch
	b.PutSession(&Session{ClientID: "c", Version: 5})
	b.PutMessage(msg(1, "a"))
	b.PutEntry("c", &Entry{Seq: 1, MsgID: 1, QoS: 2, PacketID: 7}) // in flight
	b.PutEntry("c", &Entry{Seq: 2, MsgID: 1, QoS: 1})
	b.PutEntry("c", &Entry{Seq: 3, MsgID: 1, QoS: 1})
	mustSync(t, s, &b)
	if es, err := s.ReadQueued("c", 0, 10); err != nil || len(es) != 0 {
		t.Fatalf("before a checkpoint: %d entries, %v; want none", len(es), err)
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	es, err := s.ReadQueued("c", 0, 10)
	if err != nil || len(es) != 2 || es[0].Seq != 2 || es[1].Seq != 3 || es[0].Msg != es[1].Msg {
		t.Fatalf("ReadQueued = %+v, %v; want seqs 2, 3 sharing one message", es, err)
	}
	if es, _ := s.ReadQueued("c", 3, 10); len(es) != 1 || es[0].Seq != 3 {
		t.Fatalf("from 3: %+v", es)
	}
	if es, _ := s.ReadQueued("nobody", 0, 10); len(es) != 0 {
		t.Fatalf("unknown client: %+v", es)
	}
}

// Throttle holds a writer while the log runs more than maxLag checkpoints' worth ahead, until
// a checkpoint begins.
func TestThrottleWaitsForTheCheckpointer(t *testing.T) {
	o := testOptions(t, newMem())
	o.CheckpointBytes = 1 << 10
	s, _ := mustOpen(t, o)
	defer s.Close()
	s.ckptMu.Lock() // the checkpointer cannot begin
	var b Batch
	for s.sinceCkpt.Load() <= s.lagLimit() {
		b.PutSession(&Session{ClientID: "c", Version: 4})
		if _, err := s.Commit(&b); err != nil {
			t.Fatal(err)
		}
		b.Reset()
	}
	released := make(chan struct{})
	go func() {
		s.Throttle()
		close(released)
	}()
	select {
	case <-released:
		t.Fatal("Throttle returned while the log is far ahead and no checkpoint began")
	case <-time.After(throttleWait / 4):
	}
	s.ckptMu.Unlock()
	select {
	case <-released:
	case <-time.After(throttleWait / 2):
		t.Fatal("Throttle still waiting after a checkpoint began")
	}
	if s.sinceCkpt.Load() > s.lagLimit() {
		t.Fatalf("%d bytes ahead after the checkpoint began", s.sinceCkpt.Load())
	}
}

// The log's padding counts towards CheckpointBytes: at one small record per sync, most of the
// disk the log takes is padding, and checkpoints must still bound it.
func TestPaddingCountsTowardsACheckpoint(t *testing.T) {
	o := testOptions(t, newMem())
	o.WAL.SegmentSize = 1 << 20
	o.WAL.PadTo = 4096
	o.CheckpointBytes = 32 << 10
	s, _ := mustOpen(t, o)
	defer s.Close()
	var b Batch
	records := 0
	for i := range 16 { // 16 syncs: 64 KiB of log with padding, 16 records of a few bytes
		b.PutSession(&Session{ClientID: fmt.Sprint("c", i), Version: 4})
		records += b.Size()
		mustSync(t, s, &b)
	}
	if records >= int(o.CheckpointBytes)/8 {
		t.Fatalf("the records alone are %d bytes: the test needs them far below CheckpointBytes", records)
	}
	deadline := time.Now().Add(10 * time.Second)
	for s.Stats().Checkpoints == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if st := s.Stats(); st.Checkpoints == 0 {
		t.Fatalf("no checkpoint after %d bytes of log (%d of them padding)", st.Log.BytesWritten, st.Log.Padding)
	}
}

// Commits racing each other read the log's padding count in any order: each byte of padding
// is counted once, and a count read late counts nothing again.
func TestPaddingIsCountedOnce(t *testing.T) {
	s, _ := mustOpen(t, testOptions(t, newMem()))
	defer s.Close()
	for _, step := range []struct{ pad, want int64 }{{100, 100}, {40, 0}, {100, 0}, {150, 50}} {
		if got := s.newPadding(step.pad); got != step.want {
			t.Fatalf("newPadding(%d) = %d, want %d", step.pad, got, step.want)
		}
	}
}

// A read of large messages stops once their payloads reach maxReadBytes: at least one
// message, at most one past the bound; small ones come up to max.
func TestReadQueuedBoundsBytes(t *testing.T) {
	s, _ := mustOpen(t, testOptions(t, newMem()))
	defer s.Close()
	const big = 100 << 10
	queueOffline(t, s, "big", 1, 10, big)
	queueOffline(t, s, "huge", 100, 2, 2*maxReadBytes)
	queueOffline(t, s, "small", 200, 40, 100)
	want := (maxReadBytes + big - 1) / big // the first that reaches the bound is the last
	for from, n := uint64(1), 0; from <= 10; from += uint64(n) {
		es, err := s.ReadQueued("big", from, 32)
		if err != nil {
			t.Fatal(err)
		}
		if n = len(es); n == 0 || n > want || from+uint64(n) <= 10 && n != want {
			t.Fatalf("read from %d: %d messages of %d bytes; want %d (bound %d)", from, n, big, want, maxReadBytes)
		}
		for i, e := range es {
			if e.Seq != from+uint64(i) || e.Msg == nil || len(e.Msg.Payload) != big {
				t.Fatalf("read from %d: entry %d is %+v", from, i, e)
			}
		}
	}
	if es, err := s.ReadQueued("huge", 0, 32); err != nil || len(es) != 1 || es[0].Msg == nil {
		t.Fatalf("ReadQueued(huge) = %d entries, %v; want the first message alone", len(es), err)
	}
	if es, err := s.ReadQueued("small", 0, 32); err != nil || len(es) != 32 {
		t.Fatalf("ReadQueued(small) = %d entries, %v; want 32", len(es), err)
	}
}

// A background checkpoint gives way to queue reads between its transactions: it waits while
// reads go on, and goes on when they stop, when CheckpointSoon asks, or once the log is as
// far ahead as Throttle allows.
func TestCheckpointGivesWayToReads(t *testing.T) {
	s := openBounded(t)
	queueMessages(t, s, 50) // 10 transactions
	stopReads, readsDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(readsDone)
		for {
			select {
			case <-stopReads:
				return
			default:
			}
			if _, err := s.ReadQueued("c", 1, 10); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	for before := s.reads.Load(); s.reads.Load() == before; {
		time.Sleep(time.Millisecond)
	}
	// With the log as far ahead as Throttle allows, reads do not hold a checkpoint back.
	reads := s.reads.Load() - 1
	s.sinceCkpt.Store(s.lagLimit())
	returned := make(chan struct{})
	go func() { s.giveWay(&reads); close(returned) }()
	select {
	case <-returned:
	case <-time.After(5 * time.Second):
		t.Fatal("giveWay waits with the log at Throttle's limit")
	}
	s.sinceCkpt.Store(0)

	start := s.CheckpointPos()
	ckpt := make(chan error, 1)
	go func() { ckpt <- s.backgroundCheckpoint() }()
	waitMoved := func(from wal.Pos, what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for s.CheckpointPos() == from {
			if time.Now().After(deadline) {
				t.Fatal(what)
			}
			time.Sleep(time.Millisecond)
		}
	}
	waitMoved(start, "no checkpoint transaction committed")
	time.Sleep(20 * giveWayStep)
	if p, last := s.CheckpointPos(), s.wal().LastPos(); p >= last {
		t.Fatalf("checkpoint at %d of %d while queues are read: want it to wait between transactions", p, last)
	}

	// CheckpointSoon lets one more transaction through.
	p := s.CheckpointPos()
	s.CheckpointSoon()
	waitMoved(p, "CheckpointSoon did not move a checkpoint that gives way")

	close(stopReads)
	<-readsDone
	select {
	case err := <-ckpt:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the checkpoint still gives way after the reads stopped")
	}
	if p, last := s.CheckpointPos(), s.wal().LastPos(); p != last {
		t.Fatalf("checkpoint at %d, log ends at %d", p, last)
	}
}
