package wal_test

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// goldenPadded is a version 2 segment holding "hi", 18 bytes of padding and "", written by hand
// from the format in doc.go. If this test fails, the on-disk format changed.
var goldenPadded = []byte{
	// segment header
	'E', 'B', 'W', 'A', 'L', 0x00, '\r', '\n', // magic
	0x02, 0x00, 0x00, 0x00, // format version 2
	0x04, 0x03, 0x02, 0x01, // salt 0x01020304
	0x01, 0, 0, 0, 0, 0, 0, 0, // first position 1
	0x58, 0x3d, 0x19, 0x47, // CRC-32C of the 24 bytes above
	// record 1: "hi"
	0x02, 0x00, 0x00, 0x00, 0x59, 0x72, 0x5a, 0x88, 0x38, 0xf2, 0x5c, 0xa5, 'h', 'i',
	// padding: the marker, 6 filler bytes, the header CRC over the salt and the 8 bytes before
	0xff, 0xff, 0xff, 0xff, 0x06, 0x00, 0x00, 0x00, 0xdb, 0x83, 0x35, 0x82,
	0, 0, 0, 0, 0, 0,
	// record 2: empty
	0x00, 0x00, 0x00, 0x00, 0xc7, 0x4b, 0x67, 0x48, 0x91, 0x25, 0xe8, 0xf1,
}

func TestGoldenPaddedSegment(t *testing.T) {
	got, _, err := openAndCount(t, goldenPadded)
	if err != nil || len(got) != 2 || string(got[0].rec) != "hi" || len(got[1].rec) != 0 {
		t.Fatalf("replayed %v, %v; want [hi, \"\"]", got, err)
	}
}

// A version 1 segment has no padding: the same frame there is damage.
func TestPaddingInVersion1IsDamage(t *testing.T) {
	v1 := append(bytes.Clone(golden[:42]), goldenPadded[42:]...) // golden's header and "hi"
	_, _, err := openAndCount(t, v1)
	var ce *wal.CorruptError
	if !errors.As(err, &ce) || ce.Offset != 42 {
		t.Fatalf("Open: %v; want a CorruptError at offset 42", err)
	}
}

// Padding cut short at the end of the log is a torn tail: cut off, the records before it kept.
func TestTornPaddingIsDropped(t *testing.T) {
	for cut := 42; cut < 60; cut++ {
		got, m, err := openAndCount(t, goldenPadded[:cut])
		if err != nil || len(got) != 1 {
			t.Fatalf("cut at %d: %d records, %v; want 1", cut, len(got), err)
		}
		if n := len(m.Snapshot(segPath(1))); n != 42 {
			t.Fatalf("cut at %d: file is %d bytes after repair, want 42", cut, n)
		}
	}
}

func TestSyncPadsToTheBoundary(t *testing.T) {
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 1<<20))
	size, pad := 28, 0
	for i := 1; i <= 50; i++ {
		if _, err := l.AppendSync(record(i)); err != nil {
			t.Fatal(err)
		}
		size += 12 + len(record(i))
		pad += padded(size) - size
		size = padded(size)
		if n := len(m.Snapshot(segPath(1))); n != size {
			t.Fatalf("after record %d: segment is %d bytes, want %d", i, n, size)
		}
	}
	if st := l.Stats(); st.Padding != int64(pad) || st.BytesWritten != int64(size) {
		t.Fatalf("Stats %+v; want %d bytes of padding in %d", st, pad, size)
	}
	// Records appended without a sync between them share one padding.
	p, err := l.Append(record(51), record(52))
	if err == nil {
		err = l.WaitDurable(p)
	}
	if err != nil {
		t.Fatal(err)
	}
	want := padded(size + 24 + len(record(51)) + len(record(52)))
	if n := len(m.Snapshot(segPath(1))); n != want {
		t.Fatalf("after two records: segment is %d bytes, want %d", n, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, memOptions(m, 1<<20))
	defer l.Close()
	got := replayAll(t, l, 0)
	if len(got) != 52 {
		t.Fatalf("replayed %d records, want 52", len(got))
	}
	for i, e := range got {
		if !bytes.Equal(e.rec, record(i+1)) {
			t.Fatalf("record %d = %q", i+1, e.rec)
		}
	}
}

func TestPaddingOff(t *testing.T) {
	m := waltest.NewMemFS()
	o := memOptions(m, 1<<20)
	o.PadTo = -1
	l := mustOpen(t, o)
	defer l.Close()
	size := 28
	for i := 1; i <= 5; i++ {
		if _, err := l.AppendSync(record(i)); err != nil {
			t.Fatal(err)
		}
		size += 12 + len(record(i))
	}
	if n := len(m.Snapshot(segPath(1))); n != size || l.Stats().Padding != 0 {
		t.Fatalf("segment is %d bytes, padding %d; want %d and none", n, l.Stats().Padding, size)
	}
}

// Under SyncInterval the records are written as they come and synced on a tick: the padding
// comes with the sync, after the last write.
func TestIntervalSyncPads(t *testing.T) {
	m := waltest.NewMemFS()
	o := memOptions(m, 1<<20)
	o.Sync, o.SyncInterval = wal.SyncInterval, time.Hour
	l := mustOpen(t, o)
	size := 28
	for i := 1; i <= 3; i++ {
		if _, err := l.AppendSync(record(i)); err != nil { // written, not synced
			t.Fatal(err)
		}
		size += 12 + len(record(i))
	}
	if n := len(m.Snapshot(segPath(1))); n != size {
		t.Fatalf("before the sync: segment is %d bytes, want %d", n, size)
	}
	if err := l.Close(); err != nil { // syncs
		t.Fatal(err)
	}
	if n := len(m.Snapshot(segPath(1))); n != padded(size) {
		t.Fatalf("after the sync: segment is %d bytes, want %d", n, padded(size))
	}
}

// A segment too small for padding is not padded: it would roll at nearly every sync.
func TestSmallSegmentsAreNotPadded(t *testing.T) {
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 4*testPadTo-1))
	defer l.Close()
	if _, err := l.AppendSync(record(1)); err != nil {
		t.Fatal(err)
	}
	if n, want := len(m.Snapshot(segPath(1))), 28+12+len(record(1)); n != want {
		t.Fatalf("segment is %d bytes, want %d", n, want)
	}
}

func TestPadToOverTheMaximum(t *testing.T) {
	o := memOptions(waltest.NewMemFS(), 1<<30)
	o.PadTo = wal.MaxPadTo + 1
	if _, err := wal.Open(o); err == nil {
		t.Fatal("Open took a PadTo over the maximum")
	}
	o.PadTo = wal.MaxPadTo // the largest works, and reopens
	l := mustOpen(t, o)
	if _, err := l.AppendSync(record(1)); err != nil {
		t.Fatal(err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, o)
	defer l.Close()
	if got := replayAll(t, l, 0); len(got) != 1 {
		t.Fatalf("replayed %d records, want 1", len(got))
	}
}
