package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgebroker/wal"
)

// Store is an open session store: a write-ahead log of batches and a bbolt checkpoint of the
// log's effect up to a position C. Its methods are safe for concurrent use.
type Store struct {
	opts Options
	logp atomic.Pointer[wal.Log] // replaced by Reopen after a failure
	db   *bolt.DB
	// spill holds the bodies checkpoints store (bodyfile.go); stuck lists the files
	// compaction could not empty (their damage is logged once), on ckptMu.
	spill *bodyFiles
	stuck map[uint32]bool

	nextMsgID atomic.Uint64
	sinceCkpt atomic.Int64 // log bytes (records and padding) since the last checkpoint began
	padSeen   atomic.Int64 // the log's padding count when sinceCkpt last took it in
	// reopened holds the counters of the logs Reopen replaced, so that Stats stays
	// cumulative.
	reopenedMu sync.Mutex
	reopened   wal.Stats
	readSince  atomic.Int64 // bytes ReadQueued read through the map since its pages were dropped

	// dbFile is checkpoint.db opened for reading queues back with pread (pages.go) and for
	// dropping it from the page cache (Options.Lean); nil if it could not be opened, and then
	// reads go through the map.
	dbFile   *os.File
	pageBufs pageBuffers // page buffers of the reads with dbFile

	lagMu     sync.Mutex
	ckptBegan chan struct{} // closed and replaced when a checkpoint begins; see Throttle
	ckptPos   atomic.Uint64
	ckpts     atomic.Int64
	reads     atomic.Int64 // ReadQueued calls

	ckptMu  sync.Mutex  // serializes checkpoints and Close
	closed  bool        // on ckptMu
	closing atomic.Bool // Close was called

	kick  chan struct{} // wakes the checkpointer; capacity 1
	hurry atomic.Bool   // CheckpointSoon asked: the next transaction does not give way
	quit  chan struct{}
	done  chan struct{}
}

// Stats are counters of a Store since Open.
type Stats struct {
	Log           wal.Stats // bytes, records, fsyncs and segments of the log, since Open (across Reopen)
	Checkpoints   int64     // checkpoints done (recovery counts as one when it applied records)
	CheckpointPos wal.Pos   // the log position checkpoint.db reflects
	QueueReads    int64     // reads of queued entries back from checkpoint.db (ReadQueued calls)
	DBSize        int64     // size of checkpoint.db in bytes
	BodyBytes     int64     // size of the body files (bodies/) in bytes
	BodyWritten   int64     // bytes written to the body files since Open
}

func walPath(dir string) string { return filepath.Join(dir, walDir) }
func dbPath(dir string) string  { return filepath.Join(dir, checkpointFile) }

// Open opens the store in opts.Dir and recovers it: the log records after the checkpoint are
// applied to checkpoint.db, as a checkpoint would, and the state is loaded from it. Expired
// sessions, and expired messages in flight or retained, are dropped (and deleted from disk);
// queued entries stay on disk, counted, for ReadQueued. A session whose connection was
// open when the broker stopped comes back with DisconnectedAt set to the time of Open, which
// is stored.
//
// Recovery is idempotent: a crash or power cut during Open is survived by the next Open. Open
// fails with an error naming the file and offset, and pointing at Repair, when the log is
// damaged in the middle, and with ErrDamaged when checkpoint.db is not a valid checkpoint.
func Open(opts Options) (*Store, *State, error) {
	opts, err := opts.normalized()
	if err != nil {
		return nil, nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("store: open: %w", err)
	}
	db, err := openDB(opts, false)
	if err != nil {
		return nil, nil, err
	}
	l, err := wal.Open(opts.WAL)
	if err != nil {
		db.Close()
		return nil, nil, logError(opts.Dir, err)
	}
	s := &Store{opts: opts, db: db, stuck: map[uint32]bool{}, kick: make(chan struct{}, 1),
		quit: make(chan struct{}), done: make(chan struct{}), ckptBegan: make(chan struct{})}
	s.logp.Store(l)
	if s.spill, err = openSpill(opts, db); err != nil {
		l.Close()
		db.Close()
		return nil, nil, err
	}
	s.dbFile, _ = os.Open(dbPath(opts.Dir)) // without it the store is merely less lean
	st, err := s.recover()
	if err != nil {
		l.Close()
		db.Close()
		s.closeDBFile()
		s.spill.close()
		return nil, nil, err
	}
	go s.checkpointer()
	return s, st, nil
}

