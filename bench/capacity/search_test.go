package capacitybench

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// fakeTarget passes a step when its rate is at most ceiling (longCeiling
// for the long runs; 0: ceiling), except that the first measurement of
// each step in transient ("phase rate") fails anyway.
type fakeTarget struct {
	ceiling, longCeiling float64
	transient            map[string]bool
	calls                int
}

func (f *fakeTarget) measure(s searchStep) stepVerdict[float64] {
	f.calls++
	limit := f.ceiling
	if s.d == testPlan.long && f.longCeiling > 0 {
		limit = f.longCeiling
	}
	key := fmt.Sprintf("%s %.0f", s.phase, s.rate)
	transient := f.transient[key]
	delete(f.transient, key)
	switch {
	case transient:
		return stepVerdict[float64]{why: "p99 1000.0 ms > 100 ms (transient)", res: s.rate}
	case s.rate > limit:
		return stepVerdict[float64]{why: "p99 250.0 ms > 100 ms", res: s.rate}
	}
	return stepVerdict[float64]{ok: true, res: s.rate}
}

var testPlan = searchPlan{start: 500, limit: 64000, floor: 10, warmup: 5 * time.Second,
	short: 8 * time.Second, long: 35 * time.Second, tolerance: 0.1, maxBisect: 5}

func TestFindRate(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		target    fakeTarget
		wantMin   float64 // the result is within [wantMin, wantMax]
		wantMax   float64
		confirmed bool
	}{
		// The case the search used to get wrong: the first measured step
		// (after the warm-up) fails once, and the search bisected down
		// from it to about 469/s.
		{"transient first step", fakeTarget{ceiling: 5742, transient: map[string]bool{"double 500": true}}, 0.9 * 5742, 5742, true},
		{"transient warm-up and first step", fakeTarget{ceiling: 5742, transient: map[string]bool{"warm-up 500": true, "double 500": true}}, 0.9 * 5742, 5742, true},
		{"transient in the bisection", fakeTarget{ceiling: 5742, transient: map[string]bool{"bisect 5000": true}}, 0.9 * 5742, 5742, true},
		{"transient in the confirming run", fakeTarget{ceiling: 5742, transient: map[string]bool{"confirm 5500": true}}, 0.9 * 5742, 5742, true},
		{"ceiling", fakeTarget{ceiling: 3333}, 0.9 * 3333, 3333, true},
		{"ceiling on a doubling step", fakeTarget{ceiling: 4000}, 0.9 * 4000, 4000, true},
		{"high ceiling", fakeTarget{ceiling: 15300}, 0.9 * 15300, 15300, true},
		{"ceiling below the start", fakeTarget{ceiling: 300}, 0.9 * 300, 300, true},
		{"every rate passes", fakeTarget{ceiling: 1e9}, 64000, 64000, true},
		// The long run holds only lower: step down to it.
		{"long run holds lower", fakeTarget{ceiling: 5742, longCeiling: 4000}, 0.85 * 4000, 4000, true},
		// No long run holds: the short steps' figure, unconfirmed.
		{"no long run holds", fakeTarget{ceiling: 5742, longCeiling: 1}, 0.9 * 5742, 5742, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := tt.target
			got, err := findRate(testPlan, f.measure)
			if err != nil {
				t.Fatal(err)
			}
			var log strings.Builder
			for _, s := range got.steps {
				log.WriteString("\n  " + s.String())
			}
			if got.rate < tt.wantMin || got.rate > tt.wantMax || got.confirmed != tt.confirmed {
				t.Errorf("rate %.0f/s confirmed %v, want %.0f – %.0f/s confirmed %v; steps:%s",
					got.rate, got.confirmed, tt.wantMin, tt.wantMax, tt.confirmed, log.String())
			}
			if got.at != got.rate {
				t.Errorf("result of the run at %.0f/s is the one at %.0f/s", got.rate, got.at)
			}
			if len(got.steps) != f.calls {
				t.Errorf("%d measurements, %d in the log", f.calls, len(got.steps))
			}
			if len(got.steps) > 40 {
				t.Errorf("%d steps: the search does not end soon enough:%s", len(got.steps), log.String())
			}
		})
	}
}

// A failed step is measured again at the same rate before it counts, and
// the log says which measurement was the repeat.
func TestFindRateRemeasuresAFailedStep(t *testing.T) {
	t.Parallel()
	f := fakeTarget{ceiling: 5742, transient: map[string]bool{"double 500": true}}
	got, err := findRate(testPlan, f.measure)
	if err != nil {
		t.Fatal(err)
	}
	s := got.steps
	if s[0].phase != "warm-up" || s[1].ok || s[2].rate != s[1].rate || !s[2].retry || !s[2].ok {
		t.Fatalf("first steps %v, %v, %v: want the warm-up, a failure and a passing repeat at the same rate", s[0], s[1], s[2])
	}
	for i, st := range s {
		if st.retry && (i == 0 || s[i-1].ok || s[i-1].rate != st.rate) {
			t.Errorf("step %d (%v) is a repeat without a failure at its rate before it", i, st)
		}
		if !st.retry && i > 0 && !s[i-1].ok && !s[i-1].retry && s[i-1].phase != "warm-up" {
			t.Errorf("step %d (%v) follows a first failure that was not measured again", i, st)
		}
	}
}

func TestFindRateNothingPasses(t *testing.T) {
	t.Parallel()
	f := fakeTarget{ceiling: 5}
	if _, err := findRate(testPlan, f.measure); err == nil || !strings.Contains(err.Error(), "no rate down to 10/s") {
		t.Fatalf("err = %v, want no rate down to 10/s", err)
	}
}
