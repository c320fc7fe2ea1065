package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

// jsonBodyRoutes are the routes whose document says they take a JSON body.
func jsonBodyRoutes(t *testing.T, e *env) []Route {
	t.Helper()
	var out []Route
	for _, rt := range e.api.Routes() {
		op := e.doc.Paths.Find(rt.Pattern).GetOperation(rt.Method)
		if op.RequestBody != nil && op.RequestBody.Value.Content.Get("application/json") != nil {
			out = append(out, rt)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d routes take JSON; the document lost its request bodies?", len(out))
	}
	return out
}

// TestBadJSONBodies sends malformed JSON, unknown fields, trailing data and
// oversize bodies to every route that takes JSON; each is a 4xx that
// changes nothing.
func TestBadJSONBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	huge := `{"name":"` + strings.Repeat("x", 300<<10) + `"}`
	cases := []struct {
		name, body string
		status     int
		code       string
	}{
		{"malformed", `{"name": `, 400, "malformed_json"},
		{"not an object", `[1, 2]`, 400, "malformed_json"},
		{"unknown field", `{"surprise": true}`, 400, "malformed_json"},
		{"trailing data", `{} {}`, 400, "malformed_json"},
		{"oversize", huge, 413, "too_large"},
	}
	// Routes that take larger bodies get an oversize body over their limit.
	limits := map[string]int{
		"POST " + Prefix + "/tuf/changes":     maxChangeBody,
		"PUT " + Prefix + "/tuf/roles/{role}": int(tufmeta.DefaultLimits().Delegated),
	}
	for _, rt := range jsonBodyRoutes(t, e) {
		for _, c := range cases {
			before := e.snapshot()
			rq := e.requestFor(rt, fx)
			rq.token = e.admin
			rq.body = c.body
			if n, ok := limits[rt.Method+" "+rt.Pattern]; ok && c.name == "oversize" {
				rq.body = `{"name":"` + strings.Repeat("x", n) + `"}`
			}
			r := e.do(rq)
			if r.status != c.status || r.errorCode(t) != c.code {
				t.Errorf("%s %s with %s body: %d %s, want %d %s", rt.Method, rt.Pattern, c.name, r.status, r.body, c.status, c.code)
			}
			e.unchanged(before, rt.Method+" "+rt.Pattern+" with "+c.name+" body")
		}
	}
}

// TestUnknownIDs sends every route with a path parameter a valid request
// naming objects that do not exist.
func TestUnknownIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	for _, rt := range e.api.Routes() {
		if !strings.Contains(rt.Pattern, "{") {
			continue
		}
		before := e.snapshot()
		rq := e.requestFor(rt, fx)
		rq.token = e.admin
		for _, id := range append([]string{fx.pending, fx.accepted, fx.credential, fx.published.ID, fx.draft.ID, fx.assignment, fx.user, fx.token}, append(fx.tuf.tufPathValues(), fx.cmp.ids()...)...) {
			rq.path = strings.ReplaceAll(rq.path, id, "nosuch"+id[:4])
		}
		r := e.do(rq)
		if r.status != 404 || r.errorCode(t) != "not_found" {
			t.Errorf("%s %s: %d %s, want 404 not_found", rt.Method, rq.path, r.status, r.body)
		}
		e.unchanged(before, rt.Method+" "+rt.Pattern+" on an unknown id")
	}
}

