package health

import (
	"testing"
	"time"
)

func BenchmarkEvaluate(b *testing.B) {
	e := Evidence{SoakElapsed: 30 * time.Hour}
	for _, key := range []string{"A", "B", "C"} {
		s := Stratum{Key: key, Installs: 1500, Failures: 16, Baseline: Baseline{SLO: 0.01}}
		for _, m := range []string{"crash", "reboot"} {
			var per []RatePeriod
			for k := range 40 {
				per = append(per, RatePeriod{CanaryEvents: 3 + k%4, CanaryHours: 1500 * 6, ControlEvents: 20 + k%7, ControlHours: 8000 * 6})
			}
			s.Rates = append(s.Rates, RateSeries{Metric: m, Periods: per})
		}
		e.Strata = append(e.Strata, s)
	}
	p := DefaultPolicy()
	for b.Loop() {
		Evaluate(p, e)
	}
}
