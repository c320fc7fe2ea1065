package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
)

// SignatureHeader carries the base64 signature of a signed device request,
// computed over the exact raw request body bytes.
const SignatureHeader = "X-Updraft-Signature"

// maxSignatureHeaderLen bounds the header: an RSA-8192 signature is 1024
// bytes, 1368 characters of base64.
const maxSignatureHeaderLen = 2048

// ErrMissingSignature means the request carried no signature header.
var ErrMissingSignature = errors.New("missing " + SignatureHeader + " header")

// DecodeSignature decodes the value of the signature header. Standard and
// URL-safe base64 are both accepted, with or without padding. A malformed
// value is reported as ErrBadSignature, an empty one as ErrMissingSignature.
func DecodeSignature(header string) ([]byte, error) {
	s := strings.TrimSpace(header)
	if s == "" {
		return nil, ErrMissingSignature
	}
	if len(s) > maxSignatureHeaderLen {
		return nil, fmt.Errorf("%w: signature header longer than %d characters", ErrBadSignature, maxSignatureHeaderLen)
	}
	s = strings.TrimRight(s, "=")
	// Checked here because the base64 decoder silently skips CR and LF.
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '+' || b == '/' || b == '-' || b == '_') {
			return nil, fmt.Errorf("%w: signature is not base64", ErrBadSignature)
		}
	}
	if strings.ContainsAny(s, "+/") && strings.ContainsAny(s, "-_") {
		return nil, fmt.Errorf("%w: signature mixes standard and url-safe base64", ErrBadSignature)
	}
	s = strings.NewReplacer("-", "+", "_", "/").Replace(s)
	sig, err := base64.RawStdEncoding.Strict().DecodeString(s)
	if err != nil || len(sig) == 0 {
		return nil, fmt.Errorf("%w: signature is not base64", ErrBadSignature)
	}
	return sig, nil
}

// EncodeSignature returns the header value for sig: standard base64 with
// padding.
func EncodeSignature(sig []byte) string {
	return base64.StdEncoding.EncodeToString(sig)
}

// SignBody signs body with signer the way Verify expects and returns the
// value for SignatureHeader. Ed25519 signs body directly; ECDSA (P-256 only)
// produces an ASN.1 signature over SHA-256(body); RSA produces PKCS#1 v1.5
// over SHA-256(body). The signer's key must pass NewPublicKey, so a device
// cannot produce requests the server would refuse for its key type.
func SignBody(signer crypto.Signer, body []byte) (string, error) {
	pub := signer.Public()
	if _, err := NewPublicKey(pub); err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	var (
		sig []byte
		err error
	)
	switch pub.(type) {
	case ed25519.PublicKey, *ed25519.PublicKey:
		sig, err = signer.Sign(rand.Reader, body, crypto.Hash(0))
	case *ecdsa.PublicKey, *rsa.PublicKey:
		h := sha256.Sum256(body)
		sig, err = signer.Sign(rand.Reader, h[:], crypto.SHA256)
	}
	if err != nil {
		return "", fmt.Errorf("sign: %w", err)
	}
	return EncodeSignature(sig), nil
}
