// Package waltest has file systems for testing code built on package wal: MemFS, an in-memory
// file system that can lose power, and FaultFS, which fails chosen operations. Import it from
// tests only.
package waltest

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sync"

	"edgebroker/wal"
)

// ErrStale is returned by files opened before MemFS.Crash.
var ErrStale = errors.New("waltest: file opened before the crash")

// MemFS is an in-memory wal.FS that models what survives a power cut (see Crash). Directories
// are created durably by MkdirAll; only files and their directory entries can be lost. Safe for
// concurrent use.
type MemFS struct {
	mu   sync.Mutex
	gen  int // bumped by Crash; files of older generations are stale
	dirs map[string]*memDir
}

type memDir struct {
	live    map[string]*memNode
	durable map[string]*memNode // as of the last SyncDir
	ops     []dirOp             // changes since the last SyncDir, in order
}

// dirOp is a directory change: create or remove name (node nil), or rename name to to.
type dirOp struct {
	name, to string
	node     *memNode
	remove   bool
}

type memNode struct {
	data   []byte
	synced []byte // data as of the last Sync
}

// NewMemFS returns an empty MemFS.
func NewMemFS() *MemFS { return &MemFS{dirs: map[string]*memDir{}} }

func (m *MemFS) dir(path string) (*memDir, string, error) {
	d, ok := m.dirs[filepath.Dir(filepath.Clean(path))]
	if !ok {
		return nil, "", &fs.PathError{Op: "open", Path: path, Err: fs.ErrNotExist}
	}
	return d, filepath.Base(path), nil
}

// OpenFile implements wal.FS. It honours O_CREATE, O_EXCL, O_TRUNC and O_APPEND.
func (m *MemFS) OpenFile(name string, flag int, _ fs.FileMode) (wal.File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dir(name)
	if err != nil {
		return nil, err
	}
	n, ok := d.live[base]
	switch {
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrExist}
	case !ok && flag&os.O_CREATE == 0:
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	case !ok:
		n = &memNode{}
		d.live[base] = n
		d.ops = append(d.ops, dirOp{name: base, node: n})
	}
	if flag&os.O_TRUNC != 0 {
		n.data = n.data[:0:0]
	}
	return &memFile{m: m, gen: m.gen, node: n, name: name, flag: flag}, nil
}

// Rename implements wal.FS; both paths must be in one directory.
func (m *MemFS) Rename(oldpath, newpath string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, from, err := m.dir(oldpath)
	if err != nil {
		return err
	}
	if filepath.Dir(filepath.Clean(oldpath)) != filepath.Dir(filepath.Clean(newpath)) {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: errors.New("across directories")}
	}
	if _, ok := d.live[from]; !ok {
		return &os.LinkError{Op: "rename", Old: oldpath, New: newpath, Err: fs.ErrNotExist}
	}
	op := dirOp{name: from, to: filepath.Base(newpath)}
	op.apply(d.live)
	d.ops = append(d.ops, op)
	return nil
}

// Remove implements wal.FS.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dir(name)
	if err != nil {
		return err
	}
	if _, ok := d.live[base]; !ok {
		return &fs.PathError{Op: "remove", Path: name, Err: fs.ErrNotExist}
	}
	op := dirOp{name: base, remove: true}
	op.apply(d.live)
	d.ops = append(d.ops, op)
	return nil
}

func (op dirOp) apply(ents map[string]*memNode) {
	switch {
	case op.remove:
		delete(ents, op.name)
	case op.to != "":
		if n, ok := ents[op.name]; ok {
			ents[op.to] = n
			delete(ents, op.name)
		}
	default:
		ents[op.name] = op.node
	}
}

// ReadDir implements wal.FS.
func (m *MemFS) ReadDir(dir string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return nil, &fs.PathError{Op: "readdir", Path: dir, Err: fs.ErrNotExist}
	}
	names := make([]string, 0, len(d.live))
	for name := range d.live {
		names = append(names, name)
	}
	slices.Sort(names)
	return names, nil
}

// MkdirAll implements wal.FS. Only the directory itself is created (no parents are tracked).
func (m *MemFS) MkdirAll(dir string, _ fs.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = filepath.Clean(dir)
	if _, ok := m.dirs[dir]; !ok {
		m.dirs[dir] = &memDir{live: map[string]*memNode{}, durable: map[string]*memNode{}}
	}
	return nil
}

// SyncDir implements wal.FS.
func (m *MemFS) SyncDir(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, ok := m.dirs[filepath.Clean(dir)]
	if !ok {
		return &fs.PathError{Op: "sync", Path: dir, Err: fs.ErrNotExist}
	}
	d.durable = clone(d.live)
	d.ops = nil
	return nil
}

// Crash simulates a power cut and a reboot. Each directory keeps its entries as of its last
// SyncDir plus a random prefix (possibly none, possibly all) of the changes made since. Each
// file keeps its synced bytes and a random prefix of the bytes appended since its last Sync,
// which can tear the last write anywhere, even inside a frame header; a file truncated since
// its last Sync comes back either as synced or truncated with part of what followed. Files
// opened before the crash fail with ErrStale afterwards.
func (m *MemFS) Crash(rng *rand.Rand) { m.crash(rng, false) }

// CrashOutOfOrder is Crash on a disk that persists the sectors of a write in its own order, as
// SD cards and other flash may: after a file keeps its synced bytes and a random prefix of what
// followed, each 512-byte sector of that unsynced prefix is lost (reads as zeros) with
// probability one in four, so that a later sector of a write can survive an earlier one.
// Synced bytes always survive.
func (m *MemFS) CrashOutOfOrder(rng *rand.Rand) { m.crash(rng, true) }

