package wal

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// Format constants. NEVER CHANGE THEM: they describe files already on disk. A new format needs a
// new formatVersion (see doc.go).
const (
	// MaxRecordSize is the largest record payload, in bytes. Append refuses larger records, and
	// a length over it on disk is damage, found before anything is allocated.
	MaxRecordSize = 16 << 20

	segHeaderSize   = 28
	frameHeaderSize = 12
	formatVersion   = 2 // written; versions 1 and 2 are read
	// padMarker in a frame header's length field marks padding (format version 2): the 4
	// bytes after it give the number of filler bytes that follow the header.
	padMarker    = 0xFFFFFFFF
	segSuffix    = ".wal"
	tmpExt       = ".tmp"
	tmpSuffix    = segSuffix + tmpExt
	brokenSuffix = ".broken"
)

var segMagic = [8]byte{'E', 'B', 'W', 'A', 'L', 0, '\r', '\n'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of the package. Compare with errors.Is.
var (
	// ErrCorrupt reports damage that a power cut does not explain; the error is a *CorruptError.
	ErrCorrupt = errors.New("wal: corrupt log")
	// ErrVersion reports a segment written in a format version this code does not read.
	ErrVersion = errors.New("wal: unsupported format version")
	// ErrFailed wraps the write or sync error that poisoned a Log.
	ErrFailed = errors.New("wal: log failed")
	// ErrClosed is returned by calls on a closed Log.
	ErrClosed = errors.New("wal: log closed")
	// ErrTooLarge is returned by Append for a record over MaxRecordSize.
	ErrTooLarge = errors.New("wal: record too large")
	// ErrNotAppended is returned by WaitDurable for a position not yet appended.
	ErrNotAppended = errors.New("wal: position not appended")
	// ErrMissing is returned by Replay when records after the requested position were already
	// removed by TruncateBefore.
	ErrMissing = errors.New("wal: records missing")
)

// CorruptError describes damage in a segment file. errors.Is(err, ErrCorrupt) holds.
type CorruptError struct {
	Path   string // the segment file
	Offset int64  // byte offset in the file where the damage begins
	Reason string

	torn bool // damage a power cut explains if it is at the end of the log
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("%v: %s at offset %d: %s (run repair to move the damaged part aside)",
		ErrCorrupt, e.Path, e.Offset, e.Reason)
}

// Unwrap returns ErrCorrupt.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// segmentName returns the file name of the segment whose first record is first.
func segmentName(first Pos) string { return fmt.Sprintf("%016x%s", uint64(first), segSuffix) }

// parseSegmentName returns the first position encoded in a segment file name.
func parseSegmentName(name string) (Pos, bool) {
	hex, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(hex) != 16 || strings.ToLower(hex) != hex {
		return 0, false
	}
	v, err := strconv.ParseUint(hex, 16, 64)
	if err != nil || v == 0 {
		return 0, false
	}
	return Pos(v), true
}

// encodeSegHeader returns the header of a new segment.
func encodeSegHeader(first Pos, salt uint32) []byte {
	h := make([]byte, segHeaderSize)
	copy(h, segMagic[:])
	binary.LittleEndian.PutUint32(h[8:], formatVersion)
	binary.LittleEndian.PutUint32(h[12:], salt)
	binary.LittleEndian.PutUint64(h[16:], uint64(first))
	binary.LittleEndian.PutUint32(h[24:], crc32.Checksum(h[:24], castagnoli))
	return h
}

// saltSeed returns the CRC state after the salt, the start of every frame header CRC.
func saltSeed(salt uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], salt)
	return crc32.Update(0, castagnoli, b[:])
}

// appendFrame appends the frame of rec to buf.
func appendFrame(buf []byte, seed uint32, rec []byte) []byte {
	// The header is built in buf itself: a local array would escape to the heap (the CRC
	// functions take slices), one allocation a record.
	buf = slices.Grow(buf, frameHeaderSize+len(rec))
	h := buf[len(buf) : len(buf)+frameHeaderSize]
	binary.LittleEndian.PutUint32(h[0:], uint32(len(rec)))
	dcrc := crc32.Update(crc32.Update(0, castagnoli, h[0:4]), castagnoli, rec)
	binary.LittleEndian.PutUint32(h[4:], dcrc)
	binary.LittleEndian.PutUint32(h[8:], crc32.Update(seed, castagnoli, h[:8]))
	return append(buf[:len(buf)+frameHeaderSize], rec...)
}

