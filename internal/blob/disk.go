package blob

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// On-disk layout below the root directory:
//
//	tmp/put-XXXX/           an upload in progress (data + sums.json)
//	tmp/del-XXXX/           a blob being deleted
//	ab/abcd…ef/data         the content of blob abcd…ef
//	ab/abcd…ef/sums.json    its size and digests
//
// A blob is a directory so that its content and digests appear together in
// one rename(2). tmp/ lives on the same file system as the shards, which is
// what makes the rename atomic.
const (
	tmpDirName  = "tmp"
	dataName    = "data"
	sumsName    = "sums.json"
	putPrefix   = "put-"
	delPrefix   = "del-"
	copyBufSize = 1 << 20
)

// Disk is a Store on a local file system. Create it with NewDisk.
type Disk struct {
	root  string
	clock clock.Clock
}

var _ Store = (*Disk)(nil)

// NewDisk returns a Disk rooted at dir, creating dir (mode 0700) if needed.
// The clock is used by Sweep to judge the age of leftovers.
func NewDisk(dir string, c clock.Clock) (*Disk, error) {
	root, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("blob store root %s: %w", dir, err)
	}
	if err := os.MkdirAll(root, 0o700); err != nil {
		return nil, fmt.Errorf("create blob store root: %w", err)
	}
	if err := os.Mkdir(filepath.Join(root, tmpDirName), 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, fmt.Errorf("create blob store temp dir: %w", err)
	}
	return &Disk{root: root, clock: c}, nil
}

// Root returns the absolute directory the store lives in.
func (d *Disk) Root() string { return d.root }

// DataPath returns the path of the file that holds the content of key. It
// does not check that the blob exists. Tools that serve files directly (the
// download benchmark's nginx) use it; the server itself goes through Open.
func (d *Disk) DataPath(key string) (string, error) {
	if !ValidKey(key) {
		return "", fmt.Errorf("blob %q: %w", key, ErrInvalidKey)
	}
	return filepath.Join(d.blobDir(key), dataName), nil
}

func (d *Disk) blobDir(key string) string { return filepath.Join(d.root, key[:2], key) }

func (d *Disk) tmpDir() string { return filepath.Join(d.root, tmpDirName) }

// Put implements Store. The content is written to a temporary directory,
// flushed to stable storage, and renamed to its content address; the
// enclosing directory is then flushed too, so a blob that Put reported is
// still there after a power cut.
func (d *Disk) Put(ctx context.Context, r io.Reader, limit int64) (info Info, err error) {
	if limit <= 0 {
		return Info{}, fmt.Errorf("put blob: limit %d is not positive", limit)
	}
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	tmp, err := os.MkdirTemp(d.tmpDir(), putPrefix)
	if err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	defer func() {
		// After a successful rename tmp no longer exists and this is a no-op.
		if rerr := os.RemoveAll(tmp); rerr != nil && err == nil {
			err = fmt.Errorf("put blob: remove temp dir: %w", rerr)
		}
	}()

	info, err = writeData(ctx, filepath.Join(tmp, dataName), r, limit)
	if err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	if err := writeSyncedFile(filepath.Join(tmp, sumsName), encodeSums(info)); err != nil {
		return Info{}, fmt.Errorf("put blob: write digests: %w", err)
	}
	// The digests file's mtime is the blob's last use (see LastUsed).
	now := d.clock.Now()
	if err := os.Chtimes(filepath.Join(tmp, sumsName), now, now); err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	if err := syncDir(tmp); err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}
	// A caller that gave up must not find the blob published afterwards.
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("put blob: %w", err)
	}

	shard := filepath.Join(d.root, info.Key[:2])
	switch err := os.Mkdir(shard, 0o700); {
	case err == nil:
		if err := syncDir(d.root); err != nil {
			return Info{}, fmt.Errorf("put blob: %w", err)
		}
	case !errors.Is(err, fs.ErrExist):
		return Info{}, fmt.Errorf("put blob: create shard: %w", err)
	}

	if err := d.publish(tmp, info, now); err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", info.Key, err)
	}
	if err := syncDir(shard); err != nil {
		return Info{}, fmt.Errorf("put blob %s: %w", info.Key, err)
	}
	return info, nil
}

// publishAttempts bounds how often publish retries when a collector
// deletes the existing copy while Put adopts it.
const publishAttempts = 3

