package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"edgebroker/wal"
)

// Report describes a data directory, as Inspect found it.
type Report struct {
	Dir           string
	CheckpointPos wal.Pos // the log position checkpoint.db reflects
	DBSize        int64   // bytes of checkpoint.db, 0 if it does not exist yet
	// DBCopied is set when a running broker held checkpoint.db: it was read from a copy, which
	// may show an older checkpoint.
	DBCopied bool
	Sessions []SessionReport // by client id
	Messages int             // message bodies in checkpoint.db
	Retained int             // retained topics in checkpoint.db
	Log      wal.Info        // the log's segments; records after CheckpointPos are not counted above
	// BodyFiles are the body files checkpoint.db lists, in order; a listed file that is
	// missing has Size -1.
	BodyFiles []BodyFileReport
}

// BodyFileReport describes one body file.
type BodyFileReport struct {
	Path      string
	Size      int64 // bytes; -1 if the file is missing
	LiveBytes int64 // bytes of the bodies checkpoint.db still refers to
}

// SessionReport describes one session in checkpoint.db.
type SessionReport struct {
	ClientID       string
	Version        byte
	DisconnectedAt time.Time // zero while connected
	Expiry         time.Duration
	Subs           int
	Entries        int // queued and in-flight messages
	Released       int // entries awaiting PUBCOMP
	InQoS2         int
}

