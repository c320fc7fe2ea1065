package semver

import (
	"errors"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
)

func TestParseValid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want Version
	}{
		{"0.0.0", Version{}},
		{"1.2.3", Version{Major: 1, Minor: 2, Patch: 3}},
		{"10.20.30", Version{Major: 10, Minor: 20, Patch: 30}},
		{"1.0.0-alpha", Version{Major: 1, Prerelease: "alpha"}},
		{"1.0.0-alpha.1", Version{Major: 1, Prerelease: "alpha.1"}},
		{"1.0.0-0.3.7", Version{Major: 1, Prerelease: "0.3.7"}},
		{"1.0.0-x.7.z.92", Version{Major: 1, Prerelease: "x.7.z.92"}},
		{"1.0.0-x-y-z.--", Version{Major: 1, Prerelease: "x-y-z.--"}},
		{"1.0.0-0a", Version{Major: 1, Prerelease: "0a"}},
		{"1.0.0+20130313144700", Version{Major: 1, Build: "20130313144700"}},
		{"1.0.0-beta+exp.sha.5114f85", Version{Major: 1, Prerelease: "beta", Build: "exp.sha.5114f85"}},
		{"1.0.0+21AF26D3----117B344092BD", Version{Major: 1, Build: "21AF26D3----117B344092BD"}},
		{"1.0.0+001", Version{Major: 1, Build: "001"}},
		{"1.0.0-rc-1+build-2", Version{Major: 1, Prerelease: "rc-1", Build: "build-2"}},
		{"18446744073709551615.18446744073709551615.18446744073709551615",
			Version{Major: 1<<64 - 1, Minor: 1<<64 - 1, Patch: 1<<64 - 1}},
		{"1.2.3-18446744073709551615", Version{Major: 1, Minor: 2, Patch: 3, Prerelease: "18446744073709551615"}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Fatalf("Parse(%q) = %#v, want %#v", tt.in, got, tt.want)
			}
			if s := got.String(); s != tt.in {
				t.Fatalf("String() = %q, want %q", s, tt.in)
			}
		})
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	const notSemver = "is not a semantic version (want MAJOR.MINOR.PATCH)"
	tests := []struct {
		in, want string
	}{
		{"", `version "" ` + notSemver},
		{"1", `version "1" ` + notSemver},
		{"1.2", `version "1.2" ` + notSemver},
		{"1.2.3.4", `version "1.2.3.4" ` + notSemver},
		{"1..3", `version "1..3" ` + notSemver},
		{"1.2.x", `version "1.2.x" ` + notSemver},
		{" 1.2.3", `version " 1.2.3" ` + notSemver},
		{"1.2.3 ", `version "1.2.3 " ` + notSemver},
		{"v1.2.3", `version "v1.2.3" starts with "v"; semantic versions do not (use "1.2.3")`},
		{"V1.2.3", `version "V1.2.3" starts with "V"; semantic versions do not (use "1.2.3")`},
		{"01.2.3", `version "01.2.3" has a major version 01 with a leading zero`},
		{"1.02.3", `version "1.02.3" has a minor version 02 with a leading zero`},
		{"1.2.03", `version "1.2.03" has a patch version 03 with a leading zero`},
		{"18446744073709551616.0.0", `version "18446744073709551616.0.0" has a major version 18446744073709551616 larger than 18446744073709551615`},
		{"1.2.3-", `version "1.2.3-" has an invalid pre-release: it is empty`},
		{"1.2.3+", `version "1.2.3+" has invalid build metadata: it is empty`},
		{"1.2.3-a..b", `version "1.2.3-a..b" has an invalid pre-release: empty identifier`},
		{"1.2.3-a.", `version "1.2.3-a." has an invalid pre-release: empty identifier`},
		{"1.2.3-01", `version "1.2.3-01" has an invalid pre-release: numeric identifier 01 with a leading zero`},
		{"1.2.3-rc.99999999999999999999", `version "1.2.3-rc.99999999999999999999" has an invalid pre-release: numeric identifier 99999999999999999999 larger than 18446744073709551615`},
		{"1.2.3-a_b", `version "1.2.3-a_b" has an invalid pre-release: identifier "a_b" has character '_' (want [0-9A-Za-z-])`},
		{"1.2.3+a+b", `version "1.2.3+a+b" has invalid build metadata: identifier "a+b" has character '+' (want [0-9A-Za-z-])`},
		{"1.2.3+a..b", `version "1.2.3+a..b" has invalid build metadata: empty identifier`},
		{"1.2.3-ä", `version "1.2.3-ä" has an invalid pre-release: identifier "ä" has character 'ä' (want [0-9A-Za-z-])`},
		{"+1.2.3", `version "+1.2.3" ` + notSemver},
		{"-1.2.3", `version "-1.2.3" ` + notSemver},
		{"1.2.3-" + strings.Repeat("a", MaxLength), `version "1.2.3-` + strings.Repeat("a", 58) + `..." is longer than 128 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			v, err := Parse(tt.in)
			if err == nil {
				t.Fatalf("Parse(%q) = %v, want error", tt.in, v)
			}
			var pe *ParseError
			if !errors.As(err, &pe) || pe.Input != tt.in {
				t.Fatalf("Parse(%q) error %#v is not a *ParseError for the input", tt.in, err)
			}
			if err.Error() != tt.want {
				t.Fatalf("Parse(%q) error\n got: %s\nwant: %s", tt.in, err, tt.want)
			}
		})
	}
}

func TestParseLoose(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want, err string
	}{
		{in: "v1.2.3", want: "1.2.3"},
		{in: "V1.2.3-rc.1+b", want: "1.2.3-rc.1+b"},
		{in: " 1.2.3\n", want: "1.2.3"},
		{in: "1.2.3", want: "1.2.3"},
		{in: "v1.2", err: `version "v1.2" is not a semantic version (want MAJOR.MINOR.PATCH)`},
		{in: "vv1.2.3", err: `version "vv1.2.3" starts with "v"; semantic versions do not (use "1.2.3")`},
		{in: "", err: `version "" is not a semantic version (want MAJOR.MINOR.PATCH)`},
	}
	for _, tt := range tests {
		v, err := ParseLoose(tt.in)
		if tt.err != "" {
			if err == nil || err.Error() != tt.err {
				t.Errorf("ParseLoose(%q) = %v, %v; want error %s", tt.in, v, err, tt.err)
			}
			continue
		}
		if err != nil || v.String() != tt.want {
			t.Errorf("ParseLoose(%q) = %v, %v; want %s", tt.in, v, err, tt.want)
		}
	}
}

func TestMustParsePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse(\"1.2\") did not panic")
		}
	}()
	MustParse("1.2")
}

// The precedence example from the SemVer 2.0.0 specification, plus edge
// cases around numeric/alphanumeric identifiers and large numbers.
var ordered = []string{
	"0.0.0-0",
	"0.0.0-0.0",
	"0.0.0-1",
	"0.0.0--",
	"0.0.0-A",
	"0.0.0-a",
	"0.0.0",
	"0.0.1",
	"0.1.0",
	"1.0.0-0A",
	"1.0.0-alpha",
	"1.0.0-alpha.1",
	"1.0.0-alpha.beta",
	"1.0.0-beta",
	"1.0.0-beta.2",
	"1.0.0-beta.11",
	"1.0.0-beta.18446744073709551615",
	"1.0.0-beta.a",
	"1.0.0-beta-2",
	"1.0.0-rc.1",
	"1.0.0",
	"1.0.1",
	"1.9.0",
	"1.10.0",
	"1.11.0",
	"2.0.0",
	"2.1.0",
	"2.1.1",
	"10.0.0",
	"18446744073709551615.0.0",
}

func TestCompareAndKeyOrder(t *testing.T) {
	t.Parallel()
	for i, a := range ordered {
		for j, b := range ordered {
			va, vb := MustParse(a), MustParse(b)
			want := sign(i - j)
			if got := Compare(va, vb); got != want {
				t.Errorf("Compare(%s, %s) = %d, want %d", a, b, got, want)
			}
			if got := sign(strings.Compare(Key(va), Key(vb))); got != want {
				t.Errorf("Key order of %s (%q) vs %s (%q) = %d, want %d", a, Key(va), b, Key(vb), got, want)
			}
		}
	}
}

func TestBuildMetadataIgnored(t *testing.T) {
	t.Parallel()
	a, b := MustParse("1.2.3-rc.1+a"), MustParse("1.2.3-rc.1+b.c")
	if Compare(a, b) != 0 || Key(a) != Key(b) {
		t.Fatalf("build metadata changed precedence: Compare=%d keys %q %q", Compare(a, b), Key(a), Key(b))
	}
	if a == b {
		t.Fatal("versions with different build metadata are ==")
	}
}

func TestKeyExamples(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"1.2.3", "00000000000000000001.00000000000000000002.00000000000000000003~"},
		{"1.2.3-rc.1", "00000000000000000001.00000000000000000002.00000000000000000003-:rc!.00000000000000000001"},
		{"0.0.0-0", "00000000000000000000.00000000000000000000.00000000000000000000-.00000000000000000000"},
	}
	for _, tt := range tests {
		if got := Key(MustParse(tt.in)); got != tt.want {
			t.Errorf("Key(%s) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// keySeed is fixed so failures reproduce; it is printed with every failure.
const keySeed = 20240611

// TestKeyMatchesCompareRandom checks Key against Compare on random pairs
// drawn from small pools, so that equal prefixes and ties are common.
func TestKeyMatchesCompareRandom(t *testing.T) {
	t.Parallel()
	r := rand.New(rand.NewPCG(keySeed, keySeed))
	vs := make([]Version, 3000)
	for i := range vs {
		s := randomVersion(r)
		v, err := Parse(s)
		if err != nil {
			t.Fatalf("seed %d: generated invalid version %q: %v", keySeed, s, err)
		}
		vs[i] = v
	}
	for i := 0; i < 200000; i++ {
		a, b := vs[r.IntN(len(vs))], vs[r.IntN(len(vs))]
		c, k := Compare(a, b), sign(strings.Compare(Key(a), Key(b)))
		if c != k || c != -Compare(b, a) {
			t.Fatalf("seed %d: %s vs %s: Compare=%d reverse=%d key order=%d (keys %q, %q)",
				keySeed, a, b, c, Compare(b, a), k, Key(a), Key(b))
		}
		if !printableASCII(Key(a)) {
			t.Fatalf("seed %d: Key(%s) = %q is not printable ASCII", keySeed, a, Key(a))
		}
	}
	// Sorting by key and sorting by Compare must agree (checks transitivity).
	byKey := slices.Clone(vs)
	slices.SortStableFunc(byKey, func(a, b Version) int { return strings.Compare(Key(a), Key(b)) })
	for i := 1; i < len(byKey); i++ {
		if Compare(byKey[i-1], byKey[i]) > 0 {
			t.Fatalf("seed %d: key order puts %s before %s", keySeed, byKey[i-1], byKey[i])
		}
	}
}

func randomVersion(r *rand.Rand) string {
	nums := []string{"0", "1", "2", "9", "10", "11", "100", "18446744073709551615", "18446744073709551614"}
	alnum := []string{"a", "b", "A", "Z", "-", "--", "a-", "alpha", "alpha1", "alpha-1", "beta", "rc", "0a", "1a", "z9"}
	num := func() string { return nums[r.IntN(len(nums))] }
	s := num() + "." + num() + "." + num()
	if n := r.IntN(5); n > 0 {
		ids := make([]string, n)
		for i := range ids {
			if r.IntN(2) == 0 {
				ids[i] = num()
			} else {
				ids[i] = alnum[r.IntN(len(alnum))]
			}
		}
		s += "-" + strings.Join(ids, ".")
	}
	if r.IntN(4) == 0 {
		s += "+b" + strconv.Itoa(r.IntN(3))
	}
	return s
}

func sign(n int) int {
	switch {
	case n < 0:
		return -1
	case n > 0:
		return 1
	}
	return 0
}

func printableASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

func TestMaxKeyLength(t *testing.T) {
	t.Parallel()
	if MaxKeyLength != 1344 {
		t.Errorf("MaxKeyLength = %d, want 1344", MaxKeyLength)
	}
	// The longest key comes from the most single-digit numeric identifiers.
	worst := "0.0.0-0" + strings.Repeat(".0", (MaxLength-7)/2)
	v, err := Parse(worst)
	if err != nil {
		t.Fatalf("Parse(%d-byte %q): %v", len(worst), worst, err)
	}
	if n := len(Key(v)); n != MaxKeyLength {
		t.Errorf("Key of the worst case is %d bytes, want MaxKeyLength %d", n, MaxKeyLength)
	}
	if _, err := Parse(worst + ".0"); err == nil {
		t.Errorf("a version longer than MaxLength parsed")
	}
}
