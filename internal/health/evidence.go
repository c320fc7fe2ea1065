package health

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// Evidence is what the engine has observed for a campaign when it asks for
// a decision. Counts are cumulative since the campaign started, so every
// evaluation judges all the evidence so far; SoakElapsed refers to the wave
// being judged.
//
// The set of strata must stay the same for the life of a campaign (list
// strata with no devices yet rather than adding them later): the error
// budget is split by their number.
type Evidence struct {
	// SoakElapsed is the time since the current wave's soak started.
	SoakElapsed time.Duration
	Strata      []Stratum
}

// Stratum is the evidence from one stratum (for example one hardware
// revision, device type or region).
type Stratum struct {
	// Key identifies the stratum, e.g. "hw_rev=B". Keys are unique.
	Key string
	// Label names it in explanations, e.g. "revision B"; Key when empty.
	Label string

	// Installs counts updated devices with a final install outcome;
	// Failures those that failed, timed out or rolled back.
	Installs, Failures int
	// Baseline is the acceptable install-failure rate.
	Baseline Baseline

	// Bricked and RolledBack feed the hard guardrail. Rolled-back devices
	// also count in Failures.
	Bricked, RolledBack int

	// Silent counts updated devices that send no telemetry (hawkBit or
	// Mender clients, say). They are judged on install outcome only; the
	// rate evidence covers the other devices.
	Silent int
	// Rates holds the rate evidence per metric; a metric absent here is not
	// tested for this stratum (its share of the error budget stays unused).
	Rates []RateSeries
}

// Baseline is the install-failure rate a release is judged against: the
// previous release's outcomes when it has any (Devices > 0), otherwise a
// configured SLO rate.
type Baseline struct {
	Devices, Failures int
	SLO               float64
}

// Rate returns the baseline failure rate. The previous release's rate is
// estimated as (Failures + ½)/(Devices + 1), which is never 0 — a clean
// previous release would otherwise make every single failure infinitely
// damning — and close to Failures/Devices once Devices is large.
func (b Baseline) Rate() float64 {
	if b.Devices > 0 {
		return (float64(b.Failures) + 0.5) / float64(b.Devices+1)
	}
	return b.SLO
}

func (b Baseline) describe() string {
	if b.Devices > 0 {
		return fmt.Sprintf("the previous release's %s (%s of %s)", pct(b.Rate()), count(b.Failures), count(b.Devices))
	}
	return "the SLO of " + pct(b.SLO)
}

// RateSeries is one metric's evidence in one stratum, as periods within
// which the canary:control device ratio was about constant (see
// RatePeriod).
type RateSeries struct {
	Metric  string
	Periods []RatePeriod
}

func (s Stratum) label() string {
	if s.Label != "" {
		return s.Label
	}
	return s.Key
}

// Validate reports whether the evidence is consistent with itself and with
// the policy p (after WithDefaults).
func (e Evidence) Validate(p Policy) error {
	if e.SoakElapsed < 0 {
		return fmt.Errorf("evidence: soak elapsed %v is negative", e.SoakElapsed)
	}
	if len(e.Strata) == 0 {
		return errors.New("evidence: no strata")
	}
	metrics := map[string]bool{}
	for _, m := range p.RateMetrics {
		metrics[m] = true
	}
	keys := map[string]bool{}
	for _, s := range e.Strata {
		if keys[s.Key] {
			return fmt.Errorf("evidence: stratum %q repeated", s.Key)
		}
		keys[s.Key] = true
		if err := s.validate(metrics); err != nil {
			return fmt.Errorf("evidence: stratum %q: %w", s.Key, err)
		}
	}
	return nil
}

func (s Stratum) validate(metrics map[string]bool) error {
	switch {
	case s.Installs < 0 || s.Failures < 0 || s.Failures > s.Installs:
		return fmt.Errorf("%d failures of %d installs", s.Failures, s.Installs)
	case s.Bricked < 0 || s.RolledBack < 0:
		return fmt.Errorf("negative guardrail counts (%d bricked, %d rolled back)", s.Bricked, s.RolledBack)
	case s.Silent < 0 || s.Silent > s.Installs:
		return fmt.Errorf("%d silent devices of %d installs", s.Silent, s.Installs)
	case s.Baseline.Devices < 0 || s.Baseline.Failures < 0 || s.Baseline.Failures > s.Baseline.Devices:
		return fmt.Errorf("baseline of %d failures in %d devices", s.Baseline.Failures, s.Baseline.Devices)
	case s.Baseline.Devices == 0 && !(s.Baseline.SLO > 0 && s.Baseline.SLO < 1):
		return fmt.Errorf("no previous-release outcomes and SLO rate %g is not in (0, 1)", s.Baseline.SLO)
	case math.IsNaN(s.Baseline.SLO):
		return errors.New("baseline SLO is NaN")
	}
	seen := map[string]bool{}
	for _, r := range s.Rates {
		if !metrics[r.Metric] {
			return fmt.Errorf("rate metric %q is not in the policy", r.Metric)
		}
		if seen[r.Metric] {
			return fmt.Errorf("rate metric %q repeated", r.Metric)
		}
		seen[r.Metric] = true
		for i, per := range r.Periods {
			if err := per.validate(); err != nil {
				return fmt.Errorf("%s period %d: %w", r.Metric, i, err)
			}
		}
	}
	return nil
}
