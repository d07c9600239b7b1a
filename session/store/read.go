package store

import (
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"

	"edgebroker/wal"
)

// Reading queues back. The engine keeps only the head of an offline session's queue in RAM
// when memory is short: the rest is in checkpoint.db, and ReadQueued brings it back a batch at
// a time, in order. Pages of bbolt's memory map stay resident (and count against the process's
// RSS) long after the bodies were copied out; worse, a fault maps not one page but up to 16
// around it that are in the page cache (the kernel's fault-around), and checkpoint.db was just
// written, so all of it is. ReadQueued and ReadMessage therefore read the pages with pread
// (pages.go), inside a bbolt read transaction, and nothing of them stays in the process. What
// still goes through the map (checkpoint transactions, and reads of a database too small to
// have its buckets on pages of their own) is handed back (MADV_DONTNEED, which on a shared
// file mapping only drops the pages from the process) after every checkpoint transaction and
// once reads took residentLimit bytes; with Options.Lean the file is also dropped from the
// page cache (FADV_DONTNEED: the next fault reads just its page). The bodies are not in
// checkpoint.db but in body files (bodyfile.go), read with pread too, whose page cache is
// kept.

// residentLimit is how many bytes of checkpoint.db the store reads through the memory map
// before it drops the map's resident pages.
const residentLimit = 1 << 20

// CheckpointPos returns the log position checkpoint.db reflects: every record at or below it is
// in checkpoint.db, where ReadQueued finds its entries.
func (s *Store) CheckpointPos() wal.Pos { return wal.Pos(s.ckptPos.Load()) }

// CheckpointSoon asks the background checkpointer to run now, without waiting for it; a
// checkpoint giving way to reads (giveWay) goes on with its next transaction.
func (s *Store) CheckpointSoon() {
	s.hurry.Store(true)
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// ReadQueued reads up to max entries of client's queue with Seq at least from, in Seq order,
// from checkpoint.db, each with its message (Msg nil when the body is missing or does not
// decode, which only damage explains). It stops early after the entry whose message takes the
// payloads read to maxReadBytes, so that a read of large messages holds little memory. Entries
// in flight (PacketID set) are left out: State has them. Only records at or below
// CheckpointPos are there; records after it are not seen.
func (s *Store) ReadQueued(client string, from uint64, max int) ([]Entry, error) {
	s.reads.Add(1)
	var out []Entry
	s.spill.readMu.RLock()
	defer s.spill.readMu.RUnlock()
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			var err error
			if pf := s.pageFile(tx); pf != nil {
				defer pf.release()
				out, err = readQueuedPages(s.spill, tx, pf, client, from, max)
				return err
			}
			var read int
			out, read, err = readQueuedMapped(s.spill, tx, client, from, max)
			s.afterRead(tx, read)
			return err
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read queue of %q: %w", client, err)
	}
	return out, nil
}

// ReadMessage reads the body id from checkpoint.db (with pread, as ReadQueued); nil if it is
// not there. A body is there while an entry at or below CheckpointPos refers to it.
func (s *Store) ReadMessage(id uint64) (*Message, error) {
	var m *Message
	s.spill.readMu.RLock()
	defer s.spill.readMu.RUnlock()
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			var v []byte
			if pf := s.pageFile(tx); pf != nil {
				defer pf.release()
				var err error
				msgs := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketMessages).Root())}
				if v, _, err = msgs.Get(seqKey(id)); err != nil {
					return fmt.Errorf("%w: %w", ErrDamaged, err)
				}
			} else {
				v = tx.Bucket(bucketMessages).Get(seqKey(id))
				s.afterRead(tx, len(v))
			}
			var err error
			switch m, err = decodeBody(s.spill, id, v); {
			case errors.Is(err, errBodyDamaged):
				return fmt.Errorf("%w: message %d: %w", ErrDamaged, id, err)
			case err != nil:
				return fmt.Errorf("message %d: %w", id, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read message %d: %w", id, err)
	}
	return m, nil
}

