package main

import "testing"

func TestTracker(t *testing.T) {
	type msg struct {
		pub uint32
		seq uint64
	}
	tests := []struct {
		name string
		in   []msg
		want Tally
	}{
		{"empty", nil, Tally{}},
		{"in order", []msg{{1, 0}, {1, 1}, {1, 2}}, Tally{Unique: 3}},
		{"gap is not out of order", []msg{{1, 0}, {1, 5}}, Tally{Unique: 2}},
		{"duplicate", []msg{{1, 0}, {1, 1}, {1, 1}}, Tally{Unique: 2, Duplicates: 1}},
		{"late arrival", []msg{{1, 0}, {1, 2}, {1, 1}}, Tally{Unique: 3, OutOfOrder: 1}},
		{"late duplicate counts once as dup", []msg{{1, 2}, {1, 1}, {1, 1}}, Tally{Unique: 2, Duplicates: 1, OutOfOrder: 1}},
		{"publishers are independent", []msg{{1, 5}, {2, 0}, {1, 6}, {2, 1}}, Tally{Unique: 4}},
		{"same seq from two publishers", []msg{{1, 3}, {2, 3}}, Tally{Unique: 2}},
		{"bitmap word boundary", []msg{{7, 63}, {7, 64}, {7, 127}, {7, 128}, {7, 64}}, Tally{Unique: 4, Duplicates: 1}},
		{"largest accepted seq", []msg{{1, maxSeq - 1}}, Tally{Unique: 1}},
		{"seq beyond bound", []msg{{1, maxSeq}}, Tally{Malformed: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var tr Tracker
			p := make([]byte, 64)
			for _, m := range tt.in {
				putPayload(p, m.pub, m.seq)
				tr.Observe(p)
			}
			if got := tr.Tally(); got != tt.want {
				t.Errorf("tally = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestTrackerMalformed(t *testing.T) {
	var tr Tracker
	tr.Observe(nil)
	tr.Observe([]byte{
		0x00, 0x00, 0x00, 0x01, // publisher id 1
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, // sequence: one byte short
	})
	tr.Observe([]byte{
		0x00, 0x00, 0x00, 0x01, // publisher id 1
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x09, // sequence 9
	})
	if got, want := tr.Tally(), (Tally{Unique: 1, Malformed: 2}); got != want {
		t.Errorf("tally = %+v, want %+v", got, want)
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	p := make([]byte, payloadHeader)
	putPayload(p, 0xdeadbeef, 1<<40+3)
	pub, seq, ok := parsePayload(p)
	if !ok || pub != 0xdeadbeef || seq != 1<<40+3 {
		t.Errorf("parsePayload = %#x, %d, %v", pub, seq, ok)
	}
}

func TestTallyAdd(t *testing.T) {
	a := Tally{Unique: 1, Duplicates: 2, OutOfOrder: 3, Malformed: 4}
	a.Add(Tally{Unique: 10, Duplicates: 20, OutOfOrder: 30, Malformed: 40})
	if want := (Tally{Unique: 11, Duplicates: 22, OutOfOrder: 33, Malformed: 44}); a != want {
		t.Errorf("sum = %+v, want %+v", a, want)
	}
}
