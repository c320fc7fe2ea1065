package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// Device tokens look like
//
//	udt1.<key id>.<payload>.<mac>
//
// where payload is unpadded URL-safe base64 of a JSON object
// {"t":tenant,"d":device id,"e":epoch,"iat":unix seconds,"exp":unix seconds}
// and mac is unpadded URL-safe base64 of HMAC-SHA256 under the named key
// over everything before the last dot ("udt1.<key id>.<payload>").

// TokenPrefix starts every device token, so logs and secret scanners can
// recognise one.
const TokenPrefix = "udt1."

// DefaultTokenTTL is the device token lifetime used when Issuer.TTL is not
// positive.
const DefaultTokenTTL = 24 * time.Hour

// MinTokenSecretLen is the shortest HMAC secret an Issuer accepts.
const MinTokenSecretLen = 32

// maxTokenLen bounds the tokens Verify looks at; real ones are under 300
// characters.
const maxTokenLen = 1024

var (
	// ErrTokenInvalid means the token is malformed, was not issued with a
	// key this issuer knows, or was altered.
	ErrTokenInvalid = errors.New("invalid device token")
	// ErrTokenExpired means the token is genuine but past its expiry.
	ErrTokenExpired = errors.New("device token expired")
	// ErrTokenRevoked means the token is genuine but its credential epoch
	// is older than the device's current one.
	ErrTokenRevoked = errors.New("device token revoked")
)

// Claims are what a device token asserts.
type Claims struct {
	Tenant   string
	DeviceID string
	// Epoch is the device's credential epoch when the token was issued.
	// The store bumps it on decommissioning or credential revocation, so
	// tokens with an older epoch stop working (see CheckEpoch).
	Epoch int64
	// IssuedAt and Expiry are whole seconds.
	IssuedAt time.Time
	Expiry   time.Time
}

// CheckEpoch fails with ErrTokenRevoked if the token was issued before the
// device's credential epoch moved on to current.
func (c Claims) CheckEpoch(current int64) error {
	if c.Epoch != current {
		return fmt.Errorf("%w: token epoch %d, device epoch %d", ErrTokenRevoked, c.Epoch, current)
	}
	return nil
}

// TokenKey is one HMAC key for device tokens.
type TokenKey struct {
	// ID names the key inside tokens: 1 to 32 characters of [A-Za-z0-9_-].
	ID string
	// Secret is at least MinTokenSecretLen random bytes.
	Secret []byte
}

// GenerateTokenKey returns a key with the given id and 32 random bytes.
func GenerateTokenKey(id string) (TokenKey, error) {
	k := TokenKey{ID: id, Secret: make([]byte, 32)}
	if _, err := rand.Read(k.Secret); err != nil {
		return TokenKey{}, fmt.Errorf("generate token key: %w", err)
	}
	if err := k.validate(); err != nil {
		return TokenKey{}, fmt.Errorf("generate token key: %w", err)
	}
	return k, nil
}

func (k TokenKey) validate() error {
	if strings.Contains(k.ID, ".") || !isName(k.ID, 32) {
		return fmt.Errorf("token key id %q must be 1 to 32 characters of A-Z a-z 0-9 _ -", k.ID)
	}
	if len(k.Secret) < MinTokenSecretLen {
		return fmt.Errorf("token key %q: secret of %d bytes, need at least %d", k.ID, len(k.Secret), MinTokenSecretLen)
	}
	return nil
}

// TokenKeys is a key ring. Current signs new tokens; Current and every key
// in Previous verify. To rotate, make a new Current and move the old one to
// Previous for at least one token lifetime, then drop it.
type TokenKeys struct {
	Current  TokenKey
	Previous []TokenKey
}

// Validate checks every key and that key ids are unique.
func (ks TokenKeys) Validate() error {
	seen := make(map[string]bool, 1+len(ks.Previous))
	for _, k := range append([]TokenKey{ks.Current}, ks.Previous...) {
		if err := k.validate(); err != nil {
			return err
		}
		if seen[k.ID] {
			return fmt.Errorf("token key id %q used twice", k.ID)
		}
		seen[k.ID] = true
	}
	return nil
}

func (ks TokenKeys) lookup(id string) (TokenKey, bool) {
	if ks.Current.ID == id {
		return ks.Current, true
	}
	for _, k := range ks.Previous {
		if k.ID == id {
			return k, true
		}
	}
	return TokenKey{}, false
}

// Issuer issues and verifies device tokens. Its fields must not change
// while it is in use; it is then safe for concurrent use.
type Issuer struct {
	Keys  TokenKeys
	Clock clock.Clock
	// TTL is the token lifetime; DefaultTokenTTL if not positive.
	TTL time.Duration
}

type tokenPayload struct {
	Tenant   string `json:"t"`
	DeviceID string `json:"d"`
	Epoch    int64  `json:"e"`
	IssuedAt int64  `json:"iat"`
	Expiry   int64  `json:"exp"`
}

