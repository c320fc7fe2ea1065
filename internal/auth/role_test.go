package auth

import (
	"errors"
	"testing"
)

func TestRoleAllows(t *testing.T) {
	t.Parallel()
	cases := []struct {
		role               Role
		read, write, admin bool
	}{
		{RoleViewer, true, false, false},
		{RoleOperator, true, true, false},
		{RoleAdmin, true, true, true},
		{"", false, false, false},
		{"root", false, false, false},
		{"Admin", false, false, false},
	}
	for _, tc := range cases {
		for a, want := range map[Action]bool{ActionRead: tc.read, ActionWrite: tc.write, ActionAdmin: tc.admin, "": false, "delete": false} {
			if got := tc.role.Allows(a); got != want {
				t.Errorf("%q.Allows(%q) = %v, want %v", tc.role, a, got, want)
			}
		}
	}
}

func TestParseRole(t *testing.T) {
	t.Parallel()
	for _, r := range Roles() {
		got, err := ParseRole(string(r))
		if err != nil || got != r || !got.Valid() || got.String() != string(r) {
			t.Errorf("ParseRole(%q) = %q, %v", r, got, err)
		}
	}
	for _, s := range []string{"", "superuser", "ADMIN", " admin"} {
		if _, err := ParseRole(s); !errors.Is(err, ErrUnknownRole) {
			t.Errorf("ParseRole(%q) = %v, want ErrUnknownRole", s, err)
		}
		if Role(s).Valid() {
			t.Errorf("Role(%q).Valid()", s)
		}
	}
}

func TestRoleIncludes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		r, other Role
		want     bool
	}{
		{RoleAdmin, RoleAdmin, true},
		{RoleAdmin, RoleViewer, true},
		{RoleOperator, RoleViewer, true},
		{RoleOperator, RoleAdmin, false},
		{RoleViewer, RoleOperator, false},
		{RoleAdmin, "root", false},
		{"root", RoleViewer, false},
	}
	for _, tc := range cases {
		if got := tc.r.Includes(tc.other); got != tc.want {
			t.Errorf("%q.Includes(%q) = %v, want %v", tc.r, tc.other, got, tc.want)
		}
	}
}
