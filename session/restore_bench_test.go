package session

import (
	"fmt"
	"testing"

	"edgebroker/session/store"
)

// BenchmarkRecovery measures a restart: store.Open (checkpoint plus log) and Restore of
// sessions x queued messages, as the recovery target (10,000 x 100 x 256 B under 3 s)
// describes. Sizes are kept small under -short.
func BenchmarkRecovery(b *testing.B) {
	sessions, perSession := 10000, 100
	if testing.Short() {
		sessions, perSession = 200, 20
	}
	dir := b.TempDir()
	st, _, err := store.Open(store.DefaultOptions(dir))
	if err != nil {
		b.Fatal(err)
	}
	payload := make([]byte, 256)
	var batch store.Batch
	for i := range sessions {
		id := fmt.Sprint("client-", i)
		batch.Reset()
		batch.PutSession(&store.Session{ClientID: id, Version: 4})
		batch.PutSub(id, store.Sub{Filter: "devices/" + id + "/#", QoS: 1})
		for j := range perSession {
			mid := st.NextMessageID()
			batch.PutMessage(&store.Message{ID: mid, Topic: "devices/" + id + "/t", Payload: payload, QoS: 1})
			batch.PutEntry(id, &store.Entry{Seq: uint64(j + 1), MsgID: mid, QoS: 1})
		}
		if _, err := st.Commit(&batch); err != nil {
			b.Fatal(err)
		}
	}
	if err := st.Close(); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for range b.N {
		st, state, err := store.Open(store.DefaultOptions(dir))
		if err != nil {
			b.Fatal(err)
		}
		opts := DefaultOptions()
		opts.Store = st
		opts.SysInterval = 0
		br, err := New(opts)
		if err != nil {
			b.Fatal(err)
		}
		br.Restore(state)
		b.StopTimer()
		if n := br.SessionCount(); n != sessions {
			b.Fatalf("%d sessions restored, want %d", n, sessions)
		}
		br.Close(b.Context())
		st.Close()
		b.StartTimer()
	}
}
