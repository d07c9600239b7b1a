package wal_test

import (
	"runtime"
	"testing"

	"edgebroker/wal"
)

// benchRecord is a typical small record: an MQTT message and its queue entries.
var benchRecord = make([]byte, 100)

func benchLog(b *testing.B, sync wal.SyncPolicy) *wal.Log {
	o := wal.DefaultOptions(b.TempDir())
	o.Sync = sync
	l, err := wal.Open(o)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	return l
}

func reportFsyncs(b *testing.B, l *wal.Log) {
	st := l.Stats()
	if st.Fsyncs > 0 {
		b.ReportMetric(float64(st.Records)/float64(st.Fsyncs), "records/fsync")
	}
}

// BenchmarkAppend measures buffered appends with SyncNever: the cost of framing and copying.
func BenchmarkAppend(b *testing.B) {
	l := benchLog(b, wal.SyncNever)
	b.SetBytes(int64(len(benchRecord)))
	for b.Loop() {
		if _, err := l.Append(benchRecord); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkAppendSync measures one writer waiting for each record: one fsync per record.
func BenchmarkAppendSync(b *testing.B) {
	l := benchLog(b, wal.SyncAlways)
	for b.Loop() {
		if _, err := l.AppendSync(benchRecord); err != nil {
			b.Fatal(err)
		}
	}
	reportFsyncs(b, l)
}

// BenchmarkAppendSyncParallel measures 16 goroutines each waiting for its own records: group
// commit makes one fsync cover many of them.
func BenchmarkAppendSyncParallel(b *testing.B) {
	l := benchLog(b, wal.SyncAlways)
	b.SetParallelism((16 + runtime.GOMAXPROCS(0) - 1) / runtime.GOMAXPROCS(0))
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := l.AppendSync(benchRecord); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportFsyncs(b, l)
}

// BenchmarkReplay measures reading back 8 MiB of 100-byte records (two segments).
func BenchmarkReplay(b *testing.B) {
	l := benchLog(b, wal.SyncNever)
	var size int64
	for size < 8<<20 {
		if _, err := l.Append(benchRecord); err != nil {
			b.Fatal(err)
		}
		size += int64(len(benchRecord))
	}
	if err := l.WaitDurable(l.LastPos()); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(size)
	for b.Loop() {
		n := 0
		if err := l.Replay(0, func(wal.Pos, []byte) error { n++; return nil }); err != nil {
			b.Fatal(err)
		}
		if wal.Pos(n) != l.LastPos() {
			b.Fatalf("replayed %d records", n)
		}
	}
}
