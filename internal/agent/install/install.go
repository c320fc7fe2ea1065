// Package install holds the agent's installers: where the verified bytes of
// an artifact go and how they are put into service. Every installer works
// through devfs.FS, so the power-cut tests can run them on a crash-testing
// filesystem.
//
//   - Slot: a raw image streamed straight into the inactive A/B slot (a
//     block device or a file), re-read and hashed after the download.
//   - HashOnly: a simulated slot that keeps no bytes; the verifier's stream
//     still checks length and SHA-256 as they flow.
//   - Staging file: file, archive and command artifacts are downloaded to a
//     staging file first and put in place only after they verified.
//   - PromoteFile / ExtractArchive + Promote: replace a destination file or
//     directory so that a power cut at any point leaves either the old or
//     the new content, keeping the old one as "<dest>.old" until Commit
//     drops it or Restore puts it back.
//
// Invariants: a Sink's bytes are durable only after Sync; Promote, Restore
// and Commit are idempotent, so the agent can repeat them after a power cut
// at any step. Nothing here holds a whole artifact in memory.
package install

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/updraft/updraft/internal/devfs"
)

// Sink receives an artifact's verified bytes during the download.
type Sink interface {
	WriteAt(p []byte, off int64) (int, error)
	// Sync makes every byte written so far durable.
	Sync() error
	Close() error
}

// OpenSlot opens a raw slot (block device or file) for writing. A file
// slot is created if missing; a block device is never truncated.
func OpenSlot(fsys devfs.FS, device string) (Sink, error) {
	f, err := fsys.OpenFile(device, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open slot %s: %w", device, err)
	}
	return f, nil
}

// MkdirAllDurable creates dir and its parents and makes every new name
// durable (MkdirAll alone leaves the new entries in the page cache).
func MkdirAllDurable(fsys devfs.FS, dir string, perm fs.FileMode) error {
	if err := fsys.MkdirAll(dir, perm); err != nil {
		return err
	}
	for d := dir; ; d = path.Dir(d) {
		if err := fsys.SyncDir(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
		if p := path.Dir(d); p == d || d == "." || d == "" {
			return nil
		}
	}
}

// OpenStaging opens (creating) the staging file for an artifact.
func OpenStaging(fsys devfs.FS, name string) (Sink, error) {
	if err := MkdirAllDurable(fsys, path.Dir(name), 0o700); err != nil {
		return nil, fmt.Errorf("create staging directory: %w", err)
	}
	f, err := fsys.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open staging file %s: %w", name, err)
	}
	// The file's own entry must survive a power cut too, or the resumed
	// download would find an empty file behind a non-zero offset.
	if err := fsys.SyncDir(path.Dir(name)); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync staging directory: %w", err)
	}
	return f, nil
}

// HashOnly is a slot that stores nothing: for simulated fleets where only
// the length and SHA-256 of what would have been written matter. The
// verifier's stream does the hashing.
type HashOnly struct{}

// WriteAt implements Sink.
func (HashOnly) WriteAt(p []byte, _ int64) (int, error) { return len(p), nil }

// Sync implements Sink.
func (HashOnly) Sync() error { return nil }

// Close implements Sink.
func (HashOnly) Close() error { return nil }

// Digest is the length and SHA-256 of content.
type Digest struct {
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
}

// HashFile re-reads the first length bytes of name (a slot or a file) and
// returns their digest. It fails if name holds fewer bytes.
func HashFile(ctx context.Context, fsys devfs.FS, name string, length int64) (Digest, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return Digest{}, fmt.Errorf("open %s: %w", name, err)
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.CopyBuffer(h, &ctxReader{ctx: ctx, r: io.NewSectionReader(f, 0, length)}, make([]byte, 256<<10))
	if err != nil {
		return Digest{}, fmt.Errorf("read back %s: %w", name, err)
	}
	if n != length {
		return Digest{}, fmt.Errorf("read back %s: %d bytes, want %d", name, n, length)
	}
	return Digest{Length: n, SHA256: hex.EncodeToString(h.Sum(nil))}, nil
}

// ctxReader stops a long copy when ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// Names beside a destination used by Promote, Restore and Commit.
func newName(dest string) string { return dest + ".new" }
func oldName(dest string) string { return dest + ".old" }
func badName(dest string) string { return dest + ".bad" }

