package store

import (
	"encoding/binary"
	"errors"

	bolt "go.etcd.io/bbolt"
)

// Compaction of the body files. A file keeps its bytes until none of its bodies is live; a
// few long-lived bodies (a retained message, a session whose client never returns) would keep
// whole files. After each checkpoint the store therefore moves the live bodies of one file
// whose live bytes are under a quarter of its size to the file appended to, and removes it:
// the body files take at most about four times the bytes of their live bodies, plus the file
// being filled.

// compactBodies compacts one body file, if one qualifies. ckptMu is held.
func (s *Store) compactBodies() error {
	victim, ok, err := s.compactionVictim()
	if err != nil || !ok {
		return err
	}
	var live int64
	var a *applier
	err = s.db.Update(func(tx *bolt.Tx) error {
		var err error
		a, err = newApplier(tx, s.spill)
		if err != nil {
			return err
		}
		err = s.spill.scan(victim, func(l bodyLoc, id uint64, body []byte) error {
			k := seqKey(id)
			v := a.msgs.Get(k)
			if len(v) < 4 {
				return nil
			}
			if at, ok := parseBodyLoc(v[4:]); !ok || at != l {
				return nil // not live, or live in another copy
			}
			nl, err := s.spill.add(id, body)
			if err != nil {
				return err
			}
			a.live[l.file] -= l.size()
			a.live[nl.file] += nl.size()
			return a.msgs.Put(k, nl.append(append(make([]byte, 0, 4+bodyLocSize), v[:4]...)))
		})
		if err != nil {
			return err
		}
		a.live[victim] += 0 // settled even when nothing in it was live: then it goes
		live = int64(getUint64(a.bodyFiles, binary.BigEndian.AppendUint32(nil, victim))) + a.live[victim]
		if err := s.spill.sync(); err != nil {
			return err
		}
		return a.settleLive()
	})
	if errors.Is(err, errBodyDamaged) {
		s.stuck[victim] = true
		s.opts.Logger.Warn("store: a body file is damaged; it stays", "err", err)
		return nil
	} else if err != nil {
		s.stuck[victim] = true // not retried at every checkpoint; the next start tries again
		return err
	}
	if live > 0 {
		s.stuck[victim] = true
		s.opts.Logger.Warn("store: a body file keeps bodies its records do not show (damage?); it stays",
			"file", bodyPath(s.spill.dir, victim), "live_bytes", live)
	}
	return a.removeDoomed()
}

// compactionVictim returns the body file, other than the one appended to, with the smallest
// share of live bytes, if that is under a quarter.
func (s *Store) compactionVictim() (victim uint32, ok bool, err error) {
	cur, appending := s.spill.current()
	best := 0.25
	err = s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketBodyFiles).ForEach(func(k, v []byte) error {
			if len(k) != 4 || len(v) != 8 {
				return nil
			}
			n := binary.BigEndian.Uint32(k)
			if (appending && n == cur) || s.stuck[n] {
				return nil
			}
			size, known := s.spill.size(n)
			if !known || size == 0 {
				return nil // missing: its bodies read as damaged
			}
			if share := float64(binary.BigEndian.Uint64(v)) / float64(size); share < best {
				best, victim, ok = share, n, true
			}
			return nil
		})
	})
	return victim, ok, err
}
