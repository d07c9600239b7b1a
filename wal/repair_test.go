package wal_test

import (
	"errors"
	"testing"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// threeSegments writes records until the log has at least three segments and returns the FS
// and the first positions of the segments.
func threeSegments(t *testing.T) (*waltest.MemFS, []wal.Pos) {
	t.Helper()
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 256))
	for i := 1; l.Stats().Segments < 3; i++ {
		if _, err := l.AppendSync(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	info, err := wal.Inspect(memOptions(m, 256))
	if err != nil || info.Damage != nil || len(info.Segments) != 3 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	var firsts []wal.Pos
	for _, s := range info.Segments {
		firsts = append(firsts, s.FirstPos)
	}
	return m, firsts
}

func TestRepairMiddleDamage(t *testing.T) {
	tests := []struct {
		name      string
		off       int // byte of the middle segment to flip
		wantLast  func([]wal.Pos) wal.Pos
		truncated bool
	}{
		// 28-byte header, then the first record's frame: damage there keeps no record of it.
		{"first record", 30, func(f []wal.Pos) wal.Pos { return f[1] - 1 }, true},
		{"header", 3, func(f []wal.Pos) wal.Pos { return f[1] - 1 }, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, firsts := threeSegments(t)
			seg := m.Snapshot(segPath(firsts[1]))
			seg[tt.off] ^= 0x40
			if err := m.WriteFile(segPath(firsts[1]), seg); err != nil {
				t.Fatal(err)
			}
			o := memOptions(m, 256)
			if _, err := wal.Open(o); !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("Open of a damaged log: %v, want ErrCorrupt", err)
			}
			info, err := wal.Inspect(o)
			if err != nil || !errors.Is(info.Damage, wal.ErrCorrupt) {
				t.Fatalf("Inspect: damage %v, %v", info.Damage, err)
			}
			rep, err := wal.Repair(o)
			if err != nil {
				t.Fatalf("Repair: %v", err)
			}
			want := []string{segPath(firsts[2]) + ".broken", segPath(firsts[1]) + ".broken"}
			if len(rep.Moved) != 2 || rep.Moved[0] != want[0] || rep.Moved[1] != want[1] {
				t.Fatalf("Repair moved %q, want %q", rep.Moved, want)
			}
			for _, p := range rep.Moved {
				if m.Snapshot(p) == nil {
					t.Fatalf("%s does not exist", p)
				}
			}
			if rep.LastPos != tt.wantLast(firsts) || (rep.Truncated != "") != tt.truncated {
				t.Fatalf("Report %+v, want LastPos %d", rep, tt.wantLast(firsts))
			}
			l := mustOpen(t, o)
			got := replayAll(t, l, 0)
			if wal.Pos(len(got)) != rep.LastPos {
				t.Fatalf("after repair: %d records, want %d", len(got), rep.LastPos)
			}
			if p, err := l.AppendSync([]byte("new")); err != nil || p != rep.LastPos+1 {
				t.Fatalf("AppendSync = %d, %v", p, err)
			}
			l.Close()
			// A second repair finds nothing to do.
			if rep2, err := wal.Repair(o); err != nil || len(rep2.Moved) != 0 {
				t.Fatalf("second Repair = %+v, %v", rep2, err)
			}
		})
	}
}

func TestRepairKeepsRecordsBeforeDamage(t *testing.T) {
	m, firsts := threeSegments(t)
	seg := m.Snapshot(segPath(firsts[0]))
	end := 28 // just past the last record of the first segment; each was synced on its own
	for i := 1; i < int(firsts[1]); i++ {
		end += 12 + len(record(i))
		if i < int(firsts[1])-1 {
			end = padded(end)
		}
	}
	seg[end-3] ^= 1 // inside that record
	if err := m.WriteFile(segPath(firsts[0]), seg); err != nil {
		t.Fatal(err)
	}
	rep, err := wal.Repair(memOptions(m, 256))
	if err != nil {
		t.Fatal(err)
	}
	if rep.LastPos != firsts[1]-2 || rep.Truncated != segPath(firsts[0]) || len(rep.Moved) != 3 {
		t.Fatalf("Report %+v; want the first %d records kept", rep, firsts[1]-2)
	}
	l := mustOpen(t, memOptions(m, 256))
	defer l.Close()
	if got := replayAll(t, l, 0); wal.Pos(len(got)) != rep.LastPos || string(got[0].rec) != string(record(1)) {
		t.Fatalf("after repair: %d records", len(got))
	}
}
