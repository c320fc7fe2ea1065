package tufrepo

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/pem"
	"errors"
	"fmt"
	"io"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// KeyType names a kind of signing key.
type KeyType string

// Key types GenerateKey can make.
const (
	KeyEd25519   KeyType = "ed25519"
	KeyECDSAP256 KeyType = "ecdsa-p256"
)

// Signer signs metadata. It is sigstore's signature.Signer, the interface
// go-tuf's Metadata.Sign takes; NewSigner makes one from any crypto.Signer.
type Signer = signature.Signer

// GenerateKey makes a new private key of type t from crypto/rand.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyEd25519, "":
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ed25519 key: %w", err)
		}
		return priv, nil
	case KeyECDSAP256:
		priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return nil, fmt.Errorf("generate ecdsa key: %w", err)
		}
		return priv, nil
	default:
		return nil, fmt.Errorf("generate key: unknown key type %q (want %s or %s)", t, KeyEd25519, KeyECDSAP256)
	}
}

// NewSigner returns a metadata signer for k. In-memory ed25519, ECDSA and
// RSA keys use sigstore's signers (as signature.LoadSigner would); any
// other crypto.Signer — a PKCS#11 HSM or TPM handle — is adapted so that
// its signatures verify under TUF's scheme for its public key type.
func NewSigner(k crypto.Signer) (Signer, error) {
	switch priv := k.(type) {
	case ed25519.PrivateKey, *ecdsa.PrivateKey:
		s, err := signature.LoadSigner(priv, crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("load signer: %w", err)
		}
		return s, nil
	case *rsa.PrivateKey:
		s, err := signature.LoadRSAPSSSigner(priv, crypto.SHA256, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
		if err != nil {
			return nil, fmt.Errorf("load signer: %w", err)
		}
		return s, nil
	}
	switch pub := k.Public().(type) {
	case ed25519.PublicKey, *rsa.PublicKey:
	case *ecdsa.PublicKey:
		if pub.Curve != elliptic.P256() {
			return nil, fmt.Errorf("load signer: ecdsa keys must use P-256 (TUF scheme ecdsa-sha2-nistp256)")
		}
	default:
		return nil, fmt.Errorf("load signer: unsupported public key type %T", pub)
	}
	return cryptoSigner{k}, nil
}

// cryptoSigner adapts a crypto.Signer that keeps its private key elsewhere.
type cryptoSigner struct{ s crypto.Signer }

func (c cryptoSigner) PublicKey(...signature.PublicKeyOption) (crypto.PublicKey, error) {
	return c.s.Public(), nil
}

func (c cryptoSigner) SignMessage(message io.Reader, _ ...signature.SignOption) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, fmt.Errorf("read message: %w", err)
	}
	switch c.s.Public().(type) {
	case ed25519.PublicKey:
		return c.s.Sign(rand.Reader, msg, crypto.Hash(0))
	case *rsa.PublicKey:
		d := sha256.Sum256(msg)
		return c.s.Sign(rand.Reader, d[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash, Hash: crypto.SHA256})
	default:
		d := sha256.Sum256(msg)
		return c.s.Sign(rand.Reader, d[:], crypto.SHA256)
	}
}

// PublicKey is the TUF key record of a public key.
func PublicKey(pub crypto.PublicKey) (*metadata.Key, error) {
	k, err := metadata.KeyFromPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("tuf key: %w", err)
	}
	return k, nil
}

// SignerKey is the TUF key record of a signer's public key.
func SignerKey(s Signer) (*metadata.Key, error) {
	pub, err := s.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer public key: %w", err)
	}
	return PublicKey(pub)
}

// SignerKeys is SignerKey for several signers.
func SignerKeys(signers ...Signer) ([]*metadata.Key, error) {
	out := make([]*metadata.Key, 0, len(signers))
	for _, s := range signers {
		k, err := SignerKey(s)
		if err != nil {
			return nil, err
		}
		out = append(out, k)
	}
	return out, nil
}

// KeyID is the TUF key id: the SHA-256 of the key's canonical JSON.
func KeyID(k *metadata.Key) (string, error) {
	id, err := k.ID()
	if err != nil {
		return "", fmt.Errorf("key id: %w", err)
	}
	return id, nil
}

// MarshalPrivateKey encodes k as PEM: PKCS#8 "PRIVATE KEY" when passphrase
// is empty, otherwise sigstore's "ENCRYPTED SIGSTORE PRIVATE KEY" (scrypt
// and NaCl secretbox). Callers write it with mode 0600.
func MarshalPrivateKey(k crypto.Signer, passphrase []byte) ([]byte, error) {
	if len(passphrase) == 0 {
		b, err := cryptoutils.MarshalPrivateKeyToPEM(k)
		if err != nil {
			return nil, fmt.Errorf("marshal private key: %w", err)
		}
		return b, nil
	}
	der, err := cryptoutils.MarshalPrivateKeyToEncryptedDER(k, func(bool) ([]byte, error) { return passphrase, nil })
	if err != nil {
		return nil, fmt.Errorf("encrypt private key: %w", err)
	}
	return cryptoutils.PEMEncode(cryptoutils.EncryptedSigstorePrivateKeyPEMType, der), nil
}

// ParsePrivateKey decodes a key written by MarshalPrivateKey.
func ParsePrivateKey(pemBytes, passphrase []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("parse private key: no PEM block")
	}
	encrypted := block.Type == string(cryptoutils.EncryptedSigstorePrivateKeyPEMType)
	if encrypted && len(passphrase) == 0 {
		return nil, errors.New("parse private key: the key is encrypted and no passphrase was given")
	}
	priv, err := cryptoutils.UnmarshalPEMToPrivateKey(pemBytes, func(bool) ([]byte, error) { return bytes.Clone(passphrase), nil })
	if err != nil {
		if encrypted {
			return nil, fmt.Errorf("parse private key: wrong passphrase or damaged key: %w", err)
		}
		return nil, fmt.Errorf("parse private key: %w", err)
	}
	s, ok := priv.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("parse private key: %T cannot sign", priv)
	}
	return s, nil
}
