package auth

import (
	"errors"
	"fmt"
)

// Role is what an operator or API token may do. The values are stored in
// the database, so they never change.
type Role string

// Roles, from least to most powerful.
const (
	// RoleViewer may read everything.
	RoleViewer Role = "viewer"
	// RoleOperator may also change the fleet: devices, releases,
	// campaigns, assignments.
	RoleOperator Role = "operator"
	// RoleAdmin may also manage users, API tokens and server settings.
	RoleAdmin Role = "admin"
)

// Action is the kind of access a request needs.
type Action string

// Actions.
const (
	// ActionRead reads state without changing it.
	ActionRead Action = "read"
	// ActionWrite changes fleet state.
	ActionWrite Action = "write"
	// ActionAdmin manages users, API tokens and server settings.
	ActionAdmin Action = "admin"
)

// ErrUnknownRole is returned by ParseRole for anything but the Role
// constants.
var ErrUnknownRole = errors.New("unknown role")

// Roles returns every role, least powerful first.
func Roles() []Role { return []Role{RoleViewer, RoleOperator, RoleAdmin} }

// ParseRole checks that s names a role.
func ParseRole(s string) (Role, error) {
	r := Role(s)
	if r.rank() == 0 {
		return "", fmt.Errorf("%w %q: want viewer, operator or admin", ErrUnknownRole, s)
	}
	return r, nil
}

// Valid reports whether r is one of the Role constants.
func (r Role) Valid() bool { return r.rank() > 0 }

func (r Role) String() string { return string(r) }

// Allows reports whether r may perform a. Unknown roles and actions allow
// nothing.
func (r Role) Allows(a Action) bool {
	need := a.rank()
	return need > 0 && r.rank() >= need
}

// Includes reports whether r may do everything other may, for example to
// stop an operator from minting an admin token.
func (r Role) Includes(other Role) bool {
	return r.rank() > 0 && other.rank() > 0 && r.rank() >= other.rank()
}

func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

func (a Action) rank() int {
	switch a {
	case ActionRead:
		return 1
	case ActionWrite:
		return 2
	case ActionAdmin:
		return 3
	}
	return 0
}

func (a Action) String() string { return string(a) }
