package health

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// randomEvidence builds consistent evidence of random shape and size.
func randomEvidence(rng *rand.Rand) Evidence {
	e := Evidence{SoakElapsed: time.Duration(rng.IntN(48)) * time.Hour}
	for i := range 1 + rng.IntN(4) {
		n := rng.IntN(3000)
		s := Stratum{
			Key:      fmt.Sprintf("s%d", i),
			Installs: n,
			Failures: rng.IntN(n/20 + 1),
			Baseline: Baseline{SLO: 0.002 + 0.05*rng.Float64()},
		}
		if rng.IntN(3) == 0 {
			s.Baseline = Baseline{Devices: 1 + rng.IntN(50000)}
			s.Baseline.Failures = rng.IntN(s.Baseline.Devices/20 + 1)
		}
		if rng.IntN(5) == 0 {
			s.RolledBack = rng.IntN(2)
			s.Bricked = rng.IntN(2)
		}
		s.Silent = rng.IntN(n + 1)
		for _, m := range []string{"crash", "reboot"} {
			if rng.IntN(4) == 0 {
				continue
			}
			r := RateSeries{Metric: m}
			for range rng.IntN(20) {
				c, b := float64(rng.IntN(5000)), float64(rng.IntN(50000))
				p := RatePeriod{CanaryHours: c, ControlHours: b}
				if c > 0 {
					p.CanaryEvents = rng.IntN(int(c/200) + 1)
				}
				if b > 0 {
					p.ControlEvents = rng.IntN(int(b/300) + 1)
				}
				r.Periods = append(r.Periods, p)
			}
			s.Rates = append(s.Rates, r)
		}
		e.Strata = append(e.Strata, s)
	}
	return e
}

// TestEvaluateProperties checks, over random evidence, the rules that tie a
// verdict to its records, and that more failures never weaken the install
// evidence.
func TestEvaluateProperties(t *testing.T) {
	t.Parallel()
	p := DefaultPolicy()
	verdicts := map[Verdict]int{}
	for seed := uint64(1); seed <= 200; seed++ {
		rng := rand.New(rand.NewPCG(seed, 3))
		e := randomEvidence(rng)
		if err := e.Validate(p); err != nil {
			t.Fatalf("seed (%d, 3): generated invalid evidence: %v", seed, err)
		}
		d := Evaluate(p, e)
		fail := func(format string, args ...any) {
			t.Helper()
			t.Fatalf("seed (%d, 3): %s\nsummary: %s", seed, fmt.Sprintf(format, args...), d.Summary)
		}
		if want := 2 + Groups(len(e.Strata))*3; len(d.Tests) != want {
			fail("%d records, want %d", len(d.Tests), want)
		}
		rejected, installs := false, 0
		for _, r := range d.Tests {
			if r.Outcome == Rejected {
				rejected = true
			}
			if r.Explanation == "" || math.IsNaN(r.Statistic) || math.IsNaN(r.Detectable) || r.PValue < 0 || r.PValue > 1 {
				fail("bad record %+v", r)
			}
			if r.Method == MethodSPRT || r.Method == MethodMixture {
				if r.Alpha != d.TestAlpha || math.Abs(r.Threshold+math.Log(d.TestAlpha)) > 1e-12 {
					fail("record %s/%s at α %g, threshold %g", r.Metric, r.Stratum, r.Alpha, r.Threshold)
				}
				if (r.Outcome == Rejected) != (r.Statistic >= r.Threshold) {
					fail("record %s/%s: %s with %g vs %g", r.Metric, r.Stratum, r.Outcome, r.Statistic, r.Threshold)
				}
			}
		}
		for _, s := range e.Strata {
			installs += s.Installs
		}
		switch d.Verdict {
		case Halt:
			if !rejected {
				fail("halt without a rejected record")
			}
		case Advance:
			if rejected || e.SoakElapsed < p.MinSoak || installs == 0 {
				fail("advance with rejected=%v soak=%v installs=%d", rejected, e.SoakElapsed, installs)
			}
		case Hold:
			if rejected || (e.SoakElapsed >= p.MinSoak && installs > 0) {
				fail("hold with rejected=%v soak=%v installs=%d", rejected, e.SoakElapsed, installs)
			}
		default:
			fail("verdict %q", d.Verdict)
		}
		verdicts[d.Verdict]++
		if !strings.HasPrefix(d.Summary, strings.ToUpper(string(d.Verdict[:1]))+string(d.Verdict[1:])+": ") {
			fail("summary does not start with the verdict")
		}
		// One more failure in the first stratum never lowers its install
		// statistic or turns a halt into something else.
		s := &e.Strata[0]
		if s.Failures < s.Installs {
			before := find(t, d, "install", s.Key)
			s.Failures++
			after := find(t, Evaluate(p, e), "install", s.Key)
			if after.Statistic < before.Statistic || (before.Outcome == Rejected && after.Outcome != Rejected) {
				fail("one more failure: Λ %g → %g, %s → %s", before.Statistic, after.Statistic, before.Outcome, after.Outcome)
			}
		}
	}
	// The generator must exercise every verdict, or the checks above say
	// little.
	if len(verdicts) != 3 {
		t.Errorf("verdicts over 200 seeds: %v", verdicts)
	}
	t.Logf("verdicts: %v", verdicts)
}
