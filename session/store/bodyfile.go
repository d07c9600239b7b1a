package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	"edgebroker/wal"
)

// Body files: the bodies a checkpoint stores, appended to files of their own (DIR/bodies/)
// instead of checkpoint.db's B+tree, which keeps only their location. A drain reads each body
// with one pread, and the page cache serves it: these files are never mapped, so what the
// kernel caches of them does not count against the process's RSS, where checkpoint.db's
// cached pages are mapped in by every fault near them. They are written once, sequentially.
// The layout is in doc.go.

const (
	bodyDirName   = "bodies"
	bodyFileExt   = ".body"
	bodyFileMagic = "ebbody\x00\x01" // the file header: name and format version 1
	bodyHdrSize   = 16               // a record's length, CRC and message id
	// bodyMarker starts a body location. It is a byte msgpack never uses, so a messages value
	// (after its reference count) holds either an encoded Message or a location.
	bodyMarker  = 0xc1
	bodyLocSize = 13 // marker, file u32, offset u32, length u32
	// maxBodyFileSize bounds a body file: offsets in locations are 32 bits.
	maxBodyFileSize = 1 << 30
	// bodyWriteBuffer is how much the files buffer before writing.
	bodyWriteBuffer = 64 << 10
)

var crc32c = crc32.MakeTable(crc32.Castagnoli)

// errBodyDamaged reports a body record that is not what its location says, or a missing body
// file: damage, where other errors of reading a body may pass.
var errBodyDamaged = errors.New("body damaged")

// errBodyRead wraps an error of reading a body file that is not damage: it may pass.
var errBodyRead = errors.New("reading a body file")

// bodyLoc is where a body is: file number, offset of its record, length of the body.
type bodyLoc struct {
	file     uint32
	off, len uint32
}

// append appends the encoded location to b.
func (l bodyLoc) append(b []byte) []byte {
	b = append(b, bodyMarker)
	b = binary.BigEndian.AppendUint32(b, l.file)
	b = binary.BigEndian.AppendUint32(b, l.off)
	return binary.BigEndian.AppendUint32(b, l.len)
}

// size is the bytes of the record at l.
func (l bodyLoc) size() int64 { return bodyHdrSize + int64(l.len) }

// parseBodyLoc decodes a location; ok is false when b is not one.
func parseBodyLoc(b []byte) (l bodyLoc, ok bool) {
	if len(b) != bodyLocSize || b[0] != bodyMarker {
		return l, false
	}
	return bodyLoc{binary.BigEndian.Uint32(b[1:]), binary.BigEndian.Uint32(b[5:]), binary.BigEndian.Uint32(b[9:])}, true
}

// bodyRecordCRC is the CRC of a record: its message id and body.
func bodyRecordCRC(id []byte, body []byte) uint32 {
	return crc32.Update(crc32.Checksum(id, crc32c), crc32c, body)
}

// bodyFiles appends bodies to the current file and reads them back. Appends come from the
// checkpointer only; reads from anywhere. A file is removed only when no reader can be
// reading it (readMu).
type bodyFiles struct {
	fsys    wal.FS
	dir     string
	maxSize int64 // a file takes no more records once it is this big

	mu      sync.Mutex // the appends; held across their writes and syncs
	cur     wal.File   // appended to; nil until the first append after Open or a failure
	curNum  uint32
	curSize int64 // written to cur, buffered bytes included
	curNew  bool  // cur's directory entry is not durable yet
	buf     []byte
	dirty   bool         // written since the last sync
	next    uint32       // the number of the next file
	written atomic.Int64 // bytes written to body files since Open, for Stats

	sizeMu sync.Mutex       // innermost
	sizes  map[uint32]int64 // the size of each file on disk, for Stats

	readersMu sync.RWMutex // the files open for reading; never held across a write or sync
	readers   map[uint32]wal.File
	closed    bool // close was called: no file opens any more

	// readMu is held for reading by every reader of checkpoint.db that may follow a location,
	// and for writing to remove a file: a reader in a transaction older than a removal's may
	// still see a location in the removed file.
	readMu sync.RWMutex
}

