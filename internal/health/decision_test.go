package health

import (
	"math"
	"reflect"
	"strings"
	"testing"
	"time"
)

// stratum builds a stratum with an SLO baseline of 1 % and, unless
// silent, crash and reboot evidence in one period: canary 10,000
// device-hours, control 1,000,000 device-hours with 1,000 crashes and 500
// reboots (the example of canary-stats.md (d)).
func stratum(key string, installs, failures, crashes int, telemetry bool) Stratum {
	s := Stratum{Key: key, Label: "revision " + strings.TrimPrefix(key, "hw_rev="), Installs: installs, Failures: failures, Baseline: Baseline{SLO: 0.01}}
	if telemetry {
		s.Rates = []RateSeries{
			{Metric: "crash", Periods: []RatePeriod{{crashes, 10_000, 1000, 1_000_000}}},
			{Metric: "reboot", Periods: []RatePeriod{{5, 10_000, 500, 1_000_000}}},
		}
	}
	return s
}

func find(t *testing.T, d Decision, metric, key string) TestResult {
	t.Helper()
	for _, r := range d.Tests {
		if r.Metric == metric && r.Stratum == key {
			return r
		}
	}
	t.Fatalf("no %s test for stratum %q in %+v", metric, key, d.Tests)
	return TestResult{}
}

func TestEvaluateVerdicts(t *testing.T) {
	t.Parallel()
	soaked := 30 * time.Hour
	tests := []struct {
		name     string
		evidence Evidence
		verdict  Verdict
		summary  string // prefix
	}{
		{
			name: "install regression on one revision",
			evidence: Evidence{SoakElapsed: soaked, Strata: []Stratum{
				stratum("hw_rev=B", 60, 7, 10, true), stratum("hw_rev=C", 600, 5, 10, true),
			}},
			verdict: Halt,
			summary: "Halt: revision B failed to install on 7 of 60 devices (11.7%) against the SLO of 1.0%; the sequential test crossed its halt bound (Λ = 9.10 ≥ 6.80).",
		},
		{
			name: "guardrail halts at once, before any soak",
			evidence: Evidence{SoakElapsed: time.Hour, Strata: []Stratum{
				func() Stratum { s := stratum("hw_rev=B", 20, 2, 0, true); s.Bricked, s.RolledBack = 1, 2; return s }(),
			}},
			verdict: Halt,
			summary: "Halt: 3 devices bricked or rolled back (revision B: 1 bricked, 2 rolled back), reaching the guardrail of 3.",
		},
		{
			name: "crash regression against the control",
			evidence: Evidence{SoakElapsed: soaked, Strata: []Stratum{
				stratum("hw_rev=B", 600, 5, 40, true), stratum("hw_rev=C", 600, 5, 10, true),
			}},
			verdict: Halt,
			summary: "Halt: revision B had 40 crash events in 10,000 h (4.00 per 1,000 device-hours) against 1,000 in 1,000,000 h (1.00 per 1,000 device-hours) in the control; the always-valid test of \"at most 1.25× the control's rate\" reached E = ",
		},
		{
			name: "soak not over",
			evidence: Evidence{SoakElapsed: 10 * time.Hour, Strata: []Stratum{
				stratum("hw_rev=B", 600, 5, 10, true),
			}},
			verdict: Hold,
			summary: "Hold: the wave has soaked 10 h of the required 24 h; no test has rejected so far.",
		},
		{
			name: "no outcomes yet",
			evidence: Evidence{SoakElapsed: soaked, Strata: []Stratum{
				stratum("hw_rev=B", 0, 0, 0, false),
			}},
			verdict: Hold,
			summary: "Hold: no device has reported an install outcome yet.",
		},
		{
			name: "clean wave advances",
			evidence: Evidence{SoakElapsed: soaked, Strata: []Stratum{
				stratum("hw_rev=B", 1500, 14, 12, true), stratum("hw_rev=C", 900, 8, 9, true),
			}},
			verdict: Advance,
			summary: "Advance: the 24 h soak has passed, the guardrail is clean (0 of 3) and none of 9 tests rejected (α = 0.01 in total, 0.0011 each).",
		},
		{
			name: "invalid evidence holds",
			evidence: Evidence{SoakElapsed: soaked, Strata: []Stratum{
				stratum("hw_rev=B", 10, 11, 0, false),
			}},
			verdict: Hold,
			summary: `Hold: the evidence cannot be judged: evidence: stratum "hw_rev=B": 11 failures of 10 installs.`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d := Evaluate(Policy{}, tt.evidence)
			if d.Verdict != tt.verdict {
				t.Errorf("verdict %s, want %s: %s", d.Verdict, tt.verdict, d.Summary)
			}
			if !strings.HasPrefix(d.Summary, tt.summary) {
				t.Errorf("summary\n%s\nwant prefix\n%s", d.Summary, tt.summary)
			}
		})
	}
}

