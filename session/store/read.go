package store

import (
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
// page cache (FADV_DONTNEED: the next fault reads just its page).

// residentLimit is how many bytes of checkpoint.db the store reads through the memory map
// before it drops the map's resident pages.
const residentLimit = 1 << 20

// CheckpointPos returns the log position checkpoint.db reflects: every record at or below it is
// in checkpoint.db, where ReadQueued finds its entries.
func (s *Store) CheckpointPos() wal.Pos { return wal.Pos(s.ckptPos.Load()) }

// CheckpointSoon asks the background checkpointer to run now, without waiting for it.
func (s *Store) CheckpointSoon() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// ReadQueued reads up to max entries of client's queue with Seq at least from, in Seq order,
// from checkpoint.db, each with its message (Msg nil when the body is missing, which only
// damage explains). Entries in flight (PacketID set) are left out: State has them. Only records
// at or below CheckpointPos are there; records after it are not seen.
func (s *Store) ReadQueued(client string, from uint64, max int) ([]Entry, error) {
	s.reads.Add(1)
	var out []Entry
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			if pf := s.pageFile(tx); pf != nil {
				var err error
				out, err = readQueuedPages(tx, pf, client, from, max)
				return err
			}
			var read int
			out, read = readQueued(tx, client, from, max)
			s.afterRead(tx, read)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read queue of %q: %w", client, err)
	}
	return out, nil
}

// ReadMessage reads the body id from checkpoint.db (with pread, as ReadQueued); nil if it is
// not there. A body is there
// while an entry at or below CheckpointPos refers to it.
func (s *Store) ReadMessage(id uint64) (*Message, error) {
	var m *Message
	err := guard(func() error {
		return s.db.View(func(tx *bolt.Tx) error {
			var v []byte
			if pf := s.pageFile(tx); pf != nil {
				var err error
				msgs := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketMessages).Root())}
				if v, _, err = msgs.Get(seqKey(id)); err != nil {
					return fmt.Errorf("%w: %w", ErrDamaged, err)
				}
			} else {
				v = tx.Bucket(bucketMessages).Get(seqKey(id))
				s.afterRead(tx, len(v))
			}
			if len(v) < 4 {
				return nil
			}
			m = &Message{}
			if _, err := m.UnmarshalMsg(v[4:]); err != nil {
				return fmt.Errorf("%w: message %d: %w", ErrDamaged, id, err)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: read message %d: %w", id, err)
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
	return &pageFile{r: s.dbFile, pageSize: tx.DB().Info().PageSize, size: tx.Size()}
}

// readQueuedPages does the work of ReadQueued inside tx, reading pages with pf.
func readQueuedPages(tx *bolt.Tx, pf *pageFile, client string, from uint64, max int) ([]Entry, error) {
	var out []Entry
	err := func() error {
		entries := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketEntries).Root())}
		v, flags, err := entries.Get([]byte(client))
		if err != nil || v == nil || flags&bucketLeaf == 0 {
			return err
		}
		c, err := pf.bucketCursor(v)
		if err != nil {
			return err
		}
		msgs := &treeCursor{pf: pf, root: uint64(tx.Bucket(bucketMessages).Root())}
		shared := map[uint64]*Message{}
		k, v, _, err := c.Seek(seqKey(from))
		for ; err == nil && k != nil && len(out) < max; k, v, _, err = c.Next() {
			if len(k) != 8 {
				continue // keyNextSeq
			}
			var e Entry
			if _, err := e.UnmarshalMsg(v); err != nil || e.PacketID != 0 {
				continue // Open decoded it already; in-flight entries are in State
			}
			m, ok := shared[e.MsgID]
			if !ok {
				mv, _, err := msgs.Get(seqKey(e.MsgID))
				if err != nil {
					return err
				}
				if len(mv) >= 4 {
					m = &Message{}
					if _, err := m.UnmarshalMsg(mv[4:]); err != nil {
						m = nil
					}
				}
				shared[e.MsgID] = m
			}
			e.Msg = m
			out = append(out, e)
		}
		return err
	}()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrDamaged, err)
	}
	return out, nil
}

// readQueued does the work of ReadQueued inside tx, through the map, and returns how many
// bytes it read.
func readQueued(tx *bolt.Tx, client string, from uint64, max int) (out []Entry, read int) {
	b := tx.Bucket(bucketEntries).Bucket([]byte(client))
	if b == nil {
		return nil, 0
	}
	msgs := tx.Bucket(bucketMessages)
	shared := map[uint64]*Message{}
	c := b.Cursor()
	for k, v := c.Seek(seqKey(from)); k != nil && len(out) < max; k, v = c.Next() {
		if len(k) != 8 {
			continue // keyNextSeq
		}
		read += len(v)
		var e Entry
		if _, err := e.UnmarshalMsg(v); err != nil || e.PacketID != 0 {
			continue // Open decoded it already; in-flight entries are in State
		}
		m, ok := shared[e.MsgID]
		if !ok {
			if mv := msgs.Get(seqKey(e.MsgID)); len(mv) >= 4 {
				read += len(mv)
				m = &Message{}
				if _, err := m.UnmarshalMsg(mv[4:]); err != nil {
					m = nil
				}
			}
			shared[e.MsgID] = m
		}
		e.Msg = m
		out = append(out, e)
	}
	return out, read
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