func bodyPath(dir string, n uint32) string {
	return filepath.Join(dir, fmt.Sprintf("%08x%s", n, bodyFileExt))
}

// parseBodyName returns the number of a body file's name.
func parseBodyName(name string) (uint32, bool) {
	hex, ok := strings.CutSuffix(name, bodyFileExt)
	if !ok || len(hex) != 8 {
		return 0, false
	}
	n, err := strconv.ParseUint(hex, 16, 32)
	return uint32(n), err == nil
}

// openBodyFiles opens the body files of dataDir, creating the directory if need be, and
// removes the files live does not list (a checkpoint that wrote them never committed, or one
// that emptied them committed and the removal did not happen). Appends go to a new file.
func openBodyFiles(fsys wal.FS, dataDir string, maxSize int64, live map[uint32]int64) (*bodyFiles, error) {
	dir := filepath.Join(dataDir, bodyDirName)
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	b := &bodyFiles{fsys: fsys, dir: dir, maxSize: min(maxSize, maxBodyFileSize), readers: map[uint32]wal.File{},
		sizes: map[uint32]int64{}}
	removed, present := false, 0
	for _, name := range names {
		n, ok := parseBodyName(name)
		if !ok {
			continue
		}
		if live[n] > 0 {
			present++
		}
		b.next = max(b.next, n+1)
		if _, ok := live[n]; !ok {
			if err := fsys.Remove(filepath.Join(dir, name)); err != nil {
				return nil, err
			}
			removed = true
			continue
		}
		if size, ok := fileSize(fsys, filepath.Join(dir, name)); ok {
			b.sizes[n] = size
		}
	}
	listed := 0
	for n, bytes := range live {
		b.next = max(b.next, n+1)
		if bytes > 0 {
			listed++
		}
	}
	if listed > 0 && present == 0 {
		return nil, fmt.Errorf("%w: checkpoint.db refers to %d body files and %s holds none of them "+
			"(restore it from the backup the rest came from, or move checkpoint.db aside to start empty)",
			ErrDamaged, listed, dir)
	}
	if removed {
		if err := fsys.SyncDir(dir); err != nil {
			return nil, err
		}
	}
	return b, nil
}

// add appends the record of body id and returns its location. It is durable after sync.
func (b *bodyFiles) add(id uint64, body []byte) (bodyLoc, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	rec := bodyLoc{len: uint32(len(body))}.size()
	if b.cur != nil && b.curSize+rec > b.maxSize && b.curSize > int64(len(bodyFileMagic)) {
		if err := b.syncLocked(); err != nil {
			return bodyLoc{}, err
		}
		b.cur.Close()
		b.cur = nil
	}
	if b.cur == nil {
		if err := b.startLocked(); err != nil {
			return bodyLoc{}, err
		}
	}
	loc := bodyLoc{file: b.curNum, off: uint32(b.curSize), len: uint32(len(body))}
	var idb [8]byte
	binary.BigEndian.PutUint64(idb[:], id)
	b.buf = binary.BigEndian.AppendUint32(b.buf, uint32(len(body)))
	b.buf = binary.BigEndian.AppendUint32(b.buf, bodyRecordCRC(idb[:], body))
	b.buf = append(append(b.buf, idb[:]...), body...)
	b.curSize += rec
	b.dirty = true
	if len(b.buf) >= bodyWriteBuffer {
		return loc, b.flushLocked()
	}
	return loc, nil
}