// TestEvaluateRecords checks the per-test records of a halting decision:
// what was tested, where, with which statistic, threshold and sample
// sizes, and that the error budget is split 3 groups × 3 metrics.
func TestEvaluateRecords(t *testing.T) {
	t.Parallel()
	e := Evidence{SoakElapsed: 30 * time.Hour, Strata: []Stratum{
		stratum("hw_rev=B", 60, 7, 10, true), stratum("hw_rev=C", 600, 5, 25, true),
	}}
	d := Evaluate(Policy{}, e)
	if len(d.Tests) != 2+3*3 {
		t.Fatalf("%d test records, want soak + guardrail + 3 groups × 3 metrics", len(d.Tests))
	}
	alpha := 0.01 / 9
	if d.TestAlpha != alpha || d.Alpha != 0.01 {
		t.Errorf("α %g per test of %g, want %g of 0.01", d.TestAlpha, d.Alpha, alpha)
	}
	b := find(t, d, "install", "hw_rev=B")
	mix := MixtureSPRT{P0: 0.01, Mix: DefaultInstallMixture(2)}
	want := TestResult{
		Metric: "install", Stratum: "hw_rev=B", Label: "revision B", Method: MethodSPRT, Outcome: Rejected,
		Statistic: mix.LogLR(60, 7), Threshold: -math.Log(alpha), Alpha: alpha,
		Devices: 60, Failures: 7, Baseline: 0.01,
	}
	got := b
	got.EValue, got.PValue, got.Detectable, got.Explanation = 0, 0, 0, ""
	if !reflect.DeepEqual(got, want) {
		t.Errorf("install record\n%+v\nwant\n%+v", got, want)
	}
	if math.Abs(b.EValue-math.Exp(b.Statistic)) > 1e-9*b.EValue || b.PValue != 1/b.EValue {
		t.Errorf("E = %g, p = %g for Λ = %g", b.EValue, b.PValue, b.Statistic)
	}
	// The crash test for C: 25 crashes against 10 expected at the
	// control's rate is suspicious (p = 0.0013 for a fixed-sample test of 1.25×)
	// but not yet enough for the always-valid test at this level.
	c := find(t, d, "crash", "hw_rev=C")
	if c.Outcome != Continuing || c.Statistic > c.Threshold-1 {
		t.Errorf("crash for C: %s, ln E = %.2f of %.2f", c.Outcome, c.Statistic, c.Threshold)
	}
	if c.CanaryEvents != 25 || c.ControlEvents != 1000 || c.CanaryHours != 10_000 || c.ControlHours != 1_000_000 {
		t.Errorf("crash record totals: %+v", c)
	}
	if c.Method != MethodMixture || c.Threshold != -math.Log(alpha) {
		t.Errorf("crash record method %s threshold %g", c.Method, c.Threshold)
	}
	// All devices: the install test adds both strata's evidence.
	all := find(t, d, "install", "")
	if all.Devices != 660 || all.Failures != 12 || all.Label != "all devices" {
		t.Errorf("overall install record: %+v", all)
	}
	crashAll := find(t, d, "crash", "")
	if crashAll.CanaryEvents != 35 || crashAll.ControlHours != 2_000_000 {
		t.Errorf("overall crash record: %+v", crashAll)
	}
	if d.Tests[0].Metric != "soak" || d.Tests[1].Metric != "guardrail" {
		t.Errorf("records start with %s, %s", d.Tests[0].Metric, d.Tests[1].Metric)
	}
}

