package wal_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"edgebroker/wal"
	"edgebroker/wal/waltest"
)

func TestConcurrentAppendersShareFsyncs(t *testing.T) {
	dir := t.TempDir()
	o := wal.DefaultOptions(dir)
	o.SegmentSize = 16 << 10
	l := mustOpen(t, o)
	const writers, each = 8, 200
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			for i := range each {
				rec := binary.BigEndian.AppendUint32([]byte{byte(g)}, uint32(i))
				if _, err := l.AppendSync(rec); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	st := l.Stats()
	if st.Records != writers*each || st.Fsyncs >= st.Records || st.Segments < 2 {
		t.Fatalf("Stats %+v: want %d records, fewer fsyncs, several segments", st, writers*each)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, o)
	defer l.Close()
	next := make([]uint32, writers)
	got := replayAll(t, l, 0)
	for _, e := range got {
		g, i := e.rec[0], binary.BigEndian.Uint32(e.rec[1:])
		if i != next[g] {
			t.Fatalf("writer %d: record %d after %d", g, i, next[g])
		}
		next[g]++
	}
	if len(got) != writers*each {
		t.Fatalf("replayed %d records, want %d", len(got), writers*each)
	}
}

func TestErrors(t *testing.T) {
	m := waltest.NewMemFS()
	l := mustOpen(t, memOptions(m, 256))
	if _, err := l.Append(make([]byte, wal.MaxRecordSize+1)); !errors.Is(err, wal.ErrTooLarge) {
		t.Fatalf("Append of a huge record: %v", err)
	}
	if err := l.WaitDurable(1); !errors.Is(err, wal.ErrNotAppended) {
		t.Fatalf("WaitDurable(1) on an empty log: %v", err)
	}
	for i := 1; i <= 30; i++ {
		if _, err := l.AppendSync(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if err := l.TruncateBefore(20); err != nil {
		t.Fatal(err)
	}
	first := l.FirstPos()
	if first <= 1 || first > 20 {
		t.Fatalf("FirstPos after TruncateBefore(20) = %d", first)
	}
	if err := l.Replay(0, func(wal.Pos, []byte) error { return nil }); !errors.Is(err, wal.ErrMissing) {
		t.Fatalf("Replay(0) after truncation: %v", err)
	}
	if got := replayAll(t, l, 19); len(got) != 11 || !bytes.Equal(got[0].rec, record(20)) {
		t.Fatalf("Replay(19): %d records", len(got))
	}
	stop := errors.New("stop")
	if err := l.Replay(first-1, func(wal.Pos, []byte) error { return stop }); err != stop {
		t.Fatalf("Replay returned %v, want fn's error", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Append([]byte("x")); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("Append after Close: %v", err)
	}
	if err := l.Close(); !errors.Is(err, wal.ErrClosed) {
		t.Fatalf("second Close: %v", err)
	}
	// The truncation is durable across a reopen.
	l = mustOpen(t, memOptions(m, 256))
	defer l.Close()
	if l.FirstPos() != first || l.LastPos() != 30 {
		t.Fatalf("after reopen: FirstPos %d LastPos %d, want %d and 30", l.FirstPos(), l.LastPos(), first)
	}
}

func TestOptions(t *testing.T) {
	for _, o := range []wal.Options{
		{},
		{Dir: "/x", SegmentSize: 10},
		{Dir: "/x", Sync: wal.SyncPolicy(9)},
		{Dir: "/x", SyncInterval: -time.Second},
	} {
		if _, err := wal.Open(o); err == nil {
			t.Fatalf("Open(%+v) succeeded", o)
		}
	}
	for _, p := range []wal.SyncPolicy{wal.SyncAlways, wal.SyncInterval, wal.SyncNever} {
		if got, err := wal.ParseSyncPolicy(p.String()); err != nil || got != p {
			t.Fatalf("ParseSyncPolicy(%q) = %v, %v", p, got, err)
		}
	}
	if _, err := wal.ParseSyncPolicy("sometimes"); err == nil {
		t.Fatal("ParseSyncPolicy accepted sometimes")
	}
	a := wal.DefaultOptions("a")
	a.SegmentSize = 1
	if wal.DefaultOptions("a").SegmentSize != wal.DefaultSegmentSize {
		t.Fatal("DefaultOptions returned a shared value")
	}
}

func TestUnsafePolicies(t *testing.T) {
	for _, p := range []wal.SyncPolicy{wal.SyncInterval, wal.SyncNever} {
		t.Run(p.String(), func(t *testing.T) {
			m := waltest.NewMemFS()
			o := memOptions(m, 1<<20)
			o.Sync, o.SyncInterval = p, 5*time.Millisecond
			l := mustOpen(t, o)
			last, err := l.AppendSync(record(1), record(2))
			if err != nil || last != 2 {
				t.Fatalf("AppendSync = %d, %v", last, err)
			}
			// Written but maybe not synced: a restart (no power cut) sees it. The interval's
			// sync may have come already (a slow machine, an emulator), padding the segment.
			want := 28 + 24 + len(record(1)) + len(record(2))
			if data := m.Snapshot(segPath(1)); len(data) != want && (p != wal.SyncInterval || len(data) != padded(want)) {
				t.Fatalf("segment is %d bytes after AppendSync; want %d (or %d, padded by a sync)", len(data), want, padded(want))
			}
			if p == wal.SyncInterval {
				checkFor(t, 5*time.Second, func() bool { return l.Stats().Fsyncs > 1 })
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			l = mustOpen(t, o)
			defer l.Close()
			if got := replayAll(t, l, 0); len(got) != 2 {
				t.Fatalf("replayed %d records", len(got))
			}
		})
	}
}

// checkFor polls cond until it holds or the timeout passes.
func checkFor(t *testing.T, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(time.Millisecond)
	}
}

func TestOSFileSystem(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "log")
	o := wal.DefaultOptions(dir)
	o.SegmentSize = 512
	l := mustOpen(t, o)
	for i := 1; i <= 20; i++ {
		if _, err := l.AppendSync(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Inspect is safe on a live log.
	info, err := wal.Inspect(o)
	if err != nil || info.LastPos != 20 || info.Records != 20 || info.Damage != nil || len(info.Segments) < 2 {
		t.Fatalf("Inspect = %+v, %v", info, err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	stale := filepath.Join(dir, "00000000000000ff.wal.tmp")
	if err := os.WriteFile(stale, []byte("half a segment"), 0o644); err != nil {
		t.Fatal(err)
	}
	l = mustOpen(t, o)
	defer l.Close()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stale temporary file survived Open: %v", err)
	}
	got := replayAll(t, l, 0)
	if len(got) != 20 || !bytes.Equal(got[19].rec, record(20)) {
		t.Fatalf("replayed %d records", len(got))
	}
	if _, err := os.Stat(filepath.Join(dir, "0000000000000001.wal")); err != nil {
		t.Fatal(err)
	}
}

func TestReplayWhileAppending(t *testing.T) {
	l := mustOpen(t, memOptions(waltest.NewMemFS(), 300))
	defer l.Close()
	done := make(chan error)
	go func() {
		for i := 1; i <= 300; i++ {
			if _, err := l.Append(record(i)); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	for running := true; running; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			running = false
		default:
		}
		got := replayAll(t, l, 0)
		for _, e := range got {
			if !bytes.Equal(e.rec, record(int(e.pos))) {
				t.Fatalf("record %d = %q", e.pos, e.rec)
			}
		}
	}
	if got := replayAll(t, l, 0); len(got) != 300 {
		t.Fatalf("replayed %d records, want 300", len(got))
	}
}

// countingFS counts the bytes read from its files.
type countingFS struct {
	wal.FS
	read *atomic.Int64
}

func (c countingFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countingFile{f, c.read}, nil
}

type countingFile struct {
	wal.File
	read *atomic.Int64
}

func (c countingFile) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.File.ReadAt(p, off)
	c.read.Add(int64(n))
	return n, err
}

// A replay that starts where the previous one stopped (as each checkpoint does) seeks there
// instead of reading the segment again from its start, and returns the same records as a
// replay from scratch, in every segment and across segment boundaries.
func TestReplayResumesWhereItStopped(t *testing.T) {
	var read atomic.Int64
	l := mustOpen(t, memOptions(countingFS{waltest.NewMemFS(), &read}, 256<<10))
	defer l.Close()
	const n = 8000
	for i := 1; i <= n; i++ {
		if _, err := l.Append(record(i)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := l.AppendSync(record(n + 1)); err != nil {
		t.Fatal(err)
	}
	errStop := errors.New("stop")
	after := wal.Pos(0)
	for _, stop := range []wal.Pos{700, 701, 2500, 2501, 2502, 6000, n + 1} {
		read.Store(0)
		next := after + 1
		err := l.Replay(after, func(p wal.Pos, rec []byte) error {
			if p > stop {
				return errStop
			}
			if p != next || !bytes.Equal(rec, record(int(p))) {
				return fmt.Errorf("record %d: %q, want record %d", p, rec, next)
			}
			next++
			return nil
		})
		if err != nil && err != errStop {
			t.Fatalf("replay after %d: %v", after, err)
		}
		if next != stop+1 {
			t.Fatalf("replay after %d stopped before %d, want %d", after, next, stop+1)
		}
		if after > 0 && stop-after <= 2 && read.Load() > 128<<10 {
			t.Fatalf("replay of %d records after %d read %d bytes: it read the segment again", stop-after, after, read.Load())
		}
		after = stop
	}
}
