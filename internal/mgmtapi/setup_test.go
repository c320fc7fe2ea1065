package mgmtapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/blobgc"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// t0 is when every test starts on its fake clock.
var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// testArgon2 keeps password hashing cheap in tests.
var testArgon2 = auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}

// env is one API over a real store and blob store, served by httptest,
// with a client that validates every response against the OpenAPI document.
type env struct {
	t     testing.TB
	api   *API
	st    *sqlstore.Store
	blobs *blob.Disk
	clock *clock.Fake
	srv   *httptest.Server
	doc   *openapi3.T
	rt    routers.Router

	// Tokens of one admin, operator and viewer token without users.
	admin, operator, viewer string

	mu       sync.Mutex
	notified []string // device ids, in order
}

type envOptions struct {
	maxArtifactSize int64
	openStore       func(t testing.TB) *sqlstore.Store
}

func openSQLite(t testing.TB) *sqlstore.Store {
	t.Helper()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func newEnv(t testing.TB) *env { return newEnvWith(t, envOptions{}) }

func newEnvWith(t testing.TB, o envOptions) *env {
	t.Helper()
	if o.openStore == nil {
		o.openStore = openSQLite
	}
	st := o.openStore(t)
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	fc := clock.NewFake(t0)
	blobs, err := blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), fc)
	if err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, st: st, blobs: blobs, clock: fc, doc: loadDoc(t)}
	e.rt, err = legacy.NewRouter(e.doc)
	if err != nil {
		t.Fatalf("openapi router: %v", err)
	}
	e.api, err = New(Config{
		Store:           st,
		Blobs:           blobs,
		Clock:           fc,
		Logger:          slog.New(slog.DiscardHandler),
		Notifier:        notifyFunc(e.notify),
		MaxArtifactSize: o.maxArtifactSize,
		PasswordParams:  testArgon2,
		Signing:         newTestSigning(t, st, fc),
	})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle(Prefix+"/", e.api.Handler())
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	e.admin = e.mintToken(store.RoleAdmin, "", nil)
	e.operator = e.mintToken(store.RoleOperator, "", nil)
	e.viewer = e.mintToken(store.RoleViewer, "", nil)
	return e
}

type notifyFunc func(tenant, deviceID string)

func (f notifyFunc) Notify(tenant, deviceID string) { f(tenant, deviceID) }

func (e *env) notify(tenant, deviceID string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.notified = append(e.notified, deviceID)
}

func (e *env) notifications() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]string(nil), e.notified...)
}

var bootstrap = store.Actor{Kind: store.ActorSystem, ID: "test", Name: "test setup"}

// mintToken stores a token directly (as the server's first start does) and
// returns its text.
func (e *env) mintToken(role store.Role, userID string, expires *time.Time) string {
	e.t.Helper()
	tok, err := newAPIToken()
	if err != nil {
		e.t.Fatal(err)
	}
	_, err = e.st.CreateAPIToken(context.Background(), store.APIToken{
		TenantID: store.DefaultTenant, ID: tok.id, Name: "test-" + string(role), UserID: userID,
		Role: role, SecretHash: tok.hash, ExpiresAt: expires,
	}, bootstrap, e.clock.Now())
	if err != nil {
		e.t.Fatalf("create token: %v", err)
	}
	return tok.text
}

