package limits

import "testing"

func TestWindow(t *testing.T) {
	type step struct {
		op  string // acquire, release, setmax
		n   int    // setmax argument
		ok  bool   // acquire result
		len int
	}
	tests := []struct {
		name  string
		max   int
		steps []step
	}{
		{
			name: "fill and drain",
			max:  2,
			steps: []step{
				{op: "acquire", ok: true, len: 1},
				{op: "acquire", ok: true, len: 2},
				{op: "acquire", ok: false, len: 2},
				{op: "release", len: 1},
				{op: "acquire", ok: true, len: 2},
				{op: "release", len: 1},
				{op: "release", len: 0},
				{op: "release", len: 0}, // an unexpected acknowledgement does not go negative
				{op: "acquire", ok: true, len: 1},
			},
		},
		{
			name: "zero is taken as one",
			max:  0,
			steps: []step{
				{op: "acquire", ok: true, len: 1},
				{op: "acquire", ok: false, len: 1},
				{op: "setmax", n: -3, len: 1},
				{op: "acquire", ok: false, len: 1},
			},
		},
		{
			name: "lower below use, then raise",
			max:  3,
			steps: []step{
				{op: "acquire", ok: true, len: 1},
				{op: "acquire", ok: true, len: 2},
				{op: "acquire", ok: true, len: 3},
				{op: "setmax", n: 1, len: 3},
				{op: "release", len: 2},
				{op: "acquire", ok: false, len: 2},
				{op: "release", len: 1},
				{op: "release", len: 0},
				{op: "acquire", ok: true, len: 1},
				{op: "acquire", ok: false, len: 1},
				{op: "setmax", n: 2, len: 1},
				{op: "acquire", ok: true, len: 2},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWindow(tt.max)
			if w.Max() != max(tt.max, 1) {
				t.Fatalf("Max %d, want %d", w.Max(), max(tt.max, 1))
			}
			for i, s := range tt.steps {
				switch s.op {
				case "acquire":
					if ok := w.TryAcquire(); ok != s.ok {
						t.Fatalf("step %d: TryAcquire = %v, want %v", i, ok, s.ok)
					}
				case "release":
					w.Release()
				case "setmax":
					w.SetMax(s.n)
					if w.Max() != max(s.n, 1) {
						t.Fatalf("step %d: Max %d after SetMax(%d)", i, w.Max(), s.n)
					}
				}
				if w.Len() != s.len {
					t.Fatalf("step %d: Len %d, want %d", i, w.Len(), s.len)
				}
			}
		})
	}
}
