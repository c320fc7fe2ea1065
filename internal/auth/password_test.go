package auth

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps argon2 fast in tests; the encoding and comparison paths are
// the same as with production parameters.
func cheap() Argon2Params {
	return Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

func TestHashAndVerifyPassword(t *testing.T) {
	t.Parallel()
	const pw = "correct horse battery staple"
	h, err := HashPassword(pw, cheap())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(h, "$argon2id$v=19$m=64,t=1,p=1$") {
		t.Errorf("hash %q is not an argon2id PHC string with the given parameters", h)
	}
	if strings.Contains(h, pw) {
		t.Error("hash contains the password")
	}
	h2, err := HashPassword(pw, cheap())
	if err != nil {
		t.Fatal(err)
	}
	if h == h2 {
		t.Error("two hashes of one password are equal: salt is not random")
	}
	cases := []struct {
		name string
		pw   string
		want error
	}{
		{"right", pw, nil},
		{"wrong", "correct horse battery stapler", ErrPasswordMismatch},
		{"case", strings.ToUpper(pw), ErrPasswordMismatch},
		{"empty", "", ErrPasswordMismatch},
		{"prefix", pw[:12], ErrPasswordMismatch},
	}
	for _, tc := range cases {
		if err := VerifyPassword(tc.pw, h); !errors.Is(err, tc.want) {
			t.Errorf("%s: VerifyPassword = %v, want %v", tc.name, err, tc.want)
		}
	}
}

// TestVerifyPasswordKnownAnswer pins the PHC encoding against a hash made
// by the reference argon2 CLI:
//
//	echo -n 'correct horse battery staple' | argon2 somesaltsomesalt -id -t 1 -k 64 -p 1 -l 32 -e
func TestVerifyPasswordKnownAnswer(t *testing.T) {
	t.Parallel()
	const h = "$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0"
	if err := VerifyPassword("correct horse battery staple", h); err != nil {
		t.Fatalf("reference hash refused: %v", err)
	}
	if err := VerifyPassword("correct horse battery stapl", h); !errors.Is(err, ErrPasswordMismatch) {
		t.Fatalf("wrong password: %v", err)
	}
	if NeedsRehash(h, cheap()) {
		t.Error("NeedsRehash for identical parameters")
	}
	// The same with the production parameters:
	//	... | argon2 somesaltsomesalt -id -t 2 -k 19456 -p 1 -l 32 -e
	const prod = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$ISO7kkvFzh19GM8qB7patN3C3Y9HHsjlVTfEZ9T600Y"
	if err := VerifyPassword("correct horse battery staple", prod); err != nil {
		t.Fatalf("reference hash with production parameters refused: %v", err)
	}
	if NeedsRehash(prod, DefaultArgon2Params()) {
		t.Error("default parameters differ from the reference hash's")
	}
}

func TestVerifyPasswordMalformed(t *testing.T) {
	t.Parallel()
	good, err := HashPassword("a long enough password", cheap())
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$")
	with := func(i int, v string) string {
		p := append([]string{}, parts...)
		p[i] = v
		return strings.Join(p, "$")
	}
	cases := map[string]string{
		"empty":             "",
		"bcrypt":            "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy",
		"argon2i":           with(1, "argon2i"),
		"version 16":        with(2, "v=16"),
		"missing version":   strings.Replace(good, "$v=19", "", 1),
		"param order":       with(3, "t=1,m=64,p=1"),
		"extra param":       with(3, "m=64,t=1,p=1,k=2"),
		"leading zero":      with(3, "m=064,t=1,p=1"),
		"negative":          with(3, "m=64,t=-1,p=1"),
		"zero time":         with(3, "m=64,t=0,p=1"),
		"zero threads":      with(3, "m=64,t=1,p=0"),
		"huge memory":       with(3, "m=4294967295,t=1,p=1"),
		"threads overflow":  with(3, "m=4096,t=1,p=256"),
		"memory below 8p":   with(3, "m=8,t=1,p=2"),
		"padded salt":       with(4, parts[4]+"=="),
		"salt not base64":   with(4, "!!!!!!!!!!!!"),
		"short salt":        with(4, "AAAA"),
		"short key":         with(5, "AAAA"),
		"newline in key":    with(5, parts[5][:10]+"\n"+parts[5][10:]),
		"trailing segment":  good + "$",
		"no leading dollar": strings.TrimPrefix(good, "$"),
		"too long":          good + strings.Repeat("A", 600),
	}
	for name, h := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if err := VerifyPassword("a long enough password", h); !errors.Is(err, ErrMalformedHash) {
				t.Errorf("VerifyPassword(%q) = %v, want ErrMalformedHash", h, err)
			}
			if !NeedsRehash(h, cheap()) {
				t.Errorf("NeedsRehash(%q) = false for a malformed hash", h)
			}
		})
	}
}

