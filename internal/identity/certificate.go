package identity

import (
	"bytes"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// MaxCertificatePEMBytes bounds the PEM text accepted for one certificate.
const MaxCertificatePEMBytes = 16 << 10

// ErrMalformedCertificate means the bytes are not one parseable X.509
// certificate in PEM.
var ErrMalformedCertificate = errors.New("malformed certificate")

// Certificate is a parsed X.509 device certificate. Certificates are a
// reserved credential kind: they can be recorded against a device, but no
// chain is verified here and devices cannot authenticate with them yet
// (see ErrUnsupportedCredential).
type Certificate struct {
	Subject      string
	Issuer       string
	SerialNumber string
	NotBefore    time.Time
	NotAfter     time.Time
	// Fingerprint is the lowercase hex SHA-256 of the DER certificate.
	Fingerprint string
	// KeyFingerprint is the lowercase hex SHA-256 of the certificate's
	// SubjectPublicKeyInfo, comparable with PublicKey.Fingerprint.
	KeyFingerprint string
	// PEM is the canonical form: a single "CERTIFICATE" block.
	PEM string
}

// ParseCertificatePEM parses exactly one "CERTIFICATE" PEM block with
// nothing but white space around it.
func ParseCertificatePEM(data []byte) (*Certificate, error) {
	if len(data) > MaxCertificatePEMBytes {
		return nil, fmt.Errorf("%w: pem longer than %d bytes", ErrMalformedCertificate, MaxCertificatePEMBytes)
	}
	trimmed := bytes.TrimSpace(data)
	if !bytes.HasPrefix(trimmed, []byte("-----BEGIN ")) {
		return nil, fmt.Errorf("%w: not a pem block", ErrMalformedCertificate)
	}
	// pem.Decode skips a malformed block and returns a later one; demand
	// that the text holds exactly one.
	if bytes.Count(trimmed, []byte("-----BEGIN ")) != 1 {
		return nil, fmt.Errorf("%w: want exactly one pem block", ErrMalformedCertificate)
	}
	block, rest := pem.Decode(trimmed)
	if block == nil {
		return nil, fmt.Errorf("%w: not a pem block", ErrMalformedCertificate)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%w: data after the pem block", ErrMalformedCertificate)
	}
	if block.Type != "CERTIFICATE" || len(block.Headers) != 0 {
		return nil, fmt.Errorf("%w: pem block type %q, want \"CERTIFICATE\"", ErrMalformedCertificate, block.Type)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedCertificate, err)
	}
	sum := sha256.Sum256(c.Raw)
	keySum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return &Certificate{
		Subject:        c.Subject.String(),
		Issuer:         c.Issuer.String(),
		SerialNumber:   c.SerialNumber.String(),
		NotBefore:      c.NotBefore,
		NotAfter:       c.NotAfter,
		Fingerprint:    hex.EncodeToString(sum[:]),
		KeyFingerprint: hex.EncodeToString(keySum[:]),
		PEM:            string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})),
	}, nil
}