// TestBadTokens checks that every route refuses missing, malformed, wrong,
// expired and revoked tokens with 401.
func TestBadTokens(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	exp := e.clock.Now().Add(time.Hour)
	expired := e.mintToken(store.RoleAdmin, "", &exp)
	revoked := e.mintToken(store.RoleAdmin, "", nil)
	id := strings.Split(revoked, "_")[1]
	e.must(204, req{token: e.admin, method: "DELETE", path: "/tokens/" + id})
	e.clock.Advance(2 * time.Hour)
	wrongSecret := e.admin[:len(e.admin)-4] + "AAAA"
	if wrongSecret == e.admin {
		wrongSecret = e.admin[:len(e.admin)-4] + "BBBB"
	}
	tokens := map[string]string{
		"missing":      "",
		"malformed":    "updraft_short",
		"wrong secret": wrongSecret,
		"unknown id":   "updraft_zzzzzzzz_" + strings.Repeat("A", 32),
		"expired":      expired,
		"revoked":      revoked,
	}
	for _, rt := range e.api.Routes() {
		for name, tok := range tokens {
			before := e.snapshot()
			rq := e.requestFor(rt, fx)
			rq.token = tok
			r := e.do(rq)
			if r.status != 401 || r.errorCode(t) != "unauthorized" || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
				t.Errorf("%s %s with a %s token: %d %s", rt.Method, rt.Pattern, name, r.status, r.body)
			}
			e.unchanged(before, rt.Method+" "+rt.Pattern+" with a "+name+" token")
		}
	}
	r := e.must(401, req{method: "GET", path: "/devices", headers: map[string]string{"Authorization": "Basic YWRtaW46cGFzc3dvcmQ="}})
	if !strings.Contains(string(r.body), "Bearer") {
		t.Fatalf("basic auth: %s", r.body)
	}
}

func TestBadVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	for _, v := range []string{"", "v1.2.3", "1.2", "1.2.3.4", "latest", "01.2.3", "1.2.3-"} {
		before := e.snapshot()
		r := e.must(400, req{token: e.operator, method: "POST", path: "/releases", body: map[string]any{"version": v}})
		if r.errorCode(t) != "bad_version" || !strings.Contains(string(r.body), "version") {
			t.Errorf("version %q: %s", v, r.body)
		}
		e.unchanged(before, "release version "+v)
	}
	before := e.snapshot()
	r := e.must(400, req{token: e.operator, method: "PUT", path: "/releases/" + fx.draft.ID + "/artifacts?device_type=gw-200&hw_revs=B&type=delta&name=d.bin&from_version=v1",
		body: strings.NewReader("delta")})
	if r.errorCode(t) != "bad_version" {
		t.Errorf("delta from v1: %s", r.body)
	}
	// A reference that is not a version is taken as an id, which names nothing.
	e.must(404, req{token: e.operator, method: "POST", path: "/devices/" + fx.accepted + "/assignments", body: map[string]any{"release": "v1.0.0"}})
	e.unchanged(before, "non-semver versions")
}

func TestBadFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	cases := []struct {
		q            string
		line, column int
	}{
		{`device_type == `, 1, 16},
		{`hw_rev in ("B", "C"`, 1, 20},
		{`colour == "red"`, 1, 1},
		{"device_type == \"a\" and\n  ??", 2, 3},
	}
	for _, path := range []string{"/devices?q=", "/devices/count?q="} {
		for _, c := range cases {
			r := e.must(400, req{token: e.viewer, method: "GET", path: path + url.QueryEscape(c.q)})
			var b struct {
				Error struct {
					Code    string `json:"code"`
					Message string `json:"message"`
					Line    int    `json:"line"`
					Column  int    `json:"column"`
				} `json:"error"`
			}
			r.decode(t, &b)
			if b.Error.Code != "bad_filter" || b.Error.Line != c.line || b.Error.Column != c.column || b.Error.Message == "" {
				t.Errorf("%s%q: %s, want bad_filter at %d:%d", path, c.q, r.body, c.line, c.column)
			}
		}
	}
}

