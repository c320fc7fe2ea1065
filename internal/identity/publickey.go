package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
)

// Key algorithms, as recorded in PublicKey.Algorithm.
const (
	AlgEd25519   = "ed25519"
	AlgECDSAP256 = "ecdsa-p256"
	AlgRSA       = "rsa"
)

// RSA key size limits. The lower bound follows current guidance; the upper
// bound keeps the cost of verifying an unauthenticated request small.
const (
	MinRSABits = 2048
	MaxRSABits = 8192
)

// MaxPublicKeyPEMBytes bounds the PEM text accepted for one public key. An
// RSA-8192 key in PEM is about 1.5 KiB.
const MaxPublicKeyPEMBytes = 8 << 10

var (
	// ErrMalformedKey means the bytes are not a parseable public key.
	ErrMalformedKey = errors.New("malformed public key")
	// ErrUnsupportedKey means the key parsed but its algorithm, curve or
	// size is not accepted.
	ErrUnsupportedKey = errors.New("unsupported public key")
	// ErrBadSignature means a signature does not verify. It deliberately
	// says nothing about why.
	ErrBadSignature = errors.New("bad signature")
)

// PublicKey is a device public key that passed the algorithm and size
// checks. Build one with ParsePublicKeyPEM or NewPublicKey.
type PublicKey struct {
	// Algorithm is AlgEd25519, AlgECDSAP256 or AlgRSA.
	Algorithm string
	// Bits is the key size: 256 for Ed25519 and P-256, the modulus size
	// for RSA.
	Bits int
	// Fingerprint is the lowercase hex SHA-256 of the DER
	// SubjectPublicKeyInfo.
	Fingerprint string
	// PEM is the canonical form: a single PKIX "PUBLIC KEY" block, whatever
	// form the key arrived in.
	PEM string

	key crypto.PublicKey
}

// ParsePublicKeyPEM parses exactly one PEM block of type "PUBLIC KEY"
// (PKIX) or "RSA PUBLIC KEY" (PKCS#1), with nothing but white space around
// it, and checks the key with NewPublicKey.
func ParsePublicKeyPEM(data []byte) (*PublicKey, error) {
	if len(data) > MaxPublicKeyPEMBytes {
		return nil, fmt.Errorf("%w: pem longer than %d bytes", ErrMalformedKey, MaxPublicKeyPEMBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: not a pem block", ErrMalformedKey)
	}
	// pem.Decode skips a malformed block and returns a later one; demand
	// that the text holds exactly one.
	if bytes.Count(trimmed, []byte("-----BEGIN ")) != 1 {
		return nil, fmt.Errorf("%w: want exactly one pem block", ErrMalformedKey)
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, fmt.Errorf("%w: not a pem block", ErrMalformedKey)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the pem block", ErrMalformedKey)
	}
	if len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: pem headers are not allowed", ErrMalformedKey)
	}
	var pub crypto.PublicKey
	switch block.Type {
	case "PUBLIC KEY":
		k, err := x509.ParsePKIXPublicKey(block.Bytes)
		if err != nil {
			// x509 reports unknown algorithms (DSA, X25519 aside) as
			// parse errors; both are a refusal to the caller.
			return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
		}
		pub = k
	case "RSA PUBLIC KEY":
		k, err := x509.ParsePKCS1PublicKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
		}
		pub = k
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, fmt.Errorf("%w: pem block %q is a private key; send the public key only", ErrMalformedKey, block.Type)
	case "CERTIFICATE":
		return nil, fmt.Errorf("%w: pem block is a certificate, not a public key", ErrMalformedKey)
	default:
		return nil, fmt.Errorf("%w: pem block type %q, want \"PUBLIC KEY\" or \"RSA PUBLIC KEY\"", ErrMalformedKey, block.Type)
	}
	return NewPublicKey(pub)
}

