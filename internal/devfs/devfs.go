// Package devfs is the filesystem the device side of Updraft (the agent and
// the verifier) does all its file and device I/O through. Injecting it lets
// the fleet simulator run thousands of agents in one process and lets the
// power-cut tests use a crash-testing implementation that discards every
// write not made durable by fsync of the file and of its directory.
//
// Durability contract every caller relies on (and CrashFS enforces): data
// written to a file survives a power cut only after File.Sync; a created,
// renamed or removed name survives only after SyncDir of its directory.
package devfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
)

// File is an open file or block device.
type File interface {
	io.Reader
	io.ReaderAt
	io.Writer
	io.WriterAt
	io.Seeker
	io.Closer
	Sync() error
	Truncate(size int64) error
	Stat() (fs.FileInfo, error)
}

// FS is a hierarchical filesystem with durability operations. Names are
// slash-separated; implementations decide what they are relative to.
type FS interface {
	OpenFile(name string, flag int, perm fs.FileMode) (File, error)
	Rename(oldname, newname string) error
	Remove(name string) error
	MkdirAll(name string, perm fs.FileMode) error
	Stat(name string) (fs.FileInfo, error)
	ReadDir(name string) ([]fs.DirEntry, error)
	// SyncDir makes creations, renames and removals in dir durable.
	SyncDir(dir string) error
}

// OS is the real filesystem. Names are used as given (absolute or relative
// to the working directory).
type OS struct{}

// OpenFile implements FS.
func (OS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return f, nil
}

// Rename implements FS.
func (OS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// Remove implements FS.
func (OS) Remove(name string) error { return os.Remove(name) }

// MkdirAll implements FS.
func (OS) MkdirAll(name string, perm fs.FileMode) error { return os.MkdirAll(name, perm) }

// Stat implements FS.
func (OS) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }

// ReadDir implements FS.
func (OS) ReadDir(name string) ([]fs.DirEntry, error) { return os.ReadDir(name) }

// SyncDir implements FS.
func (OS) SyncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// ReadFile reads a whole file of at most limit bytes (limit ≤ 0: no limit).
func ReadFile(fsys FS, name string, limit int64) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if limit > 0 {
		r = io.LimitReader(f, limit+1)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if limit > 0 && int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", name, limit)
	}
	return b, nil
}

// WriteFileAtomic replaces name with data so that after a power cut the
// file holds either its old content or the new, never a mix: write a
// temporary file beside it, fsync it, rename it over name, fsync the
// directory.
func WriteFileAtomic(fsys FS, name string, data []byte, perm fs.FileMode) (err error) {
	dir := path.Dir(name)
	tmp := path.Join(dir, "."+path.Base(name)+".tmp")
	f, err := fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = fsys.Remove(tmp)
		}
	}()
	if _, err = f.Write(data); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("write %s: sync: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = fsys.Rename(tmp, name); err != nil {
		return fmt.Errorf("write %s: %w", name, err)
	}
	if err = fsys.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: sync dir: %w", name, err)
	}
	return nil
}

// Exists reports whether name exists.
func Exists(fsys FS, name string) (bool, error) {
	_, err := fsys.Stat(name)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return false, err
}