// frameHeader checks a frame header; it returns the payload length and data CRC when the header
// CRC matches and the length is within the limit.
func frameHeader(seed uint32, h []byte) (n int64, dcrc uint32, ok bool) {
	if binary.LittleEndian.Uint32(h[8:]) != crc32.Update(seed, castagnoli, h[:8]) {
		return 0, 0, false
	}
	n = int64(binary.LittleEndian.Uint32(h[0:]))
	return n, binary.LittleEndian.Uint32(h[4:]), n <= MaxRecordSize
}

// appendPad appends a padding frame of size bytes in all (at least frameHeaderSize) to buf.
func appendPad(buf []byte, seed uint32, size int) []byte {
	var h [frameHeaderSize]byte
	binary.LittleEndian.PutUint32(h[0:], padMarker)
	binary.LittleEndian.PutUint32(h[4:], uint32(size-frameHeaderSize))
	binary.LittleEndian.PutUint32(h[8:], crc32.Update(seed, castagnoli, h[:8]))
	buf = append(buf, h[:]...)
	return append(buf, make([]byte, size-frameHeaderSize)...)
}

// padHeader reports whether h is the header of a padding frame, and how many filler bytes
// follow it.
func padHeader(seed uint32, h []byte) (filler int64, ok bool) {
	if binary.LittleEndian.Uint32(h[0:]) != padMarker || binary.LittleEndian.Uint32(h[8:]) != crc32.Update(seed, castagnoli, h[:8]) {
		return 0, false
	}
	return int64(binary.LittleEndian.Uint32(h[4:])), true
}

// padSize returns the size of the padding frame that takes a segment of size bytes to the
// next multiple of align, or 0 when none is needed or none fits (a frame header is 12 bytes).
func padSize(size, align int64) int {
	gap := (align - size%align) % align
	if gap < frameHeaderSize {
		return 0
	}
	return int(gap)
}

// payloadOK reports whether payload matches the data CRC of its frame header h.
func payloadOK(h, payload []byte, dcrc uint32) bool {
	return crc32.Update(crc32.Update(0, castagnoli, h[0:4]), castagnoli, payload) == dcrc
}

// segReader reads the records of one segment file in order.
type segReader struct {
	path  string
	f     File
	size  int64
	first Pos
	seed  uint32
	// padded: the segment's format version allows padding frames (version 2 on).
	padded bool
	off    int64 // offset of the next frame
	br     *bufio.Reader
	buf    []byte
	hdr    [frameHeaderSize]byte // the frame header being read: a local would escape, one allocation a record
}

// openSegment opens a segment and checks its header against the first position in its name.
// A damaged header is a *CorruptError; an unknown version wraps ErrVersion.
func openSegment(fsys FS, path string, first Pos, br *bufio.Reader) (*segReader, error) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	r := &segReader{path: path, f: f, first: first, br: br}
	if err := r.readHeader(); err != nil {
		f.Close()
		return nil, err
	}
	return r, nil
}

func (r *segReader) readHeader() error {
	size, err := r.f.Size()
	if err != nil {
		return err
	}
	r.size = size
	// The header is read on its own: a replay that seeks past the first records (see
	// replayHint) then reads nothing before them.
	hr := io.NewSectionReader(r.f, 0, size)
	var h [segHeaderSize]byte
	if size < segHeaderSize {
		if _, err := io.ReadFull(hr, h[:size]); err != nil {
			return err
		}
		// A power cut cannot tear a header (segments are renamed into place after a sync), but a
		// file system that does not order rename after data can: when what is there is the
		// start of a header, the segment is treated as a torn tail with no records.
		want := encodeSegHeader(0, 0)[:12]
		torn := bytes.HasPrefix(want, h[:size]) || bytes.HasPrefix(h[:size], want)
		return &CorruptError{r.path, 0, fmt.Sprintf("segment header cut short (%d of %d bytes)", size, segHeaderSize), torn}
	}
	if _, err := io.ReadFull(hr, h[:]); err != nil {
		return err
	}
	switch {
	case [8]byte(h[:8]) != segMagic:
		return &CorruptError{Path: r.path, Reason: "segment header: bad magic (not a log segment)"}
	case binary.LittleEndian.Uint32(h[24:]) != crc32.Checksum(h[:24], castagnoli):
		return &CorruptError{Path: r.path, Offset: 24, Reason: "segment header: checksum mismatch"}
	case binary.LittleEndian.Uint32(h[8:]) < 1 || binary.LittleEndian.Uint32(h[8:]) > formatVersion:
		return fmt.Errorf("%w %d in %s (this build reads versions 1 to %d)",
			ErrVersion, binary.LittleEndian.Uint32(h[8:]), r.path, formatVersion)
	case Pos(binary.LittleEndian.Uint64(h[16:])) != r.first:
		return &CorruptError{Path: r.path, Offset: 16, Reason: fmt.Sprintf("segment header: first position %d does not match the file name",
			binary.LittleEndian.Uint64(h[16:]))}
	}
	r.seed = saltSeed(binary.LittleEndian.Uint32(h[12:]))
	r.padded = binary.LittleEndian.Uint32(h[8:]) >= 2
	r.seek(segHeaderSize)
	return nil
}

