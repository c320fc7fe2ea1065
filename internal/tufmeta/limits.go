package tufmeta

import (
	"fmt"
	"regexp"
	"strings"
)

// Limits caps the size in bytes of each kind of metadata file. The server
// refuses to publish or accept anything larger and the device refuses to
// read anything larger, so both sides must agree: they share these
// defaults.
type Limits struct {
	Root      int64 // every N.root.json
	Timestamp int64
	Snapshot  int64
	Targets   int64 // top-level targets (holds the delegations)
	Delegated int64 // each release-signing role
	Director  int64 // a director assignment or finalize document
}

// DefaultLimits are sized for fleets with hundreds of product lines and
// thousands of releases per line while staying small for constrained
// devices.
func DefaultLimits() Limits {
	return Limits{
		Root:      64 << 10,
		Timestamp: 16 << 10,
		Snapshot:  1 << 20,
		Targets:   1 << 20,
		Delegated: 4 << 20,
		Director:  64 << 10,
	}
}

// WithDefaults returns l with every unset (≤ 0) limit set to its default.
func (l Limits) WithDefaults() Limits {
	d := DefaultLimits()
	for _, p := range []struct{ v, def *int64 }{
		{&l.Root, &d.Root}, {&l.Timestamp, &d.Timestamp}, {&l.Snapshot, &d.Snapshot},
		{&l.Targets, &d.Targets}, {&l.Delegated, &d.Delegated}, {&l.Director, &d.Director},
	} {
		if *p.v <= 0 {
			*p.v = *p.def
		}
	}
	return l
}

// ForRole is the limit for a role's metadata by role name.
func (l Limits) ForRole(role string) int64 {
	switch role {
	case "root":
		return l.Root
	case "timestamp":
		return l.Timestamp
	case "snapshot":
		return l.Snapshot
	case "targets":
		return l.Targets
	case RoleDirector:
		return l.Director
	default:
		return l.Delegated
	}
}

// DelegationPaths are the path patterns that delegate every target of the
// given device types: "<device_type>/*/*/*". TUF path patterns match
// segment by segment, so a pattern must have as many segments as
// TargetPath produces.
func DelegationPaths(deviceTypes ...string) []string {
	out := make([]string, 0, len(deviceTypes))
	for _, dt := range deviceTypes {
		out = append(out, dt+"/*/*/*")
	}
	return out
}

// segmentPattern is one segment of a target path: a name, or a semantic
// version with build metadata.
var segmentPattern = regexp.MustCompile(`^[A-Za-z0-9._+-]{1,128}$`)

// SplitTargetPath splits a path made by TargetPath. It fails unless the
// path has exactly four non-empty segments, each a name.
func SplitTargetPath(p string) (deviceType, component, version, name string, err error) {
	parts := strings.Split(p, "/")
	if len(parts) != 4 {
		return "", "", "", "", fmt.Errorf("target path %q: want <device_type>/<component>/<version>/<name>", p)
	}
	for _, s := range parts {
		if !segmentPattern.MatchString(s) || s == "." || s == ".." {
			return "", "", "", "", fmt.Errorf("target path %q: segment %q is not a name", p, s)
		}
	}
	return parts[0], parts[1], parts[2], parts[3], nil
}

// ValidRoleName reports whether name may name a delegated role: a name that
// is safe as a file name and not one of the top-level roles.
func ValidRoleName(name string) bool {
	switch name {
	case "root", "timestamp", "snapshot", "targets", RoleDirector:
		return false
	}
	return namePattern.MatchString(name) && !strings.HasPrefix(name, ".")
}
