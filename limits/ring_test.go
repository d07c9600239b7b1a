package limits

import (
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"weak"
)

// ringOp is one call in a ring table test, with what it must return.
type ringOp struct {
	op   string // push, evict, pop, peek, setcap, removeEven
	arg  int    // value pushed, or the new capacity
	ok   bool   // push/evict/pop/peek result flag; for setcap, that Cap took the new value
	want []int  // popped, peeked or evicted value; SetCap's dropped; RemoveIf's count
}

func push(v int, ok bool) ringOp { return ringOp{op: "push", arg: v, ok: ok} }
func pop(v int) ringOp           { return ringOp{op: "pop", ok: true, want: []int{v}} }

// pushN pushes from..to inclusive, all expected to succeed.
func pushN(from, to int) []ringOp {
	var ops []ringOp
	for v := from; v <= to; v++ {
		ops = append(ops, push(v, true))
	}
	return ops
}

// popN pops from..to inclusive, expecting exactly those values.
func popN(from, to int) []ringOp {
	var ops []ringOp
	for v := from; v <= to; v++ {
		ops = append(ops, pop(v))
	}
	return ops
}

func TestRingTable(t *testing.T) {
	tests := []struct {
		name      string
		capacity  int
		ops       []ringOp
		contents  []int // oldest first, after all ops
		allocated int   // backing slots after all ops
	}{
		{name: "fresh ring allocates nothing", capacity: 100, allocated: 0},
		{
			name:     "empty pop and peek",
			capacity: 3,
			ops:      []ringOp{{op: "pop"}, {op: "peek"}},
		},
		{
			name:     "wrap-around keeps FIFO order",
			capacity: 4,
			ops: slices.Concat(pushN(1, 3), popN(1, 2), pushN(4, 6),
				[]ringOp{push(7, false), {op: "peek", ok: true, want: []int{3}}}),
			contents:  []int{3, 4, 5, 6},
			allocated: 4,
		},
		{
			name:      "first push allocates the minimum",
			capacity:  100,
			ops:       pushN(1, 1),
			contents:  []int{1},
			allocated: minSlots,
		},
		{
			name:      "growth doubles",
			capacity:  100,
			ops:       pushN(1, 17),
			contents:  seq(1, 17),
			allocated: 32,
		},
		{
			name:      "growth stops at capacity",
			capacity:  100,
			ops:       append(pushN(1, 100), push(101, false)),
			contents:  seq(1, 100),
			allocated: 100,
		},
		{
			name:      "capacity below the minimum allocation",
			capacity:  3,
			ops:       append(pushN(1, 3), push(4, false)),
			contents:  []int{1, 2, 3},
			allocated: 3,
		},
		{
			// 100 slots -> 50 at 25 left, -> 25 at 12, -> 12 at 6, -> 8 (the minimum) at 3.
			name:      "shrink when drained",
			capacity:  100,
			ops:       slices.Concat(pushN(1, 100), popN(1, 97)),
			contents:  []int{98, 99, 100},
			allocated: minSlots,
		},
		{
			name:      "drained ring keeps the minimum",
			capacity:  100,
			ops:       slices.Concat(pushN(1, 100), popN(1, 100)),
			allocated: minSlots,
		},
		{
			name:      "shrink has hysteresis",
			capacity:  100,
			ops:       slices.Concat(pushN(1, 64), popN(1, 47)), // 17 left: above a quarter
			contents:  seq(48, 64),
			allocated: 64,
		},
		{
			name:     "evict oldest when full",
			capacity: 3,
			ops: slices.Concat(
				[]ringOp{{op: "evict", arg: 1}, {op: "evict", arg: 2}, {op: "evict", arg: 3}},
				[]ringOp{{op: "evict", arg: 4, ok: true, want: []int{1}}},
				[]ringOp{{op: "evict", arg: 5, ok: true, want: []int{2}}},
				popN(3, 3), pushN(6, 6),
				[]ringOp{{op: "evict", arg: 7, ok: true, want: []int{4}}}),
			contents:  []int{5, 6, 7},
			allocated: 3,
		},
		{
			name:     "evict on capacity zero returns the value",
			capacity: 0,
			ops: []ringOp{push(1, false), {op: "evict", arg: 2, ok: true, want: []int{2}},
				{op: "pop"}},
			allocated: 0,
		},
		{
			name:     "negative capacity holds nothing",
			capacity: -5,
			ops:      []ringOp{push(1, false)},
		},
		{
			name:     "SetCap down returns the oldest",
			capacity: 5,
			ops: slices.Concat(pushN(1, 2), popN(1, 2), pushN(3, 7), // wrapped
				[]ringOp{{op: "setcap", arg: 2, ok: true, want: []int{3, 4, 5}}, push(8, false)}),
			contents:  []int{6, 7},
			allocated: 2,
		},
		{
			name:     "SetCap down to zero",
			capacity: 5,
			ops: slices.Concat(pushN(1, 3),
				[]ringOp{{op: "setcap", arg: 0, ok: true, want: []int{1, 2, 3}}, push(4, false)}),
			allocated: 0,
		},
		{
			name:     "SetCap down without loss",
			capacity: 50,
			ops: slices.Concat(pushN(1, 20),
				[]ringOp{{op: "setcap", arg: 20, ok: true}, push(21, false)}),
			contents:  seq(1, 20),
			allocated: 20,
		},
		{
			name:     "SetCap up lets the ring grow",
			capacity: 2,
			ops: slices.Concat(pushN(1, 2), []ringOp{push(3, false), {op: "setcap", arg: 10, ok: true}},
				pushN(3, 10), []ringOp{push(11, false)}),
			contents:  seq(1, 10),
			allocated: 10,
		},
		{
			name:     "RemoveIf keeps order across the wrap",
			capacity: 10,
			ops: slices.Concat(pushN(1, 10), popN(1, 4), pushN(11, 14),
				[]ringOp{{op: "removeEven", want: []int{5}}}),
			contents:  []int{5, 7, 9, 11, 13},
			allocated: 10,
		},
		{
			name:     "RemoveIf everything shrinks",
			capacity: 100,
			ops: slices.Concat(seqOps(func(v int) ringOp { return push(2*v, true) }, 1, 40),
				[]ringOp{{op: "removeEven", want: []int{40}}}),
			allocated: 32, // one halving step per call
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing[*int](tt.capacity)
			for i, op := range tt.ops {
				got, ok := applyRingOp(r, op)
				if ok != op.ok || !slices.Equal(got, op.want) {
					t.Fatalf("op %d %s(%d) = %v, %v; want %v, %v", i, op.op, op.arg, got, ok, op.want, op.ok)
				}
				checkRing(t, r)
			}
			if got := ringContents(r); !slices.Equal(got, tt.contents) {
				t.Errorf("contents %v, want %v", got, tt.contents)
			}
			if r.Len() != len(tt.contents) {
				t.Errorf("Len %d, want %d", r.Len(), len(tt.contents))
			}
			if r.Allocated() != tt.allocated {
				t.Errorf("Allocated %d, want %d", r.Allocated(), tt.allocated)
			}
		})
	}
}

