// Package blob stores firmware artifacts by content address.
//
// A blob is immutable bytes named by the lowercase hex SHA-256 of its content
// (its key). Put streams the content exactly once, computing SHA-256, SHA-1
// and MD5 together (hawkBit clients need the latter two), and makes the blob
// visible atomically: a reader either finds the complete blob under its key
// or nothing. A Put that fails for any reason (cancelled context, reader
// error, size limit) leaves nothing behind. Storing the same content twice
// yields one blob, so Put is idempotent and safe to run concurrently for the
// same content. Each Put, including one that finds the content already
// stored, records the blob's last use (Disk.LastUsed); a collector deletes
// unreferenced blobs only once they have been idle long enough
// (Disk.DeleteIdle), so an upload can never lose its blob to a collector
// between storing it and recording the artifact that references it.
//
// Store is the interface the rest of the server codes against; Disk is the
// local-disk implementation used by `updraft serve`. An S3-compatible
// implementation can sit behind the same interface. All implementations are
// safe for concurrent use.
package blob

import (
	"context"
	"errors"
	"io"
	"os"
	"time"
)

// Errors returned by Store implementations, possibly wrapped.
var (
	// ErrNotFound means no blob exists under the key.
	ErrNotFound = errors.New("blob not found")
	// ErrTooLarge means the content exceeded the limit given to Put.
	ErrTooLarge = errors.New("blob too large")
	// ErrInvalidKey means the key is not 64 lowercase hex digits.
	ErrInvalidKey = errors.New("invalid blob key")
	// ErrCorrupt means the stored blob does not match its recorded digests
	// or size; it should be deleted and uploaded again.
	ErrCorrupt = errors.New("blob corrupt")
)

// Info describes a stored blob. Digests are lowercase hex.
type Info struct {
	Key    string // equal to SHA256; the content address
	Size   int64
	SHA256 string
	SHA1   string
	MD5    string
}

// Object is an open blob. It reads from the start of the content; Seek makes
// ranged reads possible. Close releases it.
//
// The Disk store's objects also implement File, which download handlers use
// to hand the open file to the kernel (sendfile) instead of copying through
// user space.
type Object interface {
	io.ReadSeekCloser
	Key() string
	Size() int64
	ModTime() time.Time
}

// File is implemented by objects that are backed by a local file. The file
// belongs to the Object: callers must not close it, and reading from it moves
// the Object's offset.
type File interface {
	File() *os.File
}

// Store keeps blobs by content address.
type Store interface {
	// Put reads r to the end and stores its content. It reads at most
	// limit+1 bytes and fails with ErrTooLarge if the content is longer
	// than limit bytes; limit must be positive. Storing content that is
	// already present succeeds and returns the same Info.
	Put(ctx context.Context, r io.Reader, limit int64) (Info, error)
	// Open opens the blob for reading.
	Open(ctx context.Context, key string) (Object, error)
	// Stat returns the blob's Info without opening its content.
	Stat(ctx context.Context, key string) (Info, error)
	// Delete removes the blob. Readers that already opened it may keep
	// reading. Deleting a missing blob returns ErrNotFound.
	Delete(ctx context.Context, key string) error
}

// ValidKey reports whether key has the form of a blob key: 64 lowercase hex
// digits.
func ValidKey(key string) bool { return len(key) == 64 && isLowerHex(key) }

func isLowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
