package wal

import (
	"io"
	"io/fs"
	"os"
	"path/filepath"
)

// FS is the file system the log uses: the few operations it needs, so that tests can substitute
// one that loses unsynced data or fails on demand. Paths are ordinary OS paths.
// Implementations must be safe for concurrent use.
type FS interface {
	// OpenFile opens a file like os.OpenFile. The log uses the flags O_RDONLY, O_RDWR,
	// O_WRONLY|O_APPEND and O_WRONLY|O_CREATE|O_TRUNC.
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	// Rename renames a file within one directory, replacing the target (like os.Rename).
	Rename(oldpath, newpath string) error
	// Remove removes a file.
	Remove(name string) error
	// ReadDir returns the names of the entries of dir, sorted.
	ReadDir(dir string) ([]string, error)
	// MkdirAll creates dir and its parents (like os.MkdirAll).
	MkdirAll(dir string, perm fs.FileMode) error
	// SyncDir makes the creations, renames and removals of entries in dir durable.
	SyncDir(dir string) error
}

// File is an open file of an FS.
type File interface {
	// Write writes at the file offset (at the end when opened with O_APPEND).
	io.Writer
	io.ReaderAt
	// Sync makes the file's data and size durable (fdatasync on Linux).
	Sync() error
	// Truncate changes the size of the file.
	Truncate(size int64) error
	// Size returns the current size of the file.
	Size() (int64, error)
	Close() error
}

// OSFS returns the FS of the operating system.
func OSFS() FS { return osFS{} }

type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Rename(oldpath, newpath string) error { return os.Rename(oldpath, newpath) }

func (osFS) Remove(name string) error { return os.Remove(name) }

func (osFS) MkdirAll(dir string, perm fs.FileMode) error { return os.MkdirAll(dir, perm) }

func (osFS) ReadDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names, nil
}

func (osFS) SyncDir(dir string) error {
	d, err := os.Open(filepath.Clean(dir))
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

type osFile struct{ f *os.File }

func (o osFile) Write(p []byte) (int, error)             { return o.f.Write(p) }
func (o osFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, off) }
func (o osFile) Sync() error                             { return fdatasync(o.f) }
func (o osFile) Truncate(size int64) error               { return o.f.Truncate(size) }
func (o osFile) Close() error                            { return o.f.Close() }

func (o osFile) Size() (int64, error) {
	st, err := o.f.Stat()
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}
