package preflight

import (
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
)

// BenchmarkPreflight times a default pre-flight (the seven default
// scenarios, 200 runs each, power-sized waves) of a 10,000- and a
// 1,000,000-device fleet in three revisions, against a baseline measured
// in the same run: one health.Evaluate of a campaign's final evidence.
// It reports ms per pre-flight and the ratio to the baseline, and logs the
// figures (seed 7) that docs/campaigns.md quotes for the 10,000 devices.
//
//	go test -run '^$' -bench Preflight ./internal/preflight
func BenchmarkPreflight(b *testing.B) {
	pol := health.DefaultPolicy()
	ev := health.Evidence{SoakElapsed: 30 * time.Hour}
	for _, k := range []string{"A", "B", "C"} {
		s := health.Stratum{Key: k, Installs: 3000, Failures: 30, Baseline: health.Baseline{SLO: 0.01}}
		for _, m := range pol.RateMetrics {
			s.Rates = append(s.Rates, health.RateSeries{Metric: m, Periods: []health.RatePeriod{{CanaryEvents: 12, CanaryHours: 6000, ControlEvents: 14, ControlHours: 7000}}})
		}
		ev.Strata = append(ev.Strata, s)
	}
	const baseN = 200
	t0 := time.Now()
	for range baseN {
		health.Evaluate(pol, ev)
	}
	base := time.Since(t0) / baseN
	for _, devices := range []int{10_000, 1_000_000} {
		b.Run(fmtDevices(devices), func(b *testing.B) {
			s := campaign.Spec{Name: "bench", Release: "1.0.0", Health: campaign.Health{BaselineSLO: 0.01}}
			f := testFleet(devices)
			in := Input{Spec: s, Plan: planFor(b, s, f), Fleet: f, Start: start, Runs: DefaultRuns, Seed: 7}
			var per time.Duration
			var rep Report
			for b.Loop() {
				t0 := time.Now()
				var err error
				if rep, err = Run(b.Context(), in); err != nil {
					b.Fatal(err)
				}
				per = time.Since(t0)
			}
			for _, w := range rep.Waves {
				b.Logf("%s: %d devices", w.Step, w.Devices)
			}
			for _, r := range rep.Scenarios {
				b.Logf("%-18s halted %5.1f%% whole %5.1f%% to halt %v h exposed %v completed %d in %v h (%d waiting for the operator, asked at %v h after a hold of %v h; %d unfinished)",
					r.Scenario.Name, 100*r.HaltProbability, 100*r.CampaignHaltProbability, r.HaltHours, r.ExposedAtHalt, r.Completed, r.DurationHours,
					r.WaitingOperator, r.AskedHours, r.HeldHours, r.Unfinished)
			}
			b.ReportMetric(float64(per.Milliseconds()), "ms/preflight")
			b.ReportMetric(float64(per)/float64(base), "evaluate-calls/preflight")
			b.Logf("%d devices, 7 scenarios × %d runs: %v per pre-flight = %.0f × one Evaluate (%v)", devices, DefaultRuns, per.Round(time.Millisecond), float64(per)/float64(base), base)
		})
	}
}

func fmtDevices(n int) string {
	if n >= 1_000_000 {
		return "1M"
	}
	return "10k"
}
