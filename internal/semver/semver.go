// Package semver parses and orders Semantic Versioning 2.0.0 versions.
//
// Parse is strict: it accepts exactly the grammar of semver.org (no leading
// "v", no missing components, no leading zeros in numeric identifiers).
// ParseLoose exists for protocol adapters whose devices report "v1.2.3".
// Numeric identifiers (major, minor, patch and all-digit pre-release
// identifiers) must fit in a uint64, and a version is at most MaxLength
// bytes long; both limits keep Key fixed-width and bounded.
//
// Compare implements semver precedence: build metadata is ignored, so two
// versions that differ only in build metadata compare equal. Key maps a
// version to a printable-ASCII string whose byte-wise order equals that
// precedence, so databases can index and range-scan versions as plain text
// (SQLite's BINARY collation, PostgreSQL's "C" collation).
//
// Version values are immutable and safe for concurrent use.
package semver

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// MaxLength is the longest version string Parse accepts, in bytes. It keeps
// Key short enough for any database index (see MaxKeyLength).
const MaxLength = 128

// MaxKeyLength is the longest string Key returns: "0.0.0-0.0.….0" at
// MaxLength bytes has 61 numeric pre-release identifiers of 21 key bytes
// each after the 63-byte core and separator.
const MaxKeyLength = 3*numWidth + 3 + (MaxLength-6+1)/2*(numWidth+1)

// Version is a parsed semantic version. The zero value is 0.0.0.
//
// Two Versions are == exactly when their string forms are identical; use
// Compare for precedence, which ignores Build.
type Version struct {
	Major, Minor, Patch uint64
	// Prerelease holds the dot-separated pre-release identifiers without the
	// leading '-', or "" for a release.
	Prerelease string
	// Build holds the dot-separated build metadata without the leading '+'.
	Build string
}

// ParseError reports why a string is not a semantic version.
type ParseError struct {
	Input  string // the rejected string
	Reason string // e.g. `is not a semantic version (want MAJOR.MINOR.PATCH)`
}

func (e *ParseError) Error() string {
	in := e.Input
	if len(in) > 64 {
		n := 64
		for n > 0 && !utf8.RuneStart(in[n]) {
			n--
		}
		in = in[:n] + "..."
	}
	return fmt.Sprintf("version %q %s", in, e.Reason)
}

// Parse parses s strictly as a Semantic Versioning 2.0.0 version.
func Parse(s string) (Version, error) {
	if len(s) > MaxLength {
		return Version{}, &ParseError{s, fmt.Sprintf("is longer than %d bytes", MaxLength)}
	}
	if s != "" && (s[0] == 'v' || s[0] == 'V') {
		return Version{}, &ParseError{s, fmt.Sprintf("starts with %q; semantic versions do not (use %q)", s[:1], s[1:])}
	}
	var v Version
	core, rest := s, ""
	if i := strings.IndexAny(s, "-+"); i >= 0 {
		core, rest = s[:i], s[i:]
	}
	parts := strings.Split(core, ".")
	if len(parts) != 3 {
		return Version{}, &ParseError{s, "is not a semantic version (want MAJOR.MINOR.PATCH)"}
	}
	names := [3]string{"major", "minor", "patch"}
	dst := [3]*uint64{&v.Major, &v.Minor, &v.Patch}
	for i, p := range parts {
		if p == "" || !allDigits(p) {
			return Version{}, &ParseError{s, "is not a semantic version (want MAJOR.MINOR.PATCH)"}
		}
		n, err := parseNumeric(p)
		if err != "" {
			return Version{}, &ParseError{s, fmt.Sprintf("has a %s version %s", names[i], err)}
		}
		*dst[i] = n
	}
	if strings.HasPrefix(rest, "-") {
		pre := rest[1:]
		if i := strings.IndexByte(pre, '+'); i >= 0 {
			pre, rest = pre[:i], pre[i:]
		} else {
			rest = ""
		}
		if msg := checkIdentifiers(pre, true); msg != "" {
			return Version{}, &ParseError{s, "has an invalid pre-release: " + msg}
		}
		v.Prerelease = pre
	}
	if strings.HasPrefix(rest, "+") {
		build := rest[1:]
		if msg := checkIdentifiers(build, false); msg != "" {
			return Version{}, &ParseError{s, "has invalid build metadata: " + msg}
		}
		v.Build = build
	}
	return v, nil
}

// ParseLoose is Parse for protocol adapters: it also accepts surrounding
// white space and a leading "v" or "V", as in "v1.2.3". Everything else is
// as strict as Parse. Store the String of the result, never the raw input.
func ParseLoose(s string) (Version, error) {
	t := strings.TrimSpace(s)
	if t != "" && (t[0] == 'v' || t[0] == 'V') {
		t = t[1:]
	}
	v, err := Parse(t)
	if err != nil {
		// Report the caller's input, not our trimmed copy.
		return Version{}, &ParseError{s, err.(*ParseError).Reason}
	}
	return v, nil
}

// MustParse is Parse for constants in code and tests; it panics on error.
func MustParse(s string) Version {
	v, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return v
}

// String returns the canonical form; Parse(v.String()) == v.
func (v Version) String() string {
	var b strings.Builder
	b.Grow(32)
	b.WriteString(strconv.FormatUint(v.Major, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Minor, 10))
	b.WriteByte('.')
	b.WriteString(strconv.FormatUint(v.Patch, 10))
	if v.Prerelease != "" {
		b.WriteByte('-')
		b.WriteString(v.Prerelease)
	}
	if v.Build != "" {
		b.WriteByte('+')
		b.WriteString(v.Build)
	}
	return b.String()
}

// IsPrerelease reports whether v has pre-release identifiers.
func (v Version) IsPrerelease() bool { return v.Prerelease != "" }

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// parseNumeric parses a non-empty all-digit numeric identifier and returns a
// reason (to follow the identifier's name) when it is not acceptable.
func parseNumeric(p string) (uint64, string) {
	if len(p) > 1 && p[0] == '0' {
		return 0, fmt.Sprintf("%s with a leading zero", p)
	}
	n, err := strconv.ParseUint(p, 10, 64)
	if err != nil {
		return 0, fmt.Sprintf("%s larger than %d", p, uint64(1<<64-1))
	}
	return n, ""
}

// checkIdentifiers validates dot-separated identifiers. Pre-release numeric
// identifiers must not have leading zeros and must fit in a uint64; build
// identifiers have no such rule.
func checkIdentifiers(s string, pre bool) string {
	if s == "" {
		return "it is empty"
	}
	for id := range strings.SplitSeq(s, ".") {
		if id == "" {
			return "empty identifier"
		}
		for i := 0; i < len(id); i++ {
			c := id[i]
			if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '-') {
				r, _ := utf8.DecodeRuneInString(id[i:])
				return fmt.Sprintf("identifier %q has character %q (want [0-9A-Za-z-])", id, r)
			}
		}
		if pre && allDigits(id) {
			if _, msg := parseNumeric(id); msg != "" {
				return "numeric identifier " + msg
			}
		}
	}
	return ""
}
