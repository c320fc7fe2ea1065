package identity

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

type tokenSetup struct {
	clk    *clock.Fake
	issuer *Issuer
	claims Claims
}

func setupTokens(t *testing.T) tokenSetup {
	t.Helper()
	k, err := GenerateTokenKey("k2")
	if err != nil {
		t.Fatal(err)
	}
	old, err := GenerateTokenKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	clk := clock.NewFake(testNow())
	return tokenSetup{
		clk:    clk,
		issuer: &Issuer{Keys: TokenKeys{Current: k, Previous: []TokenKey{old}}, Clock: clk, TTL: time.Hour},
		claims: Claims{Tenant: "default", DeviceID: "9f86d081884c7d659a2feaa0c55ad015", Epoch: 3},
	}
}

func TestIssueAndVerify(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	s.clk.Set(testNow().Add(400 * time.Millisecond))
	tok, exp, err := s.issuer.Issue(s.claims)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tok, TokenPrefix+"k2.") {
		t.Errorf("token %q lacks prefix and key id", tok)
	}
	if !exp.Equal(testNow().Add(time.Hour)) {
		t.Errorf("expiry %v, want %v", exp, testNow().Add(time.Hour))
	}
	c, err := s.issuer.Verify(tok)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	want := s.claims
	want.IssuedAt, want.Expiry = testNow(), testNow().Add(time.Hour)
	if c != want {
		t.Errorf("claims %+v, want %+v", c, want)
	}
	if err := c.CheckEpoch(3); err != nil {
		t.Errorf("CheckEpoch(3): %v", err)
	}
	if err := c.CheckEpoch(4); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("CheckEpoch(4) = %v, want ErrTokenRevoked", err)
	}
}