// logError turns a damaged-log error into the one-line message an operator needs.
func logError(dir string, err error) error {
	var ce *wal.CorruptError
	if errors.As(err, &ce) {
		return fmt.Errorf("store: %w; the command is: edgebroker repair --data-dir %s", err, dir)
	}
	return fmt.Errorf("store: open log: %w", err)
}

// openDB opens checkpoint.db, creating its buckets if it is new, and checks its layout version.
func openDB(opts Options, readOnly bool) (db *bolt.DB, err error) {
	path := dbPath(opts.Dir)
	bo := &bolt.Options{
		Timeout:         dbLockTimeout,
		InitialMmapSize: opts.DBInitialMmap,
		MaxSize:         opts.DBMaxSize,
		FreelistType:    bolt.FreelistMapType,
		ReadOnly:        readOnly,
	}
	if readOnly {
		bo.Timeout = inspectLockFallback
	}
	err = guard(func() error {
		db, err = bolt.Open(path, 0o600, bo)
		return err
	})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("%w: %s (is a broker running on this data directory?)", errLocked, path)
	case err != nil && !errors.Is(err, ErrDamaged) && isBoltDamage(err):
		return nil, fmt.Errorf("%w: %s: %w (restore it from a backup, or move it aside to start empty)", ErrDamaged, path, err)
	case err != nil:
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	db.AllocSize = opts.DBAllocSize
	check := func(tx *bolt.Tx) error {
		if readOnly && tx.Bucket(bucketMeta) == nil {
			return nil // a database Open has not initialized yet: it reads as empty
		}
		for _, name := range topBuckets {
			if _, err := createBucket(tx, name, readOnly); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		v := meta.Get(keyFormat)
		version := uint32(0) // none yet: a new file
		if v != nil {
			version = math.MaxUint32
			if len(v) == 4 {
				version = binary.BigEndian.Uint32(v)
			}
		}
		switch {
		case (version == 0 || version == 1) && !readOnly:
			// New, or layout 1: that keeps every body in the messages bucket, which layout 2
			// still reads; what is stored from now on goes to the body files.
			if _, err := tx.CreateBucketIfNotExists(bucketBodyFiles); err != nil {
				return err
			}
			return meta.Put(keyFormat, binary.BigEndian.AppendUint32(nil, dbFormat))
		case version == 1 || version == dbFormat:
			return nil
		}
		return fmt.Errorf("%w: %s: layout version %x, want %d (written by a newer edgebroker?)", ErrDamaged, path, v, dbFormat)
	}
	if readOnly {
		err = guard(func() error { return db.View(check) })
	} else {
		err = guard(func() error { return db.Update(check) })
	}
	if err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

func createBucket(tx *bolt.Tx, name []byte, readOnly bool) (*bolt.Bucket, error) {
	if b := tx.Bucket(name); b != nil || readOnly {
		if b == nil {
			return nil, fmt.Errorf("%w: bucket %q missing", ErrDamaged, name)
		}
		return b, nil
	}
	return tx.CreateBucket(name)
}

// isBoltDamage reports whether bolt.Open failed because the file is not a valid database.
func isBoltDamage(err error) bool {
	return errors.Is(err, bolt.ErrInvalid) || errors.Is(err, bolt.ErrChecksum) ||
		errors.Is(err, bolt.ErrVersionMismatch) || errors.Is(err, bolt.ErrInvalidMapping)
}

// guard runs fn and turns a panic inside bbolt on a damaged file into ErrDamaged.
func guard(fn func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %v", ErrDamaged, r)
		}
	}()
	return fn()
}

