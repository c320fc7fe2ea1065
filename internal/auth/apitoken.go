package auth

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// API tokens look like updraft_<id>_<secret>: the prefix lets people and
// secret scanners recognise a leaked token, the id (8 characters of
// [a-z0-9]) names the stored row and may be shown and logged, the secret (32
// characters of [A-Za-z0-9], about 190 bits) is shown once. Only the
// SHA-256 of the secret is stored: it is high-entropy, so a slow KDF would
// add nothing but latency to every API call.
const (
	APITokenPrefix    = "updraft_"
	APITokenIDLen     = 8
	APITokenSecretLen = 32
	apiTokenLen       = len(APITokenPrefix) + APITokenIDLen + 1 + APITokenSecretLen

	apiTokenIDAlphabet     = "abcdefghijklmnopqrstuvwxyz0123456789"
	apiTokenSecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
)

var (
	// ErrMalformedAPIToken means the text is not an Updraft API token.
	ErrMalformedAPIToken = errors.New("malformed api token")
	// ErrAPITokenMismatch means the secret does not match the stored hash.
	ErrAPITokenMismatch = errors.New("api token secret does not match")
)

// NewAPIToken is a freshly generated API token.
type NewAPIToken struct {
	// Token is the full plaintext, to be shown to its owner exactly once.
	Token string
	// ID is the public identifier to store and show in listings.
	ID string
	// SecretHash is what to store: lowercase hex SHA-256 of the secret.
	SecretHash string
}

// GenerateAPIToken makes a new token from crypto/rand. The store must
// refuse a duplicate ID (one in 2.8e12 per pair); the caller then simply
// generates again.
func GenerateAPIToken() (NewAPIToken, error) {
	id, err := randomString(apiTokenIDAlphabet, APITokenIDLen)
	if err != nil {
		return NewAPIToken{}, fmt.Errorf("generate api token: %w", err)
	}
	secret, err := randomString(apiTokenSecretAlphabet, APITokenSecretLen)
	if err != nil {
		return NewAPIToken{}, fmt.Errorf("generate api token: %w", err)
	}
	return NewAPIToken{
		Token:      APITokenPrefix + id + "_" + secret,
		ID:         id,
		SecretHash: HashAPITokenSecret(secret),
	}, nil
}

// ParseAPIToken splits a token into its id and secret, refusing anything
// that is not exactly the generated form.
func ParseAPIToken(token string) (id, secret string, err error) {
	if len(token) != apiTokenLen || token[:len(APITokenPrefix)] != APITokenPrefix || token[len(APITokenPrefix)+APITokenIDLen] != '_' {
		return "", "", ErrMalformedAPIToken
	}
	id = token[len(APITokenPrefix) : len(APITokenPrefix)+APITokenIDLen]
	secret = token[len(APITokenPrefix)+APITokenIDLen+1:]
	if !onlyFrom(id, apiTokenIDAlphabet) || !onlyFrom(secret, apiTokenSecretAlphabet) {
		return "", "", ErrMalformedAPIToken
	}
	return id, secret, nil
}

// ValidAPITokenID reports whether id has the form of a token id, for
// routes that take one (listing, revoking).
func ValidAPITokenID(id string) bool {
	return len(id) == APITokenIDLen && onlyFrom(id, apiTokenIDAlphabet)
}

// HashAPITokenSecret returns the stored form of a secret: its SHA-256 as
// lowercase hex.
func HashAPITokenSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// CheckAPITokenSecret compares secret with a stored hash in constant time.
// It returns nil or ErrAPITokenMismatch.
func CheckAPITokenSecret(secret, storedHash string) error {
	got := HashAPITokenSecret(secret)
	if len(storedHash) != len(got) || subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) != 1 {
		return ErrAPITokenMismatch
	}
	return nil
}

func onlyFrom(s, alphabet string) bool {
	for i := 0; i < len(s); i++ {
		if strings.IndexByte(alphabet, s[i]) < 0 {
			return false
		}
	}
	return true
}
