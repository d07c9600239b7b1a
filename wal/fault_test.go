package wal_test

import (
	"errors"
	"math/rand/v2"
	"strings"
	"syscall"
	"testing"
	"time"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// runFaulty opens a log on f, arms the fault, runs the scripted workload and checks that the
// fault surfaced, poisoned the log with the same error, and broke no promise.
func runFaulty(t *testing.T, m *waltest.MemFS, f *waltest.FaultFS, k int, fault error, sticky bool) *history {
	t.Helper()
	l := mustOpen(t, memOptions(f, 256))
	f.FailAt(k, fault, sticky)
	h := newHistory()
	werr := scriptedWorkload(l, h)
	if !f.Fired() {
		l.Close()
		return nil
	}
	if werr == nil {
		// The workload's last call returned before the failing operation ran.
		werr = l.WaitDurable(l.LastPos())
	}
	if !errors.Is(werr, wal.ErrFailed) || !errors.Is(werr, fault) {
		t.Fatalf("fault at %d: workload error %v, want ErrFailed wrapping %v", k, werr, fault)
	}
	if !strings.HasPrefix(werr.Error(), "wal: log failed: ") {
		t.Fatalf("fault at %d: error %q lacks the prefix", k, werr)
	}
	// Poisoned: every later call fails the same way, even once the fault is gone.
	f.Heal()
	if _, err := l.Append([]byte("x")); err == nil || err.Error() != werr.Error() {
		t.Fatalf("fault at %d: Append after failure = %v, want %v", k, err, werr)
	}
	if err := l.WaitDurable(1); err != nil && err.Error() != werr.Error() {
		t.Fatalf("fault at %d: WaitDurable after failure = %v", k, err)
	}
	if err := l.Close(); !errors.Is(err, fault) {
		t.Fatalf("fault at %d: Close = %v, want the poison error", k, err)
	}
	if n := f.Count(); n != 0 {
		t.Fatalf("fault at %d: the poisoned log did %d file operations", k, n)
	}
	verify(t, m.Clone(), h) // a restart
	m.Crash(rand.New(rand.NewPCG(uint64(k), 3)))
	verify(t, m, h) // a power cut
	return h
}

func TestFailEachOperation(t *testing.T) {
	n := opCount(t, scriptedWorkload)
	for k := 1; k <= n; k++ {
		m := waltest.NewMemFS()
		runFaulty(t, m, waltest.NewFaultFS(m), k, syscall.EIO, false)
	}
}

func TestDiskFull(t *testing.T) {
	n := opCount(t, scriptedWorkload)
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 4))
	for range 20 {
		m := waltest.NewMemFS()
		f := waltest.NewFaultFS(m)
		k := 1 + rng.IntN(n*3/4) // the count varies a little with batching
		h := runFaulty(t, m, f, k, syscall.ENOSPC, true)
		if h == nil {
			t.Fatalf("ENOSPC at %d of %d never happened", k, n)
		}
		// Space is back: the log opens (through the same FS) and takes appends.
		l := mustOpen(t, memOptions(f, 256))
		if _, err := l.AppendSync(record(7), record(8)); err != nil {
			t.Fatalf("AppendSync after the space returned: %v", err)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpenFailsCleanly(t *testing.T) {
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 256))
	h := newHistory()
	if err := scriptedWorkload(l, h); err != nil {
		t.Fatal(err)
	}
	l.Close()
	for k := 1; ; k++ {
		c := m.Clone()
		f := waltest.NewFaultFS(c)
		f.FailAt(k, syscall.EIO, false)
		l, err := wal.Open(memOptions(f, 256))
		if !f.Fired() {
			if err != nil {
				t.Fatal(err)
			}
			l.Close()
			return
		}
		if err == nil {
			l.Close()
		} else if !errors.Is(err, syscall.EIO) {
			t.Fatalf("Open with operation %d failing: %v", k, err)
		}
		verify(t, c, h)
	}
}
