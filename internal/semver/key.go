package semver

import (
	"strconv"
	"strings"
)

// Key encoding. Byte-wise order of keys equals Compare order:
//
//	key     = num "." num "." num ( "~" | "-" { ident } )
//	num     = 20 decimal digits, zero-padded (uint64 fits exactly)
//	ident   = "." num                  numeric identifier
//	        | ":" chars "!"            alphanumeric identifier
//
//   - Fixed-width numbers order numerically.
//   - '~' (0x7E) > '-' (0x2D): a release sorts after all its pre-releases.
//   - '.' (0x2E) < ':' (0x3A): numeric identifiers sort before alphanumeric.
//   - '!' (0x21) is below every identifier character [-0-9A-Za-z], so "a"
//     sorts before "ab" however the key continues.
//   - A key that ends where another continues with an identifier is its prefix
//     and sorts first: fewer identifiers are lower when the rest is equal.
//
// Build metadata is not part of the key.

// numWidth is the number of digits of the largest uint64.
const numWidth = 20

// Key returns a printable-ASCII string whose byte-wise order equals the
// precedence order of Compare: Compare(a, b) == strings.Compare(Key(a), Key(b)).
// Keys are at most MaxKeyLength bytes; a typical release key is 63 bytes.
func Key(v Version) string {
	var b strings.Builder
	b.Grow(3*numWidth + 3 + len(v.Prerelease)*2 + 8)
	writeNum(&b, v.Major)
	b.WriteByte('.')
	writeNum(&b, v.Minor)
	b.WriteByte('.')
	writeNum(&b, v.Patch)
	if v.Prerelease == "" {
		b.WriteByte('~')
		return b.String()
	}
	b.WriteByte('-')
	for id := range strings.SplitSeq(v.Prerelease, ".") {
		if allDigits(id) {
			n, _ := strconv.ParseUint(id, 10, 64)
			b.WriteByte('.')
			writeNum(&b, n)
			continue
		}
		b.WriteByte(':')
		b.WriteString(id)
		b.WriteByte('!')
	}
	return b.String()
}

func writeNum(b *strings.Builder, n uint64) {
	var buf [numWidth]byte
	s := strconv.AppendUint(buf[:0], n, 10)
	for range numWidth - len(s) {
		b.WriteByte('0')
	}
	b.Write(s)
}