// TestEvaluateOverallCatchesWhatStrataMiss: three strata each slightly
// worse than the baseline — none enough on its own at its share of α —
// add up to a halt for the fleet.
func TestEvaluateOverallCatchesWhatStrataMiss(t *testing.T) {
	t.Parallel()
	e := Evidence{SoakElapsed: 30 * time.Hour}
	for _, k := range []string{"hw_rev=A", "hw_rev=B", "hw_rev=C"} {
		e.Strata = append(e.Strata, stratum(k, 400, 10, 10, true))
	}
	d := Evaluate(Policy{}, e)
	if d.Verdict != Halt {
		t.Fatalf("verdict %s: %s", d.Verdict, d.Summary)
	}
	for _, k := range []string{"hw_rev=A", "hw_rev=B", "hw_rev=C"} {
		if r := find(t, d, "install", k); r.Outcome == Rejected {
			t.Errorf("%s rejected alone: %s", k, r.Explanation)
		}
	}
	if r := find(t, d, "install", ""); r.Outcome != Rejected {
		t.Errorf("overall: %s", r.Explanation)
	}
	if !strings.HasPrefix(d.Summary, "Halt: all devices failed to install on 30 of 1,200 devices (2.5%) against a baseline of 1.0%") {
		t.Errorf("summary: %s", d.Summary)
	}
}

// TestEvaluateSilentDevices: devices without telemetry are judged on
// install outcome only, and the decision says so.
func TestEvaluateSilentDevices(t *testing.T) {
	t.Parallel()
	mixed := stratum("hw_rev=B", 500, 4, 10, true)
	mixed.Silent = 40
	e := Evidence{SoakElapsed: 30 * time.Hour, Strata: []Stratum{
		mixed,
		stratum("hw_rev=C", 300, 2, 0, false),
	}}
	d := Evaluate(Policy{}, e)
	if d.Verdict != Advance {
		t.Fatalf("verdict %s: %s", d.Verdict, d.Summary)
	}
	wantNotes := []string{
		"Revision B: 40 of 500 devices send no telemetry and were judged on install outcome only.",
		"Revision C sends no telemetry; its 300 devices were judged on install outcome only.",
	}
	if !reflect.DeepEqual(d.InstallOnly, wantNotes) {
		t.Errorf("notes %q, want %q", d.InstallOnly, wantNotes)
	}
	for _, n := range wantNotes {
		if !strings.Contains(d.Summary, n) {
			t.Errorf("summary lacks %q: %s", n, d.Summary)
		}
	}
	for _, m := range []string{"crash", "reboot"} {
		r := find(t, d, m, "hw_rev=C")
		if r.Outcome != Skipped || !strings.Contains(r.Explanation, "judged on install outcome only") {
			t.Errorf("%s for C: %s %s", m, r.Outcome, r.Explanation)
		}
	}
}

// TestEvaluateStatesDetectable: every decision says how large a regression
// the evidence could have caught, and more evidence catches smaller ones.
func TestEvaluateStatesDetectable(t *testing.T) {
	t.Parallel()
	small := Evaluate(Policy{}, Evidence{SoakElapsed: 30 * time.Hour, Strata: []Stratum{stratum("x", 300, 3, 10, true)}})
	large := Evaluate(Policy{}, Evidence{SoakElapsed: 30 * time.Hour, Strata: []Stratum{stratum("x", 5000, 50, 10, true)}})
	fs, fl := find(t, small, "install", "x").Detectable, find(t, large, "install", "x").Detectable
	if !(fl < fs) || math.IsInf(fs, 0) {
		t.Errorf("detectable install regression: %g with 300 devices, %g with 5,000", fs, fl)
	}
	// The figure is what it claims: at the detectable rate, this look
	// halts with probability 0.9.
	p0 := 0.01
	h := MixtureSPRT{P0: p0, Mix: DefaultInstallMixture(2)}.HaltCount(5000, -math.Log(0.01/3))
	if pw := BinomialTail(h, 5000, fl*p0); math.Abs(pw-0.9) > 0.01 {
		t.Errorf("power at the detectable factor %.3f is %.4f", fl, pw)
	}
	for _, d := range []Decision{small, large} {
		if !strings.Contains(d.Summary, "The evidence so far would have detected a ") || !strings.Contains(d.Summary, " with 90% probability.") {
			t.Errorf("summary lacks the detectable regression: %s", d.Summary)
		}
	}
	// Rates: the canary of the stratum helper has 10,000 device-hours
	// against 1,000,000 at 1 per 1,000 h, so about 10 expected crashes.
	r := find(t, small, "crash", "x").Detectable
	if !(r > 1.5 && r < 10) {
		t.Errorf("detectable crash ratio %g", r)
	}
	none := Evaluate(Policy{}, Evidence{Strata: []Stratum{stratum("x", 0, 0, 0, false)}})
	if !strings.Contains(none.Summary, "The evidence so far is too thin to detect any regression.") {
		t.Errorf("summary without evidence: %s", none.Summary)
	}
}