func (m *MemFS) crash(rng *rand.Rand, outOfOrder bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gen++
	seen := map[*memNode]bool{}
	for _, d := range m.dirs {
		ents := clone(d.durable)
		for _, op := range d.ops[:rng.IntN(len(d.ops)+1)] {
			op.apply(ents)
		}
		d.live, d.durable, d.ops = ents, clone(ents), nil
		for _, n := range ents {
			if !seen[n] {
				seen[n] = true
				n.crash(rng, outOfOrder)
			}
		}
	}
}

// sectorSize is the unit CrashOutOfOrder loses.
const sectorSize = 512

func (n *memNode) crash(rng *rand.Rand, outOfOrder bool) {
	common := 0
	for common < len(n.data) && common < len(n.synced) && n.data[common] == n.synced[common] {
		common++
	}
	if common < len(n.synced) && rng.IntN(2) == 0 {
		n.data = slices.Clone(n.synced)
	} else {
		n.data = slices.Clone(n.data[:common+rng.IntN(len(n.data)-common+1)])
		for from := common; outOfOrder && from < len(n.data); from = (from/sectorSize + 1) * sectorSize {
			if rng.IntN(4) == 0 {
				clear(n.data[from:min(len(n.data), (from/sectorSize+1)*sectorSize)])
			}
		}
	}
	n.synced = slices.Clone(n.data)
}

// Clone returns a deep copy of the file system, synced and unsynced state alike, so that one
// state can be crashed or failed in many ways. Files open in m are not open in the copy.
func (m *MemFS) Clone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	nodes := map[*memNode]*memNode{}
	cp := func(n *memNode) *memNode {
		if n == nil {
			return nil
		}
		if _, ok := nodes[n]; !ok {
			nodes[n] = &memNode{data: slices.Clone(n.data), synced: slices.Clone(n.synced)}
		}
		return nodes[n]
	}
	cpMap := func(ents map[string]*memNode) map[string]*memNode {
		out := make(map[string]*memNode, len(ents))
		for k, n := range ents {
			out[k] = cp(n)
		}
		return out
	}
	for path, d := range m.dirs {
		nd := &memDir{live: cpMap(d.live), durable: cpMap(d.durable)}
		for _, op := range d.ops {
			op.node = cp(op.node)
			nd.ops = append(nd.ops, op)
		}
		c.dirs[path] = nd
	}
	return c
}

// Snapshot returns the current contents of a file, synced or not, or nil if it does not exist.
func (m *MemFS) Snapshot(path string) []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dir(path)
	if err != nil {
		return nil
	}
	if n, ok := d.live[base]; ok {
		return slices.Clone(n.data)
	}
	return nil
}

// WriteFile creates or replaces path with data, durably (as if written, synced and the
// directory synced). Tests use it to plant raw segment bytes.
func (m *MemFS) WriteFile(path string, data []byte) error {
	if err := m.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	d, base, err := m.dir(path)
	if err != nil {
		return err
	}
	n := &memNode{data: slices.Clone(data), synced: slices.Clone(data)}
	d.live[base] = n
	d.durable[base] = n
	return nil
}

func clone(m map[string]*memNode) map[string]*memNode {
	c := make(map[string]*memNode, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

type memFile struct {
	m      *MemFS
	gen    int
	node   *memNode
	name   string
	flag   int
	off    int64
	closed bool
}

// check returns why the file cannot be used; m.mu is held.
func (f *memFile) check(op string) error {
	switch {
	case f.closed:
		return &fs.PathError{Op: op, Path: f.name, Err: fs.ErrClosed}
	case f.gen != f.m.gen:
		return &fs.PathError{Op: op, Path: f.name, Err: ErrStale}
	}
	return nil
}

func (f *memFile) Write(p []byte) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("write"); err != nil {
		return 0, err
	}
	if f.flag&(os.O_WRONLY|os.O_RDWR) == 0 {
		return 0, &fs.PathError{Op: "write", Path: f.name, Err: fs.ErrPermission}
	}
	if f.flag&os.O_APPEND != 0 {
		f.off = int64(len(f.node.data))
	}
	if grow := f.off + int64(len(p)) - int64(len(f.node.data)); grow > 0 {
		f.node.data = append(f.node.data, make([]byte, grow)...)
	}
	copy(f.node.data[f.off:], p)
	f.off += int64(len(p))
	return len(p), nil
}

func (f *memFile) ReadAt(p []byte, off int64) (int, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("read"); err != nil {
		return 0, err
	}
	if off >= int64(len(f.node.data)) {
		return 0, io.EOF
	}
	n := copy(p, f.node.data[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *memFile) Sync() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("sync"); err != nil {
		return err
	}
	f.node.synced = bytes.Clone(f.node.data)
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("truncate"); err != nil {
		return err
	}
	if size <= int64(len(f.node.data)) {
		f.node.data = slices.Clone(f.node.data[:size])
	} else {
		f.node.data = append(f.node.data, make([]byte, size-int64(len(f.node.data)))...)
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if err := f.check("stat"); err != nil {
		return 0, err
	}
	return int64(len(f.node.data)), nil
}

func (f *memFile) Close() error {
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: fs.ErrClosed}
	}
	f.closed = true
	return nil
}

// CopyDir copies every file of directory from into directory to, durably, as they are now: a
// test recovering a crashed log under another path uses it. A missing from copies nothing.
func (m *MemFS) CopyDir(from, to string) error {
	names, err := m.ReadDir(from)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	} else if err != nil {
		return err
	}
	if err := m.MkdirAll(to, 0o755); err != nil {
		return err
	}
	for _, n := range names {
		if err := m.WriteFile(filepath.Join(to, n), m.Snapshot(filepath.Join(from, n))); err != nil {
			return err
		}
	}
	return nil
}