// decodeBody decodes the value of message id in the messages bucket (its reference count in 4
// bytes, then the Message or the location of its body in spill); nil for a value too short to
// hold one (none). Call it with spill.readMu held.
func decodeBody(spill *bodyFiles, id uint64, v []byte) (*Message, error) {
	if len(v) < 4 {
		return nil, nil
	}
	if l, ok := parseBodyLoc(v[4:]); ok {
		var buf []byte
		return bodyAt(spill, id, l, &buf)
	}
	return unmarshalBody(v[4:])
}

// bodyAt reads the body of message id at l in spill, its record into *buf (grown if need be),
// and decodes it. Call it with spill.readMu held.
func bodyAt(spill *bodyFiles, id uint64, l bodyLoc, buf *[]byte) (*Message, error) {
	rec, err := spill.read(id, l, *buf)
	if err != nil {
		return nil, err
	}
	*buf = rec
	return unmarshalBody(rec[bodyHdrSize:])
}

// unmarshalBody decodes an encoded Message; one that does not decode is damage.
func unmarshalBody(raw []byte) (*Message, error) {
	m := &Message{}
	if _, err := m.UnmarshalMsg(raw); err != nil {
		return nil, fmt.Errorf("%w: %w", errBodyDamaged, err)
	}
	return m, nil
}

// pageFile returns a reader of tx's pages with pread, or nil when the queues must be read
// through the map: checkpoint.db could not be opened for it, or a bucket it starts from is
// inline (tiny), which only the map shows.
func (s *Store) pageFile(tx *bolt.Tx) *pageFile {
	if s.dbFile == nil || tx.Bucket(bucketEntries).Root() == 0 || tx.Bucket(bucketMessages).Root() == 0 {
		return nil
	}
	return &pageFile{r: s.dbFile, pageSize: tx.DB().Info().PageSize, size: tx.Size(), spare: &s.pageBufs}
}

// typicalRead is the size of the engine's read-back batch: what ReadQueued makes room for at
// once.
const typicalRead = 32

// maxReadBytes is the payload bytes after which ReadQueued stops: at least one message, at
// most this and one message more.
const maxReadBytes = 256 << 10

// kv is one key and value of a bucket walk; a nil key ends it.
type kv struct{ k, v []byte }

// collectQueued does the work of ReadQueued over a walk of a session's entries bucket (first,
// then next) and a lookup of bodies, whichever way they read checkpoint.db, and returns the
// bytes of the values it decoded.
func collectQueued(spill *bodyFiles, first, next func() (kv, error), body func(id uint64) ([]byte, error), max int) (out []Entry, read int, err error) {
	out = make([]Entry, 0, min(max, typicalRead))
	shared := map[uint64]*Message{}
	var scratch []byte // records read from body files: decoding copies what it keeps
	payloads := 0
	e, err := first()
	for ; err == nil && e.k != nil && len(out) < max && payloads < maxReadBytes; e, err = next() {
		if len(e.k) != 8 {
			continue // keyNextSeq
		}
		read += len(e.v)
		var q Entry
		hint, err := q.UnmarshalMsg(e.v)
		if err != nil || q.PacketID != 0 {
			continue // Open decoded it already; in-flight entries are in State
		}
		m, ok := shared[q.MsgID]
		if !ok {
			m, ok = hinted(spill, q.MsgID, hint, &scratch)
		}
		if !ok {
			v, err := body(q.MsgID)
			if err != nil {
				return nil, read, err
			}
			read += len(v)
			// One that is damaged is missing: the engine drops it. Failing to read it is
			// an error: it may pass.
			if m, err = decodeBody(spill, q.MsgID, v); err != nil && !errors.Is(err, errBodyDamaged) {
				return nil, read, fmt.Errorf("%w: %w", errBodyRead, err)
			}
		}
		shared[q.MsgID] = m
		q.Msg = m
		if m != nil {
			payloads += len(m.Payload)
		}
		out = append(out, q)
	}
	return out, read, err
}

