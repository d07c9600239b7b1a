package wal

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

// Pos is the position of a record: its sequence number in the log, starting at 1. Positions
// order records; 0 is before every record.
type Pos uint64

// maxPending is how many bytes of appended records may wait for the writer before Append blocks.
const maxPending = 1 << 20

// Stats are counters of a Log since Open.
type Stats struct {
	Records      int64 // records appended
	BytesWritten int64 // bytes written to segment files (frames, padding and headers)
	Padding      int64 // bytes of padding frames written (see Options.PadTo)
	Fsyncs       int64 // fdatasyncs of segment files
	DirSyncs     int64 // syncs of the directory
	Segments     int64 // segment files in the log now
}

// Log is an open write-ahead log. Its methods are safe for concurrent use.
type Log struct {
	opts Options
	fs   FS

	// Lock order: truncMu, then mu.
	truncMu sync.Mutex // serializes TruncateBefore

	mu         sync.Mutex
	progress   sync.Cond // on mu: written or synced advanced, or the log failed or closed
	room       sync.Cond // on mu: pend was taken by the writer
	pend       []byte    // frames appended, not yet taken by the writer
	rolls      []roll    // segment rolls within pend, in order
	spare      []byte    // the writer's previous buffer, for reuse
	spareRolls []roll
	next       Pos    // position of the next record appended
	seed       uint32 // header CRC seed of the segment the next record goes to
	segSize    int64  // size of that segment once pend is written
	segPadded  bool   // that segment's format takes padding frames (version 2 on)
	written    Pos    // every record <= written is in a file
	synced     Pos    // every record <= synced is fdatasynced
	segs       []Pos  // first positions of the segment files, ascending; the last is active
	err        error  // poison: the write or sync error, wrapped in ErrFailed
	closed     bool
	hint       replayHint // where the last Replay stopped

	kick chan struct{} // wakes the writer; capacity 1
	quit chan struct{} // closed by Close
	done chan struct{} // closed when the writer has stopped

	f File // the active segment; owned by the writer goroutine

	records, bytes, padding, fsyncs, dirSyncs, segments atomic.Int64
}

// replayHint says that record pos starts at byte off of the segment starting at seg, as the
// last Replay found it. The next Replay usually starts there (the checkpointer's does): it
// seeks to it instead of reading and checking every record before it again. Segments are only
// ever appended to, so the offset stays true for the life of the Log.
type replayHint struct {
	seg, pos Pos // pos 0: no hint
	off      int64
}

// roll marks that the frames from pend[off:] go to a new segment starting at first.
type roll struct {
	off   int
	first Pos
	salt  uint32
}

