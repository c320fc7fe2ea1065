package semver

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParse checks that Parse never panics, that accepted versions
// round-trip through String, and that Key agrees with Compare against a set
// of reference versions. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	refs := make([]Version, len(ordered))
	for i, s := range ordered {
		refs[i] = MustParse(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := Parse(s)
		if err != nil {
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != s {
				t.Fatalf("Parse(%q) returned %T %v, want *ParseError for the input", s, err, err)
			}
			return
		}
		if v.String() != s {
			t.Fatalf("Parse(%q).String() = %q", s, v.String())
		}
		k := Key(v)
		if !printableASCII(k) || len(k) > MaxKeyLength {
			t.Fatalf("Key(%q) = %q is not printable ASCII or longer than %d bytes", s, k, MaxKeyLength)
		}
		if Compare(v, v) != 0 {
			t.Fatalf("Compare(%q, itself) != 0", s)
		}
		for _, r := range refs {
			if c, kc := Compare(v, r), strings.Compare(k, Key(r)); c != kc {
				t.Fatalf("%s vs %s: Compare=%d key order=%d (keys %q, %q)", v, r, c, kc, k, Key(r))
			}
		}
		if l, err := ParseLoose("v" + s); err != nil || l != v {
			t.Fatalf("ParseLoose(v%s) = %v, %v", s, l, err)
		}
	})
}
