package wal

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
)

// SegmentInfo describes one segment file.
type SegmentInfo struct {
	Path     string
	FirstPos Pos   // position of its first record (from the file name)
	LastPos  Pos   // position of its last valid record; FirstPos-1 when it has none
	Records  int64 // valid records before any damage
	Size     int64 // file size in bytes
	Damage   error // the first damage found, nil if none
	TornTail bool  // Damage is a torn tail that Open would cut off
}

// Info describes a log directory.
type Info struct {
	Segments []SegmentInfo
	FirstPos Pos   // first record in the log
	LastPos  Pos   // last record Open would keep (0 if none)
	Records  int64 // records Open would keep
	Bytes    int64 // total size of the segment files
	Damage   error // the damage that makes Open fail (see Repair), nil if Open would succeed
}

// Inspect reads the log in opts.Dir and describes it. It changes nothing, so it is safe on a
// copied directory and on the directory of a live Log (whose last record may then show as torn).
func Inspect(opts Options) (Info, error) {
	opts, err := opts.normalized()
	if err != nil {
		return Info{}, err
	}
	segs, _, err := survey(opts.FS, opts.Dir)
	if err != nil {
		return Info{}, fmt.Errorf("wal: inspect: %w", err)
	}
	var info Info
	for i, s := range segs {
		info.Segments = append(info.Segments, SegmentInfo{
			Path: s.path, FirstPos: s.first, LastPos: s.last(), Records: s.records,
			Size: s.size, Damage: s.damage, TornTail: s.torn && i == len(segs)-1,
		})
		info.Bytes += s.size
		if info.Damage != nil {
			continue
		}
		if i == 0 {
			info.FirstPos = s.first
		}
		info.Records += s.records
		info.LastPos = s.last()
		if s.damage != nil && !(s.torn && i == len(segs)-1) {
			info.Damage = s.damage
		}
	}
	return info, nil
}

// Report says what Repair changed.
type Report struct {
	// Moved lists the files Repair created or renamed, named <segment>.broken: whole copies of
	// the damaged segment and the later segments, moved out of the log.
	Moved []string
	// Truncated is the damaged segment cut back to its last valid record (or to a bare header),
	// "" if the whole segment was moved aside or nothing was damaged.
	Truncated string
	// Offset is where the damage began in the damaged segment.
	Offset int64
	// LastPos is the last record left in the log. It can be below what was once appended and
	// checkpointed elsewhere: the records after it are in the .broken files.
	LastPos Pos
}

// Repair makes a damaged log openable again, losing the least it can and deleting nothing. It
// finds the first damage Open would refuse; the damaged segment is copied to <segment>.broken and
// cut back to its last valid record (a segment with a bad header is replaced by an empty one, a
// segment that does not follow the one before it is renamed), and every later segment is renamed
// to <segment>.broken too. A torn tail Open would drop is left to Open. Run it only on a log that
// no process has open. It is idempotent: on a log Open accepts it changes nothing.
func Repair(opts Options) (Report, error) {
	opts, err := opts.normalized()
	if err != nil {
		return Report{}, err
	}
	rep, err := repair(opts)
	if err != nil {
		return rep, fmt.Errorf("wal: repair: %w", err)
	}
	for _, p := range rep.Moved {
		opts.Logger.Warn("wal: repair moved a damaged part of the log aside", "file", p)
	}
	return rep, nil
}

func repair(opts Options) (Report, error) {
	fsys, dir := opts.FS, opts.Dir
	segs, _, err := survey(fsys, dir)
	if err != nil {
		return Report{}, err
	}
	bad := slices.IndexFunc(segs, func(s segState) bool { return s.damage != nil })
	if bad < 0 || (bad == len(segs)-1 && segs[bad].torn) {
		var rep Report
		if len(segs) > 0 {
			rep.LastPos = segs[len(segs)-1].last()
		}
		return rep, nil
	}
	rep := Report{LastPos: segs[bad].first - 1}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return rep, err
	}
	aside := func(path string) string {
		to := path + brokenSuffix
		for i := 1; slices.Contains(names, filepath.Base(to)); i++ {
			to = fmt.Sprintf("%s%s.%d", path, brokenSuffix, i)
		}
		names = append(names, filepath.Base(to))
		rep.Moved = append(rep.Moved, to)
		return to
	}
	// Newest first, so that a crash part way leaves a contiguous log.
	for j := len(segs) - 1; j > bad; j-- {
		if err := fsys.Rename(segs[j].path, aside(segs[j].path)); err != nil {
			return rep, err
		}
		if err := fsys.SyncDir(dir); err != nil {
			return rep, err
		}
	}
	s := segs[bad]
	rep.Offset = s.good
	if s.gap {
		if err := fsys.Rename(s.path, aside(s.path)); err != nil {
			return rep, err
		}
		return rep, fsys.SyncDir(dir)
	}
	if err := copyFile(fsys, s.path, aside(s.path)); err != nil {
		return rep, err
	}
	rep.Truncated = s.path
	rep.LastPos = s.last()
	if s.good == 0 {
		return rep, writeFileSynced(fsys, s.path, bytes.NewReader(encodeSegHeader(s.first, rand.Uint32())))
	}
	f, err := fsys.OpenFile(s.path, os.O_RDWR, 0)
	if err != nil {
		return rep, err
	}
	err = f.Truncate(s.good)
	if err == nil {
		err = f.Sync()
	}
	return rep, errors.Join(err, f.Close())
}

// copyFile copies src to dst through a temporary file, syncing data and directory.
func copyFile(fsys FS, src, dst string) error {
	in, err := fsys.OpenFile(src, os.O_RDONLY, 0)
	if err != nil {
		return err
	}
	defer in.Close()
	size, err := in.Size()
	if err != nil {
		return err
	}
	return writeFileSynced(fsys, dst, io.NewSectionReader(in, 0, size))
}

// writeFileSynced replaces path with data atomically: temporary file, sync, rename, sync dir.
func writeFileSynced(fsys FS, path string, data io.Reader) error {
	tmp := path + tmpExt
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, data)
	if err == nil {
		err = f.Sync()
	}
	if err := errors.Join(err, f.Close()); err != nil {
		return err
	}
	if err := fsys.Rename(tmp, path); err != nil {
		return err
	}
	return fsys.SyncDir(filepath.Dir(path))
}
