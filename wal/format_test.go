package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"strings"
	"testing"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// golden is a segment holding the records "hi" and "" written by hand from the format in doc.go.
// If this test fails, the on-disk format changed: bump the format version instead.
var golden = []byte{
	// segment header
	'E', 'B', 'W', 'A', 'L', 0x00, '\r', '\n', // magic
	0x01, 0x00, 0x00, 0x00, // format version 1
	0x04, 0x03, 0x02, 0x01, // salt 0x01020304
	0x01, 0, 0, 0, 0, 0, 0, 0, // first position 1
	0xab, 0x5d, 0xe1, 0x54, // CRC-32C of the 24 bytes above
	// record 1: "hi"
	0x02, 0x00, 0x00, 0x00, // length 2
	0x59, 0x72, 0x5a, 0x88, // data CRC over the length bytes and "hi"
	0x38, 0xf2, 0x5c, 0xa5, // header CRC over the salt and the 8 bytes above
	'h', 'i',
	// record 2: empty
	0x00, 0x00, 0x00, 0x00, // length 0
	0xc7, 0x4b, 0x67, 0x48, // data CRC over the length bytes alone (not zero)
	0x91, 0x25, 0xe8, 0xf1, // header CRC
}

// plant returns a MemFS holding the given segment files (first position -> bytes).
func plant(t *testing.T, files map[wal.Pos][]byte) *waltest.MemFS {
	t.Helper()
	m := waltest.NewMemFS()
	for first, data := range files {
		if err := m.WriteFile(segPath(first), data); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestGoldenSegment(t *testing.T) {
	m := plant(t, map[wal.Pos][]byte{1: golden})
	l := mustOpen(t, memOptions(m, 1024))
	got := replayAll(t, l, 0)
	if len(got) != 2 || string(got[0].rec) != "hi" || len(got[1].rec) != 0 {
		t.Fatalf("replayed %v, want [hi, \"\"]", got)
	}
	if p, err := l.AppendSync([]byte("x")); err != nil || p != 3 {
		t.Fatalf("AppendSync = %d, %v; want 3", p, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if data := m.Snapshot(segPath(1)); !bytes.HasPrefix(data, golden) || len(data) != len(golden)+12+1 {
		t.Fatalf("segment after append: % x", data)
	}
}

// validSegment writes records through a Log, each synced on its own (so each is followed by
// padding where one fits), and returns the segment bytes and the offsets where each record's
// frame starts and ends.
func validSegment(t *testing.T, recs [][]byte) (seg []byte, starts, ends []int) {
	t.Helper()
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 1<<20))
	for _, r := range recs {
		if _, err := l.AppendSync(r); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	off := 28
	for _, r := range recs {
		starts = append(starts, off)
		off += 12 + len(r)
		ends = append(ends, off)
		off = padded(off)
	}
	seg = m.Snapshot(segPath(1))
	if len(seg) != off {
		t.Fatalf("segment is %d bytes, want %d", len(seg), off)
	}
	return seg, starts, ends
}

// openAndCount opens a log made of seg and returns the records, or the Open error.
func openAndCount(t *testing.T, seg []byte) ([]entry, *waltest.MemFS, error) {
	t.Helper()
	m := plant(t, map[wal.Pos][]byte{1: seg})
	l, err := wal.Open(memOptions(m, 1<<20))
	if err != nil {
		return nil, m, err
	}
	got := replayAll(t, l, 0)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return got, m, nil
}

var tableRecs = [][]byte{[]byte(""), []byte("a"), []byte("hello"), bytes.Repeat([]byte("x"), 100),
	bytes.Repeat([]byte("y"), 300), []byte("seventeen bytes!!"), bytes.Repeat([]byte{0}, 64)}

func TestEveryTruncation(t *testing.T) {
	seg, _, ends := validSegment(t, tableRecs)
	for cut := 0; cut <= len(seg); cut++ {
		want := 0
		for want < len(ends) && ends[want] <= cut {
			want++
		}
		got, m, err := openAndCount(t, seg[:cut])
		if err != nil {
			t.Fatalf("cut at %d: Open: %v", cut, err)
		}
		if len(got) != want {
			t.Fatalf("cut at %d: %d records, want %d", cut, len(got), want)
		}
		for i, e := range got {
			if !bytes.Equal(e.rec, tableRecs[i]) {
				t.Fatalf("cut at %d: record %d = %q", cut, i+1, e.rec)
			}
		}
		// The repaired log takes appends at the next position.
		l := mustOpen(t, memOptions(m, 1<<20))
		if p, err := l.AppendSync([]byte("after")); err != nil || p != wal.Pos(want+1) {
			t.Fatalf("cut at %d: AppendSync = %d, %v; want %d", cut, p, err, want+1)
		}
		l.Close()
	}
}

func TestFlipInLastRecordIsDropped(t *testing.T) {
	seg, starts, ends := validSegment(t, tableRecs)
	start, end := starts[len(starts)-1], ends[len(ends)-1]
	for off := start; off < len(seg); off++ {
		bad := bytes.Clone(seg)
		bad[off] ^= 0xff
		got, m, err := openAndCount(t, bad)
		if err != nil {
			t.Fatalf("flip at %d: Open: %v", off, err)
		}
		// A flip in the last record drops it; in the padding after it, it changes nothing
		// (filler) or drops the damaged padding as a torn tail (its header).
		want, size := len(tableRecs)-1, start
		switch {
		case off >= end+12:
			want, size = len(tableRecs), len(seg)
		case off >= end:
			want, size = len(tableRecs), end
		}
		if len(got) != want {
			t.Fatalf("flip at %d: %d records, want %d", off, len(got), want)
		}
		if n := len(m.Snapshot(segPath(1))); n != size {
			t.Fatalf("flip at %d: file is %d bytes after repair, want %d", off, n, size)
		}
	}
}

func TestFlipInMiddleRecordIsCorrupt(t *testing.T) {
	seg, starts, ends := validSegment(t, tableRecs)
	for i := range len(starts) - 1 {
		// The record's frame and the padding header after it (if any): damage there is
		// followed by valid records, so it is not a torn tail.
		stop := ends[i]
		if starts[i+1] > ends[i] {
			stop += 12
		}
		for off := starts[i]; off < stop; off++ {
			bad := bytes.Clone(seg)
			bad[off] ^= 0x01
			_, _, err := openAndCount(t, bad)
			var ce *wal.CorruptError
			if !errors.As(err, &ce) || !errors.Is(err, wal.ErrCorrupt) {
				t.Fatalf("record %d, flip at %d: Open error %v, want a CorruptError", i+1, off, err)
			}
			at := starts[i]
			if off >= ends[i] {
				at = ends[i]
			}
			if ce.Path != segPath(1) || ce.Offset != int64(at) || !strings.Contains(err.Error(), "repair") {
				t.Fatalf("record %d, flip at %d: %v; want file %s offset %d and a repair hint", i+1, off, err, segPath(1), at)
			}
		}
		// A flip in the padding's filler changes nothing.
		for off := stop; off < starts[i+1]; off++ {
			bad := bytes.Clone(seg)
			bad[off] ^= 0x01
			if got, _, err := openAndCount(t, bad); err != nil || len(got) != len(tableRecs) {
				t.Fatalf("filler after record %d, flip at %d: %d records, %v", i+1, off, len(got), err)
			}
		}
	}
}

func TestZeroedSectorInMiddleIsCorrupt(t *testing.T) {
	var recs [][]byte
	for i := range 30 {
		recs = append(recs, bytes.Repeat([]byte{byte(i + 1)}, 90))
	}
	seg, starts, ends := validSegment(t, recs)
	bad := bytes.Clone(seg)
	copy(bad[1024:1536], make([]byte, 512))
	_, _, err := openAndCount(t, bad)
	holder := 0 // the record, with the padding after it, that holds offset 1024
	for holder+1 < len(starts) && starts[holder+1] <= 1024 {
		holder++
	}
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Offset > 1024 || ce.Offset < int64(starts[holder]) {
		t.Fatalf("Open: %v; want a CorruptError in the record holding offset 1024 (from %d)", err, starts[holder])
	}
	// The same zeros at the very end are a torn tail: the records before them survive.
	tail := append(bytes.Clone(seg[:1536]), make([]byte, 512)...)
	want := 0
	for want < len(ends) && ends[want] <= 1536 {
		want++
	}
	got, _, err := openAndCount(t, tail)
	if err != nil || len(got) != want {
		t.Fatalf("zeroed tail: %d records, %v; want %d", len(got), err, want)
	}
}

func TestBadHeaders(t *testing.T) {
	version3 := bytes.Clone(golden)
	version3[8] = 3
	// CRC-32C of the header with version 3, so that only the version is wrong.
	binary.LittleEndian.PutUint32(version3[24:28], crc32.Checksum(version3[:24], crc32.MakeTable(crc32.Castagnoli)))
	tests := []struct {
		name string
		seg  []byte
		want error
	}{
		{"garbage", append([]byte("this is not a log segment at all"), golden[28:]...), wal.ErrCorrupt},
		{"flipped magic", append([]byte{'X'}, golden[1:]...), wal.ErrCorrupt},
		{"flipped salt", append(append(bytes.Clone(golden[:12]), 0x05), golden[13:]...), wal.ErrCorrupt},
		{"wrong first position", append(append(bytes.Clone(golden[:16]), 0x02), golden[17:]...), wal.ErrCorrupt},
		{"version 3", version3, wal.ErrVersion},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := openAndCount(t, tt.seg)
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), segPath(1)) {
				t.Fatalf("Open: %v; want %v naming the file", err, tt.want)
			}
		})
	}
}