// hinted reads the body of message id from the location after its entry (hint), if there
// is one and it holds that body, into *scratch. A hint can be out of date (compaction moved
// the body): the messages bucket has the body's location.
func hinted(spill *bodyFiles, id uint64, hint []byte, scratch *[]byte) (*Message, bool) {
	l, ok := parseBodyLoc(hint)
	if !ok {
		return nil, false
	}
	m, err := bodyAt(spill, id, l, scratch)
	if err != nil || m.ID != id {
		return nil, false
	}
	return m, true
}

// readQueuedPages does the work of ReadQueued inside tx, reading pages with pf.
func readQueuedPages(spill *bodyFiles, tx *bolt.Tx, pf *pageFile, client string, from uint64, max int) ([]Entry, error) {
	out, err := func() ([]Entry, error) {
		entries := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketEntries).Root())}
		v, flags, err := entries.Get([]byte(client))
		if err != nil || v == nil || flags&bucketLeaf == 0 {
			return nil, err
		}
		c, err := pf.bucketCursor(v)
		if err != nil {
			return nil, err
		}
		msgs := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketMessages).Root())}
		step := func(k, v []byte, _ uint32, err error) (kv, error) { return kv{k, v}, err }
		out, _, err := collectQueued(spill,
			func() (kv, error) { return step(c.Seek(seqKey(from))) },
			func() (kv, error) { return step(c.Next()) },
			func(id uint64) ([]byte, error) { v, _, err := msgs.Get(seqKey(id)); return v, err },
			max)
		return out, err
	}()
	if err != nil && !errors.Is(err, errBodyRead) { // the pages': damage
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return out, err
}

// readQueuedMapped does the work of ReadQueued inside tx, through the map, and returns how
// many bytes it read.
func readQueuedMapped(spill *bodyFiles, tx *bolt.Tx, client string, from uint64, max int) ([]Entry, int, error) {
	b := tx.Bucket(bucketEntries).Bucket([]byte(client))
	if b == nil {
		return nil, 0, nil
	}
	msgs, c := tx.Bucket(bucketMessages), b.Cursor()
	step := func(k, v []byte) (kv, error) { return kv{k, v}, nil }
	return collectQueued(spill,
		func() (kv, error) { return step(c.Seek(seqKey(from))) },
		func() (kv, error) { return step(c.Next()) },
		func(id uint64) ([]byte, error) { return msgs.Get(seqKey(id)), nil },
		max)
}

// dropResident drops checkpoint.db's pages from the process's resident set and, when lean,
// from the page cache. The mapping is stable while tx is open, and tx.Size (the pages in use) never exceeds
// it.
func (s *Store) dropResident(tx *bolt.Tx) {
	n := tx.Size()
	if n == 0 {
		return
	}
	// A raw syscall: the address is the mapping's, held as an integer by bbolt.
	unix.Syscall(unix.SYS_MADVISE, tx.DB().Info().Data, uintptr(n), unix.MADV_DONTNEED)
	if s.opts.Lean && s.dbFile != nil {
		unix.Fadvise(int(s.dbFile.Fd()), 0, n, unix.FADV_DONTNEED)
	}
}

// afterRead hands back what reads mapped in, once they read residentLimit bytes.
func (s *Store) afterRead(tx *bolt.Tx, n int) {
	if s.readSince.Add(int64(n)) >= residentLimit {
		s.readSince.Store(0)
		s.dropResident(tx)
	}
}

// dropResidentNow drops the resident pages of checkpoint.db, after a checkpoint or recovery
// read much of it.
func (s *Store) dropResidentNow() {
	s.readSince.Store(0)
	guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			s.dropResident(tx)
			return nil
		})
	})
}
