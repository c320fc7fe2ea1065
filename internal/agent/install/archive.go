package install

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/updraft/updraft/internal/devfs"
)

// Compressions ExtractArchive understands; "" sniffs the magic bytes.
const (
	CompressionNone = "none"
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// ArchiveLimits bound what an archive may expand to, so a small signed
// archive cannot fill the device (a decompression bomb is still signed
// content, but a mistake in it must not brick the device).
type ArchiveLimits struct {
	MaxBytes   int64 // total size of regular files [4 GiB]
	MaxEntries int   // [100000]
	// DecoderMaxMemory caps the zstd decoder's window and buffers [64 MiB].
	DecoderMaxMemory uint64
}

func (l *ArchiveLimits) setDefaults() {
	if l.MaxBytes <= 0 {
		l.MaxBytes = 4 << 30
	}
	if l.MaxEntries <= 0 {
		l.MaxEntries = 100000
	}
	if l.DecoderMaxMemory == 0 {
		l.DecoderMaxMemory = 64 << 20
	}
}

// ErrUnsafePath is returned for an archive entry that would land outside
// the destination directory, and ErrUnsupportedEntry for entry types the
// installer does not create (links, devices, FIFOs).
var (
	ErrUnsafePath       = errors.New("archive entry escapes the destination")
	ErrUnsupportedEntry = errors.New("unsupported archive entry")
)

// ExtractArchive unpacks the tar archive in staged (plain, gzip or zstd)
// into "<dest>.new", making every file and directory durable; Promote then
// swaps it in. A half-extracted "<dest>.new" from an interrupted attempt
// is discarded first.
func ExtractArchive(ctx context.Context, fsys devfs.FS, staged, compression, dest string, lim ArchiveLimits) error {
	lim.setDefaults()
	f, err := fsys.OpenFile(staged, os.O_RDONLY, 0)
	if err != nil {
		return fmt.Errorf("open staged archive: %w", err)
	}
	defer f.Close()
	if err := MkdirAllDurable(fsys, path.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("create %s: %w", path.Dir(dest), err)
	}
	if err := Discard(fsys, dest); err != nil {
		return err
	}
	root := newName(dest)
	if err := MkdirAllDurable(fsys, root, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", root, err)
	}
	if err := extract(ctx, fsys, &ctxReader{ctx: ctx, r: f}, compression, root, lim); err != nil {
		return err
	}
	return fsys.SyncDir(path.Dir(dest))
}

// decompress wraps r according to compression ("" sniffs it).
func decompress(r io.Reader, compression string, lim ArchiveLimits) (io.Reader, func(), error) {
	br := bufio.NewReaderSize(r, 64<<10)
	if compression == "" {
		magic, _ := br.Peek(4)
		switch {
		case bytes.HasPrefix(magic, []byte{0x1f, 0x8b}):
			compression = CompressionGzip
		case bytes.Equal(magic, []byte{0x28, 0xb5, 0x2f, 0xfd}):
			compression = CompressionZstd
		default:
			compression = CompressionNone
		}
	}
	switch compression {
	case CompressionNone:
		return br, func() {}, nil
	case CompressionGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, nil, fmt.Errorf("gzip: %w", err)
		}
		return zr, func() { zr.Close() }, nil
	case CompressionZstd:
		zr, err := zstd.NewReader(br,
			zstd.WithDecoderConcurrency(1),
			zstd.WithDecoderLowmem(true),
			zstd.WithDecoderMaxMemory(lim.DecoderMaxMemory),
			zstd.WithDecoderMaxWindow(lim.DecoderMaxMemory))
		if err != nil {
			return nil, nil, fmt.Errorf("zstd: %w", err)
		}
		return zr, zr.Close, nil
	}
	return nil, nil, fmt.Errorf("unknown archive compression %q", compression)
}

func extract(ctx context.Context, fsys devfs.FS, r io.Reader, compression, root string, lim ArchiveLimits) error {
	dr, closeFn, err := decompress(r, compression, lim)
	if err != nil {
		return err
	}
	defer closeFn()
	tr := tar.NewReader(dr)
	var total int64
	dirs := map[string]bool{root: true}
	buf := make([]byte, 128<<10)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("read archive: %w", err)
		}
		if n >= lim.MaxEntries {
			return fmt.Errorf("archive has more than %d entries", lim.MaxEntries)
		}
		rel, err := SafePath(hdr.Name)
		if err != nil {
			return err
		}
		if rel == "" { // "./" itself
			continue
		}
		target := path.Join(root, rel)
		perm := fs.FileMode(hdr.Mode) & 0o777
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := fsys.MkdirAll(target, perm|0o700); err != nil {
				return fmt.Errorf("create directory %s: %w", rel, err)
			}
			dirs[target] = true
			dirs[path.Dir(target)] = true
		case tar.TypeReg:
			total += hdr.Size
			if total > lim.MaxBytes {
				return fmt.Errorf("archive expands to more than %d bytes", lim.MaxBytes)
			}
			if err := fsys.MkdirAll(path.Dir(target), 0o755); err != nil {
				return fmt.Errorf("create directory for %s: %w", rel, err)
			}
			dirs[path.Dir(target)] = true
			if err := writeEntry(fsys, target, perm, tr, hdr.Size, buf); err != nil {
				return fmt.Errorf("extract %s: %w", rel, err)
			}
		default:
			return fmt.Errorf("%w: %s (type %q)", ErrUnsupportedEntry, rel, hdr.Typeflag)
		}
	}
	// Make every created name durable, deepest directories first is not
	// required: each SyncDir covers its own entries.
	for d := range dirs {
		if err := fsys.SyncDir(d); err != nil {
			return fmt.Errorf("sync %s: %w", d, err)
		}
	}
	return nil
}

func writeEntry(fsys devfs.FS, name string, perm fs.FileMode, r io.Reader, size int64, buf []byte) error {
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	n, err := io.CopyBuffer(f, io.LimitReader(r, size), buf)
	if err == nil && n != size {
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// SafePath cleans an archive entry name into a relative path that stays
// inside the destination, or fails with ErrUnsafePath. "" means the
// destination itself.
func SafePath(name string) (string, error) {
	if name == "" || strings.ContainsRune(name, 0) {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	if strings.HasPrefix(name, "/") {
		return "", fmt.Errorf("%w: absolute name %q", ErrUnsafePath, name)
	}
	for _, elem := range strings.Split(name, "/") {
		if elem == ".." {
			return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
		}
	}
	clean := path.Clean(name)
	if clean == "." {
		return "", nil
	}
	if clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
		return "", fmt.Errorf("%w: %q", ErrUnsafePath, name)
	}
	return clean, nil
}