func TestBadQueryParameters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	for _, path := range []string{
		"/devices?filter=" + url.QueryEscape(`tag:lab`), // misspelt q must not list everything
		"/devices?limit=0", "/devices?limit=1001", "/devices?limit=ten",
		"/devices?state=gone", "/devices?after=%21%21", "/devices?limit=1&limit=2",
		"/releases?q=x", "/audit?since=yesterday", "/audit?since=2026-03-02T00:00:00Z&until=2026-03-01T00:00:00Z",
		"/devices/" + fx.accepted + "?verbose=1",
	} {
		r := e.must(400, req{token: e.viewer, method: "GET", path: path})
		if c := r.errorCode(t); c != "bad_parameter" && c != "invalid" {
			t.Errorf("%s: code %s", path, c)
		}
	}
}

func TestBadRequestValues(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	cases := []struct {
		method, path string
		body         any
		code         string
	}{
		{"POST", "/devices/preauthorize", map[string]any{"public_key": "not a key"}, "bad_key"},
		{"POST", "/devices/preauthorize", map[string]any{}, "bad_request"},
		{"POST", "/devices/" + fx.accepted + "/tags", map[string]any{}, "bad_request"},
		{"POST", "/devices/" + fx.accepted + "/tags", map[string]any{"add": []string{"has space"}}, "invalid"},
		{"POST", "/devices/" + fx.accepted + "/assignments", map[string]any{}, "bad_request"},
		{"POST", "/releases", map[string]any{"version": "2.0.0", "severity": "apocalyptic"}, "bad_request"},
		{"POST", "/releases", map[string]any{"version": "2.0.0", "security_version": -1}, "bad_request"},
		{"POST", "/releases", map[string]any{"version": "2.0.0", "cves": []string{"CVE-1"}}, "invalid"},
		{"POST", "/releases", map[string]any{"version": 2}, "malformed_json"},
		{"POST", "/releases/" + fx.published.ID + "/mark-bad", map[string]any{"reason": "x"}, "bad_request"},
		{"POST", "/releases/" + fx.published.ID + "/mark-bad", map[string]any{"bad": true}, "bad_request"},
		{"POST", "/releases/" + fx.published.ID + "/mark-affected", map[string]any{}, "bad_request"},
		{"POST", "/users", map[string]any{"name": "x", "role": "root"}, "bad_request"},
		{"POST", "/users", map[string]any{"name": "x", "role": "viewer", "password": "short"}, "weak_password"},
		{"POST", "/users", map[string]any{"name": "no spaces allowed", "role": "viewer"}, "invalid"},
		{"POST", "/tokens", map[string]any{"name": "x", "role": "viewer", "expires_in": 0}, "bad_request"},
		{"POST", "/tokens", map[string]any{"role": "viewer"}, "bad_request"},
	}
	for _, c := range cases {
		before := e.snapshot()
		r := e.must(400, req{token: e.admin, method: c.method, path: c.path, body: c.body})
		if got := r.errorCode(t); got != c.code {
			t.Errorf("%s %s %v: code %s, want %s (%s)", c.method, c.path, c.body, got, c.code, r.body)
		}
		e.unchanged(before, c.method+" "+c.path)
	}
}