// startLocked creates the next file.
func (b *bodyFiles) startLocked() error {
	n := b.next
	f, err := b.fsys.OpenFile(bodyPath(b.dir, n), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	b.next++
	b.cur, b.curNum, b.curNew = f, n, true
	b.buf = append(b.buf[:0], bodyFileMagic...)
	b.curSize = int64(len(b.buf))
	return nil
}

// flushLocked writes the buffer. After a failed write or sync the file takes no more
// records: what it holds is unknown, and a sync is never retried.
func (b *bodyFiles) flushLocked() error {
	if len(b.buf) == 0 {
		return nil
	}
	n, err := b.cur.Write(b.buf)
	b.written.Add(int64(n))
	b.sizeMu.Lock()
	b.sizes[b.curNum] += int64(n)
	b.sizeMu.Unlock()
	b.buf = b.buf[:0]
	if cap(b.buf) > 2*bodyWriteBuffer {
		b.buf = nil // a large body went through: its room is not kept
	}
	if err != nil {
		b.abandonLocked()
	}
	return err
}

// abandonLocked gives up the file being filled. What it held unsynced belongs to transactions
// that failed with the write or sync (every caller gives up on such an error): nothing will
// refer to it.
func (b *bodyFiles) abandonLocked() {
	b.cur.Close()
	b.cur, b.buf, b.dirty = nil, b.buf[:0], false
}

// sync makes every record added so far durable, the new file's directory entry included.
func (b *bodyFiles) sync() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.syncLocked()
}

func (b *bodyFiles) syncLocked() error {
	if !b.dirty {
		return nil
	}
	if err := b.flushLocked(); err != nil {
		return err
	}
	if err := b.cur.Sync(); err != nil {
		b.abandonLocked()
		return err
	}
	if b.curNew {
		if err := b.fsys.SyncDir(b.dir); err != nil {
			b.abandonLocked()
			return err
		}
		b.curNew = false
	}
	b.dirty = false
	return nil
}

// current returns the number of the file appends go to, and whether there is one.
func (b *bodyFiles) current() (uint32, bool) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.curNum, b.cur != nil
}

// reader returns file n open for reading.
func (b *bodyFiles) reader(n uint32) (wal.File, error) {
	b.readersMu.RLock()
	f, closed := b.readers[n], b.closed
	b.readersMu.RUnlock()
	if f != nil && !closed {
		return f, nil // every body read but the first of a file
	}
	b.readersMu.Lock()
	defer b.readersMu.Unlock()
	if b.closed {
		return nil, ErrClosed
	}
	if f := b.readers[n]; f != nil {
		return f, nil
	}
	f, err := b.fsys.OpenFile(bodyPath(b.dir, n), os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	b.readers[n] = f
	return f, nil
}

// read reads the record of body id at l into buf, grown if need be, and returns it: the
// body is after its first bodyHdrSize bytes. Call it with readMu held.
func (b *bodyFiles) read(id uint64, l bodyLoc, buf []byte) ([]byte, error) {
	f, err := b.reader(l.file)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%w: body file %08x is missing", errBodyDamaged, l.file)
	} else if err != nil {
		return nil, err
	}
	if l.len > wal.MaxRecordSize { // no body is larger than the log record that carried it
		return nil, fmt.Errorf("%w: body file %08x offset %d: a body of %d bytes", errBodyDamaged, l.file, l.off, l.len)
	}
	rec := buf[:0]
	if n := int(l.size()); cap(rec) < n {
		rec = make([]byte, n)
	} else {
		rec = rec[:n]
	}
	if _, err := f.ReadAt(rec, int64(l.off)); errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("%w: body file %08x ends before offset %d", errBodyDamaged, l.file, l.off+uint32(len(rec)))
	} else if err != nil {
		return nil, fmt.Errorf("body file %08x offset %d: %w", l.file, l.off, err)
	}
	if err := checkBodyRecord(rec, id); err != nil {
		return nil, fmt.Errorf("%w: body file %08x offset %d: %w", errBodyDamaged, l.file, l.off, err)
	}
	return rec, nil
}

// checkBodyRecord checks a whole record read back: its length, message id and CRC.
func checkBodyRecord(rec []byte, id uint64) error {
	switch {
	case len(rec) < bodyHdrSize || int(binary.BigEndian.Uint32(rec)) != len(rec)-bodyHdrSize:
		return errors.New("bad record length")
	case binary.BigEndian.Uint64(rec[8:]) != id:
		return fmt.Errorf("record of message %d, want %d", binary.BigEndian.Uint64(rec[8:]), id)
	case bodyRecordCRC(rec[8:16], rec[bodyHdrSize:]) != binary.BigEndian.Uint32(rec[4:]):
		return errors.New("CRC mismatch")
	}
	return nil
}