// recover brings checkpoint.db up to the end of the log and loads the state.
func (s *Store) recover() (*State, error) {
	var c wal.Pos
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			c = wal.Pos(getUint64(tx.Bucket(bucketMeta), keyCheckpoint))
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	if err := s.pad(c); err != nil {
		return nil, err
	}
	d := s.wal().LastPos()
	var st *State
	var a *applier
	err = guard(func() error {
		return s.db.Update(func(tx *bolt.Tx) error {
			var err error
			a, err = newApplier(tx, s.spill)
			if err != nil {
				return err
			}
			if err := s.replay(a, c, d); err != nil {
				return err
			}
			if err := a.settle(); err != nil {
				return err
			}
			st, err = load(a, s.opts.Now(), s.opts.Logger)
			if err != nil {
				return err
			}
			return a.finish(d)
		})
	})
	if err != nil {
		return nil, err
	}
	s.ckptPos.Store(uint64(d))
	if d > c {
		s.ckpts.Add(1)
	}
	s.dropResidentNow()
	if err := a.removeDoomed(); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	if err := s.wal().TruncateBefore(d + 1); err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	s.nextMsgID.Store(st.NextMessageID)
	return st, nil
}

// pad makes the log's positions continue after the checkpoint c. The log can end before c when
// records checkpointed under SyncInterval or SyncNever, or recovered from the page cache after
// a process crash, were lost to a power cut before reaching the disk: their effect is in
// checkpoint.db, but without padding new records would take their positions and be skipped by
// the next recovery as already applied. The padding records are empty batches.
func (s *Store) pad(c wal.Pos) error {
	last := s.wal().LastPos()
	if first := s.wal().FirstPos(); first > c+1 {
		return fmt.Errorf("store: %w: the log starts at record %d but checkpoint.db ends at %d",
			wal.ErrMissing, first, c)
	}
	if last >= c {
		return nil
	}
	s.opts.Logger.Warn("store: the log ends before the checkpoint (unsynced records lost in a power cut); padding",
		"log_end", last, "checkpoint", c)
	empty := []byte{formatVersion}
	recs := make([][]byte, 0, 1024)
	for last < c {
		n := min(c-last, wal.Pos(cap(recs)))
		recs = recs[:0]
		for range n {
			recs = append(recs, empty)
		}
		p, err := s.wal().Append(recs...)
		if err != nil {
			return fmt.Errorf("store: pad the log: %w", err)
		}
		last = p
	}
	if err := s.wal().WaitDurable(last); err != nil {
		return fmt.Errorf("store: pad the log: %w", err)
	}
	return nil
}

var (
	errCompact = errors.New("compacting a body file failed")
	errStop    = errors.New("stop")
	errStopped = errors.New("checkpoint left unfinished")
	errLocked  = errors.New("store: locked by another process")
)

// replay applies the log records in (c, d] with a.
func (s *Store) replay(a *applier, c, d wal.Pos) error {
	if d <= c {
		return nil
	}
	err := s.wal().Replay(c, func(p wal.Pos, rec []byte) error {
		if p > d {
			return errStop
		}
		return a.record(p, rec)
	})
	if err != nil && err != errStop {
		return logError(s.opts.Dir, err)
	}
	return nil
}

