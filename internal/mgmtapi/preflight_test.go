package mgmtapi

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// preflightRequestFor builds the request for the pre-flight route in the
// route-table tests: a handful of runs keeps them fast.
func (e *env) preflightRequestFor(rt Route, _ fixture) (req, bool) {
	if rt.Method+" "+strings.TrimPrefix(rt.Pattern, Prefix) != "POST /campaigns/preflight" {
		return req{}, false
	}
	return req{method: rt.Method, path: "/campaigns/preflight?runs=3", body: map[string]any{"name": "pf", "release": "1.0.0", "allow_bad": true}}, true
}

type preflightBody struct {
	Preview struct {
		Targets int `json:"targets"`
	} `json:"preview"`
	Runs  int    `json:"runs"`
	Seed  uint64 `json:"seed"`
	Fleet struct {
		Strata []struct {
			Key            string         `json:"key"`
			Devices        int            `json:"devices"`
			Zones          map[string]int `json:"time_zones"`
			InstallFailure float64        `json:"install_failure"`
		} `json:"strata"`
		Sources map[string]string `json:"sources"`
		Notes   []string          `json:"notes"`
	} `json:"fleet"`
	Scenarios []struct {
		Scenario struct {
			Name    string  `json:"name"`
			Factor  float64 `json:"factor"`
			Stratum string  `json:"stratum"`
		} `json:"scenario"`
		HaltProbability float64 `json:"halt_probability"`
		Completed       int     `json:"completed_runs"`
		DurationHours   struct {
			P50, P90 float64
		} `json:"duration_hours"`
	} `json:"scenarios"`
}