// TestEvaluatePure: the same input gives the same decision and the input
// is not modified.
func TestEvaluatePure(t *testing.T) {
	t.Parallel()
	build := func() Evidence {
		return Evidence{SoakElapsed: 30 * time.Hour, Strata: []Stratum{
			stratum("hw_rev=B", 60, 7, 10, true), stratum("hw_rev=C", 600, 5, 30, true),
		}}
	}
	e := build()
	p := Policy{RateMetrics: []string{"crash", "reboot"}}
	a, b := Evaluate(p, e), Evaluate(p, e)
	if !reflect.DeepEqual(a, b) {
		t.Error("two evaluations differ")
	}
	if !reflect.DeepEqual(e, build()) || !reflect.DeepEqual(p.RateMetrics, []string{"crash", "reboot"}) {
		t.Error("Evaluate modified its input")
	}
}

func TestEvidenceValidate(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	ok := stratum("x", 10, 1, 0, true)
	tests := []struct {
		name string
		e    Evidence
	}{
		{"no strata", Evidence{}},
		{"negative soak", Evidence{SoakElapsed: -1, Strata: []Stratum{ok}}},
		{"repeated key", Evidence{Strata: []Stratum{ok, ok}}},
		{"no baseline", Evidence{Strata: []Stratum{{Key: "x"}}}},
		{"bad baseline", Evidence{Strata: []Stratum{{Key: "x", Baseline: Baseline{Devices: 5, Failures: 6}}}}},
		{"silent above installs", Evidence{Strata: []Stratum{func() Stratum { s := ok; s.Silent = 11; return s }()}}},
		{"negative bricked", Evidence{Strata: []Stratum{func() Stratum { s := ok; s.Bricked = -1; return s }()}}},
		{"unknown metric", Evidence{Strata: []Stratum{func() Stratum {
			s := ok
			s.Rates = []RateSeries{{Metric: "battery_drain"}}
			return s
		}()}}},
		{"events without exposure", Evidence{Strata: []Stratum{func() Stratum {
			s := ok
			s.Rates = []RateSeries{{Metric: "crash", Periods: []RatePeriod{{3, 0, 1, 10}}}}
			return s
		}()}}},
		{"NaN exposure", Evidence{Strata: []Stratum{func() Stratum {
			s := ok
			s.Rates = []RateSeries{{Metric: "crash", Periods: []RatePeriod{{0, math.NaN(), 1, 10}}}}
			return s
		}()}}},
	}
	for _, tt := range tests {
		if err := tt.e.Validate(p); err == nil {
			t.Errorf("%s: validated", tt.name)
		}
	}
	if err := (Evidence{Strata: []Stratum{ok}}).Validate(p); err != nil {
		t.Errorf("valid evidence: %v", err)
	}
}

func TestBaselineRate(t *testing.T) {
	t.Parallel()
	if got := (Baseline{Devices: 20000, Failures: 190}).Rate(); got != 190.5/20001 {
		t.Errorf("previous release rate %g", got)
	}
	if got := (Baseline{Devices: 500}).Rate(); got != 0.5/501 {
		t.Errorf("a clean previous release gives %g, want a small positive rate", got)
	}
	if got := (Baseline{SLO: 0.02}).Rate(); got != 0.02 {
		t.Errorf("SLO rate %g", got)
	}
}