// applyBounded applies the log records in (c, d] to checkpoint.db in one pass over the log,
// committing a transaction (and recording its position as the checkpoint) after each record
// that takes it past Options.CheckpointOps operations, and at the end. After each such
// transaction it stops if stop (when not nil) says so.
func (s *Store) applyBounded(c, d wal.Pos, stop func() bool) (err error) {
	var tx *bolt.Tx
	var a *applier
	begin := func() error {
		if tx, err = s.db.Begin(true); err != nil {
			return err
		}
		a, err = newApplier(tx, s.spill)
		return err
	}
	commit := func(p wal.Pos) error {
		if err := a.finish(p); err != nil {
			return err
		}
		err := tx.Commit()
		tx = nil
		if err != nil {
			return err
		}
		s.ckptPos.Store(uint64(p))
		s.dropResidentNow() // the transaction read the pages it changed
		return a.removeDoomed()
	}
	defer func() {
		if tx != nil {
			tx.Rollback()
		}
	}()
	if err := begin(); err != nil {
		return err
	}
	done := c
	err = s.wal().Replay(c, func(p wal.Pos, rec []byte) error {
		if p > d {
			return errStop
		}
		if err := a.record(p, rec); err != nil {
			return err
		}
		done = p
		if s.opts.CheckpointOps > 0 && a.ops >= s.opts.CheckpointOps && p < d {
			if err := commit(p); err != nil {
				return err
			}
			if stop != nil && stop() {
				return errStopped
			}
			return begin()
		}
		return nil
	})
	if err == errStopped {
		return nil
	}
	if err != nil && err != errStop {
		return logError(s.opts.Dir, err)
	}
	if done != d {
		return fmt.Errorf("%w: the log ends at record %d, before %d", wal.ErrMissing, done, d)
	}
	return commit(d)
}

// wal returns the current log.
func (s *Store) wal() *wal.Log { return s.logp.Load() }

// Reopen replaces a failed log by opening it again from disk. A write or fsync error poisons
// the log for good (after a failed fsync the kernel may have dropped the data, so a retry that
// succeeds proves nothing); Reopen cuts the torn or unsynced tail as recovery after a power cut
// does and continues from there. Records committed to the failed log and not reported durable
// may or may not be in the reopened one: the caller must rewrite what it needs (the engine
// writes its state afresh). Commits racing with Reopen fail with the old log's error. Reopen
// fails, leaving the store failed, while the disk still refuses writes.
func (s *Store) Reopen() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	old := s.wal()
	old.Close() // it failed already; its error says nothing new
	l, err := wal.Open(s.opts.WAL)
	if err != nil {
		return logError(s.opts.Dir, err)
	}
	s.padSeen.Store(0)  // the new log counts its padding from zero; the old one takes no commits
	s.reopenedMu.Lock() // with the swap, so that Stats never counts the old log twice
	addCounts(&s.reopened, old.Stats())
	s.logp.Store(l)
	s.reopenedMu.Unlock()
	return s.pad(wal.Pos(s.ckptPos.Load()))
}

// NextMessageID returns a message ID never used before: above every ID in the State of Open
// and every ID returned since. Safe for concurrent use.
func (s *Store) NextMessageID() uint64 { return s.nextMsgID.Add(1) - 1 }

// Commit appends b to the log as one record and returns its position. The batch is not durable
// yet: Wait for the position before acknowledging anything that depends on it. A power cut
// keeps the whole batch or none of it. Commit copies b, which may be reused at once. An empty
// batch writes nothing and returns the last position committed. Safe for concurrent use.
func (s *Store) Commit(b *Batch) (wal.Pos, error) {
	if b.err != nil {
		return 0, b.err
	}
	if b.n == 0 {
		return s.wal().LastPos(), nil
	}
	l := s.wal()
	p, err := l.Append(b.buf)
	if err != nil {
		return 0, fmt.Errorf("store: commit: %w", err)
	}
	// The log's padding counts too: at one record per sync it can be most of the disk space
	// the log takes, which checkpoints are there to bound.
	n := int64(len(b.buf)) + s.newPadding(l.Padding())
	if s.sinceCkpt.Add(n) >= s.opts.CheckpointBytes {
		select {
		case s.kick <- struct{}{}:
		default:
		}
	}
	return p, nil
}

// newPadding returns how much of the log's padding count pad no earlier call took in.
// Concurrent callers each get a part of it, once: one that read the count before another
// took it in gets nothing.
func (s *Store) newPadding(pad int64) int64 {
	for {
		seen := s.padSeen.Load()
		if pad <= seen {
			return 0
		}
		if s.padSeen.CompareAndSwap(seen, pad) {
			return pad - seen
		}
	}
}

// Committed returns the position of the last record committed, durable or not: Wait for it
// to know that everything committed so far is durable.
func (s *Store) Committed() wal.Pos { return s.wal().LastPos() }

