package wal_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"testing"

	"edgebroker/wal"
)

const testDir = "/log"

// testPadTo is the padding alignment of the tests' logs: small, so that short segments hold
// many padding frames.
const testPadTo = 64

// memOptions returns options for a log in testDir on fsys with small segments, padded to
// testPadTo at each sync.
func memOptions(fsys wal.FS, segSize int64) wal.Options {
	o := wal.DefaultOptions(testDir)
	o.FS = fsys
	o.SegmentSize = segSize
	o.PadTo = testPadTo
	return o
}

// padded returns size rounded up as a sync pads it: to the next multiple of testPadTo, unless
// fewer bytes than a frame header are missing.
func padded(size int) int {
	if gap := (testPadTo - size%testPadTo) % testPadTo; gap >= 12 {
		return size + gap
	}
	return size
}

func mustOpen(t testing.TB, o wal.Options) *wal.Log {
	t.Helper()
	l, err := wal.Open(o)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return l
}

// record returns the deterministic test record number i: varied sizes, content naming i.
func record(i int) []byte {
	size := (i * 37) % 150
	b := fmt.Appendf(nil, "record %d|", i)
	for len(b) < size {
		b = append(b, byte('a'+i%26))
	}
	return b
}

// entry is one replayed record.
type entry struct {
	pos wal.Pos
	rec []byte
}

// replayAll returns every record after `after`, copied, checking that positions are consecutive.
func replayAll(t testing.TB, l *wal.Log, after wal.Pos) []entry {
	t.Helper()
	var out []entry
	err := l.Replay(after, func(p wal.Pos, rec []byte) error {
		if want := after + wal.Pos(len(out)) + 1; p != want {
			return fmt.Errorf("replayed position %d, want %d", p, want)
		}
		out = append(out, entry{p, bytes.Clone(rec)})
		return nil
	})
	if err != nil {
		t.Fatalf("Replay(%d): %v", after, err)
	}
	return out
}

// segPath returns the path of the segment starting at first in testDir.
func segPath(first wal.Pos) string {
	return filepath.Join(testDir, fmt.Sprintf("%016x.wal", uint64(first)))
}
