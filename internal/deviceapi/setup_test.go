package deviceapi_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

// T0 is where every test's fake clock starts.
var T0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

var admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}

const tokenTTL = time.Hour

// env is what a device API test works with: a real store, a real blob
// store, the API on a loopback HTTP server and a fake clock.
type env struct {
	t        *testing.T
	ctx      context.Context
	clock    *clock.Fake
	sql      *sqlstore.Store
	store    store.Store // sql, possibly wrapped
	blobs    *blob.Disk
	issuer   *identity.Issuer
	urls     *signedurl.Signer
	hub      *notify.Hub
	registry *prometheus.Registry
	api      *deviceapi.API
	srv      *httptest.Server
	client   *http.Client
	// baseTimers is the number of fake-clock timers the API's background
	// loops hold while idle.
	baseTimers int
}

type options struct {
	backend string // "sqlite" (default) or "postgres"
	limits  deviceapi.Limits
	wrap    func(store.Store) store.Store
}

// openStore opens and migrates a fresh store of the given backend.
func openStore(t testing.TB, backend string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	var s *sqlstore.Store
	var err error
	switch backend {
	case "", "sqlite":
		s, err = sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil)
	case "postgres":
		s, err = postgres.Open(ctx, testenv.Postgres(t), nil)
	default:
		t.Fatalf("unknown backend %q", backend)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: T0}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	return s
}

func setup(t *testing.T, o options) *env {
	t.Helper()
	e := &env{t: t, ctx: context.Background(), clock: clock.NewFake(T0), hub: notify.NewHub(), registry: prometheus.NewRegistry()}
	e.sql = openStore(t, o.backend)
	e.store = e.sql
	if o.wrap != nil {
		e.store = o.wrap(e.sql)
	}
	var err error
	if e.blobs, err = blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), e.clock); err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateTokenKey("t1")
	if err != nil {
		t.Fatal(err)
	}
	e.issuer = &identity.Issuer{Keys: identity.TokenKeys{Current: key}, Clock: e.clock, TTL: tokenTTL}
	ukey, err := signedurl.GenerateKey("u1")
	if err != nil {
		t.Fatal(err)
	}
	if e.urls, err = signedurl.NewSigner(e.clock, ukey); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limits := o.limits
	if limits.GroupCommitWindow == 0 {
		// A window on the fake clock would hold every report until the
		// test advances it; tests that study the window set one.
		limits.GroupCommitWindow = -1
	}
	e.api, err = deviceapi.New(deviceapi.Config{
		Store:     e.store,
		Blobs:     e.blobs,
		Tokens:    e.issuer,
		URLs:      e.urls,
		Clock:     e.clock,
		PublicURL: "http://" + ln.Addr().String(),
		Hub:       e.hub,
		Metrics:   e.registry,
		Limits:    limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: e.api.Handler()}}
	e.srv.Start()
	t.Cleanup(e.srv.Close)
	if err := e.api.Start(e.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.api.Stop)
	e.client = e.srv.Client()
	// The flush loop and the maintenance loop each hold one timer once idle.
	e.baseTimers = 2
	e.eventually("background loops idle", func() bool { return e.clock.Waiters() == e.baseTimers })
	return e
}

// eventually polls cond until it holds, failing after a few seconds of
// real time. It is for goroutines reaching a state, never for time passing
// (that is the fake clock's job).
func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

// response is a decoded HTTP answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) errCode() string {
	var b apierror.Body
	_ = json.Unmarshal(r.body, &b)
	return b.Error.Code
}

