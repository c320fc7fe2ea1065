package mgmtapi

import (
	"testing"

	"github.com/updraft/updraft/internal/store"
)

// TestRolesFromRouteTable drives authorization from the route table: for
// every route that changes something, callers whose role is too low get
// 403 and nothing changes; then a caller with the needed role succeeds with
// the very same request, which shows the refusal was about the role.
func TestRolesFromRouteTable(t *testing.T) {
	t.Parallel()
	for _, rt := range routeAPI(t).Routes() {
		t.Run(rt.Method+" "+rt.Pattern, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			fx := e.fixture()
			var refused []string
			var allowed string
			switch rt.Action {
			case ActionRead:
				refused, allowed = nil, e.viewer
			case ActionWrite:
				refused, allowed = []string{e.viewer}, e.operator
			case ActionAdmin:
				refused, allowed = []string{e.viewer, e.operator}, e.admin
			case ActionSelf:
				// Tested by TestSelfRoutes: anyone for themselves, admins for others.
				return
			default:
				t.Fatalf("unknown action %q", rt.Action)
			}
			for _, tok := range refused {
				before := e.snapshot()
				rq := e.requestFor(rt, fx)
				rq.token = tok
				r := e.must(403, rq)
				if r.errorCode(t) != "forbidden" {
					t.Fatalf("refusal code %q: %s", r.errorCode(t), r.body)
				}
				e.unchanged(before, "refused "+rt.Method+" "+rt.Pattern)
			}
			rq := e.requestFor(rt, fx)
			rq.token = allowed
			if r := e.do(rq); r.status/100 != 2 {
				t.Fatalf("allowed caller got %d: %s", r.status, r.body)
			}
		})
	}
}

// TestSelfRoutes covers ActionSelf routes: a viewer may change their own
// password but not anyone else's, and an operator is no admin.
func TestSelfRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	var other newUserBody
	e.must(201, req{token: e.admin, method: "POST", path: "/users", body: map[string]any{"name": "erin", "role": "operator", "password": "erin's long password"}}).decode(t, &other)
	doraTok := e.mintToken(store.RoleViewer, fx.user, nil)
	erinTok := e.mintToken(store.RoleOperator, other.ID, nil)
	before := e.snapshot()
	e.must(403, req{token: doraTok, method: "POST", path: "/users/" + other.ID + "/password", body: map[string]any{"password": "hijacked password"}})
	e.must(403, req{token: erinTok, method: "POST", path: "/users/" + fx.user + "/password", body: map[string]any{"password": "hijacked password"}})
	e.must(403, req{token: e.viewer, method: "POST", path: "/users/" + fx.user + "/password", body: map[string]any{"password": "hijacked password"}})
	e.unchanged(before, "changing someone else's password")
	e.must(204, req{token: doraTok, method: "POST", path: "/users/" + fx.user + "/password", body: map[string]any{"current_password": "dora's long password", "password": "dora's newer password"}})
	e.must(204, req{token: e.admin, method: "POST", path: "/users/" + other.ID + "/password", body: map[string]any{"password": "reset by the admin"}})
}