// scan calls fn with the location and id of each whole record of file n, in order, up to the
// first that is not whole (the end, or a torn tail no checkpoint committed). The body is
// valid until fn returns.
func (b *bodyFiles) scan(n uint32, fn func(l bodyLoc, id uint64, body []byte) error) error {
	f, err := b.reader(n)
	if err != nil {
		return err
	}
	size, err := f.Size()
	if err != nil {
		return err
	}
	magic := make([]byte, len(bodyFileMagic))
	if _, err := f.ReadAt(magic, 0); err != nil && !errors.Is(err, io.EOF) {
		return err
	} else if err != nil || !bytes.Equal(magic, []byte(bodyFileMagic)) {
		return fmt.Errorf("%w: body file %08x does not start as one of this version", errBodyDamaged, n)
	}
	hdr := make([]byte, bodyHdrSize)
	var rec []byte
	for off := int64(len(bodyFileMagic)); off+bodyHdrSize <= size; {
		if _, err := f.ReadAt(hdr, off); err != nil {
			return err
		}
		n64 := int64(binary.BigEndian.Uint32(hdr))
		if off+bodyHdrSize+n64 > size || n64 > wal.MaxRecordSize {
			return nil
		}
		rec = slices.Grow(rec[:0], int(bodyHdrSize+n64))[:bodyHdrSize+n64]
		if _, err := f.ReadAt(rec, off); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		id := binary.BigEndian.Uint64(rec[8:])
		if checkBodyRecord(rec, id) != nil {
			return nil
		}
		if err := fn(bodyLoc{file: n, off: uint32(off), len: uint32(n64)}, id, rec[bodyHdrSize:]); err != nil {
			return err
		}
		off += bodyHdrSize + n64
	}
	return nil
}

// diskSize returns the size of the body files on disk, those given up after a failure
// included: what they take of the data dir.
func (b *bodyFiles) diskSize() int64 {
	b.sizeMu.Lock()
	defer b.sizeMu.Unlock()
	var total int64
	for _, size := range b.sizes {
		total += size
	}
	return total
}

// fileSize returns the size of the file at path, false if it cannot be read: it informs only
// Stats and compaction, and reading the file's bodies reports what is wrong with it.
func fileSize(fsys wal.FS, path string) (int64, bool) {
	f, err := fsys.OpenFile(path, os.O_RDONLY, 0)
	if err != nil {
		return 0, false
	}
	defer f.Close()
	size, err := f.Size()
	return size, err == nil
}

// size returns the size of file n on disk; false if there is no such file (or, found at
// Open, its size could not be read).
func (b *bodyFiles) size(n uint32) (int64, bool) {
	b.sizeMu.Lock()
	defer b.sizeMu.Unlock()
	size, ok := b.sizes[n]
	return size, ok
}

// remove removes file n, waiting for the readers that may still follow a location into it.
func (b *bodyFiles) remove(n uint32) error {
	b.readMu.Lock()
	defer b.readMu.Unlock()
	b.readersMu.Lock()
	if f := b.readers[n]; f != nil {
		f.Close()
		delete(b.readers, n)
	}
	b.readersMu.Unlock()
	err := b.fsys.Remove(bodyPath(b.dir, n))
	if err == nil || errors.Is(err, os.ErrNotExist) {
		b.sizeMu.Lock()
		delete(b.sizes, n)
		b.sizeMu.Unlock()
		return nil
	}
	return err
}

// close closes every open file, once no reader is reading; no file opens after it.
func (b *bodyFiles) close() {
	b.readMu.Lock()
	defer b.readMu.Unlock()
	b.mu.Lock()
	if b.cur != nil {
		b.abandonLocked()
	}
	b.mu.Unlock()
	b.readersMu.Lock()
	defer b.readersMu.Unlock()
	b.closed = true
	for n, f := range b.readers {
		f.Close()
		delete(b.readers, n)
	}
}
