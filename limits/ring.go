package limits

// minSlots is the smallest backing array a Ring allocates, and the size it keeps once drained:
// small enough that thousands of idle sessions cost little, large enough that a steady trickle
// of one message in, one message out never reallocates.
const minSlots = 8

// Ring is a fixed-capacity FIFO queue: a session's queue of messages waiting for delivery.
//
// Its backing array is allocated on the first Push and grows by doubling up to the capacity;
// when the queue drains to a quarter of the array, the array is halved again (never below
// minSlots, 8 slots). A ring that has never held anything allocates nothing.
//
// Slots are zeroed as soon as their entry leaves the queue (Pop, PushEvict, RemoveIf, SetCap),
// so the ring never keeps a popped value reachable.
//
// A Ring is not safe for concurrent use: its owner (the session) holds its lock around every
// call, including the callbacks of Each and RemoveIf, which must not call back into the ring.
type Ring[T any] struct {
	buf  []T
	head int // index in buf of the oldest entry
	n    int // number of entries
	max  int // capacity
}

// NewRing returns an empty ring that holds at most capacity entries. A capacity below 1 makes a
// ring that holds nothing: Push always fails and PushEvict hands its value straight back.
func NewRing[T any](capacity int) *Ring[T] {
	return &Ring[T]{max: max(capacity, 0)}
}

// Len returns the number of entries in the ring.
func (r *Ring[T]) Len() int { return r.n }

// Cap returns the most entries the ring may hold.
func (r *Ring[T]) Cap() int { return r.max }

// Allocated returns the number of slots in the backing array, at most Cap. The engine may
// charge Allocated times the slot size to its memory budget.
func (r *Ring[T]) Allocated() int { return len(r.buf) }

// Push appends v as the newest entry. It returns false, and leaves the ring unchanged, when the
// ring is full.
func (r *Ring[T]) Push(v T) bool {
	if r.n >= r.max {
		return false
	}
	if r.n == len(r.buf) {
		r.resize(min(max(2*len(r.buf), minSlots), r.max))
	}
	r.buf[r.slot(r.n)] = v
	r.n++
	return true
}

// PushEvict appends v as the newest entry, first evicting the oldest entry when the ring is
// full (the drop-oldest overflow policy). It returns the evicted entry and true if one was
// evicted. On a ring of capacity 0 nothing can be stored, and v itself is returned as evicted.
func (r *Ring[T]) PushEvict(v T) (evicted T, ok bool) {
	if r.Push(v) {
		return evicted, false
	}
	if r.max == 0 {
		return v, true
	}
	// Full, so len(buf) == max == n: the oldest slot becomes the newest.
	evicted = r.buf[r.head]
	r.buf[r.head] = v
	r.head = r.slot(1)
	return evicted, true
}

// Pop removes and returns the oldest entry, or false when the ring is empty.
func (r *Ring[T]) Pop() (T, bool) {
	var zero T
	if r.n == 0 {
		return zero, false
	}
	v := r.buf[r.head]
	r.buf[r.head] = zero
	r.head = r.slot(1)
	r.n--
	r.shrink()
	return v, true
}

// Peek returns the oldest entry without removing it, or false when the ring is empty.
func (r *Ring[T]) Peek() (T, bool) {
	if r.n == 0 {
		var zero T
		return zero, false
	}
	return r.buf[r.head], true
}

// Each calls fn on every entry from the oldest to the newest, until fn returns false.
func (r *Ring[T]) Each(fn func(T) bool) {
	for i := range r.n {
		if !fn(r.buf[r.slot(i)]) {
			return
		}
	}
}

// RemoveIf removes every entry for which drop returns true, keeping the others in their order,
// and returns how many it removed. drop is called once per entry, oldest first.
func (r *Ring[T]) RemoveIf(drop func(T) bool) int {
	kept := 0
	for i := range r.n {
		v := r.buf[r.slot(i)]
		if drop(v) {
			continue
		}
		r.buf[r.slot(kept)] = v
		kept++
	}
	var zero T
	for i := kept; i < r.n; i++ {
		r.buf[r.slot(i)] = zero
	}
	removed := r.n - kept
	r.n = kept
	r.shrink()
	return removed
}

// SetCap changes the capacity, as a live configuration reload does. When the ring holds more
// than n entries, the newest n stay and the oldest are removed and returned, oldest first, so
// that the caller can count them as dropped; otherwise SetCap returns nil. A capacity below 1
// is treated as 0, as in NewRing.
func (r *Ring[T]) SetCap(n int) (dropped []T) {
	n = max(n, 0)
	if excess := r.n - n; excess > 0 {
		dropped = make([]T, excess)
		for i := range dropped {
			dropped[i], _ = r.Pop()
		}
	}
	r.max = n
	if len(r.buf) > n {
		r.resize(n)
	}
	return dropped
}

// slot maps the i-th entry (0 is the oldest) to its index in buf; i may be up to len(buf).
func (r *Ring[T]) slot(i int) int {
	j := r.head + i
	if j >= len(r.buf) {
		j -= len(r.buf)
	}
	return j
}

// shrink halves the backing array once the entries fill no more than a quarter of it. The gap
// between growing when full and shrinking at a quarter keeps a queue that hovers around one
// size from reallocating on every call.
func (r *Ring[T]) shrink() {
	if r.n == 0 {
		r.head = 0
	}
	if len(r.buf) > minSlots && r.n <= len(r.buf)/4 {
		r.resize(max(len(r.buf)/2, minSlots))
	}
}

// resize moves the entries, oldest first, into a new backing array of size slots (size >= n).
// A size of 0 releases the array.
func (r *Ring[T]) resize(size int) {
	var buf []T
	if size > 0 {
		buf = make([]T, size)
		if end := r.head + r.n; end <= len(r.buf) {
			copy(buf, r.buf[r.head:end])
		} else {
			k := copy(buf, r.buf[r.head:])
			copy(buf[k:], r.buf[:end-len(r.buf)])
		}
	}
	r.buf = buf
	r.head = 0
}