func TestEveryHeaderFlipInLastSegment(t *testing.T) {
	for off := range 28 {
		bad := bytes.Clone(golden)
		bad[off] ^= 0x10
		if _, _, err := openAndCount(t, bad); !errors.Is(err, wal.ErrCorrupt) {
			t.Fatalf("flip at %d: Open: %v, want ErrCorrupt", off, err)
		}
	}
}

func TestDamagedEarlierSegment(t *testing.T) {
	// withFirst returns golden with another first position and its header CRC.
	withFirst := func(first byte, crc ...byte) []byte {
		s := bytes.Clone(golden)
		s[16] = first
		copy(s[24:28], crc)
		return s
	}
	seg3 := withFirst(3, 0xe5, 0xa7, 0x99, 0xc6)
	seg5 := withFirst(5, 0xc6, 0xdf, 0xfc, 0x75)
	tests := []struct {
		name  string
		files map[wal.Pos][]byte
		want  error
	}{
		// A torn tail is only acceptable in the last segment.
		{"torn earlier segment", map[wal.Pos][]byte{1: golden[:len(golden)-1], 3: seg3}, wal.ErrCorrupt},
		// Segment 3 must follow 1 (two records); a segment 5 leaves a gap.
		{"gap", map[wal.Pos][]byte{1: golden, 5: seg5}, wal.ErrCorrupt},
		{"contiguous", map[wal.Pos][]byte{1: golden, 3: seg3}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := plant(t, tt.files)
			l, err := wal.Open(memOptions(m, 1024))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Open: %v, want %v", err, tt.want)
			}
			if err == nil {
				if got := replayAll(t, l, 0); len(got) != 4 {
					t.Fatalf("replayed %d records, want 4", len(got))
				}
				l.Close()
			}
		})
	}
}