// publish moves the finished upload in tmp to its address. When the same
// content is already there it adopts that copy instead: it checks the copy
// is whole and marks it used at now, so a collector that deletes only blobs
// idle since before its cutoff leaves it alone (see DeleteIdle). A copy
// that disappears meanwhile is replaced by this upload.
func (d *Disk) publish(tmp string, info Info, now time.Time) error {
	final := d.blobDir(info.Key)
	for attempt := 1; ; attempt++ {
		err := os.Rename(tmp, final)
		if err == nil {
			return nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return err
		}
		// Check the copy is whole, mark it used, then check it is still in
		// place: a DeleteIdle that moved it away before the mark makes the
		// last check fail, and one that moves it after sees the mark.
		have, err := d.stat(info.Key)
		if err == nil && have != info {
			return fmt.Errorf("existing copy has other digests: %w", ErrCorrupt)
		}
		if err == nil {
			err = os.Chtimes(filepath.Join(final, sumsName), now, now)
		}
		if err == nil {
			_, err = d.stat(info.Key)
		}
		if err == nil {
			return nil
		}
		if (errors.Is(err, fs.ErrNotExist) || errors.Is(err, ErrNotFound)) && attempt < publishAttempts {
			continue // deleted meanwhile: publish this upload instead
		}
		return fmt.Errorf("existing copy: %w", err)
	}
}

// LastUsed returns when the blob was last stored: by the Put that created
// it or by a later Put of the same content, by the store's clock.
func (d *Disk) LastUsed(ctx context.Context, key string) (time.Time, error) {
	if err := ctx.Err(); err != nil {
		return time.Time{}, fmt.Errorf("blob last use: %w", err)
	}
	if !ValidKey(key) {
		return time.Time{}, fmt.Errorf("blob last use %q: %w", key, ErrInvalidKey)
	}
	fi, err := os.Stat(filepath.Join(d.blobDir(key), sumsName))
	if errors.Is(err, fs.ErrNotExist) {
		return time.Time{}, fmt.Errorf("blob last use %s: %w", key, ErrNotFound)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("blob last use %s: %w", key, err)
	}
	return fi.ModTime(), nil
}

// DeleteIdle deletes the blob if its last use (LastUsed) is before cutoff
// and reports whether it did. A Put of the same content that runs
// concurrently either marks the blob used before DeleteIdle moves it away,
// in which case DeleteIdle puts it back, or finds it gone and publishes its
// own copy; either way the Put's caller ends up with a stored blob. The
// caller decides separately that nothing references the blob.
func (d *Disk) DeleteIdle(ctx context.Context, key string, cutoff time.Time) (bool, error) {
	used, err := d.LastUsed(ctx, key)
	if err != nil {
		return false, fmt.Errorf("delete idle blob: %w", err)
	}
	if !used.Before(cutoff) {
		return false, nil
	}
	tomb, err := os.MkdirTemp(d.tmpDir(), delPrefix)
	if err != nil {
		return false, fmt.Errorf("delete idle blob %s: %w", key, err)
	}
	moved := filepath.Join(tomb, key)
	if err := os.Rename(d.blobDir(key), moved); err != nil {
		os.Remove(tomb)
		if errors.Is(err, fs.ErrNotExist) {
			return false, fmt.Errorf("delete idle blob %s: %w", key, ErrNotFound)
		}
		return false, fmt.Errorf("delete idle blob %s: %w", key, err)
	}
	fi, err := os.Stat(filepath.Join(moved, sumsName))
	if err == nil && !fi.ModTime().Before(cutoff) {
		// A Put adopted the blob between the check and the move.
		rerr := os.Rename(moved, d.blobDir(key))
		if rerr != nil && !errors.Is(rerr, fs.ErrExist) {
			return false, fmt.Errorf("delete idle blob %s: put back: %w", key, rerr)
		}
		// Put back, or a new Put published the same content meanwhile.
		if err := os.RemoveAll(tomb); err != nil {
			return false, fmt.Errorf("delete idle blob %s: %w", key, err)
		}
		return false, nil
	}
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("delete idle blob %s: %w", key, err)
	}
	if err := syncDir(filepath.Join(d.root, key[:2])); err != nil {
		return false, fmt.Errorf("delete idle blob %s: %w", key, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return false, fmt.Errorf("delete idle blob %s: remove: %w", key, err)
	}
	return true, nil
}

