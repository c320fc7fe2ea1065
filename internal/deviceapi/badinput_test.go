package deviceapi_test

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// TestBadInputChangesNothing sends every kind of bad request and checks
// the status, the error code, that no internal text leaks, and that the
// database is exactly as before.
func TestBadInputChangesNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	rel := e.release("2.0.0", []byte("image"))
	asg := e.assign(d, rel)
	ci := d.checkInOK("", wire.CheckInRequest{Version: "1.0.0"})
	art := ci.Assignment.Artifact

	// Signed requests of various kinds.
	fresh := e.newDevice("SN-NEW")
	body, sig, err := identity.SignEnrollment(fresh.key, fresh.id, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	_, otherSig, err := identity.SignEnrollment(fresh.key, identity.Identity{Serial: "SN-OTHER", DeviceType: "x", HWRev: "y", Region: "z"}, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	staleBody, staleSig, err := identity.SignEnrollment(fresh.key, fresh.id, e.clock.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	withExtra := bytes.Replace(body, []byte(`{"identity"`), []byte(`{"extra":1,"identity"`), 1)
	badKey := bytes.Replace(body, []byte(`"public_key":"-----BEGIN`), []byte(`"public_key":"-----BEGIN X`), 1)

	// Tokens that must not work.
	past := &identity.Issuer{Keys: e.issuer.Keys, Clock: clock.NewFake(T0.Add(-3 * time.Hour)), TTL: time.Hour}
	expired, _, err := past.Issue(identity.Claims{Tenant: store.DefaultTenant, DeviceID: d.devID})
	if err != nil {
		t.Fatal(err)
	}
	ghost, _, err := e.issuer.Issue(identity.Claims{Tenant: store.DefaultTenant, DeviceID: "0123456789abcdef0123456789abcdef"})
	if err != nil {
		t.Fatal(err)
	}
	otherKey, err := identity.GenerateTokenKey("t1")
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := (&identity.Issuer{Keys: identity.TokenKeys{Current: otherKey}, Clock: e.clock}).Issue(identity.Claims{Tenant: store.DefaultTenant, DeviceID: d.devID})
	if err != nil {
		t.Fatal(err)
	}
	bearer := func(tok string) http.Header { return http.Header{"Authorization": {"Bearer " + tok}} }

	// Download URLs that must not work.
	u, err := url.Parse(art.URL)
	if err != nil {
		t.Fatal(err)
	}
	q := u.Query()
	q.Set(signedurl.ParamSignature, strings.Repeat("A", len(q.Get(signedurl.ParamSignature))))
	tampered := u.Path + "?" + q.Encode()
	oldQuery, err := e.urls.Sign(signedurl.Params{Tenant: store.DefaultTenant, Device: d.devID, Artifact: art.ID}, e.clock.Now().Add(-time.Second))
	if err != nil {
		t.Fatal(err)
	}
	otherArtifact := wire.DownloadPath("ffffffffffffffffffffffffffffffff") + "?" + u.RawQuery

	checkin := func(v any) []byte { return mustJSON(t, v) }
	reports := func(reps ...wire.Report) []byte { return mustJSON(t, wire.ReportsRequest{Reports: reps}) }
	good := wire.Report{AssignmentID: asg.ID, Seq: 1, State: "downloading"}
	with := func(f func(*wire.Report)) wire.Report { r := good; f(&r); return r }
	many := make([]wire.Report, wire.MaxReports+1)
	for i := range many {
		many[i] = with(func(r *wire.Report) { r.Seq = int64(i + 1) })
	}
	attrs := map[string]string{}
	for i := range wire.MaxAttributes + 1 {
		attrs[fmt.Sprintf("k%d", i)] = "v"
	}
	points := make([]wire.Point, wire.MaxPoints+1)
	for i := range points {
		points[i] = wire.Point{Name: "m", At: T0, Value: float64(i)}
	}

	tests := []struct {
		name   string
		method string
		path   string
		header http.Header
		body   []byte
		status int
		code   string
	}{
		// Enrollment.
		{"enroll malformed json", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, []byte(`{"identity":`), 400, "invalid_request"},
		{"enroll unknown field", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, withExtra, 400, "invalid_request"},
		{"enroll bad key", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, badKey, 400, "invalid_request"},
		{"enroll signature of another body", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {otherSig}}, body, 401, "bad_signature"},
		{"enroll garbage signature", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {"!!"}}, body, 401, "bad_signature"},
		{"enroll missing signature", "POST", wire.PathEnroll, nil, body, 401, "missing_signature"},
		{"enroll stale", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {staleSig}}, staleBody, 400, "stale_request"},
		{"enroll oversize", "POST", wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, bytes.Repeat([]byte(" "), identity.MaxRequestBytes+1), 413, "too_large"},
		{"enroll wrong method", "GET", wire.PathEnroll, nil, nil, 405, "method_not_allowed"},

		// Check-in authentication.
		{"checkin no token", "POST", wire.PathCheckIn, nil, checkin(idle), 401, "unauthorized"},
		{"checkin basic auth", "POST", wire.PathCheckIn, http.Header{"Authorization": {"Basic dTpw"}}, checkin(idle), 401, "unauthorized"},
		{"checkin garbage token", "POST", wire.PathCheckIn, bearer("udt1.nonsense"), checkin(idle), 401, "invalid_token"},
		{"checkin forged token", "POST", wire.PathCheckIn, bearer(forged), checkin(idle), 401, "invalid_token"},
		{"checkin expired token", "POST", wire.PathCheckIn, bearer(expired), checkin(idle), 401, "token_expired"},
		{"checkin unknown device", "POST", wire.PathCheckIn, bearer(ghost), checkin(idle), 401, "unknown_device"},
		// Check-in bodies.
		{"checkin non-semver", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "1.2"}), 400, "invalid_request"},
		{"checkin v-prefixed version", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "v1.2.3"}), 400, "invalid_request"},
		{"checkin no version", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{State: "idle"}), 400, "invalid_request"},
		{"checkin unknown field", "POST", wire.PathCheckIn, d.auth(), []byte(`{"version":"1.0.0","colour":"red"}`), 400, "invalid_request"},
		{"checkin malformed json", "POST", wire.PathCheckIn, d.auth(), []byte(`{"version":"1.0.0"`), 400, "invalid_request"},
		{"checkin trailing data", "POST", wire.PathCheckIn, d.auth(), []byte(`{"version":"1.0.0"} {}`), 400, "invalid_request"},
		{"checkin wrong type", "POST", wire.PathCheckIn, d.auth(), []byte(`{"version":1}`), 400, "invalid_request"},
		{"checkin empty body", "POST", wire.PathCheckIn, d.auth(), nil, 400, "invalid_request"},
		{"checkin oversize", "POST", wire.PathCheckIn, d.auth(), bytes.Repeat([]byte(" "), wire.MaxCheckInBytes+1), 413, "too_large"},
		{"checkin too many attributes", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "1.0.0", Attributes: attrs}), 400, "invalid_request"},
		{"checkin control characters", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "1.0.0", Attributes: map[string]string{"a": "x\x07"}}), 400, "invalid_request"},
		{"checkin unknown time zone", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "1.0.0", TimeZone: "Mars/Olympus_Mons"}), 400, "invalid_request"},
		{"checkin bad state", "POST", wire.PathCheckIn, d.auth(), checkin(wire.CheckInRequest{Version: "1.0.0", State: "Idle!"}), 400, "invalid_request"},
		{"checkin bad wait", "POST", wire.PathCheckIn + "?wait=soon", d.auth(), checkin(idle), 400, "bad_request"},
		{"checkin negative wait", "POST", wire.PathCheckIn + "?wait=-5s", d.auth(), checkin(idle), 400, "bad_request"},
		{"checkin wrong method", "GET", wire.PathCheckIn, d.auth(), nil, 405, "method_not_allowed"},

		// Reports.
		{"reports no token", "POST", wire.PathReports, nil, reports(good), 401, "unauthorized"},
		{"reports expired token", "POST", wire.PathReports, bearer(expired), reports(good), 401, "token_expired"},
		{"reports none", "POST", wire.PathReports, d.auth(), reports(), 400, "invalid_request"},
		{"reports seq zero", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.Seq = 0 })), 400, "invalid_request"},
		{"reports server state", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.State = "superseded" })), 400, "invalid_request"},
		{"reports unknown state", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.State = "done" })), 400, "invalid_request"},
		{"reports progress", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.Progress = 101 })), 400, "invalid_request"},
		{"reports no assignment", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.AssignmentID = "" })), 400, "invalid_request"},
		{"reports seq order", "POST", wire.PathReports, d.auth(), reports(good, good), 400, "invalid_request"},
		{"reports one bad among good", "POST", wire.PathReports, d.auth(), reports(good, with(func(r *wire.Report) { r.Seq = 2; r.ErrorCode = "bad code!" })), 400, "invalid_request"},
		{"reports long log", "POST", wire.PathReports, d.auth(), reports(with(func(r *wire.Report) { r.LogTail = strings.Repeat("x", wire.MaxLogTailLen+1) })), 400, "invalid_request"},
		{"reports too many", "POST", wire.PathReports, d.auth(), reports(many...), 400, "invalid_request"},
		{"reports bad time", "POST", wire.PathReports, d.auth(), []byte(`{"reports":[{"assignment_id":"a","seq":1,"state":"downloading","progress":0,"reported_at":"yesterday"}]}`), 400, "invalid_request"},
		{"reports unknown field", "POST", wire.PathReports, d.auth(), []byte(`{"reports":[{"assignment_id":"a","seq":1,"state":"downloading","progress":0,"eta":5}]}`), 400, "invalid_request"},
		{"reports oversize", "POST", wire.PathReports, d.auth(), bytes.Repeat([]byte(" "), wire.MaxReportsBytes+1), 413, "too_large"},

		// Telemetry.
		{"telemetry no token", "POST", wire.PathTelemetry, nil, mustJSON(t, wire.TelemetryRequest{Points: points[:1]}), 401, "unauthorized"},
		{"telemetry none", "POST", wire.PathTelemetry, d.auth(), []byte(`{"points":[]}`), 400, "invalid_request"},
		{"telemetry too many", "POST", wire.PathTelemetry, d.auth(), mustJSON(t, wire.TelemetryRequest{Points: points}), 400, "invalid_request"},
		{"telemetry bad name", "POST", wire.PathTelemetry, d.auth(), []byte(`{"points":[{"name":"a b","at":"2025-06-02T09:00:00Z","value":1}]}`), 400, "invalid_request"},
		{"telemetry no time", "POST", wire.PathTelemetry, d.auth(), []byte(`{"points":[{"name":"a","value":1}]}`), 400, "invalid_request"},
		{"telemetry string value", "POST", wire.PathTelemetry, d.auth(), []byte(`{"points":[{"name":"a","at":"2025-06-02T09:00:00Z","value":"1"}]}`), 400, "invalid_request"},
		{"telemetry huge value", "POST", wire.PathTelemetry, d.auth(), []byte(`{"points":[{"name":"a","at":"2025-06-02T09:00:00Z","value":1e999}]}`), 400, "invalid_request"},
		{"telemetry oversize", "POST", wire.PathTelemetry, d.auth(), bytes.Repeat([]byte(" "), wire.MaxTelemetryBytes+1), 413, "too_large"},

		// Downloads.
		{"download tampered", "GET", tampered, nil, nil, 403, "bad_url"},
		{"download no query", "GET", u.Path, nil, nil, 403, "bad_url"},
		{"download expired", "GET", u.Path + "?" + oldQuery, nil, nil, 410, "url_expired"},
		{"download other artifact", "GET", otherArtifact, nil, nil, 403, "bad_url"},
		{"download wrong method", "POST", u.Path + "?" + u.RawQuery, nil, nil, 405, "method_not_allowed"},

		{"unknown endpoint", "GET", wire.Prefix + "/nothing", nil, nil, 404, "not_found"},
	}
	before := e.snapshot()
	for _, tt := range tests {
		r := e.do(tt.method, tt.path, tt.header, tt.body)
		if r.status != tt.status || r.errCode() != tt.code {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.status, r.body, tt.status, tt.code)
		}
		if r.header.Get("Content-Type") != "application/json" {
			t.Errorf("%s: Content-Type %q", tt.name, r.header.Get("Content-Type"))
		}
		for _, leak := range []string{"sql", "SQL", "sqlite", "pgx", "goroutine", "/work/"} {
			if bytes.Contains(r.body, []byte(leak)) {
				t.Errorf("%s: answer leaks %q: %s", tt.name, leak, r.body)
			}
		}
		if after := e.snapshot(); after != before {
			t.Fatalf("%s changed the database", tt.name)
		}
	}
	// Nothing was queued for last-seen either: a flush writes nothing new.
	e.clock.Advance(30 * time.Second)
	e.api.Stop()
	dev, err := e.store.Device(e.ctx, store.DefaultTenant, d.devID)
	if err != nil || dev.LastSeenAt == nil || !dev.LastSeenAt.Equal(T0) {
		t.Fatalf("last seen %v, want the good check-in's %v", dev.LastSeenAt, T0)
	}
}

func TestNonSemverMessageIsClear(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	r := d.checkIn("", wire.CheckInRequest{Version: "2.4"})
	if r.status != http.StatusBadRequest || !strings.Contains(string(r.body), `version \"2.4\" is not a semantic version`) {
		t.Fatalf("non-semver: %d %s", r.status, r.body)
	}
}
