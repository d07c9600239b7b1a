package limits

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
)

// ErrNegative is returned by Wait for a negative request.
var ErrNegative = errors.New("limits: negative reservation")

// ErrTooLarge is returned by Wait when the request exceeds the limit itself, so that no amount
// of releasing could ever make room for it.
var ErrTooLarge = errors.New("limits: reservation larger than the limit")

// Budget accounts memory in bytes against a limit: the broker's global --memory-limit. Work
// that may be refused (a publication, a subscription, a connection) reserves with TryReserve
// or Wait; what must be kept once admitted is added with Charge.
//
// A Budget is safe for concurrent use. TryReserve and Release are lock-free; Wait blocks
// without spinning, on a channel that Release closes when someone is waiting.
type Budget struct {
	used    atomic.Int64
	limit   atomic.Int64
	waiters atomic.Int32 // callers inside Wait; Release signals only when this is non-zero

	mu   sync.Mutex
	room chan struct{} // closed by the next Release or SetLimit; nil when nobody waits
}

// NewBudget returns a budget with nothing reserved and the given limit in bytes (a negative
// limit is taken as 0: nothing can be reserved).
func NewBudget(limit int64) *Budget {
	b := &Budget{}
	b.limit.Store(max(limit, 0))
	return b
}

// Used returns the bytes reserved and not yet released.
func (b *Budget) Used() int64 { return b.used.Load() }

// Limit returns the limit in bytes.
func (b *Budget) Limit() int64 { return b.limit.Load() }

// SetLimit changes the limit, as a live reload does (a negative limit is taken as 0). Lowering
// it below Used takes nothing back: reservations fail until enough has been released. Raising
// it wakes the callers blocked in Wait.
func (b *Budget) SetLimit(limit int64) {
	b.limit.Store(max(limit, 0))
	b.signal()
}

// Pressure returns Used divided by Limit: 0 when idle, 1 when full. It may exceed 1 after the
// limit was lowered below what is in use. A budget with a zero limit reports 1: nothing fits.
func (b *Budget) Pressure() float64 {
	used, limit := b.used.Load(), b.limit.Load()
	if limit == 0 {
		return 1
	}
	return float64(used) / float64(limit)
}

// TryReserve reserves n bytes if that keeps Used within Limit, and reports whether it did.
// However many goroutines call it at once, the reservations that succeed never sum beyond the
// limit. Reserving 0 bytes succeeds while Used is within Limit; a negative n never succeeds.
func (b *Budget) TryReserve(n int64) bool {
	if n < 0 {
		return false
	}
	for {
		used := b.used.Load()
		if used > b.limit.Load()-n {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Charge reserves n bytes whatever the limit, for what must be held once it exists: a message
// already acknowledged, a queue entry already routed. Used may then exceed Limit, and every
// TryReserve fails until enough has been released. A non-positive n does nothing.
func (b *Budget) Charge(n int64) {
	if n > 0 {
		b.used.Add(n)
	}
}

// Release returns n bytes reserved earlier and wakes the callers blocked in Wait. Releasing
// more than was reserved is a caller bug that would let later reservations exceed the limit;
// it is not detected here. A non-positive n does nothing.
func (b *Budget) Release(n int64) {
	if n <= 0 {
		return
	}
	b.used.Add(-n)
	b.signal()
}

// Wait reserves n bytes, blocking until enough has been released or ctx is done. It returns
// ctx's error (wrapped) when ctx ends first, ErrTooLarge at once when n exceeds Limit (also
// when the limit is lowered below n while it waits), and ErrNegative for a negative n.
func (b *Budget) Wait(ctx context.Context, n int64) error {
	if n < 0 {
		return ErrNegative
	}
	for {
		if b.TryReserve(n) {
			return nil
		}
		if n > b.Limit() {
			return ErrTooLarge
		}
		// Register, then try again before sleeping: a Release before arm is seen by that
		// attempt, and one after it closes room, so no wake-up is lost.
		room := b.arm()
		ok := b.TryReserve(n)
		if !ok {
			select {
			case <-room:
			case <-ctx.Done():
			}
		}
		b.waiters.Add(-1)
		if ok {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("limits: waiting for %d bytes: %w", n, err)
		}
	}
}

// signal wakes every caller blocked in Wait; it costs one atomic load when nobody waits.
func (b *Budget) signal() {
	if b.waiters.Load() == 0 {
		return
	}
	b.mu.Lock()
	if b.room != nil {
		close(b.room)
		b.room = nil
	}
	b.mu.Unlock()
}

// arm registers a waiter and returns a channel that the next signal closes. The caller must
// call b.waiters.Add(-1) when it stops waiting.
func (b *Budget) arm() <-chan struct{} {
	b.waiters.Add(1)
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.room == nil {
		b.room = make(chan struct{})
	}
	return b.room
}
