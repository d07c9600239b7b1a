package store

import (
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
)

// BenchmarkCommitSyncParallel measures durable commits (fdatasync on the real disk) from 16
// goroutines, each batch one 64-byte message queued for one session: the group commit shares
// fsyncs among them.
func BenchmarkCommitSyncParallel(b *testing.B) {
	o := DefaultOptions(b.TempDir())
	s, _ := mustOpen(b, o)
	var setup Batch
	for i := range 16 {
		setup.PutSession(&Session{ClientID: fmt.Sprint("c", i), Version: 4})
	}
	mustSync(b, s, &setup)
	payload := []byte(strings.Repeat("x", 64))
	var client atomic.Int64
	before := s.Stats()
	b.SetParallelism(max(1, 16/testingProcs))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		id := fmt.Sprint("c", client.Add(1)%16)
		var bt Batch
		seq := uint64(0)
		for pb.Next() {
			seq++
			m := &Message{ID: s.NextMessageID(), Topic: "sensors/temp", Payload: payload, QoS: 1}
			bt.PutMessage(m)
			bt.PutEntry(id, &Entry{Seq: seq, MsgID: m.ID, QoS: 1})
			if err := s.Sync(&bt); err != nil {
				b.Error(err)
				return
			}
			bt.Reset()
		}
	})
	b.StopTimer()
	st := s.Stats()
	fsyncs := st.Log.Fsyncs - before.Log.Fsyncs
	b.ReportMetric(float64(st.Log.Records-before.Log.Records)/float64(max(fsyncs, 1)), "records/fsync")
	b.ReportMetric(float64(st.Log.BytesWritten-before.Log.BytesWritten)/float64(b.N), "logbytes/msg")
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkRecovery measures Open of a store holding sessions x 100 queued 256-byte messages
// (each body shared by fanout sessions), all in the checkpoint, as after a clean stop.
func BenchmarkRecovery(b *testing.B) {
	for _, sessions := range []int{1000, 10000} {
		for _, fanout := range []int{1, 10} {
			if testing.Short() && sessions*100/fanout > 100000 {
				continue
			}
			b.Run(fmt.Sprintf("sessions=%d/fanout=%d", sessions, fanout), func(b *testing.B) {
				o := DefaultOptions(b.TempDir())
				s, _ := mustOpen(b, o)
				fill(b, s, sessions, fanout)
				if err := s.Close(); err != nil {
					b.Fatal(err)
				}
				dbSize := s.Stats().DBSize
				b.ResetTimer()
				for range b.N {
					s, state := mustOpen(b, o)
					if len(state.Sessions) != sessions {
						b.Fatalf("%d sessions recovered", len(state.Sessions))
					}
					b.StopTimer()
					s.Close()
					b.StartTimer()
				}
				b.ReportMetric(float64(dbSize)/(1<<20), "dbMiB")
			})
		}
	}
}

// fill queues 100 messages of 256 bytes for each of n sessions; each message goes to fanout
// consecutive sessions. It commits one batch per group of fanout sessions.
func fill(b *testing.B, s *Store, n, fanout int) {
	payload := []byte(strings.Repeat("m", 256))
	var bt Batch
	for g := 0; g < n; g += fanout {
		for c := g; c < min(n, g+fanout); c++ {
			bt.PutSession(&Session{ClientID: fmt.Sprint("client-", c), Version: 4})
			bt.PutSub(fmt.Sprint("client-", c), Sub{Filter: "fleet/#", QoS: 1})
		}
		for i := range 100 {
			m := &Message{ID: s.NextMessageID(), Topic: fmt.Sprint("fleet/", g, "/", i), Payload: payload, QoS: 1}
			bt.PutMessage(m)
			for c := g; c < min(n, g+fanout); c++ {
				bt.PutEntry(fmt.Sprint("client-", c), &Entry{Seq: uint64(i + 1), MsgID: m.ID, QoS: 1})
			}
		}
		if _, err := s.Commit(&bt); err != nil {
			b.Fatal(err)
		}
		bt.Reset()
	}
	if err := s.Sync(&bt); err != nil {
		b.Fatal(err)
	}
}

var testingProcs = runtime.GOMAXPROCS(0)

// BenchmarkCheckpointDelivered measures a checkpoint of the log of messages delivered to
// online persistent sessions: each message is routed (PutMessage, PutEntry), sent (PutEntry
// with its packet id) and acknowledged (DeleteEntry) between two checkpoints, in separate
// records, as in the durable QoS 1 benchmark. Checkpoints of 10,000 messages (about 1.4 MB of
// log) are like those of the default 8 MiB; of 1,000, like those under a small memory budget.
// Reported per message.
func BenchmarkCheckpointDelivered(b *testing.B) {
	for _, perCheckpoint := range []int{1000, 10000} {
		b.Run(fmt.Sprint("msgs=", perCheckpoint), func(b *testing.B) {
			benchmarkCheckpointDelivered(b, perCheckpoint)
		})
	}
}

func benchmarkCheckpointDelivered(b *testing.B, perCheckpoint int) {
	const clients = 4
	s, _ := mustOpen(b, DefaultOptions(b.TempDir()))
	defer s.Close()
	payload := []byte(strings.Repeat("m", 64))
	var bt Batch
	commit := func() {
		if _, err := s.Commit(&bt); err != nil {
			b.Fatal(err)
		}
		bt.Reset()
	}
	for c := range clients {
		bt.PutSession(&Session{ClientID: fmt.Sprint("client-", c), Version: 4})
	}
	commit()
	seq := uint64(0)
	for b.Loop() {
		b.StopTimer()
		for i := range perCheckpoint {
			client := fmt.Sprint("client-", i%clients)
			seq++
			m := &Message{ID: s.NextMessageID(), Topic: "bench/durable", Payload: payload, QoS: 1}
			bt.PutMessage(m)
			bt.PutEntry(client, &Entry{Seq: seq, MsgID: m.ID, QoS: 1})
			commit()
			bt.SetPacketID(client, seq, uint16(seq)) // as the engine records a QoS 1 send
			commit()
			bt.DeleteEntry(client, seq)
			commit()
		}
		b.StartTimer()
		if err := s.Checkpoint(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*perCheckpoint), "ns/msg")
}
