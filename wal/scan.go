package wal

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// segState is what a scan found in one segment file.
type segState struct {
	path    string
	first   Pos
	records int64
	size    int64
	good    int64 // offset just past the last valid record; 0 when the header is damaged
	damage  error // nil, a *CorruptError, or an error wrapping ErrVersion
	torn    bool  // the damage is a torn tail: no valid record follows it
	gap     bool  // the damage is that the segment does not follow the one before it
}

// last returns the position of the segment's last valid record (first-1 when it has none).
func (s *segState) last() Pos { return s.first + Pos(s.records) - 1 }

// survey checks every segment in dir, in order, and changes nothing. It returns the segments and
// the leftover temporary files. Damage is reported in segState.damage; the error is for failed
// file system operations only.
func survey(fsys FS, dir string) (segs []segState, tmps []string, err error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, nil, err
	}
	br := bufio.NewReaderSize(nil, 64<<10)
	for _, name := range names {
		if strings.HasSuffix(name, tmpSuffix) {
			tmps = append(tmps, filepath.Join(dir, name))
			continue
		}
		first, ok := parseSegmentName(name)
		if !ok {
			continue
		}
		s, err := scanSegment(fsys, filepath.Join(dir, name), first, br)
		if err != nil {
			return nil, nil, err
		}
		if n := len(segs); n > 0 && segs[n-1].damage == nil && s.damage == nil {
			if want := segs[n-1].last() + 1; s.first != want {
				s.gap = true
				// Name the segment before too: a segment cut short at a record boundary reads
				// cleanly, and only the gap after it shows the damage.
				s.damage = &CorruptError{Path: s.path, Reason: fmt.Sprintf(
					"segment starts at position %d but %s before it ends at %d (truncated?)",
					s.first, filepath.Base(segs[n-1].path), want-1)}
			}
		}
		segs = append(segs, s)
	}
	return segs, tmps, nil
}

// scanSegment reads and checks one segment.
func scanSegment(fsys FS, path string, first Pos, br *bufio.Reader) (segState, error) {
	s := segState{path: path, first: first}
	r, err := openSegment(fsys, path, first, br)
	if err != nil {
		if isDamage(err) {
			s.damage = err
			var ce *CorruptError
			s.torn = errors.As(err, &ce) && ce.torn
			s.size, err = fileSize(fsys, path)
			return s, err
		}
		return s, err
	}
	defer r.close()
	s.size = r.size
	for {
		_, err := r.next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !isDamage(err) {
				return s, err
			}
			s.damage = err
			valid, err := r.validFrameAfter()
			s.torn = !valid
			s.good = r.off
			return s, err
		}
		s.records++
	}
	s.good = r.off
	return s, nil
}

// isDamage tells damage found in the bytes of a file from a failed file operation.
func isDamage(err error) bool { return errors.Is(err, ErrCorrupt) || errors.Is(err, ErrVersion) }

func fileSize(fsys FS, path string) (int64, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Size()
}