// writeData copies at most limit bytes of r into a new file at path, hashing
// as it goes, and flushes the file to stable storage.
func writeData(ctx context.Context, path string, r io.Reader, limit int64) (Info, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return Info{}, err
	}
	defer f.Close() // second close after the explicit one below is harmless

	h256, h1, h5 := sha256.New(), sha1.New(), md5.New()
	w := &hashingWriter{w: io.MultiWriter(f, h256, h1), side: h5}
	readMax := limit
	if readMax < math.MaxInt64 {
		readMax++ // one byte more tells "exactly limit" from "too large"
	}
	src := &ctxReader{ctx: ctx, r: io.LimitReader(r, readMax)}
	n, err := io.CopyBuffer(w, src, make([]byte, copyBufSize))
	if err != nil {
		if src.err != nil {
			return Info{}, fmt.Errorf("read content: %w", src.err)
		}
		return Info{}, fmt.Errorf("write content: %w", err)
	}
	if n > limit {
		return Info{}, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, limit)
	}
	if err := f.Sync(); err != nil {
		return Info{}, fmt.Errorf("sync content: %w", err)
	}
	if err := f.Close(); err != nil {
		return Info{}, fmt.Errorf("close content: %w", err)
	}
	sum := hex.EncodeToString(h256.Sum(nil))
	return Info{
		Key:    sum,
		Size:   n,
		SHA256: sum,
		SHA1:   hex.EncodeToString(h1.Sum(nil)),
		MD5:    hex.EncodeToString(h5.Sum(nil)),
	}, nil
}

// hashingWriter writes to w and feeds side in parallel for large writes. MD5
// is the slowest of the three digests; giving it its own goroutine lets one
// upload hash on two cores (about 1.8x faster than hashing in sequence).
type hashingWriter struct {
	w    io.Writer
	side hash.Hash
}

const parallelHashMin = 64 << 10

func (h *hashingWriter) Write(p []byte) (int, error) {
	if len(p) < parallelHashMin {
		h.side.Write(p) // hash.Hash never returns an error
		return h.w.Write(p)
	}
	done := make(chan struct{})
	go func() {
		h.side.Write(p)
		close(done)
	}()
	n, err := h.w.Write(p)
	<-done // p belongs to the caller again once Write returns
	return n, err
}

// ctxReader stops reading once ctx is done and remembers read-side errors so
// that Put can tell them from write errors.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		c.err = err
		return 0, err
	}
	n, err := c.r.Read(p)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// Open implements Store.
func (d *Disk) Open(ctx context.Context, key string) (Object, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("open blob: %w", err)
	}
	if !ValidKey(key) {
		return nil, fmt.Errorf("open blob %q: %w", key, ErrInvalidKey)
	}
	f, err := os.Open(filepath.Join(d.blobDir(key), dataName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("open blob %s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("open blob %s: %w", key, err)
	}
	return &diskObject{f: f, key: key, size: fi.Size(), modTime: fi.ModTime()}, nil
}

// Stat implements Store. It reads the recorded digests and checks the
// recorded size against the content file; it does not rehash the content.
func (d *Disk) Stat(ctx context.Context, key string) (Info, error) {
	if err := ctx.Err(); err != nil {
		return Info{}, fmt.Errorf("stat blob: %w", err)
	}
	if !ValidKey(key) {
		return Info{}, fmt.Errorf("stat blob %q: %w", key, ErrInvalidKey)
	}
	info, err := d.stat(key)
	if err != nil {
		return Info{}, fmt.Errorf("stat blob %s: %w", key, err)
	}
	return info, nil
}

func (d *Disk) stat(key string) (Info, error) {
	dir := d.blobDir(key)
	fi, err := os.Stat(filepath.Join(dir, dataName))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			if _, derr := os.Stat(dir); derr == nil {
				return Info{}, fmt.Errorf("content missing: %w", ErrCorrupt)
			}
			return Info{}, ErrNotFound
		}
		return Info{}, err
	}
	raw, err := readSmallFile(filepath.Join(dir, sumsName), maxSumsSize)
	if errors.Is(err, fs.ErrNotExist) {
		if _, derr := os.Stat(dir); errors.Is(derr, fs.ErrNotExist) {
			return Info{}, ErrNotFound // deleted since the content was found
		}
		return Info{}, fmt.Errorf("digests missing: %w", ErrCorrupt)
	}
	if err != nil {
		return Info{}, fmt.Errorf("read digests: %w", err)
	}
	info, err := parseSums(raw, key)
	if err != nil {
		return Info{}, err
	}
	if info.Size != fi.Size() {
		return Info{}, fmt.Errorf("content is %d bytes, digests record %d: %w", fi.Size(), info.Size, ErrCorrupt)
	}
	return info, nil
}