// Throttle makes a writer wait (up to throttleWait) while the log holds more than maxLag times
// CheckpointBytes committed since the running checkpoint began: the checkpointer is behind,
// and everything it has not applied is replayed at the next start. Call it before committing
// new work, such as a publication; it is what keeps the restart after a crash short.
func (s *Store) Throttle() {
	limit := s.lagLimit()
	if s.sinceCkpt.Load() <= limit {
		return
	}
	timeout := time.NewTimer(throttleWait)
	defer timeout.Stop()
	for s.sinceCkpt.Load() > limit {
		s.lagMu.Lock()
		began := s.ckptBegan
		s.lagMu.Unlock()
		if s.sinceCkpt.Load() <= limit {
			return
		}
		s.CheckpointSoon()
		select {
		case <-began:
		case <-timeout.C:
			return // a checkpoint that keeps failing must not stop the broker: the log grows
		case <-s.quit:
			return
		}
	}
}

// Wait blocks until the record at p and every one before it are durable as the log's sync
// policy defines it: under wal.SyncAlways written and fdatasynced. Concurrent waiters share one
// fsync (group commit).
func (s *Store) Wait(p wal.Pos) error {
	if err := s.wal().WaitDurable(p); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	return nil
}

// Sync commits b and waits until it is durable.
func (s *Store) Sync(b *Batch) error {
	p, err := s.Commit(b)
	if err != nil {
		return err
	}
	return s.Wait(p)
}

// Checkpoint applies the log records after the last checkpoint to checkpoint.db in one
// transaction and removes the log segments that are then wholly applied. Only durable records
// are applied: it waits for the last committed one first. The store runs it in the background
// (see Options.CheckpointBytes and CheckpointEvery); calling it directly is safe at any time.
func (s *Store) Checkpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	return s.checkpoint(nil)
}

// checkpoint does the work of Checkpoint with ckptMu held.
// stop, if not nil, is asked after each transaction whether to leave the rest for later: what
// is applied is then the checkpoint, and the log keeps the rest.
func (s *Store) checkpoint(stop func() bool) error {
	c := wal.Pos(s.ckptPos.Load())
	d := s.wal().LastPos()
	if d <= c {
		return nil
	}
	s.sinceCkpt.Store(0)
	s.lagMu.Lock()
	close(s.ckptBegan)
	s.ckptBegan = make(chan struct{})
	s.lagMu.Unlock()
	// A checkpoint must never hold a record that a power cut could still take from the log:
	// the log would give its position to a later record, which recovery would then skip.
	if err := s.wal().WaitDurable(d); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := guard(func() error { return s.applyBounded(c, d, stop) }); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	s.ckpts.Add(1)
	if err := s.wal().TruncateBefore(s.CheckpointPos() + 1); err != nil {
		return fmt.Errorf("store: checkpoint: %w", err)
	}
	if err := guard(s.compactBodies); err != nil {
		return fmt.Errorf("store: %w: %w", errCompact, err)
	}
	return nil
}

// backgroundCheckpoint is Checkpoint for the checkpointer: it gives way to Close between two
// transactions.
func (s *Store) backgroundCheckpoint() error {
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	if s.closed {
		return ErrClosed
	}
	reads := s.reads.Load()
	return s.checkpoint(func() bool {
		s.giveWay(&reads)
		select {
		case <-s.quit:
			return true
		default:
			return false
		}
	})
}

// giveWay pauses a background checkpoint between two of its transactions while queues are
// being read back (reads, the ReadQueued calls counted when it last looked, moved), so that a
// draining backlog has the CPU. The checkpointer is one goroutine but not cheap: under a lean
// store its transactions fault in the pages they change, and running flat out beside 2,000
// draining sessions it held about a core of two (the drain was 18-22% faster with it out of
// the way). It stops giving way once the log is lagLimit ahead, when CheckpointSoon asks for
// a checkpoint (the engine waits for one to evict bodies, and asks again while it waits), or
// at Close.
func (s *Store) giveWay(reads *int64) {
	for s.sinceCkpt.Load() < s.lagLimit() {
		if s.hurry.Swap(false) {
			return
		}
		r := s.reads.Load()
		if r == *reads {
			return
		}
		*reads = r
		select {
		case <-s.quit:
			return
		case <-time.After(giveWayStep):
		}
	}
}