// PrepareFile copies the staged file into "<dest>.new" beside dest and
// makes it durable; Promote then puts it in place. Copying (rather than
// renaming) works when the staging directory is on another filesystem.
func PrepareFile(ctx context.Context, fsys devfs.FS, staged, dest string, perm fs.FileMode) error {
	if err := MkdirAllDurable(fsys, path.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(dest), err)
	}
	src, err := fsys.OpenFile(staged, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open staged file: %w", err)
	}
	defer src.Close()
	dst, err := fsys.OpenFile(newName(dest), os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return fmt.Errorf("create %s: %w", newName(dest), err)
	}
	if _, err := io.CopyBuffer(dst, &ctxReader{ctx: ctx, r: src}, make([]byte, 256<<10)); err != nil {
		dst.Close()
		return fmt.Errorf("copy to %s: %w", newName(dest), err)
	}
	if err := dst.Sync(); err != nil {
		dst.Close()
		return fmt.Errorf("sync %s: %w", newName(dest), err)
	}
	if err := dst.Close(); err != nil {
		return fmt.Errorf("close %s: %w", newName(dest), err)
	}
	return fsys.SyncDir(path.Dir(dest))
}

// Promote moves "<dest>.new" into place and keeps the previous dest as
// "<dest>.old". It is idempotent: after a power cut at any point, calling
// it again completes the move. Call it only once "<dest>.new" is complete
// and durable.
func Promote(fsys devfs.FS, dest string) error {
	dir := path.Dir(dest)
	hasNew, err := devfs.Exists(fsys, newName(dest))
	if err != nil {
		return err
	}
	if !hasNew {
		// Either done before, or nothing prepared: dest must exist.
		if ok, err := devfs.Exists(fsys, dest); err != nil || !ok {
			return fmt.Errorf("promote %s: neither %s nor the destination exists", dest, newName(dest))
		}
		return nil
	}
	hasDest, err := devfs.Exists(fsys, dest)
	if err != nil {
		return err
	}
	if hasDest {
		// A leftover .old from an earlier install was never committed
		// away; the current dest is the one to keep.
		if err := RemoveAll(fsys, oldName(dest)); err != nil {
			return err
		}
		if err := fsys.Rename(dest, oldName(dest)); err != nil {
			return fmt.Errorf("promote %s: keep old: %w", dest, err)
		}
	}
	if err := fsys.Rename(newName(dest), dest); err != nil {
		return fmt.Errorf("promote %s: %w", dest, err)
	}
	return fsys.SyncDir(dir)
}

// Restore puts "<dest>.old" back in place (a rollback). With hadOld false
// (there was nothing before the install) it removes dest. Idempotent.
func Restore(fsys devfs.FS, dest string, hadOld bool) error {
	dir := path.Dir(dest)
	if !hadOld {
		if err := RemoveAll(fsys, dest); err != nil {
			return err
		}
		if err := RemoveAll(fsys, newName(dest)); err != nil {
			return err
		}
		return fsys.SyncDir(dir)
	}
	hasOld, err := devfs.Exists(fsys, oldName(dest))
	if err != nil {
		return err
	}
	if hasOld {
		hasDest, err := devfs.Exists(fsys, dest)
		if err != nil {
			return err
		}
		if hasDest {
			if err := RemoveAll(fsys, badName(dest)); err != nil {
				return err
			}
			if err := fsys.Rename(dest, badName(dest)); err != nil {
				return fmt.Errorf("restore %s: %w", dest, err)
			}
		}
		if err := fsys.Rename(oldName(dest), dest); err != nil {
			return fmt.Errorf("restore %s: %w", dest, err)
		}
		if err := fsys.SyncDir(dir); err != nil {
			return err
		}
	}
	if err := RemoveAll(fsys, badName(dest)); err != nil {
		return err
	}
	if err := RemoveAll(fsys, newName(dest)); err != nil {
		return err
	}
	return fsys.SyncDir(dir)
}

// Commit drops the kept "<dest>.old" once the new content proved healthy.
func Commit(fsys devfs.FS, dest string) error {
	if err := RemoveAll(fsys, oldName(dest)); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(dest))
}

// HasPrevious reports whether dest (or its kept old copy) exists, i.e.
// whether a rollback has something to restore.
func HasPrevious(fsys devfs.FS, dest string) (bool, error) {
	for _, n := range []string{dest, oldName(dest)} {
		ok, err := devfs.Exists(fsys, n)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

// Discard removes a half-prepared "<dest>.new" (for example after a power
// cut during extraction) so preparation can start again.
func Discard(fsys devfs.FS, dest string) error {
	if err := RemoveAll(fsys, newName(dest)); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(dest))
}

// RemoveAll removes name and, if it is a directory, everything below it.
// A missing name is not an error.
func RemoveAll(fsys devfs.FS, name string) error {
	fi, err := fsys.Stat(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	if fi.IsDir() {
		entries, err := fsys.ReadDir(name)
		if err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		for _, e := range entries {
			if err := RemoveAll(fsys, path.Join(name, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := fsys.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove %s: %w", name, err)
	}
	return nil
}