// Delete implements Store. The blob first moves out of its address in one
// rename, so no reader can see a half-deleted blob.
func (d *Disk) Delete(ctx context.Context, key string) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("delete blob: %w", err)
	}
	if !ValidKey(key) {
		return fmt.Errorf("delete blob %q: %w", key, ErrInvalidKey)
	}
	tomb, err := os.MkdirTemp(d.tmpDir(), delPrefix)
	if err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if err := os.Rename(d.blobDir(key), filepath.Join(tomb, key)); err != nil {
		os.Remove(tomb)
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("delete blob %s: %w", key, ErrNotFound)
		}
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if err := syncDir(filepath.Join(d.root, key[:2])); err != nil {
		return fmt.Errorf("delete blob %s: %w", key, err)
	}
	if err := os.RemoveAll(tomb); err != nil {
		return fmt.Errorf("delete blob %s: remove: %w", key, err)
	}
	return nil
}

// Keys calls fn for every stored blob's key in lexical order, stopping at
// the first error. Garbage collection uses it to find blobs that no artifact
// references. Blobs added or deleted during the walk may or may not be seen.
func (d *Disk) Keys(ctx context.Context, fn func(key string) error) error {
	shards, err := os.ReadDir(d.root)
	if err != nil {
		return fmt.Errorf("list blobs: %w", err)
	}
	for _, s := range shards {
		if !s.IsDir() || len(s.Name()) != 2 || !isLowerHex(s.Name()) {
			continue
		}
		entries, err := os.ReadDir(filepath.Join(d.root, s.Name()))
		if err != nil {
			return fmt.Errorf("list blobs: %w", err)
		}
		for _, e := range entries {
			if !e.IsDir() || !ValidKey(e.Name()) || e.Name()[:2] != s.Name() {
				continue
			}
			if err := ctx.Err(); err != nil {
				return fmt.Errorf("list blobs: %w", err)
			}
			if err := fn(e.Name()); err != nil {
				return err
			}
		}
	}
	return nil
}

// Sweep removes what interrupted operations left in the temp directory:
// uploads whose newest file is older than olderThan (by the store's clock),
// and every unfinished deletion. It returns how many entries it removed.
// Run it at startup; while Puts are running, olderThan must exceed the
// longest pause an upload may take between two writes.
func (d *Disk) Sweep(ctx context.Context, olderThan time.Duration) (int, error) {
	entries, err := os.ReadDir(d.tmpDir())
	if err != nil {
		return 0, fmt.Errorf("sweep blob temp dir: %w", err)
	}
	cutoff := d.clock.Now().Add(-olderThan)
	removed := 0
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return removed, fmt.Errorf("sweep blob temp dir: %w", err)
		}
		path := filepath.Join(d.tmpDir(), e.Name())
		if !strings.HasPrefix(e.Name(), delPrefix) {
			newest, err := newestModTime(path)
			if errors.Is(err, fs.ErrNotExist) {
				continue // finished or removed meanwhile
			}
			if err != nil {
				return removed, fmt.Errorf("sweep blob temp dir: %w", err)
			}
			if !newest.Before(cutoff) {
				continue
			}
		}
		if err := os.RemoveAll(path); err != nil {
			return removed, fmt.Errorf("sweep blob temp dir: %w", err)
		}
		removed++
	}
	return removed, nil
}

// newestModTime returns the latest modification time of path and, if it is
// a directory, of its direct entries.
func newestModTime(path string) (time.Time, error) {
	fi, err := os.Lstat(path)
	if err != nil {
		return time.Time{}, err
	}
	newest := fi.ModTime()
	if !fi.IsDir() {
		return newest, nil
	}
	entries, err := os.ReadDir(path)
	if err != nil {
		return time.Time{}, err
	}
	for _, e := range entries {
		info, err := e.Info()
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return time.Time{}, err
		}
		if info.ModTime().After(newest) {
			newest = info.ModTime()
		}
	}
	return newest, nil
}

type diskObject struct {
	f       *os.File
	key     string
	size    int64
	modTime time.Time
}

func (o *diskObject) Read(p []byte) (int, error) { return o.f.Read(p) }
func (o *diskObject) Seek(off int64, whence int) (int64, error) {
	return o.f.Seek(off, whence)
}
func (o *diskObject) Close() error       { return o.f.Close() }
func (o *diskObject) Key() string        { return o.key }
func (o *diskObject) Size() int64        { return o.size }
func (o *diskObject) ModTime() time.Time { return o.modTime }
func (o *diskObject) File() *os.File     { return o.f }

func writeSyncedFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readSmallFile(path string, max int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("%s is larger than %d bytes: %w", path, max, ErrCorrupt)
	}
	return b, nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync dir: %w", err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync dir %s: %w", dir, err)
	}
	return nil
}
