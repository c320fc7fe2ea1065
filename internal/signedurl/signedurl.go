// Package signedurl issues and checks short-lived download URLs.
//
// A signed URL lets a device fetch one artifact without sending any
// Authorization header (SWUpdate, RAUC and similar clients send none on
// downloads). The signature binds the URL to a tenant, a device, an artifact
// and an expiry time, so a leaked URL works only for that artifact, only
// until it expires, and is attributable to the device it was issued to.
//
// The query carries:
//
//	t  tenant id
//	d  device id
//	e  expiry, Unix seconds (the URL is valid while now < e)
//	k  id of the key that signed it
//	s  HMAC-SHA256, base64url without padding
//
// The artifact id is not in the query: it is the path of the download
// route, and the handler passes it to Verify. The MAC covers a versioned,
// length-prefixed encoding of (key id, tenant, device, artifact, expiry), so
// no two distinct claims share a message.
//
// Keys rotate without breaking URLs in flight: a Signer signs with its
// current key and accepts every key it was given, identified by key id.
// Signers are immutable after NewSigner and safe for concurrent use. Time
// comes from an injected clock.Clock.
package signedurl

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// Errors returned by Verify, wrapped with detail. Handlers answer all of them
// with 403, as S3 does for presigned URLs, so devices see the same thing
// whichever store serves them; a device that gets 403 asks for a fresh URL
// at its next check-in. The detail is for logs only.
var (
	// ErrMalformed means a parameter is missing, repeated or badly formed.
	ErrMalformed = errors.New("malformed signed url")
	// ErrUnknownKey means the key id is not one this Signer accepts, for
	// example a key that has been rotated out.
	ErrUnknownKey = errors.New("signed url key unknown")
	// ErrBadSignature means the signature does not match the claims.
	ErrBadSignature = errors.New("signed url signature invalid")
	// ErrExpired means the signature is valid but the URL has expired.
	ErrExpired = errors.New("signed url expired")
)

// Query parameter names.
const (
	ParamTenant    = "t"
	ParamDevice    = "d"
	ParamExpires   = "e"
	ParamKeyID     = "k"
	ParamSignature = "s"
)

// Limits on what may be signed; Verify rejects longer values before doing
// any cryptography.
const (
	MaxTenantLen   = 128
	MaxDeviceLen   = 256
	MaxArtifactLen = 256
	MaxKeyIDLen    = 32
	// MinSecretLen is the shortest HMAC secret NewSigner accepts.
	MinSecretLen = 32
)

const (
	macDomain = "updraft-signedurl-v1\x00"
	macLen    = sha256.Size
)

// Key is an HMAC secret and the id that names it in URLs. IDs consist of
// ASCII letters, digits, '.', '_' and '-'.
type Key struct {
	ID     string
	Secret []byte
}

// GenerateKey returns a new random key with the given id.
func GenerateKey(id string) (Key, error) {
	if err := checkKeyID(id); err != nil {
		return Key{}, err
	}
	secret := make([]byte, MinSecretLen)
	if _, err := rand.Read(secret); err != nil {
		return Key{}, fmt.Errorf("generate signed url key: %w", err)
	}
	return Key{ID: id, Secret: secret}, nil
}

// Params are what a URL is bound to.
type Params struct {
	Tenant   string
	Device   string
	Artifact string
}

// Claims are what a verified URL grants.
type Claims struct {
	Params
	Expires time.Time // UTC, whole seconds
	KeyID   string
}

// Signer signs with one current key and verifies with any of its keys.
type Signer struct {
	clock   clock.Clock
	current string
	keys    map[string][]byte
}

// NewSigner returns a Signer that signs with current and accepts current
// and every key in accepted. Listing the same key twice is allowed; two
// different secrets under one id are not.
func NewSigner(c clock.Clock, current Key, accepted ...Key) (*Signer, error) {
	s := &Signer{clock: c, current: current.ID, keys: make(map[string][]byte, 1+len(accepted))}
	for _, k := range append([]Key{current}, accepted...) {
		if err := checkKeyID(k.ID); err != nil {
			return nil, err
		}
		if len(k.Secret) < MinSecretLen {
			return nil, fmt.Errorf("signed url key %s: secret is %d bytes, need at least %d", k.ID, len(k.Secret), MinSecretLen)
		}
		if have, ok := s.keys[k.ID]; ok {
			if !hmac.Equal(have, k.Secret) {
				return nil, fmt.Errorf("signed url key %s: listed twice with different secrets", k.ID)
			}
			continue
		}
		s.keys[k.ID] = append([]byte(nil), k.Secret...)
	}
	return s, nil
}

// Sign returns the encoded query (without '?') of a URL for p that is valid
// until expires, truncated to whole seconds.
func (s *Signer) Sign(p Params, expires time.Time) (string, error) {
	if err := checkParams(p); err != nil {
		return "", fmt.Errorf("sign url: %w", err)
	}
	exp := expires.Unix()
	if exp <= 0 {
		return "", fmt.Errorf("sign url: expiry %v is not after 1970", expires)
	}
	sig := mac(s.keys[s.current], s.current, p, exp)
	q := url.Values{
		ParamTenant:    {p.Tenant},
		ParamDevice:    {p.Device},
		ParamExpires:   {strconv.FormatInt(exp, 10)},
		ParamKeyID:     {s.current},
		ParamSignature: {base64.RawURLEncoding.EncodeToString(sig)},
	}
	return q.Encode(), nil
}

