package store

import (
	"fmt"
	"log/slog"
	"math"
	"time"

	"edgebroker/wal"
)

// is32bit is true on 32-bit targets (armv6, armv7, mips, mipsle), where bbolt can only map a
// file as large as the address space leaves room for.
const is32bit = math.MaxInt == math.MaxInt32

// Defaults and limits of Options.
const (
	DefaultCheckpointBytes = 8 << 20
	DefaultCheckpointEvery = 30 * time.Second
	// MaxDBSize32 is the largest checkpoint.db on 32-bit targets: bbolt cannot map, and so
	// cannot reopen, a bigger file there.
	MaxDBSize32         = 480 << 20 // below 512 MiB, which bbolt cannot reopen on 32-bit MIPS
	DefaultInitialMmap  = 1 << 20
	DefaultDBAllocSize  = 1 << 20
	checkpointFile      = "checkpoint.db"
	walDir              = "wal"
	dbLockTimeout       = time.Second
	inspectLockFallback = 200 * time.Millisecond
	closeCheckpointTime = 2 * time.Second       // the most Close spends on its last checkpoint
	maxLag              = 4                     // CheckpointBytes the log may run ahead of the checkpoint: Throttle
	throttleWait        = time.Second           // the longest one Throttle call waits
	giveWayStep         = 10 * time.Millisecond // how often a checkpoint giving way looks again: giveWay
)

// Options configure a Store. Get them from DefaultOptions.
type Options struct {
	// Dir is the data directory: the log goes to Dir/wal/, the checkpoint to
	// Dir/checkpoint.db and the bodies it stores to Dir/bodies/. Open creates it if missing.
	// Required.
	Dir string
	// WAL configures the log: Sync (the fsync policy), SyncInterval, SegmentSize, FS. Its Dir
	// is set by the store. The body files are as big as a segment (at most 1 GiB), and on
	// the same FS. Only wal.SyncAlways keeps the durability promise of Store.Wait
	// across a power cut.
	WAL wal.Options
	// CheckpointBytes starts a background checkpoint once this much log (records and the
	// log's padding) has been committed since the last one. Smaller means less disk for the
	// log and faster recovery, but more writes to checkpoint.db (bbolt rewrites whole pages:
	// flash wear). Default 8 MiB.
	CheckpointBytes int64
	// CheckpointOps bounds the operations one checkpoint transaction applies (each entry of a
	// DeleteEntries or SetPacketIDs counts as one): a longer checkpoint commits in several
	// transactions, each at a record boundary. bbolt keeps every page a transaction touches
	// in memory until it commits, so this bounds the memory a checkpoint takes, deletions of
	// a drained backlog included. Zero means no bound.
	CheckpointOps int
	// Lean also drops checkpoint.db from the page cache whenever the store hands its mapped
	// pages back (after each checkpoint transaction and each MiB read back): the kernel maps
	// up to 16 cached pages around every fault, so on a small memory budget the file's
	// resident part would otherwise grow far faster than what is read. It costs real reads.
	Lean bool
	// CheckpointEvery starts a checkpoint at least this often while there is new log.
	// Default 30s.
	CheckpointEvery time.Duration
	// DBMaxSize caps the size of checkpoint.db in bytes; a checkpoint that would grow it further
	// fails (and is retried, while the log grows). Zero means no cap on 64-bit targets and
	// MaxDBSize32 on 32-bit ones, where larger values are lowered to it.
	DBMaxSize int
	// DBInitialMmap is the initial memory map of checkpoint.db. Larger lets readers run beside
	// a growing checkpoint without remapping, at the cost of address space. Default 1 MiB.
	DBInitialMmap int
	// DBAllocSize is how much checkpoint.db grows at a time. bbolt's default (16 MiB) is a lot
	// for an SD card of a small gateway; growing in small steps costs more remaps. Default 1 MiB.
	DBAllocSize int
	// Logger receives recovery warnings and checkpoint errors; nil discards them.
	Logger *slog.Logger
	// Now returns the current time, used to drop expired sessions and messages at Open; nil
	// means time.Now.
	Now func() time.Time
}

// DefaultOptions returns the default options for a store in dir: a fresh value on every call.
func DefaultOptions(dir string) Options {
	return Options{
		Dir:             dir,
		WAL:             wal.DefaultOptions(""),
		CheckpointBytes: DefaultCheckpointBytes,
		CheckpointEvery: DefaultCheckpointEvery,
		DBInitialMmap:   DefaultInitialMmap,
		DBAllocSize:     DefaultDBAllocSize,
	}
}

// normalized fills in defaults and checks o.
func (o Options) normalized() (Options, error) {
	if o.Dir == "" {
		return o, fmt.Errorf("store: Options.Dir is required")
	}
	if o.CheckpointBytes <= 0 {
		o.CheckpointBytes = DefaultCheckpointBytes
	}
	if o.CheckpointEvery <= 0 {
		o.CheckpointEvery = DefaultCheckpointEvery
	}
	if o.DBInitialMmap <= 0 {
		o.DBInitialMmap = DefaultInitialMmap
	}
	if o.DBAllocSize <= 0 {
		o.DBAllocSize = DefaultDBAllocSize
	}
	o.DBMaxSize = clampDBSize(o.DBMaxSize, is32bit)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	o.WAL.Dir = walPath(o.Dir)
	if o.WAL.FS == nil {
		o.WAL.FS = wal.OSFS()
	}
	if o.WAL.SegmentSize <= 0 {
		o.WAL.SegmentSize = wal.DefaultSegmentSize // body files are as big
	}
	if o.WAL.Logger == nil {
		o.WAL.Logger = o.Logger
	}
	return o, nil
}

// clampDBSize applies the 32-bit limit to a DBMaxSize.
func clampDBSize(n int, small bool) int {
	if small && (n <= 0 || n > MaxDBSize32) {
		return MaxDBSize32
	}
	return max(n, 0)
}
