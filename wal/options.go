package wal

import (
	"fmt"
	"log/slog"
	"time"
)

// SyncPolicy says when appended records are fdatasynced.
type SyncPolicy int

const (
	// SyncAlways (the default) syncs after every write: WaitDurable returns only when the
	// records are on disk. Concurrent appends share one fsync (group commit).
	SyncAlways SyncPolicy = iota
	// SyncInterval syncs at most once per Options.SyncInterval. UNSAFE: WaitDurable returns
	// once the records are written, before they are synced; a power cut loses up to one
	// interval of acknowledged records. A process crash loses nothing written.
	SyncInterval
	// SyncNever leaves syncing to the operating system (and to segment rolls and Close).
	// UNSAFE: a power cut may lose any amount of acknowledged records.
	SyncNever
)

// String returns the policy's flag value: always, interval or never.
func (p SyncPolicy) String() string {
	switch p {
	case SyncAlways:
		return "always"
	case SyncInterval:
		return "interval"
	case SyncNever:
		return "never"
	}
	return fmt.Sprintf("SyncPolicy(%d)", int(p))
}

// ParseSyncPolicy parses a flag value: always, interval or never.
func ParseSyncPolicy(s string) (SyncPolicy, error) {
	for _, p := range []SyncPolicy{SyncAlways, SyncInterval, SyncNever} {
		if s == p.String() {
			return p, nil
		}
	}
	return 0, fmt.Errorf("wal: unknown sync policy %q (want always, interval or never)", s)
}

// Default option values.
const (
	DefaultSegmentSize  = 4 << 20
	DefaultSyncInterval = time.Second
	minSegmentSize      = segHeaderSize + frameHeaderSize
	minPagesPadded      = 4 // the fewest PadTo-sized pages a segment must hold to be padded
	// DefaultPadTo is the block size of ext4 and f2fs and the page size of the boards this
	// log is made for. Not the page size of the running kernel: some arm64 kernels use 16 or
	// 64 KiB pages, and padding to those would multiply the log's disk use.
	DefaultPadTo = 4096
	// MaxPadTo bounds Options.PadTo: padding frames must stay far below MaxRecordSize.
	MaxPadTo = 1 << 20
)

// Options configure a Log.
type Options struct {
	// Dir is the directory of the segment files; Open creates it if missing. Required.
	Dir string
	// SegmentSize: a new segment is started before a record would take the current one past
	// this many bytes. Small segments let TruncateBefore free disk space sooner and make
	// recovery reads shorter; each roll costs two fsyncs and a directory sync. Default 4 MiB.
	SegmentSize int64
	// Sync is the fsync policy; the zero value is SyncAlways, the only one that keeps the
	// promise of WaitDurable across a power cut.
	Sync SyncPolicy
	// SyncInterval is the time between syncs under SyncInterval. Default 1s.
	SyncInterval time.Duration
	// PadTo: before each sync the segment is padded to a multiple of this many bytes, so that
	// no block is written by two syncs. 0 means DefaultPadTo; a negative value turns padding
	// off, and so does a SegmentSize under minPagesPadded times PadTo (padding would make
	// nearly every sync roll the segment). At most MaxPadTo.
	PadTo int64
	// FS is the file system; nil means the operating system's (OSFS).
	FS FS
	// Logger receives recovery warnings (a dropped torn tail) and the error that poisons a
	// Log; nil discards them.
	Logger *slog.Logger
}

// DefaultOptions returns the default options for a log in dir: a fresh value on every call.
func DefaultOptions(dir string) Options {
	return Options{Dir: dir, SegmentSize: DefaultSegmentSize, Sync: SyncAlways, SyncInterval: DefaultSyncInterval}
}

// normalized fills in defaults and checks the options.
func (o Options) normalized() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("wal: Options.Dir is empty")
	}
	if o.SegmentSize == 0 {
		o.SegmentSize = DefaultSegmentSize
	}
	if o.SegmentSize < minSegmentSize {
		return o, fmt.Errorf("wal: Options.SegmentSize %d is below the minimum %d", o.SegmentSize, minSegmentSize)
	}
	if o.Sync < SyncAlways || o.Sync > SyncNever {
		return o, fmt.Errorf("wal: unknown sync policy %d", int(o.Sync))
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = DefaultSyncInterval
	}
	if o.SyncInterval < 0 {
		return o, fmt.Errorf("wal: Options.SyncInterval %v is negative", o.SyncInterval)
	}
	if o.PadTo == 0 {
		o.PadTo = DefaultPadTo
	}
	if o.PadTo > MaxPadTo {
		return o, fmt.Errorf("wal: Options.PadTo %d is over the maximum %d", o.PadTo, MaxPadTo)
	}
	if o.SegmentSize < minPagesPadded*o.PadTo {
		o.PadTo = -1
	}
	if o.FS == nil {
		o.FS = OSFS()
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return o, nil
}
