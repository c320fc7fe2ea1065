package semver

import (
	"cmp"
	"strconv"
	"strings"
)

// Compare returns -1, 0 or +1 as a has lower, equal or higher precedence
// than b. Build metadata is ignored. It suits slices.SortFunc.
func Compare(a, b Version) int {
	if c := cmp.Compare(a.Major, b.Major); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Minor, b.Minor); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Patch, b.Patch); c != 0 {
		return c
	}
	// A release has higher precedence than any of its pre-releases.
	switch {
	case a.Prerelease == b.Prerelease:
		return 0
	case a.Prerelease == "":
		return 1
	case b.Prerelease == "":
		return -1
	}
	x, y := a.Prerelease, b.Prerelease
	for x != "" && y != "" {
		var i, j string
		i, x, _ = strings.Cut(x, ".")
		j, y, _ = strings.Cut(y, ".")
		if c := compareIdentifier(i, j); c != 0 {
			return c
		}
	}
	// Equal so far: the one with more identifiers is higher.
	switch {
	case x == "" && y == "":
		return 0
	case x == "":
		return -1
	default:
		return 1
	}
}

// compareIdentifier orders two pre-release identifiers: numeric ones by
// value and below alphanumeric ones, which compare in ASCII order.
func compareIdentifier(i, j string) int {
	in, jn := allDigits(i), allDigits(j)
	switch {
	case in && jn:
		// Parse guarantees no leading zeros and uint64 range.
		a, _ := strconv.ParseUint(i, 10, 64)
		b, _ := strconv.ParseUint(j, 10, 64)
		return cmp.Compare(a, b)
	case in:
		return -1
	case jn:
		return 1
	default:
		return strings.Compare(i, j)
	}
}
