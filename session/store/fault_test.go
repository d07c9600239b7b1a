package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// TestEachOperationFails fails each log file operation in turn, once (a transient error) and
// from then on (ENOSPC: a full disk): the error surfaces from Commit, Wait, Sync or Checkpoint,
// and after the space comes back and the store is reopened, everything reported durable is
// there.
func TestEachOperationFails(t *testing.T) {
	n := opCount(t, (*driver).scripted)
	for _, sticky := range []bool{false, true} {
		for k := 1; k <= n; k += 1 + 3*boolInt(testing.Short()) {
			mem := waltest.NewMemFS()
			f := waltest.NewFaultFS(mem)
			f.FailAt(k, syscall.ENOSPC, sticky)
			o := testOptions(t, f)
			s, _, err := Open(o)
			if err != nil {
				if !errors.Is(err, syscall.ENOSPC) {
					t.Fatalf("k=%d: Open: %v", k, err)
				}
				continue
			}
			d := newDriver(s, nil)
			werr := d.scripted()
			if cerr := s.Close(); werr == nil && f.Fired() {
				werr = cerr // the failure hit the final checkpoint
			}
			if f.Fired() && werr == nil && sticky {
				t.Fatalf("k=%d: the full disk went unreported", k)
			}
			if werr != nil && !errors.Is(werr, syscall.ENOSPC) {
				t.Fatalf("k=%d: error %v does not wrap ENOSPC", k, werr)
			}
			f.Heal()
			verify(t, o, d.h)
		}
	}
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestDamagedLog damages the segments of a closed store: a torn or zeroed tail recovers what the
// damage left, damage in the middle fails Open with the repair command, and Repair makes the
// store open again. Nothing panics.
func TestDamagedLog(t *testing.T) {
	build := func(t *testing.T) (Options, *waltest.MemFS, []string) {
		mem := waltest.NewMemFS()
		o := testOptions(t, mem)
		s, _ := mustOpen(t, o)
		d := newDriver(s, nil)
		if err := d.setup(); err != nil {
			t.Fatal(err)
		}
		for i := range 12 {
			if err := d.publish(true, clients[i%4]); err != nil {
				t.Fatal(err)
			}
		}
		s.quitCheckpointer()
		s.wal().Close()
		s.db.Close()
		names, _ := mem.ReadDir(walPath(o.Dir))
		var segs []string
		for _, n := range names {
			if strings.HasSuffix(n, ".wal") {
				segs = append(segs, filepath.Join(walPath(o.Dir), n))
			}
		}
		if len(segs) < 3 {
			t.Fatalf("only %d segments", len(segs))
		}
		return o, mem, segs
	}
	rng := newRand(t)
	damages := map[string]func([]byte) []byte{
		"truncated": func(b []byte) []byte { return b[:len(b)-1-rng.IntN(len(b)/2)] },
		"zeroed": func(b []byte) []byte {
			b = bytes.Clone(b)
			i := 28 + rng.IntN(len(b)-28)
			clear(b[i:min(len(b), i+64)])
			return b
		},
		"bit flipped": func(b []byte) []byte {
			b = bytes.Clone(b)
			i := rng.IntN(len(b))
			b[i] ^= 1 << rng.IntN(8)
			return b
		},
	}
	for name, damage := range damages {
		for _, where := range []string{"last", "middle"} {
			t.Run(name+"/"+where, func(t *testing.T) {
				for range 10 {
					o, mem, segs := build(t)
					seg := segs[len(segs)-1]
					if where == "middle" {
						seg = segs[1]
					}
					if err := mem.WriteFile(seg, damage(mem.Snapshot(seg))); err != nil {
						t.Fatal(err)
					}
					s, _, err := Open(o)
					if err == nil {
						s.Close()
						continue
					}
					if !errors.Is(err, wal.ErrCorrupt) || !strings.Contains(err.Error(), "edgebroker repair --data-dir "+o.Dir) ||
						!strings.Contains(err.Error(), filepath.Base(seg)) || strings.Contains(err.Error(), "\n") {
						t.Fatalf("Open on a damaged log: %v", err)
					}
					if where == "last" && name != "bit flipped" {
						t.Fatalf("a torn tail must recover: %v", err)
					}
					msg, err := Repair(o)
					if err != nil || !strings.Contains(msg, ".broken") {
						t.Fatalf("Repair = %q, %v", msg, err)
					}
					s, _ = mustOpen(t, o)
					s.Close()
				}
			})
		}
	}
}

// TestGarbageCheckpoint gives Open and Inspect checkpoint files that are not checkpoints.
func TestGarbageCheckpoint(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	junk := make([]byte, 64<<10)
	for i := range junk {
		junk[i] = byte(rng.Uint32())
	}
	good := func(t *testing.T) Options {
		o := testOptions(t, waltest.NewMemFS())
		s, _ := mustOpen(t, o)
		var b Batch
		b.PutSession(&Session{ClientID: "c"})
		mustSync(t, s, &b)
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
		return o
	}
	cases := map[string]func(t *testing.T, path string){
		"random bytes": func(t *testing.T, path string) { os.WriteFile(path, junk, 0o600) },
		"empty file":   func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) },
		"text":         func(t *testing.T, path string) { os.WriteFile(path, []byte("not a database\n"), 0o600) },
		"pages zeroed": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			clear(b[:8192])
			os.WriteFile(path, b, 0o600)
		},
		"data pages scrambled": func(t *testing.T, path string) {
			b, _ := os.ReadFile(path)
			for i := 8192; i < len(b); i++ {
				b[i] = byte(rng.Uint32())
			}
			os.WriteFile(path, b, 0o600)
		},
	}
	for name, damage := range cases {
		t.Run(name, func(t *testing.T) {
			o := good(t)
			damage(t, dbPath(o.Dir))
			s, _, err := Open(o)
			if err == nil {
				s.Close()
				if name != "empty file" {
					t.Fatalf("Open accepted a damaged checkpoint")
				}
			} else if !strings.Contains(err.Error(), "checkpoint") && !strings.Contains(err.Error(), dbPath(o.Dir)) {
				t.Fatalf("unclear error: %v", err)
			}
			if _, err := Inspect(o.Dir); err == nil && name != "empty file" {
				t.Fatalf("Inspect accepted a damaged checkpoint")
			}
		})
	}
}

