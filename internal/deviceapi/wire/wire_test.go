package wire_test

import (
	"encoding/json"
	"errors"
	"os/exec"
	"reflect"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/semver"
)

func TestDecodeCheckIn(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body  string
		field string // "" means valid
	}{
		{`{"version":"1.0.0"}`, ""},
		{`{"version":"1.0.0-rc.1+b7","state":"rolled-back","assignment_id":"a_1.x","device_type":"gw-200","hw_rev":"B","time_zone":"America/Argentina/Buenos_Aires","attributes":{"k":"v w"}}`, ""},
		{`{"version":"1.0.0","time_zone":"Etc/GMT+5"}`, ""},
		{`{}`, "version"},
		{`{"version":"1.2"}`, "version"},
		{`{"version":"v1.2.3"}`, "version"},
		{`{"version":"1.2.3 "}`, "version"},
		{`{"version":"1.0.0","state":"Idle"}`, "state"},
		{`{"version":"1.0.0","state":"` + strings.Repeat("a", wire.MaxStateLen+1) + `"}`, "state"},
		{`{"version":"1.0.0","assignment_id":"a/b"}`, "assignment_id"},
		{`{"version":"1.0.0","device_type":"gw 200"}`, "device_type"},
		{`{"version":"1.0.0","hw_rev":"` + strings.Repeat("r", wire.MaxNameLen+1) + `"}`, "hw_rev"},
		{`{"version":"1.0.0","time_zone":"Local"}`, "time_zone"},
		{`{"version":"1.0.0","time_zone":"/etc/passwd"}`, "time_zone"},
		{`{"version":"1.0.0","time_zone":"Europe//Berlin"}`, "time_zone"},
		{`{"version":"1.0.0","time_zone":"Europe/"}`, "time_zone"},
		{`{"version":"1.0.0","attributes":{"bad key":"v"}}`, "attributes"},
		{`{"version":"1.0.0","attributes":{"k":"` + strings.Repeat("v", wire.MaxAttributeValueLen+1) + `"}}`, "attributes.k"},
		{`{"version":"1.0.0","attributes":{"k":"a\u0085b"}}`, "attributes.k"},
		{`{"version":"1.0.0","attributes":{"k":"tab\there"}}`, "attributes.k"},
		{`{"version":"1.0.0","extra":true}`, "body"},
		{`{"version":"1.0.0"}{}`, "body"},
		{`[]`, "body"},
		{``, "body"},
		{`{"version":"1.0.0"`, "body"},
		{`{"version":null}`, "version"},
		{`{"version":"1.0.0","security_floor":0}`, ""},
		{`{"version":"1.0.0","security_floor":7}`, ""},
		{`{"version":"1.0.0","security_floor":-1}`, "security_floor"},
		{`{"version":"1.0.0","security_floor":"7"}`, "body"},
	}
	for _, tt := range tests {
		_, err := wire.DecodeCheckIn([]byte(tt.body))
		checkField(t, tt.body, err, tt.field)
	}
}