// Inspect describes the store in dir without changing anything: checkpoint.db is opened read
// only (or copied, if a running broker holds it) and the log is read with wal.Inspect. It is safe
// beside a live broker and on a copied data directory.
func Inspect(dir string) (Report, error) {
	opts, err := DefaultOptions(dir).normalized()
	if err != nil {
		return Report{}, err
	}
	r := Report{Dir: dir}
	if _, err := os.Stat(opts.WAL.Dir); err == nil {
		if r.Log, err = wal.Inspect(opts.WAL); err != nil {
			return r, fmt.Errorf("store: inspect: %w", err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return r, fmt.Errorf("store: inspect: %w", err)
	}
	fi, err := os.Stat(dbPath(dir))
	if errors.Is(err, os.ErrNotExist) {
		return r, nil
	} else if err != nil {
		return r, fmt.Errorf("store: inspect: %w", err)
	}
	r.DBSize = fi.Size()
	db, err := openDB(opts, true)
	if errors.Is(err, errLocked) {
		r.DBCopied = true
		db, err = openCopy(opts)
	}
	if err != nil {
		return r, err
	}
	defer closeInspected(db, r.DBCopied)
	err = guard(func() error { return db.View(r.read) })
	return r, err
}

// openCopy copies checkpoint.db, which a running broker holds, to a temporary file and opens
// the copy read only.
func openCopy(opts Options) (*bolt.DB, error) {
	src, err := os.Open(dbPath(opts.Dir))
	if err != nil {
		return nil, fmt.Errorf("store: inspect: %w", err)
	}
	defer src.Close()
	tmp, err := os.CreateTemp("", "edgebroker-inspect-*.db")
	if err != nil {
		return nil, fmt.Errorf("store: inspect: %w", err)
	}
	_, err = io.Copy(tmp, src)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("store: inspect: copy %s: %w", src.Name(), err)
	}
	var db *bolt.DB
	err = guard(func() error {
		db, err = bolt.Open(tmp.Name(), 0o600, &bolt.Options{ReadOnly: true, Timeout: dbLockTimeout})
		return err
	})
	if err != nil {
		os.Remove(tmp.Name())
		return nil, fmt.Errorf("%w: copy of %s: %w", ErrDamaged, src.Name(), err)
	}
	return db, nil
}

// closeInspected closes a database Inspect opened, removing it if it is a temporary copy.
func closeInspected(db *bolt.DB, copied bool) {
	path := db.Path()
	db.Close()
	if copied {
		os.Remove(path)
	}
}

// read fills r from a checkpoint.db transaction.
func (r *Report) read(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	if meta == nil {
		return nil // created but not yet initialized
	}
	r.CheckpointPos = wal.Pos(getUint64(meta, keyCheckpoint))
	count := func(b *bolt.Bucket, keyLen int) (n int) {
		if b != nil {
			b.ForEach(func(k, v []byte) error {
				if keyLen == 0 || len(k) == keyLen {
					n++
				}
				return nil
			})
		}
		return n
	}
	if files := tx.Bucket(bucketBodyFiles); files != nil { // layout 1 has none
		files.ForEach(func(k, v []byte) error {
			if len(k) == 4 && len(v) == 8 {
				f := BodyFileReport{Path: bodyPath(filepath.Join(r.Dir, bodyDirName), binary.BigEndian.Uint32(k)),
					Size: -1, LiveBytes: int64(binary.BigEndian.Uint64(v))}
				if fi, err := os.Stat(f.Path); err == nil {
					f.Size = fi.Size()
				}
				r.BodyFiles = append(r.BodyFiles, f)
			}
			return nil
		})
	}
	r.Messages = count(tx.Bucket(bucketMessages), 0)
	r.Retained = count(tx.Bucket(bucketRetained), 0)
	subs, entries, inqos2 := tx.Bucket(bucketSubs), tx.Bucket(bucketEntries), tx.Bucket(bucketInQoS2)
	sessions := tx.Bucket(bucketSessions)
	if sessions == nil || subs == nil || entries == nil || inqos2 == nil {
		return fmt.Errorf("%w: a bucket is missing", ErrDamaged)
	}
	return sessions.ForEach(func(k, v []byte) error {
		var s Session
		if _, err := s.UnmarshalMsg(v); err != nil {
			return fmt.Errorf("%w: session %q: %w", ErrDamaged, k, err)
		}
		sr := SessionReport{ClientID: s.ClientID, Version: s.Version, Expiry: time.Duration(s.Expiry),
			Subs: count(subs.Bucket(k), 0), Entries: count(entries.Bucket(k), 8), InQoS2: count(inqos2.Bucket(k), 2)}
		if s.DisconnectedAt != 0 {
			sr.DisconnectedAt = time.Unix(0, s.DisconnectedAt)
		}
		if b := entries.Bucket(k); b != nil {
			err := b.ForEach(func(k, v []byte) error {
				var e Entry
				if _, err := e.UnmarshalMsg(v); err == nil && e.Released {
					sr.Released++
				}
				return nil
			})
			if err != nil {
				return err
			}
		}
		r.Sessions = append(r.Sessions, sr)
		return nil
	})
}

// String formats the report for an operator: one summary, the log's segments, then one line
// per session.
func (r Report) String() string {
	var b strings.Builder
	entries := 0
	for _, s := range r.Sessions {
		entries += s.Entries
	}
	fmt.Fprintf(&b, "data directory %s\n", r.Dir)
	copied := ""
	if r.DBCopied {
		copied = " (locked by a running broker: read from a copy)"
	}
	fmt.Fprintf(&b, "checkpoint: %d bytes, log position %d%s\n", r.DBSize, r.CheckpointPos, copied)
	fmt.Fprintf(&b, "checkpointed: %d sessions, %d queued entries, %d messages, %d retained\n",
		len(r.Sessions), entries, r.Messages, r.Retained)
	after := int64(0)
	if r.Log.LastPos > r.CheckpointPos {
		after = int64(r.Log.LastPos - r.CheckpointPos)
	}
	fmt.Fprintf(&b, "log: %d segments, %d bytes, records %d to %d, %d after the checkpoint (applied at the next start)\n",
		len(r.Log.Segments), r.Log.Bytes, r.Log.FirstPos, r.Log.LastPos, after)
	for _, s := range r.Log.Segments {
		state := "ok"
		switch {
		case s.TornTail:
			state = "torn tail (dropped at the next start)"
		case s.Damage != nil:
			state = s.Damage.Error()
		}
		fmt.Fprintf(&b, "  %s: %d bytes, records %d to %d: %s\n", s.Path, s.Size, s.FirstPos, s.LastPos, state)
	}
	if r.Log.Damage != nil {
		fmt.Fprintf(&b, "log damaged: %v\n", r.Log.Damage)
	}
	var size, live int64
	for _, f := range r.BodyFiles {
		size, live = size+max(f.Size, 0), live+f.LiveBytes
	}
	fmt.Fprintf(&b, "body files: %d, %d bytes, %d of them live\n", len(r.BodyFiles), size, live)
	for _, f := range r.BodyFiles {
		if f.Size < 0 {
			fmt.Fprintf(&b, "  %s: MISSING (%d live bytes; their messages are lost)\n", f.Path, f.LiveBytes)
		}
	}
	for _, s := range r.Sessions {
		conn := "connected"
		if !s.DisconnectedAt.IsZero() {
			conn = "disconnected " + s.DisconnectedAt.UTC().Format(time.RFC3339)
		}
		exp := "never expires"
		if s.Expiry > 0 {
			exp = "expiry " + s.Expiry.String()
		}
		fmt.Fprintf(&b, "session %q: v%d, %s, %s, %d subs, %d queued (%d awaiting PUBCOMP), %d inbound QoS 2\n",
			s.ClientID, s.Version, conn, exp, s.Subs, s.Entries, s.Released, s.InQoS2)
	}
	return b.String()
}

// Repair makes a data directory whose log is damaged in the middle openable again, with
// wal.Repair: the damaged part of the log is moved aside as .broken files, never deleted. It
// returns a description of what it moved. Run it only while no broker uses the directory;
// records in the moved part are lost to the broker (checkpoint.db keeps what was checkpointed).
func Repair(opts Options) (string, error) {
	opts, err := opts.normalized()
	if err != nil {
		return "", err
	}
	rep, err := wal.Repair(opts.WAL)
	if err != nil {
		return "", fmt.Errorf("store: repair: %w", err)
	}
	if len(rep.Moved) == 0 && rep.Truncated == "" {
		return "nothing to repair", nil
	}
	var b strings.Builder
	if rep.Truncated != "" {
		fmt.Fprintf(&b, "cut %s back to offset %d (a copy is kept as .broken)\n", rep.Truncated, rep.Offset)
	}
	for _, m := range rep.Moved {
		fmt.Fprintf(&b, "moved aside: %s\n", m)
	}
	fmt.Fprintf(&b, "the log now ends at record %d", rep.LastPos)
	return b.String(), nil
}
