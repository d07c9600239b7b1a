// Package limits holds the bounded data structures behind the broker's memory contract: the
// fixed-capacity ring that is each session's queue, the global memory budget, and the
// token-bucket rate limiter for publishers.
//
// # Who may call concurrently
//
// Budget is safe for concurrent use and lock-free on the hot path (TryReserve and Release are a
// few atomic operations; a mutex is taken only when a caller is blocked in Wait). Its counters
// use the atomic.Int64 type, which the compiler keeps 8-byte aligned, because a misaligned
// 64-bit atomic panics on 32-bit ARM and MIPS.
//
// Ring and RateLimiter are not safe for concurrent use: they belong to one session or
// connection, whose owner holds its own lock around every call. That keeps them free of
// atomics on paths that already run under the session lock.
//
// # Invariants
//
//   - A Ring never holds more than Cap entries, and its backing array never has more than Cap
//     slots. The array is allocated on the first Push, doubles as entries arrive and halves as
//     they drain, so an idle session costs a few words and a burst does not pin memory.
//   - Slots a Ring no longer uses are zeroed at once, so the garbage collector can free what
//     they referenced (message bodies are shared between queues and can be large).
//   - Budget.Used never exceeds Budget.Limit through TryReserve or Wait, whatever the number of
//     concurrent callers. Lowering the limit below what is in use, or charging what must be
//     kept (Charge), does not take anything back: reservations fail until enough has been
//     released.
//
// Counting what was dropped, and deciding whether to drop or to wait, is the engine's job; this
// package only reports what happened (Push returned false, PushEvict evicted, SetCap returned
// the entries that no longer fit).
package limits