func seq(from, to int) []int {
	var s []int
	for v := from; v <= to; v++ {
		s = append(s, v)
	}
	return s
}

func seqOps(f func(int) ringOp, from, to int) []ringOp {
	var ops []ringOp
	for v := from; v <= to; v++ {
		ops = append(ops, f(v))
	}
	return ops
}

// applyRingOp runs op and returns the values it produced and its flag.
func applyRingOp(r *Ring[*int], op ringOp) ([]int, bool) {
	var vals []int
	deref := func(p *int) {
		if p != nil {
			vals = append(vals, *p)
		}
	}
	switch op.op {
	case "push":
		v := op.arg
		return nil, r.Push(&v)
	case "evict":
		v := op.arg
		ev, ok := r.PushEvict(&v)
		deref(ev)
		return vals, ok
	case "pop":
		p, ok := r.Pop()
		deref(p)
		return vals, ok
	case "peek":
		p, ok := r.Peek()
		deref(p)
		return vals, ok
	case "setcap":
		for _, p := range r.SetCap(op.arg) {
			deref(p)
		}
		return vals, r.Cap() == max(op.arg, 0)
	case "removeEven":
		n := r.RemoveIf(func(p *int) bool { return *p%2 == 0 })
		return []int{n}, false
	}
	panic("unknown op " + op.op)
}

func ringContents(r *Ring[*int]) []int {
	var got []int
	r.Each(func(p *int) bool {
		got = append(got, *p)
		return true
	})
	return got
}

// checkRing asserts the ring's invariants: within capacity, and every slot outside the live
// entries is nil so that the garbage collector can free what it referred to.
func checkRing(t *testing.T, r *Ring[*int]) {
	t.Helper()
	if r.Len() > r.Cap() || r.Allocated() > r.Cap() || r.Len() > r.Allocated() {
		t.Fatalf("Len %d, Allocated %d, Cap %d", r.Len(), r.Allocated(), r.Cap())
	}
	for i := r.Len(); i < len(r.buf); i++ {
		if p := r.buf[r.slot(i)]; p != nil {
			t.Fatalf("slot %d outside the %d live entries still holds %d", r.slot(i), r.Len(), *p)
		}
	}
	for i := range r.Len() {
		if r.buf[r.slot(i)] == nil {
			t.Fatalf("live entry %d is nil", i)
		}
	}
}

