package auth

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
)

// Password length limits, in characters (Unicode code points).
const (
	MinPasswordLen = 12
	MaxPasswordLen = 256
)

var (
	// ErrPasswordPolicy means a new password does not meet the policy; the
	// wrapped message says which rule and is safe to show to the user.
	ErrPasswordPolicy = errors.New("password does not meet the policy")
	// ErrPasswordMismatch means the password is wrong.
	ErrPasswordMismatch = errors.New("wrong password")
	// ErrMalformedHash means a stored hash is not an argon2id PHC string
	// this package can verify.
	ErrMalformedHash = errors.New("malformed password hash")
)

// Argon2Params are the argon2id cost parameters. They are recorded in each
// hash, so changing them only affects new hashes; NeedsRehash tells when an
// old one should be replaced at the next successful sign-in.
type Argon2Params struct {
	// Memory in KiB.
	Memory uint32
	// Time is the number of passes.
	Time uint32
	// Threads is the degree of parallelism.
	Threads uint8
	// SaltLen and KeyLen are in bytes.
	SaltLen uint32
	KeyLen  uint32
}

// Bounds on parameters, applied both to configured parameters and to those
// read back from stored hashes, so a corrupted row cannot make one
// verification take gigabytes.
const (
	maxArgonMemory  = 1 << 20 // KiB: 1 GiB
	maxArgonTime    = 64
	minArgonSaltLen = 8
	maxArgonSaltLen = 64
	minArgonKeyLen  = 16
	maxArgonKeyLen  = 64
)