func loadDoc(t testing.TB) *openapi3.T {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData([]byte(openAPIDoc))
	if err != nil {
		t.Fatalf("load openapi.yaml: %v", err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatalf("openapi.yaml is not a valid OpenAPI document: %v", err)
	}
	return doc
}

// resp is a response whose body has been read and validated.
type resp struct {
	status int
	header http.Header
	body   []byte
}

func (r resp) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (r resp) errorCode(t testing.TB) string {
	t.Helper()
	var b struct {
		Error struct {
			Code string `json:"code"`
		} `json:"error"`
	}
	r.decode(t, &b)
	return b.Error.Code
}

// req describes one request of a test.
type req struct {
	token   string
	method  string
	path    string // relative to /api/v1, may carry a query
	body    any    // nil, []byte/string (sent as is), io.Reader (streamed) or a value sent as JSON
	headers map[string]string
}

// do sends rq and validates the response against the OpenAPI document.
func (e *env) do(rq req) resp {
	e.t.Helper()
	var body io.Reader
	ctype := ""
	switch b := rq.body.(type) {
	case nil:
	case []byte:
		body, ctype = bytes.NewReader(b), "application/json"
	case string:
		body, ctype = strings.NewReader(b), "application/json"
	case io.Reader:
		body, ctype = b, "application/octet-stream"
	default:
		js, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		body, ctype = bytes.NewReader(js), "application/json"
	}
	hr, err := http.NewRequest(rq.method, e.srv.URL+Prefix+rq.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	if ctype != "" {
		hr.Header.Set("Content-Type", ctype)
	}
	if rq.token != "" {
		hr.Header.Set("Authorization", "Bearer "+rq.token)
	}
	for k, v := range rq.headers {
		hr.Header.Set(k, v)
	}
	res, err := e.srv.Client().Do(hr)
	if err != nil {
		e.t.Fatalf("%s %s: %v", rq.method, rq.path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		e.t.Fatalf("%s %s: read body: %v", rq.method, rq.path, err)
	}
	out := resp{status: res.StatusCode, header: res.Header, body: b}
	e.validate(hr, out)
	return out
}

// validate checks one response against the document: the route must be
// documented, the status listed for it, and the body must match the
// schema. A response to a path the document does not have must still be a
// documented JSON error.
func (e *env) validate(hr *http.Request, r resp) {
	e.t.Helper()
	route, params, err := e.rt.FindRoute(hr)
	if err != nil {
		if r.status != http.StatusNotFound && r.status != http.StatusMethodNotAllowed {
			e.t.Fatalf("%s %s: no documented route (%v) but status %d", hr.Method, hr.URL.Path, err, r.status)
		}
		e.validateError(hr, r)
		return
	}
	in := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: &openapi3filter.RequestValidationInput{
			Request: hr, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
		},
		Status:  r.status,
		Header:  r.header,
		Body:    io.NopCloser(bytes.NewReader(r.body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(context.Background(), in); err != nil {
		e.t.Fatalf("%s %s: response %d does not match the OpenAPI document: %v\nbody: %s", hr.Method, hr.URL.Path, r.status, err, r.body)
	}
	if r.status >= 500 {
		e.t.Fatalf("%s %s: server error %d: %s", hr.Method, hr.URL.Path, r.status, r.body)
	}
}

func (e *env) validateError(hr *http.Request, r resp) {
	e.t.Helper()
	var v any
	if err := json.Unmarshal(r.body, &v); err != nil {
		e.t.Fatalf("%s %s: error body is not JSON: %q", hr.Method, hr.URL.Path, r.body)
	}
	if err := e.doc.Components.Schemas["Error"].Value.VisitJSON(v); err != nil {
		e.t.Fatalf("%s %s: error body does not match the Error schema: %v", hr.Method, hr.URL.Path, err)
	}
}

// must sends rq and fails unless the status is want.
func (e *env) must(want int, rq req) resp {
	e.t.Helper()
	r := e.do(rq)
	if r.status != want {
		e.t.Fatalf("%s %s: status %d, want %d: %s", rq.method, rq.path, r.status, want, r.body)
	}
	return r
}

// enroll registers a device through the store, as the device API would,
// and returns its id. accept makes it accepted.
func (e *env) enroll(serial, deviceType, hwRev string, accept bool) string {
	e.t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	key, err := identity.NewPublicKey(pub)
	if err != nil {
		e.t.Fatal(err)
	}
	d, err := e.st.Enroll(context.Background(), store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: hwRev,
		Region: "eu-west", Protocol: store.ProtocolNative,
		Key: store.Credential{
			TenantID: store.DefaultTenant, Kind: store.CredPublicKey, Algorithm: key.Algorithm,
			Fingerprint: key.Fingerprint, Material: key.PEM,
		},
		Now: e.clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 1000,
	})
	if err != nil {
		e.t.Fatalf("enroll %s: %v", serial, err)
	}
	if accept {
		if _, err := e.st.AcceptDevice(context.Background(), store.DefaultTenant, d.ID, bootstrap, e.clock.Now()); err != nil {
			e.t.Fatal(err)
		}
	}
	return d.ID
}

// release creates a release with one raw-image artifact for deviceType
// revisions revs through the API, and publishes it if publish is set.
func (e *env) release(version, deviceType string, revs []string, publish bool) store.Release {
	e.t.Helper()
	var rel store.Release
	e.must(201, req{token: e.operator, method: "POST", path: "/releases", body: map[string]any{"version": version, "severity": "high"}}).decode(e.t, &rel)
	content := []byte("image " + version + " for " + deviceType)
	e.must(201, req{token: e.operator, method: "PUT",
		path: fmt.Sprintf("/releases/%s/artifacts?device_type=%s&hw_revs=%s&type=raw-image&component=rootfs&name=rootfs.img", rel.ID, deviceType, strings.Join(revs, ",")),
		body: bytes.NewReader(content)})
	if publish {
		e.must(200, req{token: e.operator, method: "POST", path: "/releases/" + rel.ID + "/publish"}).decode(e.t, &rel)
	}
	return rel
}

// snapshot captures what a refused request must not change: the audit
// log's length and head, and the stored blobs.
type snapshot struct {
	audit int
	head  string
	blobs []string
}

func (e *env) snapshot() snapshot {
	e.t.Helper()
	ctx := context.Background()
	n, err := e.st.VerifyAudit(ctx, store.DefaultTenant)
	if err != nil {
		e.t.Fatalf("verify audit: %v", err)
	}
	entries, _, err := e.st.ListAudit(ctx, store.DefaultTenant, store.AuditQuery{Page: store.Page{Limit: 1}})
	if err != nil {
		e.t.Fatal(err)
	}
	s := snapshot{audit: n}
	if len(entries) > 0 {
		s.head = entries[0].Hash
	}
	if err := e.blobs.Keys(ctx, func(k string) error { s.blobs = append(s.blobs, k); return nil }); err != nil {
		e.t.Fatal(err)
	}
	return s
}

// collectBlobs lets the blob collector's grace period pass and runs one
// collection, as `updraft serve` does periodically. It returns how many
// blobs it deleted.
func (e *env) collectBlobs() int {
	e.t.Helper()
	gc, err := blobgc.New(blobgc.Config{Store: e.st, Blobs: e.blobs, Clock: e.clock, Holder: "mgmtapi-test"})
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(blobgc.DefaultGrace + time.Minute)
	res, err := gc.Run(context.Background())
	if err != nil || !res.Led {
		e.t.Fatalf("blob collection = %+v, %v", res, err)
	}
	return res.Collected
}

// unchanged fails if anything was audited or stored since before.
func (e *env) unchanged(before snapshot, what string) {
	e.t.Helper()
	after := e.snapshot()
	if after.audit != before.audit || after.head != before.head {
		e.t.Fatalf("%s: the audit log grew from %d to %d entries; a refused request must change nothing", what, before.audit, after.audit)
	}
	if strings.Join(after.blobs, ",") != strings.Join(before.blobs, ",") {
		e.t.Fatalf("%s: blobs changed from %v to %v", what, before.blobs, after.blobs)
	}
	tmp, err := os.ReadDir(filepath.Join(e.blobs.Root(), "tmp"))
	if err != nil {
		e.t.Fatal(err)
	}
	if len(tmp) != 0 {
		e.t.Fatalf("%s: %d leftovers in the blob store's temp dir", what, len(tmp))
	}
}
