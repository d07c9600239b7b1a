package store

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"sync"

	"edgebroker/wal"
)

// Reading checkpoint.db's B+tree with pread instead of through bbolt's memory map (read.go says
// why: every mapped page counts against the process's RSS, with up to 16 neighbours faulted in
// around it). A pageFile is used only inside a bbolt read transaction: bbolt never reuses a page
// that a transaction still open can reach, so the pages read here do not change under it.
//
// The page layout is bbolt's (its internal/common package), in the machine's byte order:
//
//	page header   id u64, flags u16, count u16, overflow u32   (16 bytes; overflow pages follow)
//	branch elem   pos u32, ksize u32, child page id u64        (16 bytes each, after the header)
//	leaf elem     flags u32, pos u32, ksize u32, vsize u32     (16 bytes each)
//
// An element's key starts pos bytes after the element itself, a leaf's value right after its
// key. A nested bucket is a leaf value flagged 1: its root page id and sequence (16 bytes),
// then, when the root is 0, the bucket's only page inline.
const (
	pageHeaderSize = 16
	elemSize       = 16
	bucketHeader   = 16
	branchPage     = 0x01
	leafPage       = 0x02
	bucketLeaf     = 0x01
	// maxTreeDepth bounds a descent, so that a damaged file whose pages point in a circle
	// ends in an error.
	maxTreeDepth = 64
	// maxPageRun bounds a page with its overflow pages: a leaf holds at most two values of a
	// log record's size (bbolt splits larger nodes), so a longer run is damage, and reading it
	// could exhaust memory.
	maxPageRun = 2*wal.MaxRecordSize + 1<<20
)

// errBadPage reports a page that is not what the tree says it is: damage in checkpoint.db.
var errBadPage = errors.New("bad page")

// pageFile reads pages of a bbolt file. It lives for one read: release hands the page
// buffers its cursors used back to spare.
type pageFile struct {
	r        io.ReaderAt
	pageSize int
	size     int64        // the pages in use when the transaction began (bolt.Tx.Size)
	spare    *pageBuffers // where page buffers come from; nil: each is allocated
	lent     [][]byte     // the buffers taken from spare, for release
}

// maxSpareBytes bounds the page buffers a pageBuffers keeps: 64 pages of 4 KiB, enough for
// the few reads that run at once (a read holds about ten); fewer where pages are larger.
const maxSpareBytes = 256 << 10

// pageBuffers keeps page-sized buffers from one read to the next. A read-back reads dozens of
// pages; were each buffer left to the collector, the garbage of a drain would make it run
// back to back under a tight memory budget (a sync.Pool does not help there: every collection
// empties it).
type pageBuffers struct {
	mu   sync.Mutex
	free [][]byte
}

// buffer returns a buffer of one page, from spare when it has one.
func (pf *pageFile) buffer() []byte {
	if pf.spare == nil {
		return make([]byte, pf.pageSize)
	}
	var b []byte
	pf.spare.mu.Lock()
	if n := len(pf.spare.free); n > 0 {
		b, pf.spare.free = pf.spare.free[n-1], pf.spare.free[:n-1]
	}
	pf.spare.mu.Unlock()
	if cap(b) != pf.pageSize {
		b = make([]byte, pf.pageSize)
	}
	pf.lent = append(pf.lent, b)
	return b
}

// release hands the buffers of pf's reads back to spare; nothing read with pf may be used
// after it.
func (pf *pageFile) release() {
	if pf.spare == nil || len(pf.lent) == 0 {
		return
	}
	pf.spare.mu.Lock()
	keep := min(len(pf.lent), maxSpareBytes/pf.pageSize-len(pf.spare.free))
	pf.spare.free = append(pf.spare.free, pf.lent[:keep]...)
	pf.spare.mu.Unlock()
	pf.lent = nil
}

