package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"runtime"
	"testing"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

// FuzzReplay treats arbitrary bytes as the only segment file: Open either fails with a damage
// error or recovers a log that replays, reopens to the same records and takes appends.
func FuzzReplay(f *testing.F) {
	f.Add(golden)
	f.Add(golden[:40])
	f.Add(append(bytes.Clone(golden), 1, 2, 3))
	f.Add(hugeFrame())
	f.Add(goldenPadded)
	f.Add(goldenPadded[:50])
	f.Fuzz(func(t *testing.T, data []byte) {
		m := waltest.NewMemFS()
		if err := m.WriteFile(segPath(1), data); err != nil {
			t.Fatal(err)
		}
		o := memOptions(m, 1<<20)
		l, err := wal.Open(o)
		if err != nil {
			if !errors.Is(err, wal.ErrCorrupt) && !errors.Is(err, wal.ErrVersion) {
				t.Fatalf("Open: %v", err)
			}
			return
		}
		got := replayAll(t, l, 0)
		if len(got) > len(data)/12 {
			t.Fatalf("%d records from %d bytes", len(got), len(data))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, o)
		defer l.Close()
		again := replayAll(t, l, 0)
		if len(again) != len(got) {
			t.Fatalf("reopen: %d records, first open %d", len(again), len(got))
		}
		for i := range got {
			if !bytes.Equal(got[i].rec, again[i].rec) {
				t.Fatalf("record %d changed on reopen", i+1)
			}
		}
		if p, err := l.AppendSync([]byte("more")); err != nil || p != wal.Pos(len(got)+1) {
			t.Fatalf("AppendSync = %d, %v", p, err)
		}
	})
}

// FuzzRecordFraming appends records cut from arbitrary bytes, with an arbitrary segment size,
// and checks that they replay identically after a reopen.
func FuzzRecordFraming(f *testing.F) {
	f.Add([]byte("\x03abc\x00\x05hello"), uint16(40))
	f.Add(bytes.Repeat([]byte{200}, 600), uint16(0))
	f.Fuzz(func(t *testing.T, data []byte, segSize uint16) {
		var recs [][]byte
		for len(data) > 0 {
			n := min(int(data[0]), len(data)-1)
			recs = append(recs, data[1:1+n])
			data = data[1+n:]
		}
		m := waltest.NewMemFS()
		o := memOptions(m, 40+int64(segSize))
		l := mustOpen(t, o)
		for _, r := range recs {
			if _, err := l.Append(r); err != nil {
				t.Fatal(err)
			}
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		l = mustOpen(t, o)
		defer l.Close()
		got := replayAll(t, l, 0)
		if len(got) != len(recs) {
			t.Fatalf("replayed %d records, appended %d", len(got), len(recs))
		}
		for i := range recs {
			if !bytes.Equal(got[i].rec, recs[i]) {
				t.Fatalf("record %d = %q, want %q", i+1, got[i].rec, recs[i])
			}
		}
	})
}

// hugeFrame returns golden followed by a frame header with a valid header CRC that claims a
// MaxRecordSize payload, of which only 3 bytes are there.
func hugeFrame() []byte {
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	h := binary.LittleEndian.AppendUint32(nil, wal.MaxRecordSize) // length
	h = binary.LittleEndian.AppendUint32(h, 0)                    // data CRC (never checked)
	hcrc := crc32.Update(crc32.Checksum(golden[12:16], castagnoli), castagnoli, h)
	h = binary.LittleEndian.AppendUint32(h, hcrc) // header CRC over salt and the 8 bytes
	return append(append(bytes.Clone(golden), h...), 1, 2, 3)
}

func TestHugeLengthAllocatesNothing(t *testing.T) {
	m := plant(t, map[wal.Pos][]byte{1: hugeFrame()})
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	l := mustOpen(t, memOptions(m, 1<<20))
	got := replayAll(t, l, 0)
	runtime.ReadMemStats(&after)
	l.Close()
	if len(got) != 2 {
		t.Fatalf("replayed %d records, want the 2 before the torn one", len(got))
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 4<<20 {
		t.Fatalf("Open and Replay allocated %d bytes for a torn %d-byte record", n, wal.MaxRecordSize)
	}
}
