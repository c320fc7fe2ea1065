package cli

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/tufrepo"
)

// keyDir is the offline keys directory:
//
//	root/N.pem, targets/N.pem, lines/<line>/N.pem   private keys (0600)
//	retired/<role>-<time>/N.pem                     keys rotated out
//	metadata/N.<role>.json                          signed metadata
type keyDir struct {
	dir        string
	passphrase []byte
}

func (e *Env) keyDir(dir, passphraseFile string) (keyDir, error) {
	d := keyDir{dir: dir}
	if passphraseFile != "" {
		b, err := readSmallFile(passphraseFile)
		if err != nil {
			return d, fmt.Errorf("read --passphrase-file: %w", err)
		}
		d.passphrase = []byte(strings.TrimRight(string(b), "\r\n"))
		if len(d.passphrase) == 0 {
			return d, fmt.Errorf("--passphrase-file %s is empty", passphraseFile)
		}
	}
	return d, nil
}

func readSmallFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxKeyFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxKeyFile)
	}
	return b, nil
}

// roleDir is where a role's private keys live.
func (d keyDir) roleDir(role string) string {
	switch role {
	case metadata.ROOT, metadata.TARGETS:
		return filepath.Join(d.dir, role)
	}
	return filepath.Join(d.dir, "lines", role)
}

// newKeys generates n keys for role and writes them, numbered after any
// that exist; it never overwrites a file.
func (d keyDir) newKeys(role string, n int, kt tufrepo.KeyType) ([]tufrepo.Signer, []string, error) {
	dir := d.roleDir(role)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, err
	}
	var signers []tufrepo.Signer
	var paths []string
	next := 1
	for len(signers) < n {
		k, err := tufrepo.GenerateKey(kt)
		if err != nil {
			return nil, nil, err
		}
		b, err := tufrepo.MarshalPrivateKey(k, d.passphrase)
		if err != nil {
			return nil, nil, err
		}
		for ; ; next++ {
			p := filepath.Join(dir, strconv.Itoa(next)+".pem")
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if errors.Is(err, fs.ErrExist) {
				continue
			}
			if err != nil {
				return nil, nil, err
			}
			_, werr := f.Write(b)
			if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
				return nil, nil, fmt.Errorf("write %s: %w", p, err)
			}
			paths = append(paths, p)
			break
		}
		s, err := tufrepo.NewSigner(k)
		if err != nil {
			return nil, nil, err
		}
		signers = append(signers, s)
	}
	return signers, paths, nil
}

// signers loads every key of role in the directory.
func (d keyDir) signers(role string) ([]tufrepo.Signer, error) {
	paths, err := filepath.Glob(filepath.Join(d.roleDir(role), "*.pem"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no %s keys in %s", role, d.roleDir(role))
	}
	slices.Sort(paths)
	var out []tufrepo.Signer
	for _, p := range paths {
		s, err := loadSigner(p, d.passphrase)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, nil
}

func loadSigner(path string, passphrase []byte) (tufrepo.Signer, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	k, err := tufrepo.ParsePrivateKey(b, passphrase)
	if err != nil {
		if len(passphrase) == 0 && strings.Contains(string(b), "ENCRYPTED") {
			return nil, fmt.Errorf("%s is encrypted: give --passphrase-file", path)
		}
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return tufrepo.NewSigner(k)
}

// retire moves role's current keys out of the way after a rotation.
func (d keyDir) retire(role string, now time.Time) error {
	from := d.roleDir(role)
	if _, err := os.Stat(from); errors.Is(err, fs.ErrNotExist) {
		return nil // the keys were never here (held elsewhere)
	}
	to := filepath.Join(d.dir, "retired", strings.ReplaceAll(role, "/", "-")+"-"+now.UTC().Format("20060102T150405Z"))
	if err := os.MkdirAll(filepath.Dir(to), 0o700); err != nil {
		return err
	}
	return os.Rename(from, to)
}

// latest returns the highest version of role's metadata in DIR/metadata.
func (d keyDir) latest(role string) ([]byte, error) {
	paths, err := filepath.Glob(filepath.Join(d.dir, "metadata", "*."+role+".json"))
	if err != nil {
		return nil, err
	}
	var best []byte
	var bestV int64
	for _, p := range paths {
		r, v, err := signing.ParseName(filepath.Base(p))
		if err != nil || r != role || v <= bestV {
			continue
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		best, bestV = b, v
	}
	if best == nil {
		return nil, fmt.Errorf("no %s metadata in %s", role, filepath.Join(d.dir, "metadata"))
	}
	return best, nil
}

// writeMetadata writes signed metadata as DIR/metadata/N.<role>.json.
func (d keyDir) writeMetadata(role string, b []byte) (string, error) {
	info, err := tufrepo.Describe(b)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(d.dir, "metadata")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, fmt.Sprintf("%d.%s.json", info.Version, role))
	return p, atomicfile.WriteFile(p, b, 0o644)
}

// syncMetadata stores the server's newer root and targets in DIR/metadata, so a
// rotation starts from what devices trust now.
func (e *Env) syncMetadata(ctx context.Context, c *client.Client, d keyDir, roles ...string) error {
	for _, role := range roles {
		b, err := c.Metadata(ctx, role+".json")
		if client.IsNotFound(err) {
			continue
		}
		if err != nil {
			return err
		}
		local, lerr := d.latest(role)
		if lerr == nil && version(local) >= version(b) {
			continue
		}
		if _, err := d.writeMetadata(role, b); err != nil {
			return err
		}
	}
	return nil
}

func version(b []byte) int64 {
	info, err := tufrepo.Describe(b)
	if err != nil {
		return 0
	}
	return info.Version
}

func keyIDs(signers []tufrepo.Signer) []string {
	var out []string
	for _, s := range signers {
		k, err := tufrepo.SignerKey(s)
		if err != nil {
			continue
		}
		if id, err := tufrepo.KeyID(k); err == nil {
			out = append(out, id[:12])
		}
	}
	return out
}

// publicKeyFile reads a PEM public key (or takes the public half of a
// private key file) as a TUF key record.
func publicKeyFile(path string) (*metadata.Key, error) {
	b, err := readSmallFile(path)
	if err != nil {
		return nil, err
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		return nil, fmt.Errorf("%s: no PEM block", path)
	}
	var pub crypto.PublicKey
	switch blk.Type {
	case "PUBLIC KEY":
		if pub, err = x509.ParsePKIXPublicKey(blk.Bytes); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
	case "PRIVATE KEY":
		k, err := tufrepo.ParsePrivateKey(b, nil)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pub = k.Public()
	default:
		return nil, fmt.Errorf("%s: a %s, want a PUBLIC KEY", path, blk.Type)
	}
	return tufrepo.PublicKey(pub)
}
