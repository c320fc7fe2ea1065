package filter

import (
	"slices"
	"strings"

	"github.com/updraft/updraft/internal/semver"
)

// Subject is what Match evaluates a filter against: the filterable facts
// about one device. It mirrors the devices table and its tag and group
// membership tables.
type Subject struct {
	ID         string
	Serial     string
	State      string
	Protocol   string
	DeviceType string
	HWRev      string
	Region     string
	TimeZone   string
	// Version is the installed version; "" (or a string that is not a
	// semantic version) means none, and then no version comparison matches.
	Version    string
	Attributes map[string]string
	// Tags and Groups are sets: order and duplicates do not matter.
	Tags   []string
	Groups []string
}

// Match reports whether the device d satisfies e. It agrees with the SQL
// that e.SQL produces for a devices row holding the same facts.
func (e *Expr) Match(d Subject) bool {
	m := matcher{d: &d}
	return m.eval(e.root)
}

type matcher struct {
	d       *Subject
	parsed  bool // version parsed (or found invalid) already
	version semver.Version
	valid   bool // version is a semantic version
}

func (m *matcher) eval(n node) bool {
	switch n := n.(type) {
	case *orNode:
		for _, t := range n.terms {
			if m.eval(t) {
				return true
			}
		}
		return false
	case *andNode:
		for _, t := range n.terms {
			if !m.eval(t) {
				return false
			}
		}
		return true
	case *notNode:
		return !m.eval(n.x)
	case *memberNode:
		if n.group {
			return slices.Contains(m.d.Groups, n.name)
		}
		return slices.Contains(m.d.Tags, n.name)
	case *cmpNode:
		if n.field == fieldVersion {
			return m.compareVersion(n)
		}
		s, ok := m.value(n)
		if !ok {
			return false
		}
		return holds(n.op, len(n.vals), func(i int) int { return strings.Compare(s, n.vals[i]) })
	}
	return false
}

// value returns the device's value of a string field, and false for a
// missing attribute.
func (m *matcher) value(n *cmpNode) (string, bool) {
	d := m.d
	switch n.field {
	case fieldDeviceType:
		return d.DeviceType, true
	case fieldHWRev:
		return d.HWRev, true
	case fieldRegion:
		return d.Region, true
	case fieldTimeZone:
		return d.TimeZone, true
	case fieldSerial:
		return d.Serial, true
	case fieldState:
		return d.State, true
	case fieldProtocol:
		return d.Protocol, true
	case fieldID:
		return d.ID, true
	case fieldAttr:
		v, ok := d.Attributes[n.attr]
		return v, ok
	}
	return "", false
}

func (m *matcher) compareVersion(n *cmpNode) bool {
	if !m.parsed {
		m.parsed = true
		if m.d.Version != "" {
			v, err := semver.Parse(m.d.Version)
			m.version, m.valid = v, err == nil
		}
	}
	if !m.valid {
		return false
	}
	return holds(n.op, len(n.vers), func(i int) int { return semver.Compare(m.version, n.vers[i]) })
}

// holds applies op given cmp(i), the comparison of the device's value with
// the i-th of n literals.
func holds(o op, n int, cmp func(i int) int) bool {
	switch o {
	case opEq:
		return cmp(0) == 0
	case opNe:
		return cmp(0) != 0
	case opLt:
		return cmp(0) < 0
	case opLe:
		return cmp(0) <= 0
	case opGt:
		return cmp(0) > 0
	case opGe:
		return cmp(0) >= 0
	case opIn, opNotIn:
		for i := range n {
			if cmp(i) == 0 {
				return o == opIn
			}
		}
		return o == opNotIn
	}
	return false
}