func TestNeedsRehash(t *testing.T) {
	t.Parallel()
	h, err := HashPassword("a long enough password", cheap())
	if err != nil {
		t.Fatal(err)
	}
	mod := func(f func(*Argon2Params)) Argon2Params {
		p := cheap()
		f(&p)
		return p
	}
	cases := []struct {
		name string
		p    Argon2Params
		want bool
	}{
		{"same", cheap(), false},
		{"more memory", mod(func(p *Argon2Params) { p.Memory = 128 }), true},
		{"more time", mod(func(p *Argon2Params) { p.Time = 2 }), true},
		{"more threads", mod(func(p *Argon2Params) { p.Threads = 2 }), true},
		{"longer salt", mod(func(p *Argon2Params) { p.SaltLen = 32 }), true},
		{"longer key", mod(func(p *Argon2Params) { p.KeyLen = 64 }), true},
		{"defaults", DefaultArgon2Params(), true},
	}
	for _, tc := range cases {
		if got := NeedsRehash(h, tc.p); got != tc.want {
			t.Errorf("%s: NeedsRehash = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestArgon2ParamsValidate(t *testing.T) {
	t.Parallel()
	if err := DefaultArgon2Params().Validate(); err != nil {
		t.Errorf("defaults invalid: %v", err)
	}
	if p := DefaultArgon2Params(); p.Memory < 19*1024 || p.Time < 2 {
		t.Errorf("defaults %+v are below the OWASP minimum", p)
	}
	bad := []Argon2Params{
		{},
		{Memory: 64, Time: 1, Threads: 0, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 0, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 7, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 2 << 20, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 4, KeyLen: 32},
		{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 8},
	}
	for _, p := range bad {
		if err := p.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil", p)
		}
		if _, err := HashPassword("a long enough password", p); err == nil {
			t.Errorf("HashPassword with %+v succeeded", p)
		}
	}
}

func TestPasswordPolicy(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		pw   string
		ok   bool
		msg  string
	}{
		{"12 ascii", "abcdefghijkl", true, ""},
		{"11 ascii", "abcdefghijk", false, "at least 12 characters"},
		{"empty", "", false, "at least 12"},
		{"12 runes of 2 bytes", strings.Repeat("é", 12), true, ""},
		{"11 runes, 22 bytes", strings.Repeat("é", 11), false, "got 11"},
		{"256", strings.Repeat("a", 256), true, ""},
		{"257", strings.Repeat("a", 257), false, "at most 256"},
		{"pass phrase", "four words with spaces", true, ""},
		{"newline", "abcdefghijkl\n", false, "control"},
		{"nul", "abcdefghijkl\x00", false, "control"},
		{"c1 control", "abcdefghijkl\u0085", false, "control"},
		{"invalid utf-8", "abcdefghijkl\xff", false, "utf-8"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := CheckPasswordPolicy(tc.pw)
			if tc.ok {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrPasswordPolicy) || !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %v, want ErrPasswordPolicy mentioning %q", err, tc.msg)
			}
			if _, herr := HashPassword(tc.pw, cheap()); !errors.Is(herr, ErrPasswordPolicy) {
				t.Errorf("HashPassword accepted a password the policy refuses: %v", herr)
			}
		})
	}
}

func TestGenerateOneTimePassword(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	symbols := map[rune]bool{}
	for range 100 {
		pw, err := GenerateOneTimePassword()
		if err != nil {
			t.Fatal(err)
		}
		groups := strings.Split(pw, "-")
		if len(groups) != otpGroups || len(pw) != otpGroups*otpGroupLen+otpGroups-1 {
			t.Fatalf("%q is not %d groups of %d", pw, otpGroups, otpGroupLen)
		}
		for _, g := range groups {
			if len(g) != otpGroupLen {
				t.Fatalf("%q has a group of %d", pw, len(g))
			}
			for _, r := range g {
				if !strings.ContainsRune(otpAlphabet, r) {
					t.Fatalf("%q contains %q", pw, r)
				}
				symbols[r] = true
			}
		}
		if strings.ContainsAny(pw, "0o1li") {
			t.Fatalf("%q contains a look-alike character", pw)
		}
		if err := CheckPasswordPolicy(pw); err != nil {
			t.Fatalf("one-time password fails the policy: %v", err)
		}
		if seen[pw] {
			t.Fatalf("duplicate %q", pw)
		}
		seen[pw] = true
	}
	if len(symbols) != len(otpAlphabet) {
		t.Errorf("only %d of %d symbols drawn in 2500 characters", len(symbols), len(otpAlphabet))
	}
}

func TestSimulateVerifyFallsBackOnBadParams(t *testing.T) {
	t.Parallel()
	// argon2 panics on zero passes or threads; SimulateVerify must fall
	// back to the defaults rather than crash a sign-in handler.
	SimulateVerify("x", Argon2Params{})
	SimulateVerify("x", cheap())
}

func FuzzParsePHC(f *testing.F) {
	f.Add("$argon2id$v=19$m=64,t=1,p=1$c29tZXNhbHRzb21lc2FsdA$XLeLg+p+JNgiFrQNsye8eofeXr30s6P3j/ke/9xgk/0")
	f.Fuzz(func(t *testing.T, s string) {
		h, err := parsePHC(s)
		if err != nil {
			if !errors.Is(err, ErrMalformedHash) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		if err := h.params.Validate(); err != nil {
			t.Fatalf("accepted out-of-bounds parameters %+v: %v", h.params, err)
		}
		if int(h.params.SaltLen) != len(h.salt) || int(h.params.KeyLen) != len(h.key) {
			t.Fatalf("lengths disagree: %+v", h.params)
		}
	})
}