// TestPreflightThroughTheAPI runs a pre-flight of a small fleet in two
// revisions and two time zones: the twin shows the registry's strata and
// zones and names its defaults, every scenario ran, the figures repeat
// for the same seed, and bad options are refused with clear errors.
func TestPreflightThroughTheAPI(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.release("2.0.0", "gw-200", []string{"B", "C"}, true)
	seen := map[string]time.Time{}
	for i := range 40 {
		rev, tz := "B", "Europe/Berlin"
		if i%4 == 0 {
			rev, tz = "C", "America/Chicago"
		}
		id := e.enroll(fmt.Sprintf("PF-%02d", i), "gw-200", rev, true)
		if _, err := e.st.UpdateDeviceReport(t.Context(), store.DefaultTenant, id, store.DeviceReport{TimeZone: tz, Now: t0}); err != nil {
			t.Fatal(err)
		}
		if i != 39 { // one device was never seen: it would time out
			seen[id] = t0
		}
	}
	if err := e.st.TouchLastSeen(t.Context(), store.DefaultTenant, seen); err != nil {
		t.Fatal(err)
	}
	spec := map[string]any{"name": "pf", "release": "2.0.0", "strata": []string{"hw_rev"},
		"plan":     map[string]any{"waves": []float64{25, 100}},
		"schedule": map[string]any{"windows": []map[string]any{{"start": "02:00", "duration": "4h"}}}}
	var a, b preflightBody
	r := e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/preflight?runs=20&seed=9", body: spec})
	r.decode(t, &a)
	if a.Runs != 20 || a.Seed != 9 || a.Preview.Targets == 0 {
		t.Fatalf("runs %d seed %d targets %d, want 20, 9 and the preview's targets", a.Runs, a.Seed, a.Preview.Targets)
	}
	byKey := map[string]int{}
	for _, s := range a.Fleet.Strata {
		byKey[s.Key] = s.Devices
		if s.Key == "hw_rev=C" && s.Zones["America/Chicago"] != 10 {
			t.Errorf("hw_rev=C zones %v, want 10 devices in America/Chicago", s.Zones)
		}
	}
	if byKey["hw_rev=C"] != 10 || byKey["hw_rev=B"] != 30 {
		t.Errorf("twin strata %v, want 10 in C and 30 in B", byKey)
	}
	if a.Fleet.Sources["install_failure"] != "default" || a.Fleet.Sources["rates"] != "default" || len(a.Fleet.Notes) == 0 {
		t.Errorf("sources %v notes %q: a fleet without history must say it uses defaults", a.Fleet.Sources, a.Fleet.Notes)
	}
	if len(a.Scenarios) != 7 || a.Scenarios[0].Scenario.Name != "good" || a.Scenarios[4].Scenario.Stratum != "hw_rev=C" {
		t.Fatalf("scenarios %+v, want good, three fleet-wide and three on hw_rev=C", a.Scenarios)
	}
	good := a.Scenarios[0]
	if good.Completed == 0 || good.DurationHours.P50 <= 0 || good.DurationHours.P90 < good.DurationHours.P50 {
		t.Errorf("good release %+v: want completed runs with a positive duration", good)
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/preflight?runs=20&seed=9", body: spec}).decode(t, &b)
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("the same seed gave different reports:\n%+v\n%+v", a, b)
	}

	for _, c := range []struct {
		name, path string
		body       any
		status     int
		code       string
	}{
		{"zero runs", "/campaigns/preflight?runs=0", spec, 400, "bad_parameter"},
		{"too many runs", "/campaigns/preflight?runs=100000", spec, 400, "bad_parameter"},
		{"runs not a number", "/campaigns/preflight?runs=many", spec, 400, "bad_parameter"},
		{"negative seed", "/campaigns/preflight?seed=-4", spec, 400, "bad_parameter"},
		{"unknown parameter", "/campaigns/preflight?scenarios=2", spec, 400, "bad_parameter"},
		{"unknown regression", "/campaigns/preflight?regress=battery", spec, 400, "bad_parameter"},
		{"unknown release", "/campaigns/preflight", map[string]any{"name": "x", "release": "9.9.9"}, 400, "invalid_campaign"},
		{"unknown field", "/campaigns/preflight", map[string]any{"name": "x", "release": "2.0.0", "runs": 3}, 400, ""},
		{"too large", "/campaigns/preflight", map[string]any{"name": strings.Repeat("x", 70<<10), "release": "2.0.0"}, 413, ""},
	} {
		r := e.must(c.status, req{token: e.operator, method: "POST", path: c.path, body: c.body})
		if c.code != "" {
			if got := r.errorCode(t); got != c.code {
				t.Errorf("%s: code %q, want %q: %s", c.name, got, c.code, r.body)
			}
		}
	}
	var crash struct {
		Scenarios []struct {
			Scenario struct {
				Metrics []string `json:"metrics"`
			} `json:"scenario"`
		} `json:"scenarios"`
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/preflight?runs=2&regress=crash", body: spec}).decode(t, &crash)
	if got := crash.Scenarios[1].Scenario.Metrics; len(got) != 1 || got[0] != "crash" {
		t.Errorf("regress=crash: scenario metrics %v, want [crash]", got)
	}
	e.must(403, req{token: e.viewer, method: "POST", path: "/campaigns/preflight?runs=2", body: spec})
}

// TestPreflightMaxRunsInThePreview checks that the preview's
// preflight_max_runs is the figure the pre-flight holds to: for a fleet in
// seven strata one run more is refused, naming it; a fleet in one stratum
// gets the API's cap. (It does not run the most allowed: that is 6,600
// runs × groups of work, too slow for this suite.)
func TestPreflightMaxRunsInThePreview(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	revs := []string{"A", "B", "C", "D", "E", "F", "G"}
	e.release("2.0.0", "gw-200", revs, true)
	for i, rev := range revs {
		e.enroll(fmt.Sprintf("MR-%02d", i), "gw-200", rev, true)
	}
	var pv struct {
		Strata           map[string]int `json:"strata"`
		PreflightMaxRuns int            `json:"preflight_max_runs"`
	}
	for _, c := range []struct {
		strata []string
		want   int
	}{
		{[]string{"device_type"}, maxPreflightRuns},
		{[]string{"hw_rev"}, 6600 / 8},
	} {
		spec := map[string]any{"name": "pf", "release": "2.0.0", "strata": c.strata}
		e.must(200, req{token: e.operator, method: "POST", path: "/campaigns/preview", body: spec}).decode(t, &pv)
		if pv.PreflightMaxRuns != c.want {
			t.Errorf("strata %v (%d): preflight_max_runs %d, want %d", c.strata, len(pv.Strata), pv.PreflightMaxRuns, c.want)
		}
	}
	spec := map[string]any{"name": "pf", "release": "2.0.0", "strata": []string{"hw_rev"}, "plan": map[string]any{"waves": []float64{50, 100}}}
	r := e.must(400, req{token: e.operator, method: "POST", path: fmt.Sprintf("/campaigns/preflight?runs=%d", pv.PreflightMaxRuns+1), body: spec})
	if code := r.errorCode(t); code != "bad_parameter" || !strings.Contains(string(r.body), fmt.Sprintf("at most %d runs", pv.PreflightMaxRuns)) {
		t.Errorf("one run too many: %s %s", code, r.body)
	}
}