// NewPublicKey checks that pub is an Ed25519 key, an ECDSA P-256 key or an
// RSA key of MinRSABits to MaxRSABits bits, and computes its fingerprint and
// canonical PEM. It accepts the value and pointer forms the standard library
// produces.
func NewPublicKey(pub crypto.PublicKey) (*PublicKey, error) {
	var (
		alg  string
		bits int
	)
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, fmt.Errorf("%w: ed25519 key of %d bytes", ErrMalformedKey, len(k))
		}
		alg, bits = AlgEd25519, 256
	case *ed25519.PublicKey:
		if k == nil {
			return nil, fmt.Errorf("%w: nil key", ErrMalformedKey)
		}
		return NewPublicKey(*k)
	case *ecdsa.PublicKey:
		if k == nil || k.Curve == nil {
			return nil, fmt.Errorf("%w: nil key", ErrMalformedKey)
		}
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("%w: ecdsa curve %s; only P-256 is accepted", ErrUnsupportedKey, k.Curve.Params().Name)
		}
		alg, bits = AlgECDSAP256, 256
	case *rsa.PublicKey:
		if k == nil || k.N == nil {
			return nil, fmt.Errorf("%w: nil key", ErrMalformedKey)
		}
		bits = k.N.BitLen()
		if bits < MinRSABits {
			return nil, fmt.Errorf("%w: rsa key of %d bits is too small; at least %d bits are required", ErrUnsupportedKey, bits, MinRSABits)
		}
		if bits > MaxRSABits {
			return nil, fmt.Errorf("%w: rsa key of %d bits is too large; at most %d bits are accepted", ErrUnsupportedKey, bits, MaxRSABits)
		}
		if k.E < 3 || k.E%2 == 0 {
			return nil, fmt.Errorf("%w: rsa public exponent %d", ErrUnsupportedKey, k.E)
		}
		alg = AlgRSA
	case nil:
		return nil, fmt.Errorf("%w: nil key", ErrMalformedKey)
	default:
		return nil, fmt.Errorf("%w: key type %T; use ed25519, ecdsa p-256 or rsa", ErrUnsupportedKey, pub)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedKey, err)
	}
	sum := sha256.Sum256(der)
	return &PublicKey{
		Algorithm:   alg,
		Bits:        bits,
		Fingerprint: hex.EncodeToString(sum[:]),
		PEM:         string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})),
		key:         pub,
	}, nil
}

// CryptoPublicKey returns the standard library key (ed25519.PublicKey,
// *ecdsa.PublicKey or *rsa.PublicKey).
func (p *PublicKey) CryptoPublicKey() crypto.PublicKey { return p.key }

// Verify checks sig over the exact bytes of body. Accepted encodings:
//   - Ed25519: the 64-byte signature over body itself.
//   - ECDSA P-256: over SHA-256(body), ASN.1 DER SEQUENCE{r, s}, or the raw
//     64-byte r||s form.
//   - RSA: PKCS#1 v1.5 over SHA-256(body) (what mender-client sends), or
//     RSA-PSS with SHA-256 and any salt length.
//
// Any failure is reported as ErrBadSignature.
func (p *PublicKey) Verify(body, sig []byte) error {
	switch k := p.key.(type) {
	case ed25519.PublicKey:
		if len(sig) == ed25519.SignatureSize && ed25519.Verify(k, body, sig) {
			return nil
		}
	case *ecdsa.PublicKey:
		h := sha256.Sum256(body)
		if verifyECDSA(k, h[:], sig) {
			return nil
		}
	case *rsa.PublicKey:
		if len(sig) != k.Size() {
			break
		}
		h := sha256.Sum256(body)
		if rsa.VerifyPKCS1v15(k, crypto.SHA256, h[:], sig) == nil {
			return nil
		}
		if rsa.VerifyPSS(k, crypto.SHA256, h[:], sig, &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthAuto}) == nil {
			return nil
		}
	}
	return ErrBadSignature
}

func verifyECDSA(k *ecdsa.PublicKey, digest, sig []byte) bool {
	const rawLen = 64
	// A DER signature starts with a SEQUENCE tag (0x30); raw r||s of 64
	// bytes may too, so a 64-byte value that fails as DER is retried raw.
	if len(sig) > 0 && sig[0] == 0x30 && ecdsa.VerifyASN1(k, digest, sig) {
		return true
	}
	if len(sig) != rawLen {
		return false
	}
	r := new(big.Int).SetBytes(sig[:rawLen/2])
	s := new(big.Int).SetBytes(sig[rawLen/2:])
	return ecdsa.Verify(k, digest, r, s)
}