// read reads page id with its overflow pages into buf (grown as needed) and checks its header.
func (pf *pageFile) read(id uint64, buf []byte) ([]byte, error) {
	ps := int64(pf.pageSize)
	if id < 2 || id >= uint64(pf.size/ps) {
		return nil, fmt.Errorf("%w: page %d outside the file's %d pages", errBadPage, id, pf.size/ps)
	}
	if cap(buf) < pf.pageSize {
		buf = pf.buffer()
	}
	buf = buf[:pf.pageSize]
	if _, err := pf.r.ReadAt(buf, int64(id)*ps); err != nil {
		return nil, fmt.Errorf("read page %d: %w", id, err)
	}
	ne := binary.NativeEndian
	if got := ne.Uint64(buf); got != id {
		return nil, fmt.Errorf("%w: page %d says it is page %d", errBadPage, id, got)
	}
	if over := int64(ne.Uint32(buf[12:])); over > 0 {
		n := (1 + over) * ps
		if int64(id)*ps+n > pf.size || n > maxPageRun {
			return nil, fmt.Errorf("%w: page %d overflows the file by %d pages", errBadPage, id, over)
		}
		buf = grow(buf, int(n)) // may be a new array: read the whole run again
		if _, err := pf.r.ReadAt(buf, int64(id)*ps); err != nil {
			return nil, fmt.Errorf("read page %d: %w", id, err)
		}
	}
	return buf, checkPage(buf, id)
}

// grow returns buf with length n, reusing its array when it is large enough.
func grow(buf []byte, n int) []byte {
	if cap(buf) < n {
		return make([]byte, n)
	}
	return buf[:n]
}

// checkPage checks that p is a branch or leaf page whose elements, keys and values lie
// within it.
func checkPage(p []byte, id uint64) error {
	if len(p) < pageHeaderSize {
		return fmt.Errorf("%w: page %d: %d bytes", errBadPage, id, len(p))
	}
	flags, count := pageFlags(p), pageCount(p)
	if flags != branchPage && flags != leafPage {
		return fmt.Errorf("%w: page %d has flags %#x, not a branch or leaf", errBadPage, id, flags)
	}
	if pageHeaderSize+count*elemSize > len(p) {
		return fmt.Errorf("%w: page %d: %d elements do not fit", errBadPage, id, count)
	}
	ne := binary.NativeEndian
	for i := range count {
		at := pageHeaderSize + i*elemSize
		e := p[at : at+elemSize]
		pos, ksize, vsize := ne.Uint32(e[0:]), ne.Uint32(e[4:]), uint32(0)
		if flags == leafPage {
			pos, ksize, vsize = ne.Uint32(e[4:]), ne.Uint32(e[8:]), ne.Uint32(e[12:])
		}
		if end := uint64(at) + uint64(pos) + uint64(ksize) + uint64(vsize); end > uint64(len(p)) {
			return fmt.Errorf("%w: page %d: element %d ends at byte %d of %d", errBadPage, id, i, end, len(p))
		}
	}
	return nil
}

func pageFlags(p []byte) uint16 { return binary.NativeEndian.Uint16(p[8:]) }
func pageCount(p []byte) int    { return int(binary.NativeEndian.Uint16(p[10:])) }

// elemKey returns the key of element i of page p (checked by checkPage).
func elemKey(p []byte, i int) []byte {
	ne := binary.NativeEndian
	at := pageHeaderSize + i*elemSize
	e := p[at:]
	pos, ksize := ne.Uint32(e[0:]), ne.Uint32(e[4:])
	if pageFlags(p) == leafPage {
		pos, ksize = ne.Uint32(e[4:]), ne.Uint32(e[8:])
	}
	start := at + int(pos)
	return p[start : start+int(ksize)]
}

// leafValue returns the value of element i of leaf page p and its flags.
func leafValue(p []byte, i int) (flags uint32, v []byte) {
	ne := binary.NativeEndian
	at := pageHeaderSize + i*elemSize
	e := p[at:]
	start := at + int(ne.Uint32(e[4:])) + int(ne.Uint32(e[8:]))
	return ne.Uint32(e[0:]), p[start : start+int(ne.Uint32(e[12:]))]
}

// branchChild returns the page id element i of branch page p points to.
func branchChild(p []byte, i int) uint64 {
	return binary.NativeEndian.Uint64(p[pageHeaderSize+i*elemSize+8:])
}

// treeCursor walks one bucket's tree in key order, like bolt.Cursor. The key and value it
// returns are valid until it moves.
type treeCursor struct {
	pf     *pageFile
	root   uint64 // 0: the bucket is inline
	inline []byte // the inline bucket's page
	stack  []frame
	reads  int64 // pages visited since the last Seek: more than the file has is damage (a cycle)
}

// frame is one page on the path from the root to the current leaf element.
type frame struct {
	page  []byte
	id    uint64 // page's id; 0 for an inline page
	index int
}

