package waltest

import (
	"io/fs"
	"sync"

	"edgebroker/wal"
)

// FaultFS wraps a wal.FS and fails the k-th operation on demand, then optionally every later
// one too (a full disk, a dead card, a power cut). Every operation counts except Close. The Write
// chosen to fail writes the first half of its bytes first, as a disk that fills up does. Safe
// for concurrent use.
type FaultFS struct {
	inner wal.FS

	mu     sync.Mutex
	count  int
	failAt int
	err    error
	sticky bool
	fired  bool
}

// NewFaultFS returns a FaultFS over inner that fails nothing until FailAt is called.
func NewFaultFS(inner wal.FS) *FaultFS { return &FaultFS{inner: inner} }

// FailAt resets the operation count and makes the k-th operation from now (k >= 1) fail with
// err; with sticky, every operation after it fails with err too.
func (f *FaultFS) FailAt(k int, err error, sticky bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count, f.failAt, f.err, f.sticky, f.fired = 0, k, err, sticky, false
}

// Heal stops failing operations ("the space is back") and resets the count.
func (f *FaultFS) Heal() { f.FailAt(0, nil, false) }

// Count returns the operations done since the last FailAt or Heal.
func (f *FaultFS) Count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.count
}

// Fired reports whether an operation has failed since the last FailAt.
func (f *FaultFS) Fired() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.fired
}

// hit counts an operation and returns the error it must fail with, if any.
func (f *FaultFS) hit(op, path string) error {
	_, err := f.hitFirst(op, path)
	return err
}

// hitFirst is hit that also reports whether this is the operation FailAt chose.
func (f *FaultFS) hitFirst(op, path string) (first bool, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.count++
	first = f.failAt > 0 && f.count == f.failAt
	if first || (f.fired && f.sticky) {
		f.fired = true
		return first, &fs.PathError{Op: op, Path: path, Err: f.err}
	}
	return false, nil
}

// OpenFile implements wal.FS.
func (f *FaultFS) OpenFile(name string, flag int, perm fs.FileMode) (wal.File, error) {
	if err := f.hit("open", name); err != nil {
		return nil, err
	}
	file, err := f.inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{fs: f, f: file, name: name}, nil
}

// Rename implements wal.FS.
func (f *FaultFS) Rename(oldpath, newpath string) error {
	if err := f.hit("rename", oldpath); err != nil {
		return err
	}
	return f.inner.Rename(oldpath, newpath)
}

// Remove implements wal.FS.
func (f *FaultFS) Remove(name string) error {
	if err := f.hit("remove", name); err != nil {
		return err
	}
	return f.inner.Remove(name)
}

// ReadDir implements wal.FS.
func (f *FaultFS) ReadDir(dir string) ([]string, error) {
	if err := f.hit("readdir", dir); err != nil {
		return nil, err
	}
	return f.inner.ReadDir(dir)
}

// MkdirAll implements wal.FS.
func (f *FaultFS) MkdirAll(dir string, perm fs.FileMode) error {
	if err := f.hit("mkdir", dir); err != nil {
		return err
	}
	return f.inner.MkdirAll(dir, perm)
}

// SyncDir implements wal.FS.
func (f *FaultFS) SyncDir(dir string) error {
	if err := f.hit("syncdir", dir); err != nil {
		return err
	}
	return f.inner.SyncDir(dir)
}

type faultFile struct {
	fs   *FaultFS
	f    wal.File
	name string
}

func (ff *faultFile) Write(p []byte) (int, error) {
	if first, err := ff.fs.hitFirst("write", ff.name); err != nil {
		n := 0
		if first {
			n, _ = ff.f.Write(p[:len(p)/2])
		}
		return n, err
	}
	return ff.f.Write(p)
}

func (ff *faultFile) ReadAt(p []byte, off int64) (int, error) {
	if err := ff.fs.hit("read", ff.name); err != nil {
		return 0, err
	}
	return ff.f.ReadAt(p, off)
}

func (ff *faultFile) Sync() error {
	if err := ff.fs.hit("sync", ff.name); err != nil {
		return err
	}
	return ff.f.Sync()
}

func (ff *faultFile) Truncate(size int64) error {
	if err := ff.fs.hit("truncate", ff.name); err != nil {
		return err
	}
	return ff.f.Truncate(size)
}

func (ff *faultFile) Size() (int64, error) {
	if err := ff.fs.hit("stat", ff.name); err != nil {
		return 0, err
	}
	return ff.f.Size()
}

func (ff *faultFile) Close() error { return ff.f.Close() }