// lagLimit is how many bytes of log, committed since the running checkpoint began, Throttle
// lets publishers write, and giveWay lets accumulate, before the checkpoint must catch up.
func (s *Store) lagLimit() int64 { return maxLag * s.opts.CheckpointBytes }

// checkpointer runs checkpoints when enough log has been committed, or CheckpointEvery passed.
func (s *Store) checkpointer() {
	defer close(s.done)
	t := time.NewTicker(s.opts.CheckpointEvery)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-s.kick:
		case <-t.C:
		}
		switch err := s.backgroundCheckpoint(); {
		case errors.Is(err, errCompact):
			s.opts.Logger.Warn("store: the checkpoint is done; the body file stays until a restart", "err", err)
		case err != nil && !errors.Is(err, ErrClosed):
			s.opts.Logger.Error("store: checkpoint failed; the log keeps everything until one succeeds", "err", err)
		}
	}
}

// addCounts adds the cumulative counters of from (not its segment count) to into.
func addCounts(into *wal.Stats, from wal.Stats) {
	into.Records += from.Records
	into.BytesWritten += from.BytesWritten
	into.Padding += from.Padding
	into.Fsyncs += from.Fsyncs
	into.DirSyncs += from.DirSyncs
}

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	s.reopenedMu.Lock()
	log := s.wal().Stats()
	addCounts(&log, s.reopened)
	s.reopenedMu.Unlock()
	st := Stats{
		Log:           log,
		Checkpoints:   s.ckpts.Load(),
		CheckpointPos: wal.Pos(s.ckptPos.Load()),
		QueueReads:    s.reads.Load(),
		BodyBytes:     s.spill.diskSize(),
		BodyWritten:   s.spill.written.Load(),
	}
	if fi, err := os.Stat(dbPath(s.opts.Dir)); err == nil {
		st.DBSize = fi.Size()
	}
	return st
}

// Close stops the background checkpointer, runs a last checkpoint, and closes the log and
// checkpoint.db. Commits racing with Close may fail with the log's ErrClosed.
func (s *Store) Close() error {
	if !s.closing.CompareAndSwap(false, true) {
		return ErrClosed
	}
	close(s.quit) // a background checkpoint gives way at its next transaction
	<-s.done
	s.ckptMu.Lock()
	defer s.ckptMu.Unlock()
	s.closed = true
	// The last checkpoint only saves the next start some replay: it gets closeCheckpointTime
	// and leaves the rest in the log, so that stopping stays quick after a large drain.
	deadline := time.Now().Add(closeCheckpointTime)
	err := s.checkpoint(func() bool { return time.Now().After(deadline) })
	s.closeDBFile()
	s.spill.close()
	return errors.Join(err, s.wal().Close(), s.db.Close())
}

// openSpill opens the body files of the store, those checkpoint.db lists as live.
func openSpill(opts Options, db *bolt.DB) (*bodyFiles, error) {
	live := map[uint32]int64{}
	err := guard(func() error {
		return db.View(func(tx *bolt.Tx) error {
			return tx.Bucket(bucketBodyFiles).ForEach(func(k, v []byte) error {
				if len(k) != 4 || len(v) != 8 {
					return fmt.Errorf("%w: body file entry %x", ErrDamaged, k)
				}
				live[binary.BigEndian.Uint32(k)] = int64(binary.BigEndian.Uint64(v))
				return nil
			})
		})
	})
	if err != nil {
		return nil, err
	}
	b, err := openBodyFiles(opts.WAL.FS, opts.Dir, opts.WAL.SegmentSize, live)
	if err != nil {
		return nil, fmt.Errorf("store: open body files: %w", err)
	}
	return b, nil
}

func (s *Store) closeDBFile() {
	if s.dbFile != nil {
		s.dbFile.Close()
	}
}