func TestDecodeReports(t *testing.T) {
	t.Parallel()
	rep := func(fields string) string {
		return `{"reports":[{"assignment_id":"a1","seq":1,"state":"downloading","progress":0` + fields + `}]}`
	}
	tests := []struct {
		body  string
		field string
	}{
		{rep(``), ""},
		{rep(`,"error_code":"E_IO","message":"line 1\nline 2","log_tail":"\u001b[1mbold\u001b[0m\n","reported_at":"2025-06-02T09:00:00+02:00"`), ""},
		{`{"reports":[{"assignment_id":"a","seq":1,"state":"notified","progress":0},{"assignment_id":"b","seq":9,"state":"canceled","progress":0}]}`, ""},
		{`{"reports":[]}`, "reports"},
		{`{}`, "reports"},
		{rep(`,"assignment_id":""`), "reports[0].assignment_id"}, // duplicate key: the last one counts
		{`{"reports":[{"seq":1,"state":"downloading","progress":0}]}`, "reports[0].assignment_id"},
		{`{"reports":[{"assignment_id":"a","seq":0,"state":"downloading","progress":0}]}`, "reports[0].seq"},
		{`{"reports":[{"assignment_id":"a","seq":-1,"state":"downloading","progress":0}]}`, "reports[0].seq"},
		{`{"reports":[{"assignment_id":"a","seq":2,"state":"downloading","progress":0},{"assignment_id":"a","seq":1,"state":"downloading","progress":0}]}`, "reports[1].seq"},
		{`{"reports":[{"assignment_id":"a","seq":1,"state":"pending","progress":0}]}`, "reports[0].state"},
		{`{"reports":[{"assignment_id":"a","seq":1,"state":"timed-out","progress":0}]}`, "reports[0].state"},
		{`{"reports":[{"assignment_id":"a","seq":1,"state":"downloading","progress":-1}]}`, "reports[0].progress"},
		{rep(`,"error_code":"has space"`), "reports[0].error_code"},
		{rep(`,"message":"` + strings.Repeat("m", wire.MaxMessageLen+1) + `"`), "reports[0].message"},
		{rep(`,"message":"bell\u0007"`), "reports[0].message"},
		{rep(`,"log_tail":"` + strings.Repeat("l", wire.MaxLogTailLen+1) + `"`), "reports[0].log_tail"},
		{rep(`,"log_tail":"nul\u0000"`), "reports[0].log_tail"},
		{rep(`,"reported_at":"1999-12-31T23:59:59Z"`), "reports[0].reported_at"},
		{rep(`,"reported_at":"2025-06-02"`), "body"},
		{rep(`,"seq":1.5`), "body"},
		{rep(`,"unknown":1`), "body"},
	}
	for _, tt := range tests {
		_, err := wire.DecodeReports([]byte(tt.body))
		checkField(t, tt.body, err, tt.field)
	}
}

func TestDecodeTelemetry(t *testing.T) {
	t.Parallel()
	tests := []struct {
		body  string
		field string
	}{
		{`{"points":[{"name":"battery_pct","at":"2025-06-02T09:00:00Z","value":81.5}]}`, ""},
		{`{"points":[]}`, "points"},
		{`{"points":[{"at":"2025-06-02T09:00:00Z","value":1}]}`, "points[0].name"},
		{`{"points":[{"name":"a:b","at":"2025-06-02T09:00:00Z","value":1}]}`, "points[0].name"},
		{`{"points":[{"name":"a","value":1}]}`, "points[0].at"},
		{`{"points":[{"name":"a","at":"0001-01-01T00:00:01Z","value":1}]}`, "points[0].at"},
		{`{"points":[{"name":"a","at":"2025-06-02T09:00:00Z","value":"1"}]}`, "body"},
		{`{"points":[{"name":"a","at":"2025-06-02T09:00:00Z","value":1e400}]}`, "body"},
	}
	for _, tt := range tests {
		_, err := wire.DecodeTelemetry([]byte(tt.body))
		checkField(t, tt.body, err, tt.field)
	}
}

func checkField(t *testing.T, body string, err error, field string) {
	t.Helper()
	if len(body) > 80 {
		body = body[:80] + "…"
	}
	if field == "" {
		if err != nil {
			t.Errorf("%s: %v", body, err)
		}
		return
	}
	var fe *wire.FieldError
	if !errors.As(err, &fe) {
		t.Errorf("%s: err %v, want a FieldError on %s", body, err, field)
		return
	}
	if fe.Field != field {
		t.Errorf("%s: error on %s (%v), want %s", body, fe.Field, fe, field)
	}
	if strings.Contains(fe.Msg, "Go ") || strings.Contains(fe.Msg, "wire.") || strings.Contains(fe.Msg, "json: ") {
		t.Errorf("%s: message names Go internals: %q", body, fe.Msg)
	}
}