func TestVerifyExpiry(t *testing.T) {
	t.Parallel()
	cases := []struct {
		after   time.Duration
		expired bool
	}{
		{0, false},
		{time.Hour - time.Second, false},
		{time.Hour, true},
		{30 * 24 * time.Hour, true},
	}
	for _, tc := range cases {
		t.Run(tc.after.String(), func(t *testing.T) {
			t.Parallel()
			s := setupTokens(t)
			tok, _, err := s.issuer.Issue(s.claims)
			if err != nil {
				t.Fatal(err)
			}
			s.clk.Advance(tc.after)
			c, err := s.issuer.Verify(tok)
			if tc.expired {
				if !errors.Is(err, ErrTokenExpired) {
					t.Fatalf("got %v, want ErrTokenExpired", err)
				}
				if c.DeviceID != s.claims.DeviceID {
					t.Errorf("expired token lost its claims: %+v", c)
				}
			} else if err != nil {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestTokenKeyRotation(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	old := &Issuer{Keys: TokenKeys{Current: s.issuer.Keys.Previous[0]}, Clock: s.clk, TTL: time.Hour}
	tok, _, err := old.Issue(s.claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.issuer.Verify(tok); err != nil {
		t.Errorf("token from previous key refused: %v", err)
	}
	dropped := &Issuer{Keys: TokenKeys{Current: s.issuer.Keys.Current}, Clock: s.clk}
	if _, err := dropped.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("token from dropped key: got %v, want ErrTokenInvalid", err)
	}
	sameID, err := GenerateTokenKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	impostor := &Issuer{Keys: TokenKeys{Current: sameID}, Clock: s.clk}
	if _, err := impostor.Verify(tok); !errors.Is(err, ErrTokenInvalid) {
		t.Errorf("token verified under a different secret with the same id: %v", err)
	}
}

func TestVerifyRefusesAlteredTokens(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	tok, _, err := s.issuer.Issue(s.claims)
	if err != nil {
		t.Fatal(err)
	}
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
	for i := range len(tok) {
		for _, r := range []byte{alphabet[(strings.IndexByte(alphabet, tok[i])+1)%len(alphabet)], '.', '='} {
			if r == tok[i] {
				continue
			}
			altered := tok[:i] + string(r) + tok[i+1:]
			if _, err := s.issuer.Verify(altered); !errors.Is(err, ErrTokenInvalid) {
				t.Fatalf("altered token %q (position %d): got %v, want ErrTokenInvalid", altered, i, err)
			}
		}
	}
}

func TestVerifyRefusesMalformedTokens(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	tok, _, err := s.issuer.Issue(s.claims)
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(tok, ".")
	key := s.issuer.Keys.Current
	forge := func(payload string) string {
		signed := TokenPrefix + key.ID + "." + base64.RawURLEncoding.EncodeToString([]byte(payload))
		m := hmac.New(sha256.New, key.Secret)
		m.Write([]byte(signed))
		return signed + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	cases := map[string]string{
		"empty":              "",
		"prefix only":        TokenPrefix,
		"prefix and dot":     TokenPrefix + ".",
		"no mac":             strings.Join(parts[:3], "."),
		"extra part":         tok + ".x",
		"other prefix":       "udt2" + tok[4:],
		"bearer jwt":         "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln",
		"padded mac":         tok + "=",
		"inner newline":      tok[:20] + "\r\n" + tok[20:],
		"inner space":        tok[:20] + " " + tok[20:],
		"empty mac":          strings.Join(parts[:3], ".") + ".",
		"unknown key":        strings.Replace(tok, ".k2.", ".k9.", 1),
		"too long":           tok + strings.Repeat("A", maxTokenLen),
		"mac over other key": strings.Join(append(parts[:3:3], base64.RawURLEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))), "."),
		"payload not json":   forge("not json"),
		"payload unknown":    forge(`{"t":"default","d":"dev","e":0,"iat":1,"exp":2,"x":1}`),
		"payload no device":  forge(`{"t":"default","d":"","e":0,"iat":1,"exp":2}`),
		"payload exp<=iat":   forge(`{"t":"default","d":"dev","e":0,"iat":2,"exp":2}`),
		"payload neg epoch":  forge(`{"t":"default","d":"dev","e":-1,"iat":1,"exp":2}`),
		"payload trailing":   forge(`{"t":"default","d":"dev","e":0,"iat":1,"exp":9999999999} {}`),
	}
	for name, in := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if _, err := s.issuer.Verify(in); !errors.Is(err, ErrTokenInvalid) {
				t.Errorf("Verify(%q) = %v, want ErrTokenInvalid", in, err)
			}
		})
	}
	// The forge helper itself must produce tokens Verify accepts, or the
	// payload cases above prove nothing.
	if _, err := s.issuer.Verify(forge(`{"t":"default","d":"dev","e":0,"iat":1,"exp":9999999999}`)); err != nil {
		t.Fatalf("well-formed forged payload refused: %v", err)
	}
}

func TestIssueRefuses(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	short := TokenKey{ID: "s", Secret: make([]byte, MinTokenSecretLen-1)}
	good := s.issuer.Keys.Current
	cases := []struct {
		name   string
		issuer *Issuer
		claims Claims
	}{
		{"short secret", &Issuer{Keys: TokenKeys{Current: short}, Clock: s.clk}, s.claims},
		{"short previous secret", &Issuer{Keys: TokenKeys{Current: good, Previous: []TokenKey{short}}, Clock: s.clk}, s.claims},
		{"key id with dot", &Issuer{Keys: TokenKeys{Current: TokenKey{ID: "a.b", Secret: good.Secret}}, Clock: s.clk}, s.claims},
		{"empty key id", &Issuer{Keys: TokenKeys{Current: TokenKey{Secret: good.Secret}}, Clock: s.clk}, s.claims},
		{"duplicate key id", &Issuer{Keys: TokenKeys{Current: good, Previous: []TokenKey{good}}, Clock: s.clk}, s.claims},
		{"no clock", &Issuer{Keys: TokenKeys{Current: good}}, s.claims},
		{"no tenant", s.issuer, Claims{DeviceID: "d"}},
		{"no device", s.issuer, Claims{Tenant: "default"}},
		{"bad device", s.issuer, Claims{Tenant: "default", DeviceID: "a.b/c"}},
		{"negative epoch", s.issuer, Claims{Tenant: "default", DeviceID: "d", Epoch: -1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if tok, _, err := tc.issuer.Issue(tc.claims); err == nil {
				t.Errorf("issued %q", tok)
			}
		})
	}
	if _, err := (&Issuer{Keys: TokenKeys{Current: good}}).Verify("udt1.x.y.z"); err == nil || errors.Is(err, ErrTokenInvalid) {
		t.Errorf("verify without a clock: got %v, want a configuration error", err)
	}
}

func TestIssueDefaultTTL(t *testing.T) {
	t.Parallel()
	s := setupTokens(t)
	s.issuer.TTL = 0
	_, exp, err := s.issuer.Issue(s.claims)
	if err != nil {
		t.Fatal(err)
	}
	if got := exp.Sub(testNow()); got != DefaultTokenTTL {
		t.Errorf("lifetime %v, want %v", got, DefaultTokenTTL)
	}
}

func BenchmarkVerifyToken(b *testing.B) {
	k, err := GenerateTokenKey("k1")
	if err != nil {
		b.Fatal(err)
	}
	is := &Issuer{Keys: TokenKeys{Current: k}, Clock: clock.NewFake(testNow())}
	tok, _, err := is.Issue(Claims{Tenant: "default", DeviceID: "9f86d081884c7d659a2feaa0c55ad015", Epoch: 1})
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := is.Verify(tok); err != nil {
			b.Fatal(err)
		}
	}
}
