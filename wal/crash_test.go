package wal_test

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

var errPowerCut = errors.New("power cut")

// history is what a workload was told: the records appended and what was reported durable.
type history struct {
	mu       sync.Mutex
	recs     map[wal.Pos][]byte // every record whose Append returned nil
	durable  wal.Pos            // the highest p for which WaitDurable(p) returned nil
	truncate wal.Pos            // the highest p passed to TruncateBefore
}

func newHistory() *history { return &history{recs: map[wal.Pos][]byte{}} }

func (h *history) appended(last wal.Pos, recs [][]byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, r := range recs {
		h.recs[last-wal.Pos(len(recs)-1-i)] = r
	}
}

func (h *history) madeDurable(p wal.Pos) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.durable = max(h.durable, p)
}

// scriptedWorkload appends records of varied sizes across several segment rolls, with single
// and batched appends, WaitDurable calls and TruncateBefore, until the first error.
func scriptedWorkload(l *wal.Log, h *history) error {
	for i := 1; i <= 40; i++ {
		recs := [][]byte{record(i)}
		if i%3 == 0 {
			recs = append(recs, record(1000+i))
		}
		last, err := l.Append(recs...)
		if err != nil {
			return err
		}
		h.appended(last, recs)
		if i%4 == 1 {
			continue // leave some appends for a later WaitDurable to cover
		}
		if err := l.WaitDurable(last); err != nil {
			return err
		}
		h.madeDurable(last)
		if i == 20 || i == 33 {
			p := last - 6
			h.truncate = max(h.truncate, p)
			if err := l.TruncateBefore(p); err != nil {
				return err
			}
		}
	}
	return nil
}

