package limits

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestBudgetTable(t *testing.T) {
	type step struct {
		op   string // reserve, release, setlimit
		n    int64
		ok   bool // reserve result
		used int64
	}
	tests := []struct {
		name     string
		limit    int64
		steps    []step
		pressure float64 // after the steps
	}{
		{name: "idle", limit: 100, pressure: 0},
		{
			name:  "fill exactly, then refuse",
			limit: 100,
			steps: []step{
				{op: "reserve", n: 60, ok: true, used: 60},
				{op: "reserve", n: 41, ok: false, used: 60},
				{op: "reserve", n: 40, ok: true, used: 100},
				{op: "reserve", n: 1, ok: false, used: 100},
				{op: "reserve", n: 0, ok: true, used: 100},
			},
			pressure: 1,
		},
		{
			name:  "release makes room",
			limit: 100,
			steps: []step{
				{op: "reserve", n: 100, ok: true, used: 100},
				{op: "release", n: 30, used: 70},
				{op: "reserve", n: 30, ok: true, used: 100},
				{op: "release", n: 0, used: 100},
				{op: "release", n: -5, used: 100},
				{op: "release", n: 75, used: 25},
			},
			pressure: 0.25,
		},
		{
			name:  "negative and huge requests",
			limit: 100,
			steps: []step{
				{op: "reserve", n: -1, ok: false, used: 0},
				{op: "reserve", n: 1 << 62, ok: false, used: 0},
			},
		},
		{
			name:  "lower the limit below use",
			limit: 100,
			steps: []step{
				{op: "reserve", n: 80, ok: true, used: 80},
				{op: "setlimit", n: 40, used: 80},
				{op: "reserve", n: 1, ok: false, used: 80},
				{op: "release", n: 50, used: 30},
				{op: "reserve", n: 10, ok: true, used: 40},
			},
			pressure: 1,
		},
		{
			name:  "charge passes the limit, then reservations wait for releases",
			limit: 100,
			steps: []step{
				{op: "reserve", n: 70, ok: true, used: 70},
				{op: "charge", n: 50, used: 120},
				{op: "charge", n: -5, used: 120},
				{op: "reserve", n: 0, ok: false, used: 120},
				{op: "release", n: 40, used: 80},
				{op: "reserve", n: 20, ok: true, used: 100},
			},
			pressure: 1,
		},
		{
			name:     "zero and negative limits hold nothing",
			limit:    -10,
			steps:    []step{{op: "reserve", n: 1, ok: false}, {op: "setlimit", n: 0}},
			pressure: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := NewBudget(tt.limit)
			if b.Limit() != max(tt.limit, 0) {
				t.Fatalf("Limit %d, want %d", b.Limit(), max(tt.limit, 0))
			}
			for i, s := range tt.steps {
				switch s.op {
				case "reserve":
					if ok := b.TryReserve(s.n); ok != s.ok {
						t.Fatalf("step %d: TryReserve(%d) = %v, want %v", i, s.n, ok, s.ok)
					}
				case "release":
					b.Release(s.n)
				case "charge":
					b.Charge(s.n)
				case "setlimit":
					b.SetLimit(s.n)
					if b.Limit() != s.n {
						t.Fatalf("step %d: Limit %d after SetLimit(%d)", i, b.Limit(), s.n)
					}
				}
				if b.Used() != s.used {
					t.Fatalf("step %d: Used %d, want %d", i, b.Used(), s.used)
				}
			}
			if p := b.Pressure(); p != tt.pressure {
				t.Errorf("Pressure %v, want %v", p, tt.pressure)
			}
		})
	}
}

// TestBudgetConcurrent hammers one budget from many goroutines with TryReserve, Wait and
// Release, and checks that no observer ever sees more in use than the limit allows.
func TestBudgetConcurrent(t *testing.T) {
	const limit = 1000
	workers, rounds := 8, 3000
	if testing.Short() {
		rounds = 500
	}
	b := NewBudget(limit)
	var held atomic.Int64 // sum of the reservations that succeeded and are not yet released
	var violations atomic.Int64
	check := func() {
		if b.Used() > limit || held.Load() > limit {
			violations.Add(1)
		}
	}
	stop := make(chan struct{})
	var observer sync.WaitGroup
	observer.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
				check()
			}
		}
	})
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			ctx := context.Background()
			for range rounds {
				n := rng.Int64N(300) + 1
				if rng.IntN(2) == 0 {
					if !b.TryReserve(n) {
						continue
					}
				} else if err := b.Wait(ctx, n); err != nil {
					// Waiters always get room eventually: others release.
					t.Errorf("Wait(%d): %v", n, err)
					return
				}
				held.Add(n)
				check()
				held.Add(-n)
				b.Release(n)
			}
		})
	}
	wg.Wait()
	close(stop)
	observer.Wait()
	if v := violations.Load(); v != 0 {
		t.Errorf("%d observations above the limit", v)
	}
	if b.Used() != 0 {
		t.Errorf("after all releases: used %d", b.Used())
	}
	if w := b.waiters.Load(); w != 0 {
		t.Errorf("%d waiters left registered", w)
	}
}