// next returns the next record, valid until the following call, skipping padding. It returns
// io.EOF at the clean end of the file, a *CorruptError at damage, and other errors for failed
// reads.
func (r *segReader) next() ([]byte, error) {
	for {
		rest := r.size - r.off
		if rest == 0 {
			return nil, io.EOF
		}
		if rest < frameHeaderSize {
			return nil, r.corrupt(fmt.Sprintf("frame header cut short (%d of %d bytes)", rest, frameHeaderSize))
		}
		h := &r.hdr
		if _, err := io.ReadFull(r.br, h[:]); err != nil {
			return nil, err
		}
		if filler, ok := padHeader(r.seed, h[:]); ok && r.padded {
			if filler > min(MaxRecordSize, rest-frameHeaderSize) {
				return nil, r.corrupt(fmt.Sprintf("padding of %d bytes runs past the end of the file", filler))
			}
			if _, err := r.br.Discard(int(filler)); err != nil {
				return nil, err
			}
			r.off += frameHeaderSize + filler
			continue
		}
		n, dcrc, ok := frameHeader(r.seed, h[:])
		switch {
		case !ok:
			return nil, r.corrupt("frame header checksum mismatch or length over the limit")
		case n > rest-frameHeaderSize:
			return nil, r.corrupt(fmt.Sprintf("record of %d bytes runs past the end of the file", n))
		}
		if int64(cap(r.buf)) < n {
			r.buf = make([]byte, n)
		}
		rec := r.buf[:n]
		if _, err := io.ReadFull(r.br, rec); err != nil {
			return nil, err
		}
		if !payloadOK(h[:], rec, dcrc) {
			return nil, r.corrupt("record checksum mismatch")
		}
		r.off += frameHeaderSize + n
		return rec, nil
	}
}

// seek makes the frame at byte off the next one read; off must be where a frame starts.
func (r *segReader) seek(off int64) {
	r.br.Reset(io.NewSectionReader(r.f, off, r.size-off))
	r.off = off
}

func (r *segReader) corrupt(reason string) error {
	return &CorruptError{Path: r.path, Offset: r.off, Reason: reason}
}

// validFrameAfter reports whether a complete, valid record starts anywhere after the damage at
// r.off. Without one, the damage is a torn tail: everything from r.off on is what a power cut
// left of writes that never completed.
func (r *segReader) validFrameAfter() (bool, error) {
	const window = 64 << 10
	buf := make([]byte, window+frameHeaderSize-1)
	for start := r.off + 1; start+frameHeaderSize <= r.size; start += window {
		n := min(int64(len(buf)), r.size-start)
		if _, err := r.f.ReadAt(buf[:n], start); err != nil && !errors.Is(err, io.EOF) {
			return false, err
		}
		for i := int64(0); i+frameHeaderSize <= n && i < window; i++ {
			h := buf[i : i+frameHeaderSize]
			plen, dcrc, ok := frameHeader(r.seed, h)
			at := start + i
			if !ok || plen > r.size-at-frameHeaderSize {
				continue
			}
			payload := make([]byte, plen)
			if _, err := r.f.ReadAt(payload, at+frameHeaderSize); err != nil && !errors.Is(err, io.EOF) {
				return false, err
			}
			if payloadOK(h, payload, dcrc) {
				return true, nil
			}
		}
	}
	return false, nil
}

func (r *segReader) close() error { return r.f.Close() }

// segmentPath returns the path of the segment whose first record is first.
func segmentPath(dir string, first Pos) string { return filepath.Join(dir, segmentName(first)) }
