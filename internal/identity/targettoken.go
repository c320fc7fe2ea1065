package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
)

// Target token lengths. Generated tokens have TargetTokenLen characters;
// operator-chosen ones (hawkBit allows up to 128) must have at least
// MinTargetTokenLen.
const (
	TargetTokenLen    = 32
	MinTargetTokenLen = 16
	MaxTargetTokenLen = 128
)

const alphanumeric = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"

// GenerateTargetToken returns a new per-device target token: 32 characters
// of [A-Za-z0-9] from crypto/rand, about 190 bits. It is shown once; store
// HashTargetToken of it.
func GenerateTargetToken() (string, error) {
	return randomString(alphanumeric, TargetTokenLen)
}

// ValidateTargetToken checks an operator-chosen target token: 16 to 128
// characters of printable ASCII without spaces.
func ValidateTargetToken(token string) error {
	if len(token) < MinTargetTokenLen || len(token) > MaxTargetTokenLen {
		return fmt.Errorf("target token must be %d to %d characters", MinTargetTokenLen, MaxTargetTokenLen)
	}
	for i := 0; i < len(token); i++ {
		if token[i] <= 0x20 || token[i] >= 0x7f {
			return fmt.Errorf("target token must be printable ascii without spaces")
		}
	}
	return nil
}

// HashTargetToken returns the storage form of a target token: its SHA-256
// as lowercase hex. A slow KDF is unnecessary because generated tokens are
// high-entropy and lookups sit on the device hot path.
func HashTargetToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// CheckTargetToken reports whether token hashes to storedHash, comparing in
// constant time.
func CheckTargetToken(token, storedHash string) bool {
	got := HashTargetToken(token)
	return len(storedHash) == len(got) && subtle.ConstantTimeCompare([]byte(got), []byte(storedHash)) == 1
}

// randomString draws n characters uniformly from alphabet (at most 256
// characters) by rejection sampling.
func randomString(alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	var buf [64]byte
	for len(out) < n {
		if _, err := rand.Read(buf[:]); err != nil {
			return "", fmt.Errorf("read random: %w", err)
		}
		for _, b := range buf {
			if int(b) >= limit {
				continue
			}
			out = append(out, alphabet[int(b)%len(alphabet)])
			if len(out) == n {
				break
			}
		}
	}
	return string(out), nil
}
