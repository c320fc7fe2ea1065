package server

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/signing"
)

// SigningKeyFileName is the key-encryption key file created in the data
// directory when Config.SigningKeyFile is empty.
const SigningKeyFileName = "signing-kek"

// maxKEKFile bounds the key-encryption key file.
const maxKEKFile = 4 << 10

// newSigning builds the signing service. Its online keys are sealed in the
// database under a key-encryption key read from Config.SigningKeyFile, or
// from a file the first start creates in the data directory (0600), so a
// copy of the database alone holds no usable key. Replicas sharing a
// PostgreSQL database must be given the same file.
func newSigning(s *Server) (*signing.Service, error) {
	kek, err := loadKEK(s.cfg.SigningKeyFile, filepath.Join(s.cfg.DataDir, SigningKeyFileName))
	if err != nil {
		return nil, err
	}
	return signing.New(signing.Config{
		Store:            s.store,
		Clock:            s.cfg.Clock,
		Logger:           s.log.With("component", "signing"),
		Metrics:          s.reg,
		KeyEncryptionKey: kek,
		Options:          s.cfg.Signing,
	})
}

// loadKEK reads the key-encryption key: hex (as created here) or raw
// bytes, at least signing.MinKeyEncryptionKey of them. Without a
// configured file it uses, and on first start creates, dflt.
func loadKEK(configured, dflt string) ([]byte, error) {
	path := configured
	if path == "" {
		path = dflt
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			key, err := randomKey(32)
			if err != nil {
				return nil, err
			}
			if err := atomicfile.WriteFile(path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
				return nil, fmt.Errorf("create signing key-encryption key: %w", err)
			}
		}
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("signing key-encryption key: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKEKFile+1))
	if err != nil {
		return nil, fmt.Errorf("read signing key-encryption key %s: %w", path, err)
	}
	if len(b) > maxKEKFile {
		return nil, fmt.Errorf("signing key-encryption key %s is larger than %d bytes", path, maxKEKFile)
	}
	b = bytes.TrimSpace(b)
	if d, err := hex.DecodeString(string(b)); err == nil {
		b = d
	}
	if len(b) < signing.MinKeyEncryptionKey {
		return nil, fmt.Errorf("signing key-encryption key %s holds %d bytes; give at least %d random bytes (e.g. 64 hex digits from `openssl rand -hex 32`)",
			path, len(b), signing.MinKeyEncryptionKey)
	}
	return b, nil
}