// Issue returns a token for c.Tenant, c.DeviceID and c.Epoch, valid from
// now for the issuer's TTL, and its expiry. c.IssuedAt and c.Expiry are
// ignored.
func (is *Issuer) Issue(c Claims) (string, time.Time, error) {
	if err := is.Keys.Validate(); err != nil {
		return "", time.Time{}, fmt.Errorf("issue device token: %w", err)
	}
	if is.Clock == nil {
		return "", time.Time{}, errors.New("issue device token: issuer has no clock")
	}
	if !isName(c.Tenant, MaxNameLen) {
		return "", time.Time{}, fmt.Errorf("issue device token: tenant %q must be 1 to %d characters of A-Z a-z 0-9 . _ -", c.Tenant, MaxNameLen)
	}
	if !isName(c.DeviceID, MaxDeviceIDLen) {
		return "", time.Time{}, fmt.Errorf("issue device token: device id %q must be 1 to %d characters of A-Z a-z 0-9 . _ -", c.DeviceID, MaxDeviceIDLen)
	}
	if c.Epoch < 0 {
		return "", time.Time{}, fmt.Errorf("issue device token: negative epoch %d", c.Epoch)
	}
	ttl := is.TTL
	if ttl <= 0 {
		ttl = DefaultTokenTTL
	}
	ttl = ttl.Truncate(time.Second)
	if ttl < time.Second {
		ttl = time.Second
	}
	iat := is.Clock.Now().Truncate(time.Second)
	exp := iat.Add(ttl)
	payload, err := json.Marshal(tokenPayload{
		Tenant: c.Tenant, DeviceID: c.DeviceID, Epoch: c.Epoch,
		IssuedAt: iat.Unix(), Expiry: exp.Unix(),
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue device token: %w", err)
	}
	signed := TokenPrefix + is.Keys.Current.ID + "." + base64.RawURLEncoding.EncodeToString(payload)
	mac := tokenMAC(is.Keys.Current.Secret, signed)
	return signed + "." + base64.RawURLEncoding.EncodeToString(mac), exp, nil
}

// Verify checks a token's key, MAC and expiry and returns its claims. A
// token that is malformed, altered or signed with an unknown key gives
// ErrTokenInvalid; a genuine one past its expiry gives ErrTokenExpired
// together with its claims, so a renewal handler can tell which device it
// belonged to. The caller still has to compare Claims.Epoch with the device's current
// epoch (Claims.CheckEpoch).
func (is *Issuer) Verify(token string) (Claims, error) {
	if is.Clock == nil {
		return Claims{}, errors.New("verify device token: issuer has no clock")
	}
	if len(token) > maxTokenLen || !strings.HasPrefix(token, TokenPrefix) {
		return Claims{}, ErrTokenInvalid
	}
	// The base64 decoder skips CR and LF; refusing every character outside
	// the token alphabet keeps each genuine token's text unique.
	for i := 0; i < len(token); i++ {
		if !isTokenChar(token[i]) {
			return Claims{}, ErrTokenInvalid
		}
	}
	lastDot := strings.LastIndexByte(token, '.')
	if lastDot < len(TokenPrefix) {
		return Claims{}, ErrTokenInvalid
	}
	signed, macText := token[:lastDot], token[lastDot+1:]
	kid, payloadText, ok := strings.Cut(signed[len(TokenPrefix):], ".")
	if !ok || strings.IndexByte(payloadText, '.') >= 0 {
		return Claims{}, ErrTokenInvalid
	}
	key, ok := is.Keys.lookup(kid)
	if !ok || len(key.Secret) < MinTokenSecretLen {
		return Claims{}, ErrTokenInvalid
	}
	mac, err := base64.RawURLEncoding.Strict().DecodeString(macText)
	if err != nil || !hmac.Equal(mac, tokenMAC(key.Secret, signed)) {
		return Claims{}, ErrTokenInvalid
	}
	// The payload is authentic from here on; the checks below only guard
	// against a key shared with a buggy issuer.
	raw, err := base64.RawURLEncoding.Strict().DecodeString(payloadText)
	if err != nil {
		return Claims{}, ErrTokenInvalid
	}
	var p tokenPayload
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil || dec.More() {
		return Claims{}, ErrTokenInvalid
	}
	if !isName(p.Tenant, MaxNameLen) || !isName(p.DeviceID, MaxDeviceIDLen) || p.Epoch < 0 || p.Expiry <= p.IssuedAt {
		return Claims{}, ErrTokenInvalid
	}
	c := Claims{
		Tenant: p.Tenant, DeviceID: p.DeviceID, Epoch: p.Epoch,
		IssuedAt: time.Unix(p.IssuedAt, 0).UTC(), Expiry: time.Unix(p.Expiry, 0).UTC(),
	}
	if !is.Clock.Now().Before(c.Expiry) {
		return c, ErrTokenExpired
	}
	return c, nil
}

func isTokenChar(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '-' || b == '_' || b == '.'
}

func tokenMAC(secret []byte, signed string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(signed))
	return m.Sum(nil)
}
