package ddi_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/ddi"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// T0 is a Monday, 09:00 UTC.
var T0 = time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)

var admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}

const gatewayToken = "gw-secret-0123456789abcdef"

type env struct {
	t      *testing.T
	ctx    context.Context
	clock  *clock.Fake
	store  *sqlstore.Store
	blobs  *blob.Disk
	urls   *signedurl.Signer
	api    *ddi.API
	srv    *httptest.Server
	client *http.Client
}

type options struct {
	anonymous bool
	cfg       func(*ddi.Config)
	// observe sees every request after it was answered.
	observe func(r *http.Request, status int)
}

func setup(t *testing.T, o options) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clock: clock.NewFake(T0)}
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(e.ctx, sqlstore.MigrateOptions{Now: T0}); err != nil {
		t.Fatal(err)
	}
	e.store = s
	if e.blobs, err = blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), e.clock); err != nil {
		t.Fatal(err)
	}
	key, err := signedurl.GenerateKey("u1")
	if err != nil {
		t.Fatal(err)
	}
	if e.urls, err = signedurl.NewSigner(e.clock, key); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cfg := ddi.Config{
		Store: s, Blobs: e.blobs, Clock: e.clock, PublicURL: "http://" + ln.Addr().String(),
		URLs: e.urls, GatewayTokens: map[string]string{store.DefaultTenant: gatewayToken},
		Anonymous: o.anonymous, PollInterval: 90 * time.Second, DeviceType: "board", HWRev: "1.0",
	}
	if o.cfg != nil {
		o.cfg(&cfg)
	}
	if e.api, err = ddi.New(cfg); err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/api/v1/", http.NotFoundHandler()) // must not clash with the DDI prefix
	mux.Handle(ddi.Prefix, e.api.Handler())
	var h http.Handler = mux
	if o.observe != nil {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			sw := &statusWriter{ResponseWriter: w, status: 200}
			mux.ServeHTTP(sw, r)
			o.observe(r, sw.status)
		})
	}
	e.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: h}}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	e.client = e.srv.Client()
	return e
}

// device registers controller cid, accepts it and gives it a target token.
func (e *env) device(cid string) (store.Device, string) {
	e.t.Helper()
	d, _, err := e.store.RegisterDDIDevice(e.ctx, store.RegisterDDIParams{TenantID: store.DefaultTenant, ControllerID: cid,
		DeviceType: "board", HWRev: "1.0", Now: e.clock.Now()})
	if err != nil {
		e.t.Fatal(err)
	}
	if d, err = e.store.AcceptDevice(e.ctx, store.DefaultTenant, d.ID, admin, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	tok, err := identity.GenerateTargetToken()
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := e.store.AddCredential(e.ctx, store.Credential{TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: store.CredToken,
		Fingerprint: identity.HashTargetToken(tok), State: store.CredActive}, admin, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	return d, tok
}

type art struct {
	name, component string
	typ             store.ArtifactType
	data            []byte
}

// release publishes a release with the given artifacts for board/1.0.
func (e *env) release(version string, sev store.Severity, arts ...art) store.Release {
	e.t.Helper()
	now := e.clock.Now()
	rel, err := e.store.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, Severity: sev}, admin, now)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range arts {
		info, err := e.blobs.Put(e.ctx, bytes.NewReader(a.data), 1<<30)
		if err != nil {
			e.t.Fatal(err)
		}
		sa := store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "board", HWRevs: []string{"1.0"},
			Type: a.typ, Component: a.component, Name: a.name, Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5}
		if _, err := e.store.AddArtifact(e.ctx, sa, admin, now); err != nil {
			e.t.Fatal(err)
		}
	}
	if rel, err = e.store.PublishRelease(e.ctx, store.DefaultTenant, rel.ID, admin, now); err != nil {
		e.t.Fatal(err)
	}
	return rel
}

func (e *env) assign(d store.Device, rel store.Release, campaignID string) store.Assignment {
	e.t.Helper()
	a, _, err := e.store.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.ID, ReleaseID: rel.ID, CampaignID: campaignID, Now: e.clock.Now()}, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