// TestRingModel runs random operations against a plain slice and compares after each one.
func TestRingModel(t *testing.T) {
	seed := uint64(20261122)
	rng := rand.New(rand.NewPCG(seed, seed))
	t.Logf("seed %d", seed)
	r := NewRing[*int](37)
	var model []int
	capacity := 37
	next := 0
	for i := range 20000 {
		var op ringOp
		switch k := rng.IntN(100); {
		case k < 45:
			op = ringOp{op: "push", arg: next}
			op.ok = len(model) < capacity
			if op.ok {
				model = append(model, next)
			}
			next++
		case k < 55:
			op = ringOp{op: "evict", arg: next}
			if capacity == 0 {
				op.ok, op.want = true, []int{next}
			} else if len(model) == capacity {
				op.ok, op.want = true, model[:1:1]
				model = append(model[1:], next)
			} else {
				model = append(model, next)
			}
			next++
		case k < 95:
			op = ringOp{op: "pop", ok: len(model) > 0}
			if op.ok {
				op.want = model[:1:1]
				model = model[1:]
			}
		case k < 97:
			capacity = rng.IntN(60)
			op = ringOp{op: "setcap", arg: capacity, ok: true}
			if excess := len(model) - capacity; excess > 0 {
				op.want = slices.Clone(model[:excess])
				model = model[excess:]
			}
		default:
			op = ringOp{op: "removeEven"}
			kept := slices.DeleteFunc(slices.Clone(model), func(v int) bool { return v%2 == 0 })
			op.want = []int{len(model) - len(kept)}
			model = kept
		}
		got, ok := applyRingOp(r, op)
		if ok != op.ok || !slices.Equal(got, op.want) {
			t.Fatalf("step %d %s(%d) = %v, %v; want %v, %v", i, op.op, op.arg, got, ok, op.want, op.ok)
		}
		checkRing(t, r)
		if c := ringContents(r); !slices.Equal(c, model) {
			t.Fatalf("step %d contents %v, want %v", i, c, model)
		}
	}
}

func TestRingEachStops(t *testing.T) {
	r := NewRing[int](10)
	for v := range 5 {
		r.Push(v)
	}
	var seen []int
	r.Each(func(v int) bool {
		seen = append(seen, v)
		return v < 2
	})
	if !slices.Equal(seen, []int{0, 1, 2}) {
		t.Errorf("Each visited %v, want [0 1 2]", seen)
	}
}

// TestRingReleasesRemoved checks through the garbage collector that a value which left the
// ring is no longer reachable from it, for every way a value can leave.
func TestRingReleasesRemoved(t *testing.T) {
	type body [4096]byte
	ways := map[string]struct {
		remove func(r *Ring[*body])
		left   int
	}{
		"Pop":       {func(r *Ring[*body]) { r.Pop() }, 1},
		"PushEvict": {func(r *Ring[*body]) { r.PushEvict(new(body)) }, 2},
		"RemoveIf":  {func(r *Ring[*body]) { r.RemoveIf(func(b *body) bool { return b[0] == 1 }) }, 1},
		"SetCap":    {func(r *Ring[*body]) { r.SetCap(1) }, 1},
	}
	for name, way := range ways {
		t.Run(name, func(t *testing.T) {
			r := NewRing[*body](2)
			victim := new(body)
			victim[0] = 1
			gone := weak.Make(victim)
			r.Push(victim)
			r.Push(new(body))
			victim = nil
			way.remove(r)
			if r.Len() != way.left {
				t.Fatalf("Len %d after removing, want %d", r.Len(), way.left)
			}
			collected := false
			for range 10 {
				runtime.GC()
				if gone.Value() == nil {
					collected = true
					break
				}
			}
			if !collected {
				t.Error("the removed value is still reachable: its slot was not zeroed")
			}
			runtime.KeepAlive(r)
		})
	}
}

func BenchmarkRingPushPop(b *testing.B) {
	r := NewRing[*int](100)
	v := new(int)
	for range 10 { // a queue that is never quite empty
		r.Push(v)
	}
	b.ReportAllocs()
	for b.Loop() {
		r.Push(v)
		r.Pop()
	}
}

// BenchmarkRingBurst fills a ring of 100 and drains it: the cost of growing and shrinking.
func BenchmarkRingBurst(b *testing.B) {
	r := NewRing[*int](100)
	v := new(int)
	b.ReportAllocs()
	for b.Loop() {
		for r.Push(v) {
		}
		for r.Len() > 0 {
			r.Pop()
		}
	}
}
