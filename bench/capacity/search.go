package capacitybench

import (
	"fmt"
	"time"
)

// searchPlan is the rate search, apart from how a step is measured, so
// that its logic can be tested with a fake measurement.
//
// It warms the target up (one step at the start rate whose verdict is not
// used), doubles the rate from start until a step fails, bisects until the
// bracket is narrower than tolerance times its lower end, and then confirms
// the rate found with a long run, stepping down 15 % while that fails, to a
// third of the rate found. Every step that fails is measured once more at
// the same rate and counts as failed only if the second measurement fails
// too, so one transient (a start-up stall, a burst of background load)
// cannot drive the result down. If even the start rate fails, the rate is
// halved until one passes, down to floor.
type searchPlan struct {
	start, limit float64       // first rate, and the highest the doubling tries
	floor        float64       // lowest rate tried when the start fails
	warmup       time.Duration // the unjudged first step; 0: none
	short, long  time.Duration // a search step, and the confirming run
	tolerance    float64       // bisect until hi-lo < tolerance*lo
	maxBisect    int           // bisections at most
}

// stepVerdict is one measurement's verdict, and the result it came with.
type stepVerdict[R any] struct {
	ok  bool
	why string // why it failed
	res R
}

// searchStep is one measurement, as the search log shows it.
type searchStep struct {
	phase string // "warm-up", "double", "halve", "bisect", "confirm"
	retry bool   // the second measurement after a failure
	rate  float64
	d     time.Duration
	ok    bool
	why   string
}

func (s searchStep) String() string {
	phase := s.phase
	if s.retry {
		phase += " (again)"
	}
	v := "ok"
	if !s.ok {
		v = "FAIL: " + s.why
	}
	if s.phase == "warm-up" {
		v = "not judged (" + v + ")"
	}
	return fmt.Sprintf("%-16s %7.0f/s for %-4s %s", phase, s.rate, s.d, v)
}

// searchResult is the search's answer.
type searchResult[R any] struct {
	rate      float64 // confirmed rate, or the short steps' best if none held
	at        R       // the result of the run at rate
	confirmed bool    // a long run passed at rate
	firstBad  string  // why the next rate up (or the long run above) failed
	steps     []searchStep
}

// findRate searches with measure, which measures one step of s.d at
// s.rate; s.phase and s.retry only describe the step (for its log line).
func findRate[R any](p searchPlan, measure func(s searchStep) stepVerdict[R]) (searchResult[R], error) {
	var out searchResult[R]
	once := func(s searchStep) stepVerdict[R] {
		v := measure(s)
		s.ok, s.why = v.ok, v.why
		out.steps = append(out.steps, s)
		return v
	}
	// try measures a step and, when it fails, once more.
	try := func(phase string, rate float64, d time.Duration) stepVerdict[R] {
		v := once(searchStep{phase: phase, rate: rate, d: d})
		if !v.ok {
			v = once(searchStep{phase: phase, retry: true, rate: rate, d: d})
		}
		return v
	}
	if p.warmup > 0 {
		once(searchStep{phase: "warm-up", rate: p.start, d: p.warmup})
	}
	lo, hi := 0.0, 0.0
	var loRes R
	for rate := p.start; rate <= p.limit; rate *= 2 {
		v := try("double", rate, p.short)
		if !v.ok {
			hi, out.firstBad = rate, v.why
			break
		}
		lo, loRes = rate, v.res
	}
	if lo == 0 {
		for rate := p.start / 2; rate >= p.floor; rate /= 2 {
			if v := try("halve", rate, p.short); v.ok {
				lo, loRes = rate, v.res
				break
			}
		}
		if lo == 0 {
			return out, fmt.Errorf("no rate down to %.0f/s passes (%s)", p.floor, out.firstBad)
		}
	}
	if hi == 0 {
		// Every rate up to the limit passed: nothing to bisect.
		hi = lo
	}
	for range p.maxBisect {
		if hi-lo < p.tolerance*lo {
			break
		}
		mid := (lo + hi) / 2
		if v := try("bisect", mid, p.short); v.ok {
			lo, loRes = mid, v.res
		} else {
			hi, out.firstBad = mid, v.why
		}
	}
	found := lo
	for rate := found; rate >= found/3; rate *= 0.85 {
		v := try("confirm", rate, p.long)
		if !v.ok {
			out.firstBad = v.why + " (confirming run)"
			continue
		}
		out.rate, out.at, out.confirmed = rate, v.res, true
		return out, nil
	}
	// Nothing held for the long run (a machine loaded by other work):
	// report the short steps' figure, marked as such.
	out.rate, out.at = found, loRes
	return out, nil
}