// DefaultArgon2Params returns the production parameters: OWASP's argon2id
// recommendation of 19 MiB, 2 passes, 1 thread, with a 16-byte salt and a
// 32-byte key. About 20-40 ms per hash on a current server core, and small
// enough in memory for a Raspberry-class host signing in a few users at once.
func DefaultArgon2Params() Argon2Params {
	return Argon2Params{Memory: 19 * 1024, Time: 2, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Validate checks that p is within sane bounds.
func (p Argon2Params) Validate() error {
	switch {
	case p.Threads < 1:
		return errors.New("argon2 threads must be at least 1")
	case p.Time < 1 || p.Time > maxArgonTime:
		return fmt.Errorf("argon2 time must be 1 to %d", maxArgonTime)
	case p.Memory < 8*uint32(p.Threads) || p.Memory > maxArgonMemory:
		return fmt.Errorf("argon2 memory must be %d to %d KiB", 8*uint32(p.Threads), maxArgonMemory)
	case p.SaltLen < minArgonSaltLen || p.SaltLen > maxArgonSaltLen:
		return fmt.Errorf("argon2 salt length must be %d to %d bytes", minArgonSaltLen, maxArgonSaltLen)
	case p.KeyLen < minArgonKeyLen || p.KeyLen > maxArgonKeyLen:
		return fmt.Errorf("argon2 key length must be %d to %d bytes", minArgonKeyLen, maxArgonKeyLen)
	}
	return nil
}

// CheckPasswordPolicy reports whether password may be set: 12 to 256
// characters of valid UTF-8 without control characters. Spaces and any
// other printable characters are allowed, so pass phrases work.
func CheckPasswordPolicy(password string) error {
	if !utf8.ValidString(password) {
		return fmt.Errorf("%w: not valid utf-8", ErrPasswordPolicy)
	}
	n := utf8.RuneCountInString(password)
	if n < MinPasswordLen {
		return fmt.Errorf("%w: at least %d characters are required, got %d", ErrPasswordPolicy, MinPasswordLen, n)
	}
	if n > MaxPasswordLen {
		return fmt.Errorf("%w: at most %d characters are allowed, got %d", ErrPasswordPolicy, MaxPasswordLen, n)
	}
	for _, r := range password {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return fmt.Errorf("%w: control characters are not allowed", ErrPasswordPolicy)
		}
	}
	return nil
}

// HashPassword checks password against the policy and returns its argon2id
// hash as a PHC string: $argon2id$v=19$m=<KiB>,t=<passes>,p=<threads>$<salt>$<key>,
// salt and key in unpadded standard base64.
func HashPassword(password string, p Argon2Params) (string, error) {
	if err := CheckPasswordPolicy(password); err != nil {
		return "", err
	}
	if err := p.Validate(); err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	salt := make([]byte, p.SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return "", fmt.Errorf("hash password: read salt: %w", err)
	}
	key := argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s",
		argon2.Version, p.Memory, p.Time, p.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// VerifyPassword checks password against a stored PHC hash in constant
// time. It returns nil, ErrPasswordMismatch, or an error wrapping
// ErrMalformedHash.
func VerifyPassword(password, encoded string) error {
	h, err := parsePHC(encoded)
	if err != nil {
		return err
	}
	key := argon2.IDKey([]byte(password), h.salt, h.params.Time, h.params.Memory, h.params.Threads, h.params.KeyLen)
	if subtle.ConstantTimeCompare(key, h.key) != 1 {
		return ErrPasswordMismatch
	}
	return nil
}

// NeedsRehash reports whether a stored hash should be replaced by a new
// hash with parameters p: it is malformed, or any of its parameters differ.
// Call it after a successful VerifyPassword, when the plaintext is at hand.
func NeedsRehash(encoded string, p Argon2Params) bool {
	h, err := parsePHC(encoded)
	return err != nil || h.params != p
}

// SimulateVerify spends the time of one verification with parameters p and
// discards the result. Sign-in handlers call it when the user does not
// exist, so response times do not reveal which user names are taken.
func SimulateVerify(password string, p Argon2Params) {
	if p.Validate() != nil {
		p = DefaultArgon2Params()
	}
	salt := make([]byte, p.SaltLen)
	argon2.IDKey([]byte(password), salt, p.Time, p.Memory, p.Threads, p.KeyLen)
}

type phcHash struct {
	params Argon2Params
	salt   []byte
	key    []byte
}

// parsePHC strictly parses the form HashPassword writes.
func parsePHC(s string) (phcHash, error) {
	bad := func(why string) (phcHash, error) {
		return phcHash{}, fmt.Errorf("%w: %s", ErrMalformedHash, why)
	}
	if len(s) > 512 {
		return bad("too long")
	}
	parts := strings.Split(s, "$")
	// "", "argon2id", "v=19", "m=..,t=..,p=..", salt, key
	if len(parts) != 6 || parts[0] != "" {
		return bad("not a phc string")
	}
	if parts[1] != "argon2id" {
		return bad(fmt.Sprintf("algorithm %q, want argon2id", parts[1]))
	}
	if parts[2] != "v="+strconv.Itoa(argon2.Version) {
		return bad(fmt.Sprintf("version %q, want v=%d", parts[2], argon2.Version))
	}
	fields := strings.Split(parts[3], ",")
	if len(fields) != 3 {
		return bad("parameters must be m=,t=,p=")
	}
	var vals [3]uint64
	for i, name := range []string{"m=", "t=", "p="} {
		v, ok := strings.CutPrefix(fields[i], name)
		if !ok || v == "" || (len(v) > 1 && v[0] == '0') {
			return bad("parameters must be m=,t=,p=")
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil {
			return bad("parameter " + name + " is not a number")
		}
		vals[i] = n
	}
	if vals[2] > 255 {
		return bad("too many threads")
	}
	salt, err := base64.RawStdEncoding.Strict().DecodeString(parts[4])
	if err != nil {
		return bad("salt is not unpadded base64")
	}
	key, err := base64.RawStdEncoding.Strict().DecodeString(parts[5])
	if err != nil {
		return bad("key is not unpadded base64")
	}
	h := phcHash{
		params: Argon2Params{
			Memory: uint32(vals[0]), Time: uint32(vals[1]), Threads: uint8(vals[2]),
			SaltLen: uint32(len(salt)), KeyLen: uint32(len(key)),
		},
		salt: salt,
		key:  key,
	}
	if err := h.params.Validate(); err != nil {
		return bad(err.Error())
	}
	// The base64 decoder skips CR and LF; re-encoding catches them.
	if base64.RawStdEncoding.EncodeToString(salt) != parts[4] || base64.RawStdEncoding.EncodeToString(key) != parts[5] {
		return bad("salt or key is not canonical base64")
	}
	return h, nil
}

// One-time passwords are five groups of five characters from an alphabet
// without look-alikes (no 0/o, 1/l/i): 31 symbols, about 124 bits.
const (
	otpAlphabet = "abcdefghjkmnpqrstuvwxyz23456789"
	otpGroups   = 5
	otpGroupLen = 5
)

// GenerateOneTimePassword returns a random password for the first admin
// user, meant to be typed once and changed: for example
// "k7mqz-x3vtr-9hnwa-pe4cf-2ujd8". It meets the password policy.
func GenerateOneTimePassword() (string, error) {
	s, err := randomString(otpAlphabet, otpGroups*otpGroupLen)
	if err != nil {
		return "", fmt.Errorf("one-time password: %w", err)
	}
	var b strings.Builder
	for i := range otpGroups {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(s[i*otpGroupLen : (i+1)*otpGroupLen])
	}
	return b.String(), nil
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