// TestReopenAfterFullDisk: a full disk fails the log; once space returns, Reopen makes the store
// take commits again, and a later Open finds everything reported durable before and after.
func TestReopenAfterFullDisk(t *testing.T) {
	mem := waltest.NewMemFS()
	f := waltest.NewFaultFS(mem)
	o := testOptions(t, f)
	s, _ := mustOpen(t, o)
	var b Batch
	b.PutSession(&Session{ClientID: "before"})
	if err := s.Sync(&b); err != nil {
		t.Fatal(err)
	}
	f.FailAt(1, syscall.ENOSPC, true) // the disk is full from the next operation on
	b.Reset()
	b.PutSession(&Session{ClientID: "lost"})
	if err := s.Sync(&b); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("Sync on a full disk: %v, want ENOSPC", err)
	}
	if err := s.Reopen(); err == nil {
		b.Reset()
		b.PutSession(&Session{ClientID: "still-full"})
		if err := s.Sync(&b); err == nil {
			t.Fatal("a commit succeeded while the disk is still full")
		}
	}
	f.Heal()
	if err := s.Reopen(); err != nil {
		t.Fatalf("Reopen after space returned: %v", err)
	}
	b.Reset()
	b.PutSession(&Session{ClientID: "after"})
	if err := s.Sync(&b); err != nil {
		t.Fatalf("Sync after Reopen: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, st := mustOpen(t, o)
	defer s.Close()
	for _, id := range []string{"before", "after"} {
		if st.Sessions[id] == nil {
			t.Errorf("session %q reported durable is missing", id)
		}
	}
}

// The log's counters ($SYS disk/bytes written, disk/fsyncs) stay cumulative across the Reopen
// that follows a failed write: the new log starts its own from zero.
func TestStatsAcrossReopen(t *testing.T) {
	f := waltest.NewFaultFS(waltest.NewMemFS())
	s, _ := mustOpen(t, testOptions(t, f))
	defer s.Close()
	var b Batch
	for i := range 20 {
		b.PutSession(&Session{ClientID: fmt.Sprint("c", i)})
		mustSync(t, s, &b)
	}
	before := s.Stats().Log
	f.FailAt(1, syscall.ENOSPC, true)
	b.PutSession(&Session{ClientID: "lost"})
	if err := s.Sync(&b); err == nil {
		t.Fatal("a commit succeeded on a full disk")
	}
	b.Reset()
	f.Heal()
	if err := s.Reopen(); err != nil {
		t.Fatal(err)
	}
	after := s.Stats().Log
	if after.BytesWritten < before.BytesWritten || after.Fsyncs < before.Fsyncs || after.Records < before.Records {
		t.Fatalf("counters went back across Reopen: %+v, then %+v", before, after)
	}
}