func TestReportStatesAreAssignmentStates(t *testing.T) {
	t.Parallel()
	// The store's names (internal/store types.go); wire must not depend on it.
	known := map[string]bool{"pending": true, "notified": true, "downloading": true, "installing": true, "rebooting": true,
		"verifying": true, "succeeded": true, "failed": true, "rolled-back": true, "timed-out": true, "skipped": true,
		"canceled": true, "superseded": true}
	for _, s := range wire.ReportStates {
		if !known[s] {
			t.Errorf("report state %q is not an assignment state", s)
		}
	}
}

// TestImportsOnlyStandardLibrary keeps the package usable by the agent,
// whose import graph must not pull server code.
func TestImportsOnlyStandardLibrary(t *testing.T) {
	t.Parallel()
	out, err := exec.Command("go", "list", "-deps", "-f", "{{if not .Standard}}{{.ImportPath}}{{end}}", ".").Output()
	if err != nil {
		t.Skipf("go list unavailable: %v", err)
	}
	allowed := map[string]bool{
		"github.com/updraft/updraft/internal/deviceapi/wire": true,
		"github.com/updraft/updraft/internal/semver":         true,
	}
	for _, p := range strings.Fields(string(out)) {
		if !allowed[p] {
			t.Errorf("wire depends on %s", p)
		}
	}
}

// The fuzz targets check that decoders never panic, that what they accept
// is within the documented limits, and that accepted messages survive a
// round trip through encoding/json unchanged.

func FuzzDecodeCheckIn(f *testing.F) {
	f.Add([]byte(`{"version":"1.0.0"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := wire.DecodeCheckIn(body)
		if err != nil {
			var fe *wire.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if _, err := semver.Parse(r.Version); err != nil {
			t.Fatalf("accepted version %q: %v", r.Version, err)
		}
		if len(r.Attributes) > wire.MaxAttributes {
			t.Fatalf("accepted %d attributes", len(r.Attributes))
		}
		roundTrip(t, r, wire.DecodeCheckIn)
	})
}

func FuzzDecodeReports(f *testing.F) {
	f.Add([]byte(`{"reports":[{"assignment_id":"a","seq":1,"state":"downloading","progress":5}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := wire.DecodeReports(body)
		if err != nil {
			var fe *wire.FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error is not a FieldError: %v", err)
			}
			return
		}
		if n := len(r.Reports); n == 0 || n > wire.MaxReports {
			t.Fatalf("accepted %d reports", n)
		}
		for i, rep := range r.Reports {
			if rep.Seq < 1 || (i > 0 && rep.Seq <= r.Reports[i-1].Seq) || rep.Progress < 0 || rep.Progress > 100 ||
				len(rep.LogTail) > wire.MaxLogTailLen || len(rep.Message) > wire.MaxMessageLen || strings.ContainsRune(rep.LogTail, 0) {
				t.Fatalf("accepted report %d out of limits: %+v", i, rep)
			}
		}
		roundTrip(t, r, wire.DecodeReports)
	})
}

func FuzzDecodeTelemetry(f *testing.F) {
	f.Add([]byte(`{"points":[{"name":"m","at":"2025-06-02T09:00:00Z","value":1}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := wire.DecodeTelemetry(body)
		if err != nil {
			return
		}
		if n := len(r.Points); n == 0 || n > wire.MaxPoints {
			t.Fatalf("accepted %d points", n)
		}
		roundTrip(t, r, wire.DecodeTelemetry)
	})
}

func roundTrip[T any](t *testing.T, v T, decode func([]byte) (T, error)) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("re-encode %+v: %v", v, err)
	}
	again, err := decode(b)
	if err != nil {
		t.Fatalf("re-encoded %s does not decode: %v", b, err)
	}
	if !equalJSON(t, v, again) {
		t.Fatalf("round trip changed %+v into %+v", v, again)
	}
}

// equalJSON compares through the encoding, where times compare by instant
// as written (time.Time's monotonic and location details do not matter).
func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	var x, y any
	if json.Unmarshal(ja, &x) != nil || json.Unmarshal(jb, &y) != nil {
		t.Fatal("re-decoding failed")
	}
	return reflect.DeepEqual(x, y)
}