func (r response) decode(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

func (e *env) do(method, path string, header http.Header, body []byte) response {
	e.t.Helper()
	return doRequest(e.t, e.client, method, e.srv.URL+path, header, body)
}

func doRequest(t testing.TB, c *http.Client, method, url string, header http.Header, body []byte) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	for k, vs := range header {
		req.Header[k] = vs
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// device is a simulated device with its own key.
type device struct {
	e     *env
	key   ed25519.PrivateKey
	id    identity.Identity
	devID string
	token string
}

func (e *env) newDevice(serial string) *device {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		e.t.Fatal(err)
	}
	return &device{e: e, key: key, id: identity.Identity{
		Serial: serial, DeviceType: "gw-200", HWRev: "B", Region: "eu-west", TimeZone: "Europe/Berlin",
	}}
}

func (d *device) enroll() response {
	d.e.t.Helper()
	body, sig, err := identity.SignEnrollment(d.key, d.id, d.e.clock.Now())
	if err != nil {
		d.e.t.Fatal(err)
	}
	r := d.e.do("POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, body)
	d.take(r)
	return r
}

// take remembers the device id and token from an enrollment or renewal.
func (d *device) take(r response) {
	switch r.status {
	case http.StatusOK:
		var tr wire.TokenResponse
		r.decode(d.e.t, &tr)
		d.devID, d.token = tr.DeviceID, tr.Token
	case http.StatusAccepted:
		var pr wire.PendingResponse
		r.decode(d.e.t, &pr)
		d.devID = pr.DeviceID
	}
}

func (d *device) renew() response {
	d.e.t.Helper()
	body, sig, err := identity.SignRenewal(d.key, d.devID, d.e.clock.Now())
	if err != nil {
		d.e.t.Fatal(err)
	}
	r := d.e.do("POST", wire.PathToken, http.Header{identity.SignatureHeader: {sig}}, body)
	d.take(r)
	return r
}

// enrollAccepted enrolls, has the operator accept the device and enrolls
// again to get a token.
func (e *env) enrollAccepted(serial string) *device {
	e.t.Helper()
	d := e.newDevice(serial)
	if r := d.enroll(); r.status != http.StatusAccepted {
		e.t.Fatalf("enroll: %d %s", r.status, r.body)
	}
	if _, err := e.store.AcceptDevice(e.ctx, store.DefaultTenant, d.devID, admin, e.clock.Now()); err != nil {
		e.t.Fatal(err)
	}
	if r := d.enroll(); r.status != http.StatusOK {
		e.t.Fatalf("enroll after accept: %d %s", r.status, r.body)
	}
	return d
}

func (d *device) auth() http.Header {
	return http.Header{"Authorization": {"Bearer " + d.token}, "Content-Type": {"application/json"}}
}

func (d *device) checkIn(query string, req wire.CheckInRequest) response {
	d.e.t.Helper()
	return d.e.do("POST", wire.PathCheckIn+query, d.auth(), mustJSON(d.e.t, req))
}

// checkInOK checks in and decodes a 200 answer.
func (d *device) checkInOK(query string, req wire.CheckInRequest) wire.CheckInResponse {
	d.e.t.Helper()
	r := d.checkIn(query, req)
	if r.status != http.StatusOK {
		d.e.t.Fatalf("check-in: %d %s", r.status, r.body)
	}
	var out wire.CheckInResponse
	r.decode(d.e.t, &out)
	return out
}

func (d *device) report(reps ...wire.Report) response {
	d.e.t.Helper()
	return d.e.do("POST", wire.PathReports, d.auth(), mustJSON(d.e.t, wire.ReportsRequest{Reports: reps}))
}

func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// release creates and publishes a release with one raw image for gw-200
// rev B (and rev C) whose content is data.
func (e *env) release(version string, data []byte) store.Release {
	e.t.Helper()
	info, err := e.blobs.Put(e.ctx, bytes.NewReader(data), 1<<30)
	if err != nil {
		e.t.Fatal(err)
	}
	now := e.clock.Now()
	rel, err := e.store.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: 3, Severity: store.SeverityHigh}, admin, now)
	if err != nil {
		e.t.Fatal(err)
	}
	for _, a := range []store.Artifact{
		{DeviceType: "gw-200", HWRevs: []string{"B", "C"}, Type: store.ArtifactRawImage, Component: "rootfs", Name: "gw-200-" + version + ".img"},
		{DeviceType: "gw-300", HWRevs: []string{"A"}, Type: store.ArtifactRawImage, Component: "rootfs", Name: "gw-300-" + version + ".img"},
	} {
		a.TenantID, a.ReleaseID = store.DefaultTenant, rel.ID
		a.Size, a.SHA256, a.SHA1, a.MD5 = info.Size, info.SHA256, info.SHA1, info.MD5
		if _, err := e.store.AddArtifact(e.ctx, a, admin, now); err != nil {
			e.t.Fatal(err)
		}
	}
	if rel, err = e.store.PublishRelease(e.ctx, store.DefaultTenant, rel.ID, admin, now); err != nil {
		e.t.Fatal(err)
	}
	return rel
}