// randomWorkload runs four appenders at once, each appending and waiting with random sizes.
func randomWorkload(l *wal.Log, h *history, seed uint64) error {
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for g := range errs {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(seed, uint64(g)))
			for range 25 {
				recs := make([][]byte, 1+rng.IntN(3))
				for i := range recs {
					recs[i] = record(rng.IntN(1 << 20))
				}
				last, err := l.Append(recs...)
				if err != nil {
					errs[g] = err
					return
				}
				h.appended(last, recs)
				if rng.IntN(4) == 0 {
					continue
				}
				if err := l.WaitDurable(last); err != nil {
					errs[g] = err
					return
				}
				h.madeDurable(last)
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// verify opens the log on fsys and checks it against h: every record reported durable (and not
// below a truncation point) is there, every record there was appended with identical bytes, in
// order, and the log takes appends again (so fsys changes).
func verify(t *testing.T, fsys wal.FS, h *history) {
	t.Helper()
	l, err := wal.Open(memOptions(fsys, 256))
	if err != nil {
		t.Fatalf("Open after crash: %v", err)
	}
	defer l.Close()
	first := l.FirstPos()
	got := replayAll(t, l, first-1)
	last := first - 1 + wal.Pos(len(got))
	if last != l.LastPos() {
		t.Fatalf("replayed up to %d, LastPos %d", last, l.LastPos())
	}
	if need := max(h.truncate, 1); h.durable >= need && first > need {
		t.Fatalf("log starts at %d, but records from %d to %d were durable", first, need, h.durable)
	}
	if last < h.durable {
		t.Fatalf("log ends at %d, but records up to %d were durable", last, h.durable)
	}
	for _, e := range got {
		want, ok := h.recs[e.pos]
		if !ok {
			t.Fatalf("record %d was never appended: %q", e.pos, e.rec)
		}
		if !bytes.Equal(e.rec, want) {
			t.Fatalf("record %d = %q, want %q", e.pos, e.rec, want)
		}
	}
	p, err := l.AppendSync([]byte("after recovery"))
	if err != nil || p != last+1 {
		t.Fatalf("AppendSync after recovery = %d, %v; want %d", p, err, last+1)
	}
}

// cutAt runs the workload on a fresh MemFS with the power cut at operation k, crashes it and
// returns the crashed file system. It reports whether the cut happened.
func cutAt(t *testing.T, k int, rng *rand.Rand, h *history, work func(*wal.Log, *history) error) (*waltest.MemFS, bool) {
	t.Helper()
	m := waltest.NewMemFS()
	f := waltest.NewFaultFS(m)
	f.FailAt(k, errPowerCut, true)
	l, err := wal.Open(memOptions(f, 256))
	if err == nil {
		werr := work(l, h)
		if cerr := l.Close(); werr == nil && cerr != nil && f.Fired() {
			werr = cerr
		}
		if f.Fired() != (werr != nil) {
			t.Fatalf("cut at %d: fault fired %v, but the workload returned %v", k, f.Fired(), werr)
		}
		if werr != nil && !errors.Is(werr, errPowerCut) {
			t.Fatalf("cut at %d: workload error %v does not wrap the fault", k, werr)
		}
	}
	fired := f.Fired()
	m.Crash(rng)
	return m, fired
}

// opCount returns how many FS operations the workload does without faults.
func opCount(t *testing.T, work func(*wal.Log, *history) error) int {
	f := waltest.NewFaultFS(waltest.NewMemFS())
	l := mustOpen(t, memOptions(f, 256))
	if err := work(l, newHistory()); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return f.Count()
}

func TestPowerCutAtEveryOperation(t *testing.T) {
	n := opCount(t, scriptedWorkload)
	seed := uint64(time.Now().UnixNano())
	t.Logf("%d operations; seed %d", n, seed)
	rng := rand.New(rand.NewPCG(seed, 1))
	for k := 1; k <= n+1; k++ {
		h := newHistory()
		m, fired := cutAt(t, k, rng, h, scriptedWorkload)
		if !fired && k <= n/2 {
			t.Fatalf("cut at %d of %d never happened", k, n)
		}
		verify(t, m.Clone(), h)
		if k%5 == 0 || !testing.Short() {
			crashDuringRecovery(t, m, h, rng)
		}
	}
}

// crashDuringRecovery cuts power at every operation of Open on copies of m, and checks that a
// later Open still recovers everything.
func crashDuringRecovery(t *testing.T, m *waltest.MemFS, h *history, rng *rand.Rand) {
	t.Helper()
	for j := 1; ; j++ {
		c := m.Clone()
		f := waltest.NewFaultFS(c)
		f.FailAt(j, errPowerCut, true)
		if l, err := wal.Open(memOptions(f, 256)); err == nil {
			l.Close()
		} else if !errors.Is(err, errPowerCut) {
			t.Fatalf("Open with a cut at operation %d: %v", j, err)
		}
		if !f.Fired() {
			return
		}
		c.Crash(rng)
		verify(t, c, h)
	}
}

func TestPowerCutRandom(t *testing.T) {
	runs := 200
	if !testing.Short() {
		runs = 3000
	}
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d (runs %d)", seed, runs)
	rng := rand.New(rand.NewPCG(seed, 2))
	work := func(l *wal.Log, h *history) error { return randomWorkload(l, h, rng.Uint64()) }
	n := opCount(t, work)
	for range runs {
		h := newHistory()
		m, _ := cutAt(t, 1+rng.IntN(n), rng, h, work)
		verify(t, m, h)
	}
}

// A power cut on a disk that persists a write's sectors out of order (CrashOutOfOrder) can
// leave damage with valid records after it in the last write, which was never synced. Open
// takes that for damage in the middle and refuses to start, or cuts it as a torn tail; either
// way, Open (after Repair when it refused) gives back every acknowledged record, in order,
// followed by no more than a prefix of the last write.
func TestPowerCutOutOfOrder(t *testing.T) {
	refused := 0
	for seed := range 300 {
		rng := rand.New(rand.NewPCG(uint64(seed), 11))
		m := waltest.NewMemFS()
		f := waltest.NewFaultFS(m)
		l := mustOpen(t, memOptions(f, 1<<20))
		n := 0
		write := func(k int) [][]byte {
			var recs [][]byte
			for range k {
				n++
				recs = append(recs, bytes.Repeat([]byte{byte(n)}, 50+rng.IntN(700)))
			}
			return recs
		}
		var acked [][]byte
		for range 1 + rng.IntN(8) {
			recs := write(1 + rng.IntN(5))
			if _, err := l.AppendSync(recs...); err != nil {
				t.Fatal(err)
			}
			acked = append(acked, recs...)
		}
		// The last write reaches the disk; its sync fails, and the power goes.
		f.FailAt(2, errPowerCut, true)
		last := write(2 + rng.IntN(7))
		if _, err := l.AppendSync(last...); err == nil {
			t.Fatalf("seed %d: the last write's sync did not fail", seed)
		}
		l.Close()
		m.CrashOutOfOrder(rng)
		o := memOptions(m, 1<<20)
		l, err := wal.Open(o)
		if errors.Is(err, wal.ErrCorrupt) {
			refused++
			if _, err := wal.Repair(o); err != nil {
				t.Fatalf("seed %d: Repair: %v", seed, err)
			}
			l, err = wal.Open(o)
		}
		if err != nil {
			t.Fatalf("seed %d: Open: %v", seed, err)
		}
		got := replayAll(t, l, 0)
		l.Close()
		want := append(acked, last...)
		if len(got) < len(acked) || len(got) > len(want) {
			t.Fatalf("seed %d: %d records back, want %d acknowledged and at most %d", seed, len(got), len(acked), len(want))
		}
		for i, e := range got {
			if !bytes.Equal(e.rec, want[i]) {
				t.Fatalf("seed %d: record %d is not what was written", seed, i+1)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no power cut left damage before a valid record: the test does not test that")
	}
	t.Logf("Open refused %d of 300 logs; Repair brought every acknowledged record back", refused)
}