func TestBadUploads(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, envOptions{maxArtifactSize: 1024})
	fx := e.fixture()
	path := "/releases/" + fx.draft.ID + "/artifacts?device_type=gw-200&hw_revs=C&type=raw-image&name=c.img"
	big := bytes.Repeat([]byte{0xAB}, 1025)

	cases := []struct {
		name    string
		path    string
		body    io.Reader
		headers map[string]string
		status  int
		code    string
	}{
		{"declared too large", path, bytes.NewReader(big), nil, 413, "too_large"},
		{"streamed too large", path, io.MultiReader(bytes.NewReader(big)), nil, 413, "too_large"},
		{"digest mismatch", path, strings.NewReader("rev C image"), map[string]string{SHA256Header: strings.Repeat("0", 64)}, 400, "digest_mismatch"},
		{"malformed digest", path, strings.NewReader("rev C image"), map[string]string{SHA256Header: "abc"}, 400, "bad_request"},
		{"empty", path, strings.NewReader(""), nil, 400, "bad_request"},
		{"no device type", strings.Replace(path, "device_type=gw-200&", "", 1), strings.NewReader("x"), nil, 400, "bad_parameter"},
		{"no revisions", strings.Replace(path, "hw_revs=C&", "", 1), strings.NewReader("x"), nil, 400, "bad_parameter"},
		{"unknown type", strings.Replace(path, "raw-image", "floppy", 1), strings.NewReader("x"), nil, 400, "bad_parameter"},
		{"path in name", strings.Replace(path, "name=c.img", "name=..%2Fetc%2Fpasswd", 1), strings.NewReader("x"), nil, 400, "bad_parameter"},
		{"from_version on a full image", path + "&from_version=1.0.0", strings.NewReader("x"), nil, 400, "bad_parameter"},
		{"published release", "/releases/" + fx.published.ID + "/artifacts?device_type=gw-200&hw_revs=C&type=raw-image&name=c.img", strings.NewReader("x"), nil, 409, "immutable"},
	}
	// Complete content that is refused stays as a blob until the collector
	// deletes it.
	leftover := map[string]bool{"empty": true}
	for _, c := range cases {
		before := e.snapshot()
		r := e.do(req{token: e.operator, method: "PUT", path: c.path, body: c.body, headers: c.headers})
		if r.status != c.status || r.errorCode(t) != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
		if leftover[c.name] {
			if got, want := len(e.snapshot().blobs), len(before.blobs)+1; got != want {
				t.Errorf("%s: %d blobs, want %d until collection", c.name, got, want)
			}
			if n := e.collectBlobs(); n != 1 {
				t.Errorf("%s: collection deleted %d blobs, want 1", c.name, n)
			}
		}
		e.unchanged(before, "upload: "+c.name)
	}
	// Exactly the limit is fine.
	e.must(201, req{token: e.operator, method: "PUT", path: path, body: bytes.NewReader(big[:1024])})
}

// failingReader delivers some bytes and then fails, as a client connection
// that breaks off mid-upload does.
type failingReader struct{ n int }

func (f *failingReader) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("connection reset by peer")
	}
	n := min(len(p), f.n)
	for i := range n {
		p[i] = 'x'
	}
	f.n -= n
	return n, nil
}

func TestInterruptedUploadStoresNothing(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	before := e.snapshot()
	// Through the handler directly: the body fails the way a broken
	// connection does, deterministically.
	hr := httptest.NewRequest("PUT", Prefix+"/releases/"+fx.draft.ID+"/artifacts?device_type=gw-200&hw_revs=C&type=raw-image&name=c.img", &failingReader{n: 300 << 10})
	hr.Header.Set("Authorization", "Bearer "+e.operator)
	hr.Header.Set("Content-Type", "application/octet-stream")
	rec := httptest.NewRecorder()
	e.api.Handler().ServeHTTP(rec, hr)
	r := resp{status: rec.Code, header: rec.Header(), body: rec.Body.Bytes()}
	e.validate(hr, r)
	if r.status != 400 || r.errorCode(t) != "upload_incomplete" {
		t.Fatalf("interrupted upload: %d %s", r.status, r.body)
	}
	e.unchanged(before, "interrupted upload")
	var rel store.Release
	e.must(200, req{token: e.viewer, method: "GET", path: "/releases/" + fx.draft.ID}).decode(t, &rel)
	if len(rel.Artifacts) != 1 {
		t.Fatalf("draft has %d artifacts after an interrupted upload, want 1", len(rel.Artifacts))
	}
}

// TestErrorBodiesAreJSON checks the error shape clients rely on.
func TestErrorBodiesAreJSON(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.must(404, req{token: e.viewer, method: "GET", path: "/devices/nope"})
	var b map[string]map[string]string
	if err := json.Unmarshal(r.body, &b); err != nil || b["error"]["code"] != "not_found" || b["error"]["message"] == "" {
		t.Fatalf("error body %s: %v", r.body, err)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	_ = http.StatusOK
}
