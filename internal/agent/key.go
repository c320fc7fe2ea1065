package agent

import (
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path"

	"github.com/updraft/updraft/internal/agent/install"
	"github.com/updraft/updraft/internal/devfs"
)

// loadKey returns the device key: the provisioned Config.Key, else the
// PKCS#8 PEM in KeyFile, generated (Ed25519, from Config.Entropy) on first
// start and written atomically with mode 0600.
func (a *Agent) loadKey() (crypto.Signer, error) {
	if a.cfg.Key != nil {
		return a.cfg.Key, nil
	}
	b, err := devfs.ReadFile(a.cfg.FS, a.cfg.KeyFile, 64<<10)
	if err == nil {
		return ParseKeyPEM(b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("read device key: %w", err)
	}
	// The seed is read from Entropy directly: the crypto packages may
	// ignore a caller's reader, and tests and simulators need
	// reproducible keys.
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(a.cfg.Entropy, seed); err != nil {
		return nil, fmt.Errorf("generate device key: %w", err)
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pemBytes, err := MarshalKeyPEM(priv)
	if err != nil {
		return nil, err
	}
	if err := install.MkdirAllDurable(a.cfg.FS, path.Dir(a.cfg.KeyFile), 0o700); err != nil {
		return nil, fmt.Errorf("create key directory: %w", err)
	}
	if err := devfs.WriteFileAtomic(a.cfg.FS, a.cfg.KeyFile, pemBytes, 0o600); err != nil {
		return nil, fmt.Errorf("write device key: %w", err)
	}
	a.log.Info("generated a device key", "file", a.cfg.KeyFile)
	return priv, nil
}

// ParseKeyPEM reads a PKCS#8 "PRIVATE KEY" PEM block (Ed25519, ECDSA P-256
// or RSA), as provisioning tools write it.
func ParseKeyPEM(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("device key: want a PKCS#8 PEM block \"PRIVATE KEY\"")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("device key: %w", err)
	}
	s, ok := k.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("device key: %T cannot sign", k)
	}
	return s, nil
}

// MarshalKeyPEM encodes a private key as PKCS#8 PEM.
func MarshalKeyPEM(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, fmt.Errorf("encode device key: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}