// Verify checks a download URL's query for the artifact named by its path
// and returns the claims it grants. Parameters other than the five it
// knows are ignored (proxies and clients may add some). The checks run in
// this order, so the error says how far the URL got: form (ErrMalformed),
// key (ErrUnknownKey), signature (ErrBadSignature), expiry (ErrExpired).
// Only a nil error grants access; the Claims are zero otherwise.
func (s *Signer) Verify(q url.Values, artifact string) (Claims, error) {
	c, sig, err := parse(q, artifact)
	if err != nil {
		return Claims{}, fmt.Errorf("verify url: %w", err)
	}
	secret, ok := s.keys[c.KeyID]
	if !ok {
		return Claims{}, fmt.Errorf("verify url: key %q: %w", c.KeyID, ErrUnknownKey)
	}
	if !hmac.Equal(sig, mac(secret, c.KeyID, c.Params, c.Expires.Unix())) {
		return Claims{}, fmt.Errorf("verify url: %w", ErrBadSignature)
	}
	if now := s.clock.Now(); !now.Before(c.Expires) {
		return Claims{}, fmt.Errorf("verify url: expired at %s: %w", c.Expires.Format(time.RFC3339), ErrExpired)
	}
	return c, nil
}

// parse extracts claims and the raw signature without checking the latter.
func parse(q url.Values, artifact string) (Claims, []byte, error) {
	one := func(name string) (string, error) {
		switch v := q[name]; len(v) {
		case 0:
			return "", fmt.Errorf("missing %s: %w", name, ErrMalformed)
		case 1:
			return v[0], nil
		default:
			return "", fmt.Errorf("%s given %d times: %w", name, len(v), ErrMalformed)
		}
	}
	var c Claims
	var err error
	if c.Tenant, err = one(ParamTenant); err != nil {
		return Claims{}, nil, err
	}
	if c.Device, err = one(ParamDevice); err != nil {
		return Claims{}, nil, err
	}
	c.Artifact = artifact
	if err := checkParams(c.Params); err != nil {
		return Claims{}, nil, err
	}
	if c.KeyID, err = one(ParamKeyID); err != nil {
		return Claims{}, nil, err
	}
	if err := checkKeyID(c.KeyID); err != nil {
		return Claims{}, nil, err
	}
	rawExp, err := one(ParamExpires)
	if err != nil {
		return Claims{}, nil, err
	}
	exp, err := strconv.ParseInt(rawExp, 10, 64)
	// Only the canonical decimal form: no sign, no leading zeros.
	if err != nil || exp <= 0 || strconv.FormatInt(exp, 10) != rawExp {
		return Claims{}, nil, fmt.Errorf("expiry %.24q: %w", rawExp, ErrMalformed)
	}
	c.Expires = time.Unix(exp, 0).UTC()
	rawSig, err := one(ParamSignature)
	if err != nil {
		return Claims{}, nil, err
	}
	if len(rawSig) != base64.RawURLEncoding.EncodedLen(macLen) {
		return Claims{}, nil, fmt.Errorf("signature length %d: %w", len(rawSig), ErrMalformed)
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(rawSig)
	if err != nil || len(sig) != macLen {
		return Claims{}, nil, fmt.Errorf("signature encoding: %w", ErrMalformed)
	}
	return c, sig, nil
}

func checkParams(p Params) error {
	for _, f := range []struct {
		name, v string
		max     int
	}{
		{"tenant", p.Tenant, MaxTenantLen},
		{"device", p.Device, MaxDeviceLen},
		{"artifact", p.Artifact, MaxArtifactLen},
	} {
		if f.v == "" || len(f.v) > f.max {
			return fmt.Errorf("%s must be 1 to %d bytes, got %d: %w", f.name, f.max, len(f.v), ErrMalformed)
		}
	}
	return nil
}

func checkKeyID(id string) error {
	if id == "" || len(id) > MaxKeyIDLen {
		return fmt.Errorf("key id must be 1 to %d characters, got %d: %w", MaxKeyIDLen, len(id), ErrMalformed)
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '.', c == '_', c == '-':
		default:
			return fmt.Errorf("key id %.40q: character %q not allowed: %w", id, c, ErrMalformed)
		}
	}
	return nil
}

// mac computes the signature over an unambiguous encoding of the claims.
func mac(secret []byte, keyID string, p Params, expires int64) []byte {
	m := hmac.New(sha256.New, secret)
	buf := make([]byte, 0, len(macDomain)+4*binary.MaxVarintLen64+len(keyID)+len(p.Tenant)+len(p.Device)+len(p.Artifact)+8)
	buf = append(buf, macDomain...)
	for _, f := range []string{keyID, p.Tenant, p.Device, p.Artifact} {
		buf = binary.AppendUvarint(buf, uint64(len(f)))
		buf = append(buf, f...)
	}
	buf = binary.BigEndian.AppendUint64(buf, uint64(expires))
	m.Write(buf)
	return m.Sum(nil)
}