// bucketCursor returns a cursor on the bucket whose value (as stored under its key in the
// parent) is v.
func (pf *pageFile) bucketCursor(v []byte) (*treeCursor, error) {
	if len(v) < bucketHeader {
		return nil, fmt.Errorf("%w: bucket value of %d bytes", errBadPage, len(v))
	}
	c := &treeCursor{pf: pf, root: binary.NativeEndian.Uint64(v)}
	if c.root == 0 {
		c.inline = v[bucketHeader:]
		if err := checkPage(c.inline, 0); err != nil {
			return nil, err
		}
	}
	return c, nil
}

// push reads page id (or takes the inline page) onto the stack.
func (c *treeCursor) push(id uint64) error {
	if len(c.stack) >= maxTreeDepth {
		return fmt.Errorf("%w: the tree is deeper than %d pages", errBadPage, maxTreeDepth)
	}
	// Every page a walk visits counts, however it is found: one whose branches lead back
	// into the tree, or to the same pages many times over, is damage.
	if c.reads++; id != 0 && c.reads > c.pf.size/int64(c.pf.pageSize) {
		return fmt.Errorf("%w: the walk visits more pages than the file has", errBadPage)
	}
	var buf []byte
	if n := len(c.stack); n < cap(c.stack) {
		old := c.stack[:n+1][n]
		if id != 0 && old.id == id {
			// The page an earlier walk read at this depth: pages do not change within the
			// transaction, so the root and upper branches are read once per cursor.
			c.stack = append(c.stack, frame{page: old.page, id: id})
			return nil
		}
		buf = old.page          // reuse the buffer that frame had,
		c.stack[:n+1][n].id = 0 // which no longer holds page old.id
	}
	var p []byte
	if id == 0 {
		if c.root != 0 || len(c.stack) > 0 {
			return fmt.Errorf("%w: branch to page 0", errBadPage)
		}
		p = c.inline
	} else {
		var err error
		if p, err = c.pf.read(id, buf); err != nil {
			return err
		}
	}
	c.stack = append(c.stack, frame{page: p, id: id})
	return nil
}

// Seek moves to the first key at or after key and returns it with its value and flags; a nil
// key means there is none.
func (c *treeCursor) Seek(key []byte) (k, v []byte, flags uint32, err error) {
	c.stack, c.reads = c.stack[:0], 0
	id := c.root
	for {
		if err := c.push(id); err != nil {
			return nil, nil, 0, err
		}
		f := &c.stack[len(c.stack)-1]
		n := pageCount(f.page)
		if pageFlags(f.page) == leafPage {
			f.index = sort.Search(n, func(i int) bool { return bytes.Compare(elemKey(f.page, i), key) >= 0 })
			return c.current()
		}
		if n == 0 {
			return nil, nil, 0, fmt.Errorf("%w: empty branch page", errBadPage)
		}
		// The last element whose key is at most key (the first if none is).
		f.index = max(sort.Search(n, func(i int) bool { return bytes.Compare(elemKey(f.page, i), key) > 0 })-1, 0)
		id = branchChild(f.page, f.index)
	}
}

// Next moves to the next key.
func (c *treeCursor) Next() (k, v []byte, flags uint32, err error) {
	if len(c.stack) == 0 {
		return nil, nil, 0, nil
	}
	c.stack[len(c.stack)-1].index++
	return c.current()
}

// current returns the element the leaf at the top of the stack points at, moving on to the
// next leaf (through the branches above) when it points past its last.
func (c *treeCursor) current() (k, v []byte, flags uint32, err error) {
	for {
		top := &c.stack[len(c.stack)-1]
		if top.index < pageCount(top.page) {
			if pageFlags(top.page) == leafPage {
				flags, v = leafValue(top.page, top.index)
				return elemKey(top.page, top.index), v, flags, nil
			}
			// A branch: down to the first leaf of the next child.
			if err := c.push(branchChild(top.page, top.index)); err != nil {
				return nil, nil, 0, err
			}
			continue
		}
		c.stack = c.stack[:len(c.stack)-1]
		if len(c.stack) == 0 {
			return nil, nil, 0, nil
		}
		c.stack[len(c.stack)-1].index++
	}
}

// Get returns the value of key and its flags; nil if the bucket does not have it.
func (c *treeCursor) Get(key []byte) (v []byte, flags uint32, err error) {
	k, v, flags, err := c.Seek(key)
	if err != nil || !bytes.Equal(k, key) {
		return nil, 0, err
	}
	return v, flags, nil
}
