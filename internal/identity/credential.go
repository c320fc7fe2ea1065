package identity

import (
	"errors"
	"fmt"
)

// CredentialKind names one kind of device credential. The values are stored
// in the database, so they never change.
type CredentialKind string

const (
	// KindPublicKey is a device key pair: the device signs requests with
	// its private key and the server keeps the public key.
	KindPublicKey CredentialKind = "pubkey"
	// KindToken is a static per-device secret in the style of hawkBit's
	// TargetToken; the server keeps only its SHA-256.
	KindToken CredentialKind = "token"
	// KindCertificate is an X.509 device certificate. It is reserved: a
	// certificate can be parsed and recorded, but devices cannot yet
	// authenticate with one.
	KindCertificate CredentialKind = "cert"
)

// ErrUnknownCredentialKind is returned for a kind that is not one of the
// Kind constants.
var ErrUnknownCredentialKind = errors.New("unknown credential kind")

// ErrUnsupportedCredential is returned when a credential of a kind that
// cannot yet be used for authentication (certificates) is asked to
// authenticate a device.
var ErrUnsupportedCredential = errors.New("credential kind not supported for device authentication")

// ParseCredentialKind checks that s names a known kind.
func ParseCredentialKind(s string) (CredentialKind, error) {
	k := CredentialKind(s)
	if !k.Valid() {
		return "", fmt.Errorf("%w %q", ErrUnknownCredentialKind, s)
	}
	return k, nil
}

// Valid reports whether k is one of the Kind constants.
func (k CredentialKind) Valid() bool {
	switch k {
	case KindPublicKey, KindToken, KindCertificate:
		return true
	}
	return false
}

// AuthSupported reports whether devices can authenticate with credentials of
// kind k today. It is false for KindCertificate.
func (k CredentialKind) AuthSupported() bool {
	return k == KindPublicKey || k == KindToken
}

func (k CredentialKind) String() string { return string(k) }

// Credential is the storage form of one device credential: what the store
// keeps in a row and hands back to be checked.
type Credential struct {
	Kind CredentialKind
	// Algorithm is the key algorithm of a public key (AlgEd25519,
	// AlgECDSAP256 or AlgRSA); empty for other kinds.
	Algorithm string
	// Fingerprint identifies the credential within a tenant, as lowercase
	// hex SHA-256: of the DER SubjectPublicKeyInfo for a public key, of the
	// DER certificate for a certificate, and of the token text for a
	// target token.
	Fingerprint string
	// Material is what verification needs beyond the fingerprint: the
	// canonical PEM of a public key or certificate. It is empty for target
	// tokens, whose plaintext is never stored.
	Material string
}

// Credential returns the storage form of p.
func (p *PublicKey) Credential() Credential {
	return Credential{Kind: KindPublicKey, Algorithm: p.Algorithm, Fingerprint: p.Fingerprint, Material: p.PEM}
}

// Credential returns the storage form of c.
func (c *Certificate) Credential() Credential {
	return Credential{Kind: KindCertificate, Fingerprint: c.Fingerprint, Material: c.PEM}
}

// TargetTokenCredential returns the storage form of a target token. The
// token itself is not kept.
func TargetTokenCredential(token string) Credential {
	return Credential{Kind: KindToken, Fingerprint: HashTargetToken(token)}
}

// Validate checks that c is internally consistent, for example after being
// read back from storage: the kind is known, the fingerprint is a SHA-256
// hex string and, for keys and certificates, the material parses and
// matches the fingerprint.
func (c Credential) Validate() error {
	if !c.Kind.Valid() {
		return fmt.Errorf("credential: %w %q", ErrUnknownCredentialKind, string(c.Kind))
	}
	if !isSHA256Hex(c.Fingerprint) {
		return fmt.Errorf("credential %s: fingerprint is not a lowercase hex sha-256", c.Kind)
	}
	switch c.Kind {
	case KindToken:
		if c.Material != "" || c.Algorithm != "" {
			return errors.New("credential token: material and algorithm must be empty, only the hash is stored")
		}
		return nil
	case KindPublicKey:
		_, err := c.PublicKey()
		return err
	default: // KindCertificate
		cert, err := ParseCertificatePEM([]byte(c.Material))
		if err != nil {
			return fmt.Errorf("credential cert: %w", err)
		}
		if cert.Fingerprint != c.Fingerprint {
			return errors.New("credential cert: fingerprint does not match material")
		}
		return nil
	}
}

// PublicKey returns the key a device authenticates with. It fails with
// ErrUnsupportedCredential for certificates and with an error for target
// tokens, which carry no key.
func (c Credential) PublicKey() (*PublicKey, error) {
	switch c.Kind {
	case KindPublicKey:
		pk, err := ParsePublicKeyPEM([]byte(c.Material))
		if err != nil {
			return nil, fmt.Errorf("credential pubkey: %w", err)
		}
		if pk.Fingerprint != c.Fingerprint {
			return nil, errors.New("credential pubkey: fingerprint does not match material")
		}
		if c.Algorithm != "" && c.Algorithm != pk.Algorithm {
			return nil, fmt.Errorf("credential pubkey: recorded algorithm %q, key is %s", c.Algorithm, pk.Algorithm)
		}
		return pk, nil
	case KindCertificate:
		return nil, fmt.Errorf("credential cert: %w", ErrUnsupportedCredential)
	case KindToken:
		return nil, errors.New("credential token: a target token has no public key")
	}
	return nil, fmt.Errorf("credential: %w %q", ErrUnknownCredentialKind, string(c.Kind))
}

// MatchTargetToken reports, in constant time with respect to the token
// contents, whether token is the target token c was made from. It is false
// for credentials of any other kind.
func (c Credential) MatchTargetToken(token string) bool {
	return c.Kind == KindToken && CheckTargetToken(token, c.Fingerprint)
}

func isSHA256Hex(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('0' <= b && b <= '9' || 'a' <= b && b <= 'f') {
			return false
		}
	}
	return true
}
