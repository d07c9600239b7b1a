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

func TestAccountTable(t *testing.T) {
	parent := NewBudget(100)
	a := NewAccount(parent, 30)
	c := NewAccount(parent, 80)
	steps := []struct {
		acct       *Account
		op         string // reserve, release
		n          int64
		ok         bool
		aUsed      int64
		cUsed      int64
		parentUsed int64
	}{
		{a, "reserve", 30, true, 30, 0, 30},
		{a, "reserve", 1, false, 30, 0, 30}, // own limit
		{c, "reserve", 70, true, 30, 70, 100},
		{c, "reserve", 1, false, 30, 70, 100}, // parent full, own has room: nothing charged
		{a, "release", 10, false, 20, 70, 90},
		{c, "reserve", 10, true, 20, 80, 100},
		{c, "reserve", 0, true, 20, 80, 100},
		{c, "release", 80, false, 20, 0, 20},
		{a, "release", 20, false, 0, 0, 0},
	}
	for i, s := range steps {
		if s.op == "reserve" {
			if ok := s.acct.TryReserve(s.n); ok != s.ok {
				t.Fatalf("step %d: TryReserve(%d) = %v, want %v", i, s.n, ok, s.ok)
			}
		} else {
			s.acct.Release(s.n)
		}
		if a.Used() != s.aUsed || c.Used() != s.cUsed || parent.Used() != s.parentUsed {
			t.Fatalf("step %d: used a=%d c=%d parent=%d, want %d %d %d", i,
				a.Used(), c.Used(), parent.Used(), s.aUsed, s.cUsed, s.parentUsed)
		}
	}
	a.SetLimit(5)
	if a.Limit() != 5 || a.TryReserve(6) {
		t.Errorf("after SetLimit(5): Limit %d, and a reservation of 6 succeeded", a.Limit())
	}
}

// TestBudgetConcurrent hammers one budget and two accounts from many goroutines and checks
// that no observer ever sees more in use than the limits allow.
func TestBudgetConcurrent(t *testing.T) {
	const limit, accountLimit = 1000, 400
	workers, rounds := 8, 3000
	if testing.Short() {
		rounds = 500
	}
	b := NewBudget(limit)
	accounts := []*Account{NewAccount(b, accountLimit), NewAccount(b, accountLimit)}
	var held atomic.Int64 // sum of the reservations that succeeded and are not yet released
	var violations atomic.Int64
	check := func() {
		if b.Used() > limit || held.Load() > limit {
			violations.Add(1)
		}
		for _, a := range accounts {
			if a.Used() > accountLimit {
				violations.Add(1)
			}
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
				var ok bool
				var release func(int64)
				switch k := rng.IntN(4); k {
				case 0:
					ok, release = b.TryReserve(n), b.Release
				case 1:
					a := accounts[w%2]
					ok, release = a.TryReserve(n), a.Release
				case 2:
					// Waiters always get room eventually: others release.
					if err := b.Wait(ctx, n); err != nil {
						t.Errorf("Wait(%d): %v", n, err)
						return
					}
					ok, release = true, b.Release
				case 3:
					a := accounts[w%2]
					if err := a.Wait(ctx, n); err != nil {
						t.Errorf("Account.Wait(%d): %v", n, err)
						return
					}
					ok, release = true, a.Release
				}
				if !ok {
					continue
				}
				held.Add(n)
				check()
				held.Add(-n)
				release(n)
			}
		})
	}
	wg.Wait()
	close(stop)
	observer.Wait()
	if v := violations.Load(); v != 0 {
		t.Errorf("%d observations above a limit", v)
	}
	if b.Used() != 0 || accounts[0].Used() != 0 || accounts[1].Used() != 0 {
		t.Errorf("after all releases: used %d, accounts %d and %d", b.Used(), accounts[0].Used(), accounts[1].Used())
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
		if err := NewAccount(b, 10).Wait(ctx, -1); !errors.Is(err, ErrNegative) {
			t.Fatalf("Account.Wait(-1) = %v, want ErrNegative", err)
		}
	})
	t.Run("immediate", func(t *testing.T) {
		b := NewBudget(10)
		if err := b.Wait(ctx, 10); err != nil || b.Used() != 10 {
			t.Fatalf("Wait = %v, Used %d", err, b.Used())
		}
	})
}

func TestAccountWait(t *testing.T) {
	ctx := context.Background()
	t.Run("parent release wakes", func(t *testing.T) {
		parent := NewBudget(100)
		parent.TryReserve(95)
		a := NewAccount(parent, 50)
		done := waitResult(t, parent, func() error { return a.Wait(ctx, 20) })
		parent.Release(30)
		if err := result(t, done); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if a.Used() != 20 || parent.Used() != 85 {
			t.Errorf("Used: account %d, parent %d; want 20, 85", a.Used(), parent.Used())
		}
	})
	t.Run("own release wakes", func(t *testing.T) {
		parent := NewBudget(100)
		a := NewAccount(parent, 50)
		a.TryReserve(50)
		done := waitResult(t, &a.own, func() error { return a.Wait(ctx, 20) })
		a.Release(20)
		if err := result(t, done); err != nil {
			t.Fatalf("Wait: %v", err)
		}
		if a.Used() != 50 || parent.Used() != 50 {
			t.Errorf("Used: account %d, parent %d; want 50, 50", a.Used(), parent.Used())
		}
	})
	t.Run("larger than the parent", func(t *testing.T) {
		a := NewAccount(NewBudget(10), 50)
		if err := a.Wait(ctx, 20); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("Wait = %v, want ErrTooLarge", err)
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

func BenchmarkAccountParallel(b *testing.B) {
	budget := NewBudget(1 << 40)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		a := NewAccount(budget, 1<<20) // one session per goroutine
		for pb.Next() {
			if a.TryReserve(512) {
				a.Release(512)
			}
		}
	})
}