func (e *env) assignment(id string) store.Assignment {
	e.t.Helper()
	a, err := e.store.Assignment(e.ctx, store.DefaultTenant, id)
	if err != nil {
		e.t.Fatal(err)
	}
	return a
}

// response is one answer, read in full.
type response struct {
	status  int
	header  http.Header
	body    []byte
	chunked bool
}

func (r response) json(t *testing.T, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request; auth is the whole Authorization value ("" for none).
func (e *env) do(method, path, auth string, body any, hdr ...string) response {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	u := path
	if !strings.HasPrefix(u, "http") {
		u = e.srv.URL + path
	}
	req, err := http.NewRequestWithContext(e.ctx, method, u, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	if rd != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := e.client.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	r := response{status: resp.StatusCode, header: resp.Header, body: b}
	for _, te := range resp.TransferEncoding {
		r.chunked = r.chunked || te == "chunked"
	}
	if method != http.MethodHead && resp.StatusCode != http.StatusPartialContent && resp.Header.Get("Content-Length") != strconv.Itoa(len(b)) {
		e.t.Fatalf("%s %s: Content-Length %q for a %d-byte body", method, path, resp.Header.Get("Content-Length"), len(b))
	}
	return r
}

func (e *env) want(r response, status int, what string) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("%s: status %d, want %d; body %s", what, r.status, status, r.body)
	}
}

func tt(tok string) string { return "TargetToken " + tok }

func base(cid string) string { return "/DEFAULT/controller/v1/" + cid }

// poll is the base poll response.
type poll struct {
	Config struct {
		Polling struct {
			Sleep string `json:"sleep"`
		} `json:"polling"`
	} `json:"config"`
	Links map[string]struct {
		Href string `json:"href"`
	} `json:"_links"`
}

func (e *env) poll(cid, auth string) poll {
	e.t.Helper()
	r := e.do("GET", base(cid), auth, nil)
	e.want(r, 200, "poll "+cid)
	var p poll
	r.json(e.t, &p)
	return p
}

// href returns the link's path relative to the server, checking it is absolute.
func (e *env) href(p poll, name string) string {
	e.t.Helper()
	l, ok := p.Links[name]
	if !ok {
		e.t.Fatalf("poll has no %s link: %+v", name, p.Links)
	}
	if !strings.HasPrefix(l.Href, e.srv.URL+"/") {
		e.t.Fatalf("%s href %q is not absolute on %s", name, l.Href, e.srv.URL)
	}
	return strings.TrimPrefix(l.Href, e.srv.URL)
}

type deploymentBase struct {
	ID         string `json:"id"`
	Deployment struct {
		Download          string `json:"download"`
		Update            string `json:"update"`
		MaintenanceWindow string `json:"maintenanceWindow"`
		Chunks            []struct {
			Part      string `json:"part"`
			Version   string `json:"version"`
			Name      string `json:"name"`
			Artifacts []struct {
				Filename string            `json:"filename"`
				Hashes   map[string]string `json:"hashes"`
				Size     int64             `json:"size"`
				Links    map[string]struct {
					Href string `json:"href"`
				} `json:"_links"`
			} `json:"artifacts"`
		} `json:"chunks"`
	} `json:"deployment"`
	ActionHistory *struct {
		Status   string   `json:"status"`
		Messages []string `json:"messages"`
	} `json:"actionHistory"`
}

func (e *env) deploymentBase(path, auth string) deploymentBase {
	e.t.Helper()
	r := e.do("GET", path, auth, nil)
	e.want(r, 200, "GET "+path)
	var d deploymentBase
	r.json(e.t, &d)
	return d
}

func fb(execution, finished string, details ...string) map[string]any {
	return map[string]any{"id": "", "time": "20261128T003509",
		"status": map[string]any{"execution": execution, "result": map[string]any{"finished": finished}, "details": details}}
}

func fbProgress(execution string, cnt, of int) map[string]any {
	return map[string]any{"status": map[string]any{"execution": execution,
		"result": map[string]any{"finished": "none", "progress": map[string]any{"cnt": cnt, "of": of}}}}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprint(err))
	}
	return v
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