// waitResult starts wait in a goroutine and returns the channel its error arrives on, once
// the waiter has registered with budget (it polls for that rather than sleeping).
func waitResult(t *testing.T, budget *Budget, wait func() error) <-chan error {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- wait() }()
	deadline := time.Now().Add(10 * time.Second)
	for budget.waiters.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the waiter never registered")
		}
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v without waiting", err)
		default:
		}
		time.Sleep(time.Millisecond)
	}
	return done
}

// result returns the waiter's error, failing the test if it does not come in time.
func result(t *testing.T, done <-chan error) error {
	t.Helper()
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("Wait did not return")
		return nil
	}
}

func TestBudgetWait(t *testing.T) {
	ctx := context.Background()
	t.Run("release wakes", func(t *testing.T) {
		b := NewBudget(100)
		b.TryReserve(100)
		done := waitResult(t, b, func() error { return b.Wait(ctx, 40) })
		b.Release(30) // not enough: the waiter must go back to sleep
		select {
		case err := <-done:
			t.Fatalf("Wait returned %v with only 30 bytes free", err)
		default:
		}
		b.Release(10)
		if err := result(t, done); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if b.Used() != 100 {
			t.Errorf("Used %d after Wait, want 100", b.Used())
		}
	})
	t.Run("raising the limit wakes", func(t *testing.T) {
		b := NewBudget(10)
		b.TryReserve(10)
		done := waitResult(t, b, func() error { return b.Wait(ctx, 5) })
		b.SetLimit(15)
		if err := result(t, done); err != nil {
			t.Fatalf("Wait: %v", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		b := NewBudget(10)
		b.TryReserve(10)
		cctx, cancel := context.WithCancel(ctx)
		done := waitResult(t, b, func() error { return b.Wait(cctx, 5) })
		cancel()
		if err := result(t, done); !errors.Is(err, context.Canceled) {
			t.Fatalf("Wait = %v, want context.Canceled", err)
		}
		if b.Used() != 10 || b.waiters.Load() != 0 {
			t.Errorf("after cancel: Used %d, waiters %d", b.Used(), b.waiters.Load())
		}
	})
	t.Run("deadline", func(t *testing.T) {
		b := NewBudget(10)
		b.TryReserve(10)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
		defer cancel()
		if err := b.Wait(dctx, 5); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Wait = %v, want context.DeadlineExceeded", err)
		}
	})
	t.Run("too large", func(t *testing.T) {
		b := NewBudget(10)
		if err := b.Wait(ctx, 11); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Wait(11) on a limit of 10 = %v, want ErrTooLarge", err)
		}
	})
	t.Run("limit lowered while waiting", func(t *testing.T) {
		b := NewBudget(10)
		b.TryReserve(10)
		done := waitResult(t, b, func() error { return b.Wait(ctx, 8) })
		b.SetLimit(5)
		if err := result(t, done); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Wait = %v, want ErrTooLarge", err)
		}
	})
	t.Run("negative", func(t *testing.T) {
		b := NewBudget(10)
		if err := b.Wait(ctx, -1); !errors.Is(err, ErrNegative) {
			t.Fatalf("Wait(-1) = %v, want ErrNegative", err)
		}
	})
	t.Run("immediate", func(t *testing.T) {
		b := NewBudget(10)
		if err := b.Wait(ctx, 10); err != nil || b.Used() != 10 {
			t.Fatalf("Wait = %v, Used %d", err, b.Used())
		}
	})
}

func BenchmarkBudgetParallel(b *testing.B) {
	budget := NewBudget(1 << 40)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if budget.TryReserve(512) {
				budget.Release(512)
			}
		}
	})
}
