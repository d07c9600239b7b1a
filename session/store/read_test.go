package store

import (
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
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

func TestCheckpointCommitsInBoundedTransactions(t *testing.T) {
	o := testOptions(t, newMem())
	o.CheckpointOps = 10
	s, _ := mustOpen(t, o)
	defer s.Close()
	var b Batch
	b.PutSession(&Session{ClientID: "c", Version: 4})
	mustSync(t, s, &b)
	for seq := uint64(1); seq <= 100; seq++ {
		id := s.NextMessageID()
		b.PutMessage(msg(id, "t"))
		b.PutEntry("c", &Entry{Seq: seq, MsgID: id, QoS: 1})
		mustSync(t, s, &b) // 2 operations per record
	}
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
	for s.sinceCkpt.Load() <= maxLag*o.CheckpointBytes {
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
	if s.sinceCkpt.Load() > maxLag*o.CheckpointBytes {
		t.Fatalf("%d bytes ahead after the checkpoint began", s.sinceCkpt.Load())
	}
}