// assign assigns rel to d through the store and wakes long-polls, as the
// management API does.
func (e *env) assign(d *device, rel store.Release) store.Assignment {
	e.t.Helper()
	a, _, err := e.store.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.devID, ReleaseID: rel.ID, Now: e.clock.Now()}, admin)
	if err != nil {
		e.t.Fatal(err)
	}
	e.hub.Notify(store.DefaultTenant, d.devID)
	return a
}

// snapshot returns the whole database content as text, to prove a refused
// request changed nothing.
func (e *env) snapshot() string {
	e.t.Helper()
	db := e.sql.DB()
	var q string
	switch e.sql.Dialect().Name() {
	case "sqlite":
		q = `SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`
	default:
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY table_name`
	}
	rows, err := db.QueryContext(e.ctx, q)
	if err != nil {
		e.t.Fatal(err)
	}
	var tables []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			e.t.Fatal(err)
		}
		tables = append(tables, n)
	}
	rows.Close()
	var b strings.Builder
	for _, tb := range tables {
		rows, err := db.QueryContext(e.ctx, `SELECT * FROM `+tb+` ORDER BY 1`)
		if err != nil {
			e.t.Fatal(err)
		}
		cols, _ := rows.Columns()
		for rows.Next() {
			vals := make([]any, len(cols))
			ptrs := make([]any, len(cols))
			for i := range vals {
				ptrs[i] = &vals[i]
			}
			if err := rows.Scan(ptrs...); err != nil {
				e.t.Fatal(err)
			}
			fmt.Fprintf(&b, "%s %v\n", tb, vals)
		}
		rows.Close()
	}
	return b.String()
}

// countingStore counts RecordReports calls and can hold the first one
// until released, so a test can pile up concurrent requests behind it.
type countingStore struct {
	store.Store
	mu      sync.Mutex
	calls   int
	sizes   []int
	hold    chan struct{} // nil: do not hold
	holding chan struct{} // closed when the first call is being held
}

func (c *countingStore) RecordReports(ctx context.Context, batch []store.DeviceReports, now time.Time) ([][]store.ReportOutcome, error) {
	c.mu.Lock()
	c.calls++
	first := c.calls == 1
	n := 0
	for _, dr := range batch {
		n += len(dr.Reports)
	}
	c.sizes = append(c.sizes, n)
	c.mu.Unlock()
	if first && c.hold != nil {
		close(c.holding)
		<-c.hold
	}
	return c.Store.RecordReports(ctx, batch, now)
}

func (c *countingStore) stats() (int, []int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls, append([]int(nil), c.sizes...)
}

// metricValue reads one sample from the API's registry, named like
// `updraft_device_checkins_total{result="no_work"}`; absent samples are 0.
// Histograms answer with their sample count.
func metricValue(t testing.TB, e *env, sample string) float64 {
	t.Helper()
	name, labels, _ := strings.Cut(strings.TrimSuffix(sample, "}"), "{")
	want := map[string]string{}
	if labels != "" {
		for _, kv := range strings.Split(labels, ",") {
			k, v, _ := strings.Cut(kv, "=")
			want[k] = strings.Trim(v, `"`)
		}
	}
	mfs, err := e.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			if len(m.GetLabel()) != len(want) {
				continue
			}
			for _, l := range m.GetLabel() {
				if want[l.GetName()] != l.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.GetCounter().GetValue()
			case m.Gauge != nil:
				return m.GetGauge().GetValue()
			case m.Histogram != nil:
				return float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return 0
}

func jsonBody(t testing.TB, v any) io.Reader { return bytes.NewReader(mustJSON(t, v)) }
