package identity

import (
	"strings"
	"testing"
)

func TestGenerateTargetToken(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	counts := map[rune]int{}
	const n = 200
	for range n {
		tok, err := GenerateTargetToken()
		if err != nil {
			t.Fatal(err)
		}
		if len(tok) != TargetTokenLen {
			t.Fatalf("token %q has %d characters", tok, len(tok))
		}
		for _, r := range tok {
			if !strings.ContainsRune(alphanumeric, r) {
				t.Fatalf("token %q has %q", tok, r)
			}
			counts[r]++
		}
		if seen[tok] {
			t.Fatalf("duplicate token %q", tok)
		}
		seen[tok] = true
		if err := ValidateTargetToken(tok); err != nil {
			t.Errorf("generated token fails validation: %v", err)
		}
	}
	// 6400 draws over 62 symbols: every symbol should appear; a modulo
	// or alphabet bug that drops symbols shows up here.
	if len(counts) != len(alphanumeric) {
		t.Errorf("only %d of %d symbols drawn", len(counts), len(alphanumeric))
	}
}

func TestTargetTokenHash(t *testing.T) {
	t.Parallel()
	tok := "Zx81TQ0tWd3kq5YhJ2nB7cVmPa4sLr6e"
	// sha256 of the token text, computed with sha256sum.
	const want = "cbac9fb150a5a392154b7d007430cbc111720e5f6d66e4782a6c962caddeda54"
	got := HashTargetToken(tok)
	if got != want {
		t.Fatalf("hash %q, want %q", got, want)
	}
	cases := []struct {
		name  string
		token string
		hash  string
		ok    bool
	}{
		{"match", tok, got, true},
		{"other token", tok[:31] + "f", got, false},
		{"prefix", tok[:16], got, false},
		{"empty token", "", got, false},
		{"upper-case hash", tok, strings.ToUpper(got), false},
		{"truncated hash", tok, got[:63], false},
		{"empty hash", tok, "", false},
	}
	for _, tc := range cases {
		if ok := CheckTargetToken(tc.token, tc.hash); ok != tc.ok {
			t.Errorf("%s: CheckTargetToken = %v, want %v", tc.name, ok, tc.ok)
		}
	}
}

func TestValidateTargetToken(t *testing.T) {
	t.Parallel()
	cases := map[string]bool{
		strings.Repeat("a", MinTargetTokenLen):   true,
		strings.Repeat("a", MaxTargetTokenLen):   true,
		"user-chosen!token#42":                   true,
		strings.Repeat("a", MinTargetTokenLen-1): false,
		strings.Repeat("a", MaxTargetTokenLen+1): false,
		"has a space in the middle":              false,
		"tab\tinside-the-token":                  false,
		"ünïcödé-is-not-allowed":                 false,
		"":                                       false,
	}
	for tok, ok := range cases {
		if err := ValidateTargetToken(tok); (err == nil) != ok {
			t.Errorf("ValidateTargetToken(%q) = %v, want ok=%v", tok, err, ok)
		}
	}
}
