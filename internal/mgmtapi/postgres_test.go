package mgmtapi

import (
	"cmp"
	"context"
	"log/slog"
	"slices"
	"testing"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

func openPostgres(t testing.TB) *sqlstore.Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	st, err := postgres.Open(context.Background(), dsn, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open postgres: %v", err)
	}
	return st
}

// TestPostgres runs the flows that touch the most store code against
// PostgreSQL: the same API over the other store implementation.
func TestPostgres(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{openStore: openPostgres})
	// Every route once, with the role that is allowed to use it.
	fx := e.fixture()
	// Routes that end an object's life go last, so the others still find
	// what they act on; the ones that share an object get their own.
	routes := e.api.Routes()
	late := []string{"POST /api/v1/assignments/{id}/cancel", "POST /api/v1/devices/{id}/decommission"}
	slices.SortStableFunc(routes, func(a, b Route) int {
		return cmp.Compare(slices.Index(late, a.Method+" "+a.Pattern), slices.Index(late, b.Method+" "+b.Pattern))
	})
	for _, rt := range routes {
		rq := e.requestFor(rt, fx)
		switch rt.Method + " " + rt.Pattern {
		case "POST /api/v1/devices/{id}/reject":
			rq.path = "/devices/" + e.enroll("PENDING-2", "gw-200", "B", false) + "/reject"
		case "POST /api/v1/assignments/{id}/cancel":
			cur, err := e.st.ActiveAssignment(context.Background(), store.DefaultTenant, fx.accepted)
			if err != nil {
				t.Fatal(err)
			}
			rq.path = "/assignments/" + cur.ID + "/cancel"
		case "DELETE /api/v1/releases/{id}":
			rq.path = "/releases/" + e.release("1.2.0-rc.1", "gw-200", []string{"B"}, false).ID
		}
		switch rt.Action {
		case ActionRead:
			rq.token = e.viewer
		case ActionWrite:
			rq.token = e.operator
		default:
			rq.token = e.admin
		}
		if r := e.do(rq); r.status/100 != 2 {
			t.Errorf("%s %s: %d %s", rt.Method, rt.Pattern, r.status, r.body)
		}
	}
	// Refusals change nothing here either.
	before := e.snapshot()
	e.must(403, req{token: e.viewer, method: "POST", path: "/releases", body: map[string]any{"version": "3.0.0"}})
	e.must(400, req{token: e.operator, method: "POST", path: "/releases", body: map[string]any{"version": "v3"}})
	e.must(400, req{token: e.viewer, method: "GET", path: "/devices?q=state%20%3D%3D"})
	e.unchanged(before, "refused requests on postgres")
	var v auditVerifyBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit/verify"}).decode(t, &v)
	if !v.OK {
		t.Fatalf("audit chain on postgres: %+v", v)
	}
}