// Open opens the log in opts.Dir, creating the directory and a first segment if needed.
//
// Open reads and checks every segment. A torn or checksum-failing record at the end of the last
// segment, with no valid record after it, is what a power cut leaves: it is cut off and a
// warning logged. Damage anywhere else fails Open with a *CorruptError naming the file and
// offset; see Repair. Leftover temporary files of an interrupted segment creation are removed.
func Open(opts Options) (*Log, error) {
	opts, err := opts.normalized()
	if err != nil {
		return nil, err
	}
	fsys, dir := opts.FS, opts.Dir
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	segs, tmps, err := survey(fsys, dir)
	if err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l := &Log{
		opts: opts,
		fs:   fsys,
		next: 1,
		kick: make(chan struct{}, 1),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
	l.progress.L = &l.mu
	l.room.L = &l.mu
	if err := l.removeTmps(tmps); err != nil {
		return nil, err
	}
	for i := range segs {
		s := &segs[i]
		if s.damage != nil && (i < len(segs)-1 || !s.torn) {
			return nil, s.damage
		}
		l.segs = append(l.segs, s.first)
	}
	if len(segs) == 0 {
		if err := l.startSegment(1); err != nil {
			return nil, fmt.Errorf("wal: open: %w", err)
		}
		l.segs = []Pos{1}
	} else if err := l.openLast(&segs[len(segs)-1]); err != nil {
		return nil, fmt.Errorf("wal: open: %w", err)
	}
	l.written, l.synced = l.next-1, l.next-1
	l.segments.Store(int64(len(l.segs)))
	go l.run()
	return l, nil
}

func (l *Log) removeTmps(tmps []string) error {
	for _, p := range tmps {
		l.opts.Logger.Info("wal: removing an unfinished segment", "file", p)
		if err := l.fs.Remove(p); err != nil {
			return fmt.Errorf("wal: open: %w", err)
		}
	}
	if len(tmps) == 0 {
		return nil
	}
	if err := l.syncDir(); err != nil {
		return fmt.Errorf("wal: open: %w", err)
	}
	return nil
}

// openLast cuts a torn tail off the last segment and opens it for appending.
func (l *Log) openLast(s *segState) (err error) {
	l.next = s.last() + 1
	if s.damage != nil && s.good == 0 {
		l.opts.Logger.Warn("wal: rewriting a torn segment header (no records lost)", "file", s.path)
		return l.startSegment(s.first)
	}
	if s.damage != nil {
		l.opts.Logger.Warn("wal: dropping a torn record at the end of the log (expected after a power cut)",
			"file", s.path, "offset", s.good, "bytes", s.size-s.good, "damage", s.damage)
		f, err := l.fs.OpenFile(s.path, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		err = f.Truncate(s.good)
		if err == nil {
			err = f.Sync()
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	r, err := openSegment(l.fs, s.path, s.first, bufio.NewReaderSize(nil, segHeaderSize))
	if err != nil {
		return err
	}
	l.seed, l.segPadded = r.seed, r.padded
	r.close()
	l.segSize = s.good
	l.f, err = l.fs.OpenFile(s.path, os.O_WRONLY|os.O_APPEND, 0)
	return err
}

// startSegment creates the segment starting at first, empty, as the active one (during Open).
func (l *Log) startSegment(first Pos) (err error) {
	salt := rand.Uint32()
	l.seed, l.segSize, l.segPadded = saltSeed(salt), segHeaderSize, true
	l.f, err = l.createSegment(first, salt)
	return err
}

// createSegment creates the segment starting at first and opens it for appending: header into
// a temporary file, sync, rename into place, sync the directory.
func (l *Log) createSegment(first Pos, salt uint32) (File, error) {
	path := segmentPath(l.opts.Dir, first)
	l.fsyncs.Add(1)
	l.dirSyncs.Add(1)
	if err := writeFileSynced(l.fs, path, bytes.NewReader(encodeSegHeader(first, salt))); err != nil {
		return nil, err
	}
	l.bytes.Add(segHeaderSize)
	return l.fs.OpenFile(path, os.O_WRONLY|os.O_APPEND, 0)
}

func (l *Log) sync(f File) error {
	l.fsyncs.Add(1)
	return f.Sync()
}

func (l *Log) syncDir() error {
	l.dirSyncs.Add(1)
	return l.fs.SyncDir(l.opts.Dir)
}

// Append adds records to the log and returns the position of the last one. The records are
// copied; the caller may reuse them at once. They are not durable when Append returns: call
// WaitDurable (or use AppendSync). A power cut may keep any prefix of a multi-record Append, so
// a caller needing atomicity puts it in one record. Append blocks while 1 MiB of records wait for
// the writer. It returns ErrTooLarge (appending nothing) for a record over MaxRecordSize, and the
// poison error once the log has failed.
func (l *Log) Append(recs ...[]byte) (last Pos, err error) {
	for _, r := range recs {
		if len(r) > MaxRecordSize {
			return 0, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, len(r), MaxRecordSize)
		}
	}
	l.mu.Lock()
	for l.err == nil && !l.closed && len(l.pend) >= maxPending {
		l.room.Wait()
	}
	if err := l.usable(); err != nil {
		l.mu.Unlock()
		return 0, err
	}
	for _, r := range recs {
		size := int64(frameHeaderSize + len(r))
		if l.segSize > segHeaderSize && l.segSize+size > l.opts.SegmentSize {
			salt := rand.Uint32()
			l.rolls = append(l.rolls, roll{off: len(l.pend), first: l.next, salt: salt})
			l.seed, l.segSize, l.segPadded = saltSeed(salt), segHeaderSize, true
		}
		l.pend = appendFrame(l.pend, l.seed, r)
		l.segSize += size
		l.next++
	}
	last = l.next - 1
	l.mu.Unlock()
	l.records.Add(int64(len(recs)))
	select {
	case l.kick <- struct{}{}:
	default:
	}
	return last, nil
}

// usable returns the error that stops new work; l.mu is held.
func (l *Log) usable() error {
	if l.err != nil {
		return l.err
	}
	if l.closed {
		return ErrClosed
	}
	return nil
}

// WaitDurable blocks until every record at or before p is durable: under SyncAlways written and
// fdatasynced, under SyncInterval and SyncNever written to the operating system. Waiters that
// arrive while a sync runs share the next one. It returns the poison error if the log fails
// first, and ErrNotAppended for a p beyond the last appended record.
func (l *Log) WaitDurable(p Pos) error {
	return l.wait(p, l.opts.Sync == SyncAlways)
}

func (l *Log) wait(p Pos, synced bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if p >= l.next {
		return fmt.Errorf("%w: %d (last is %d)", ErrNotAppended, p, l.next-1)
	}
	for {
		reached := l.written
		if synced {
			reached = l.synced
		}
		if reached >= p {
			return nil
		}
		if l.err != nil {
			return l.err
		}
		if l.closed {
			return ErrClosed
		}
		l.progress.Wait()
	}
}

// AppendSync appends records and waits until they are durable (Append, then WaitDurable).
func (l *Log) AppendSync(recs ...[]byte) (Pos, error) {
	p, err := l.Append(recs...)
	if err != nil {
		return 0, err
	}
	return p, l.WaitDurable(p)
}

// LastPos returns the position of the last appended record (durable or not), 0 if none.
func (l *Log) LastPos() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.next - 1
}

// FirstPos returns the position of the first record still in the log: after TruncateBefore it
// may be above 1. In an empty log it is LastPos()+1.
func (l *Log) FirstPos() Pos {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.segs[0]
}

// Stats returns the log's counters.
func (l *Log) Stats() Stats {
	return Stats{
		Records:      l.records.Load(),
		BytesWritten: l.bytes.Load(),
		Padding:      l.padding.Load(),
		Fsyncs:       l.fsyncs.Load(),
		DirSyncs:     l.dirSyncs.Load(),
		Segments:     l.segments.Load(),
	}
}

// Padding returns the bytes of padding frames written since Open (Stats().Padding, without
// reading the other counters: the store reads it at every commit).
func (l *Log) Padding() int64 { return l.padding.Load() }

// fail poisons the log with err; l.mu is held.
func (l *Log) fail(err error) {
	if l.err == nil {
		l.err = fmt.Errorf("%w: %w", ErrFailed, err)
		l.opts.Logger.Error("wal: log failed; reopen it to recover", "err", err)
	}
	l.progress.Broadcast()
	l.room.Broadcast()
}

// run is the writer goroutine: it owns the active segment file.
func (l *Log) run() {
	defer close(l.done)
	var tick <-chan time.Time
	if l.opts.Sync == SyncInterval {
		t := time.NewTicker(l.opts.SyncInterval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-l.kick:
			// Yield once before taking the batch: callers just released by the previous
			// sync are runnable and get to append, so this sync covers them too instead of
			// starting with the first alone (it doubles records per fsync on 2 cores).
			runtime.Gosched()
			if !l.flush(l.opts.Sync == SyncAlways) {
				return
			}
		case <-tick:
			if !l.flush(true) {
				return
			}
		case <-l.quit:
			l.flush(true)
			return
		}
	}
}

// flush writes what is pending, syncing afterwards if sync is set and anything written is not
// yet synced. It reports whether the log is still healthy.
func (l *Log) flush(sync bool) bool {
	l.mu.Lock()
	if l.err != nil {
		l.mu.Unlock()
		return false
	}
	buf, rolls, last, synced := l.pend, l.rolls, l.next-1, l.synced
	l.pend, l.rolls, l.spare, l.spareRolls = l.spare[:0], l.spareRolls[:0], nil, nil
	if sync && synced < last && l.segPadded && l.opts.PadTo > 0 {
		// Pad the segment to a page boundary before the sync: the next write then starts on
		// a fresh page instead of dirtying this one again, so each sync writes the partial
		// page once, not twice (flash wear, and half the page writes at typical batches).
		if n := padSize(l.segSize, l.opts.PadTo); n > 0 {
			buf = appendPad(buf, l.seed, n)
			l.segSize += int64(n)
			l.padding.Add(int64(n))
		}
	}
	l.room.Broadcast()
	l.mu.Unlock()

	err := l.writeOut(buf, rolls)
	sync = sync && err == nil && synced < last
	if sync {
		err = l.sync(l.f)
	}

	l.mu.Lock()
	defer l.mu.Unlock()
	if err != nil {
		l.fail(err)
		return false
	}
	l.written = last
	if sync {
		l.synced = last
	}
	if cap(buf) <= 4*maxPending {
		l.spare, l.spareRolls = buf[:0], rolls[:0]
	}
	l.progress.Broadcast()
	return true
}

// writeOut writes buf to the segment files, rolling to new segments where rolls say.
func (l *Log) writeOut(buf []byte, rolls []roll) error {
	off := 0
	for _, r := range rolls {
		if err := l.write(buf[off:r.off]); err != nil {
			return err
		}
		if err := l.roll(r); err != nil {
			return err
		}
		off = r.off
	}
	return l.write(buf[off:])
}

func (l *Log) write(p []byte) error {
	if len(p) == 0 {
		return nil
	}
	n, err := l.f.Write(p)
	l.bytes.Add(int64(n))
	if err == nil && n < len(p) {
		err = io.ErrShortWrite
	}
	return err
}

// roll syncs and closes the active segment and creates the next one.
func (l *Log) roll(r roll) error {
	err := l.sync(l.f)
	if cerr := l.f.Close(); err == nil {
		err = cerr
	}
	l.f = nil
	if err != nil {
		return err
	}
	f, err := l.createSegment(r.first, r.salt)
	if err != nil {
		return err
	}
	l.f = f
	l.mu.Lock()
	l.segs = append(l.segs, r.first)
	l.written, l.synced = r.first-1, r.first-1
	l.progress.Broadcast()
	l.mu.Unlock()
	l.segments.Add(1)
	return nil
}

// Replay calls fn for every record with a position above after, in order, up to the last
// record appended when Replay was called (it waits for those to be written first). rec is valid
// only during the call: copy what must be kept. An error from fn stops Replay and is returned as
// is. Replay returns ErrMissing if records after `after` were removed by TruncateBefore, and a
// *CorruptError if a record no longer matches its checksum. Replay may run while others append,
// but not while TruncateBefore removes segments it is reading.
func (l *Log) Replay(after Pos, fn func(p Pos, rec []byte) error) error {
	l.mu.Lock()
	if err := l.usable(); err != nil {
		l.mu.Unlock()
		return err
	}
	limit := l.next - 1
	l.mu.Unlock()
	if after >= limit {
		return nil
	}
	if err := l.wait(limit, false); err != nil {
		return err
	}
	l.mu.Lock()
	segs := append([]Pos(nil), l.segs...) // now including the segments of records up to limit
	l.mu.Unlock()
	if after+1 < segs[0] {
		return fmt.Errorf("%w: replay after %d, but the log starts at %d", ErrMissing, after, segs[0])
	}
	i := len(segs) - 1
	for segs[i] > after+1 {
		i--
	}
	br := bufio.NewReaderSize(nil, 64<<10)
	for ; i < len(segs) && segs[i] <= limit; i++ {
		end := limit
		if i+1 < len(segs) {
			end = min(limit, segs[i+1]-1)
		}
		if err := l.replaySegment(segs[i], after, end, br, fn); err != nil {
			return err
		}
	}
	return nil
}

// replaySegment calls fn for the records after `after` up to end of the segment starting at
// first, which must hold every record up to end.
func (l *Log) replaySegment(first, after, end Pos, br *bufio.Reader, fn func(Pos, []byte) error) error {
	r, err := openSegment(l.fs, segmentPath(l.opts.Dir, first), first, br)
	if err != nil {
		return err
	}
	defer r.close()
	l.mu.Lock()
	h := l.hint
	l.mu.Unlock()
	p := first
	if h.seg == first && h.pos > first && h.pos <= after+1 && h.off <= r.size {
		r.seek(h.off)
		p = h.pos
	}
	for ; p <= end; p++ {
		at := r.off
		rec, err := r.next()
		if err == io.EOF {
			return &CorruptError{Path: r.path, Offset: r.off, Reason: fmt.Sprintf(
				"segment ends at position %d, before %d", p-1, end)}
		}
		if err != nil {
			return err
		}
		if p > after {
			if err := fn(p, rec); err != nil {
				l.setHint(replayHint{seg: first, pos: p, off: at}) // where the next one will start
				return err
			}
		}
	}
	l.setHint(replayHint{seg: first, pos: end + 1, off: r.off})
	return nil
}

// setHint records where a Replay stopped.
func (l *Log) setHint(h replayHint) {
	l.mu.Lock()
	l.hint = h
	l.mu.Unlock()
}

// TruncateBefore removes the segments whose records all lie before p, oldest first, syncing the
// directory after each removal. The active segment is never removed, so records at p and after
// are kept (and some before p may be). Call it once the records before p are checkpointed
// elsewhere. A failed removal or sync poisons the log.
func (l *Log) TruncateBefore(p Pos) error {
	l.truncMu.Lock()
	defer l.truncMu.Unlock()
	l.mu.Lock()
	if err := l.usable(); err != nil {
		l.mu.Unlock()
		return err
	}
	n := 0
	for n+1 < len(l.segs) && l.segs[n+1] <= p {
		n++
	}
	doomed := append([]Pos(nil), l.segs[:n]...)
	l.segs = append([]Pos(nil), l.segs[n:]...)
	l.mu.Unlock()
	for _, first := range doomed {
		err := l.fs.Remove(segmentPath(l.opts.Dir, first))
		if err == nil {
			l.segments.Add(-1)
			err = l.syncDir()
		}
		if err != nil {
			l.mu.Lock()
			l.fail(err)
			err = l.err
			l.mu.Unlock()
			return err
		}
	}
	return nil
}

// Close writes and syncs the records still buffered (under every SyncPolicy), stops the writer
// and closes the files. It returns the poison error if the log failed, ErrClosed if already
// closed.
func (l *Log) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return ErrClosed
	}
	l.closed = true
	l.room.Broadcast()
	l.mu.Unlock()
	close(l.quit)
	<-l.done
	var cerr error
	if l.f != nil {
		cerr = l.f.Close()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.progress.Broadcast()
	return errors.Join(l.err, cerr)
}
