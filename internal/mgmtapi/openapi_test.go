package mgmtapi

import (
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
)

// routeAPI builds an API for tests that only need its route table.
func routeAPI(t *testing.T) *API {
	t.Helper()
	fc := clock.NewFake(t0)
	blobs, err := blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), fc)
	if err != nil {
		t.Fatal(err)
	}
	a, err := New(Config{Store: openSQLite(t), Blobs: blobs, Clock: fc, Logger: slog.New(slog.DiscardHandler), PasswordParams: testArgon2})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// TestOpenAPIMatchesRouteTable checks that the document describes exactly
// the routes the router serves: same paths, same methods.
func TestOpenAPIMatchesRouteTable(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	a := routeAPI(t)

	var inDoc, inTable []string
	for path, item := range doc.Paths.Map() {
		for method := range item.Operations() {
			inDoc = append(inDoc, method+" "+path)
		}
	}
	for _, rt := range a.Routes() {
		inTable = append(inTable, rt.Method+" "+rt.Pattern)
	}
	sort.Strings(inDoc)
	sort.Strings(inTable)
	for _, r := range inTable {
		if !slices.Contains(inDoc, r) {
			t.Errorf("route %s is served but not in openapi.yaml", r)
		}
	}
	for _, r := range inDoc {
		if !slices.Contains(inTable, r) {
			t.Errorf("openapi.yaml documents %s, which the router does not serve", r)
		}
	}
	if len(inTable) != len(inDoc) {
		t.Errorf("route table has %d routes, the document %d", len(inTable), len(inDoc))
	}
}

// TestOpenAPIQueryParameters checks that each route documents exactly the
// query parameters it accepts (it refuses all others).
func TestOpenAPIQueryParameters(t *testing.T) {
	t.Parallel()
	doc := loadDoc(t)
	for _, rt := range routeAPI(t).Routes() {
		item := doc.Paths.Find(rt.Pattern)
		if item == nil {
			continue // reported by TestOpenAPIMatchesRouteTable
		}
		op := item.GetOperation(rt.Method)
		if op == nil {
			continue
		}
		var documented []string
		for _, p := range append(item.Parameters, op.Parameters...) {
			if p.Value.In == "query" {
				documented = append(documented, p.Value.Name)
			}
		}
		want := slices.Clone(rt.query)
		sort.Strings(documented)
		sort.Strings(want)
		if strings.Join(documented, ",") != strings.Join(want, ",") {
			t.Errorf("%s %s: document lists query parameters [%s], route accepts [%s]", rt.Method, rt.Pattern, strings.Join(documented, ","), strings.Join(want, ","))
		}
	}
}

// TestRouteTable checks the table's own consistency: known actions, one
// entry per method and pattern, everything under the prefix.
func TestRouteTable(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for _, rt := range routeAPI(t).Routes() {
		key := rt.Method + " " + rt.Pattern
		if seen[key] {
			t.Errorf("duplicate route %s", key)
		}
		seen[key] = true
		if !strings.HasPrefix(rt.Pattern, Prefix+"/") {
			t.Errorf("route %s is outside %s", key, Prefix)
		}
		switch rt.Action {
		case ActionRead, ActionWrite, ActionAdmin, ActionSelf:
		default:
			t.Errorf("route %s has unknown action %q", key, rt.Action)
		}
		if rt.Method == "GET" && rt.Action != ActionRead && rt.Action != ActionAdmin {
			t.Errorf("GET route %s needs %s; reads are read or admin", key, rt.Action)
		}
		if rt.Method != "GET" && rt.Action == ActionRead {
			t.Errorf("%s route %s only needs read; every change needs write, admin or self", rt.Method, key)
		}
		if rt.handle == nil {
			t.Errorf("route %s has no handler", key)
		}
	}
}

// TestServedDocumentIsTheFile checks that the embedded document is the one
// in the source tree and that the API serves it.
func TestServedDocumentIsTheFile(t *testing.T) {
	t.Parallel()
	file, err := os.ReadFile("openapi.yaml")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnv(t)
	r := e.must(200, req{token: e.viewer, method: "GET", path: "/openapi.yaml"})
	if string(r.body) != string(file) || string(file) != openAPIDoc {
		t.Fatal("served document differs from openapi.yaml")
	}
	if ct := r.header.Get("Content-Type"); ct != "application/yaml" {
		t.Fatalf("Content-Type %q", ct)
	}
}
