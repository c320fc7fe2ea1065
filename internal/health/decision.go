package health

import (
	"fmt"
	"math"
	"strings"
)

// Verdict is what the engine should do with the campaign.
type Verdict string

const (
	// Advance: the current wave has soaked, no test has rejected and the
	// guardrail is clean; the next wave may start.
	Advance Verdict = "advance"
	// Hold: no new wave yet (soak not over, no outcomes, or unusable
	// input). Holding is also the answer to invalid input, since it
	// exposes no new devices.
	Hold Verdict = "hold"
	// Halt: stop updating devices; the release has shown a regression or
	// tripped the guardrail.
	Halt Verdict = "halt"
)

// Outcome is the state of one test.
type Outcome string

const (
	// Rejected: the test found a regression; the campaign halts.
	Rejected Outcome = "rejected"
	// Accepted: the install test crossed Wald's promote bound — evidence
	// that the failure rate is at the baseline. Informational.
	Accepted Outcome = "accepted"
	// Continuing: no conclusion yet and no evidence of a regression.
	Continuing Outcome = "continuing"
	// Skipped: nothing to test (no outcomes, no telemetry, no exposure).
	Skipped Outcome = "skipped"
)

// Methods that produced a TestResult.
const (
	MethodSPRT      = "sprt"         // Wald SPRT on install outcomes, open-ended halt bound
	MethodMixture   = "mixture-lr"   // mixture likelihood-ratio e-process on the rate ratio
	MethodGuardrail = "guardrail"    // hard count of bricked + rolled-back devices
	MethodSoak      = "minimum-soak" // time since the wave's soak started
)

// TestResult records one test of one metric in one group.
type TestResult struct {
	Metric  string // "install", a rate metric, "guardrail" or "soak"
	Stratum string // stratum key; "" for all strata together
	Label   string // human name of the group
	Method  string
	Outcome Outcome

	// Statistic is Λ (install), ln E (rates), a count (guardrail) or hours
	// (soak); the test rejects at Statistic ≥ Threshold (guardrail, tests)
	// or passes at Statistic ≥ Threshold (soak).
	Statistic, Threshold float64
	// EValue is e^Statistic for the statistical tests; PValue = min(1,
	// 1/EValue) is an always-valid p-value for this look.
	EValue, PValue float64
	// Alpha is the test's share of the error budget.
	Alpha float64

	// Install tests.
	Devices, Failures int
	Baseline          float64
	// Rate tests, summed over periods.
	CanaryEvents, ControlEvents int
	CanaryHours, ControlHours   float64

	// Detectable is the smallest regression this evidence detects with
	// probability Policy.Power: a factor of the baseline failure rate for
	// install tests, a canary:control rate ratio for rate tests; +Inf
	// when none is detectable yet.
	Detectable float64

	Explanation string
}

// Decision is the result of Evaluate.
type Decision struct {
	Verdict Verdict
	// Summary explains the verdict in plain language, including the
	// smallest regressions the evidence could have detected and which
	// devices were judged on install outcome only.
	Summary string
	// Tests has one record per test: the soak and the guardrail, then per
	// group (each stratum in input order, then all strata together) the
	// install test and each rate metric in policy order.
	Tests []TestResult
	// Alpha is the campaign's error budget; TestAlpha each test's share.
	Alpha, TestAlpha float64
	// InstallOnly lists the labels of groups, or parts of groups, judged on
	// install outcome only because their devices send no telemetry.
	InstallOnly []string
}

// Evaluate judges the evidence under the policy. It is a pure function:
// the same inputs always give the same decision.
func Evaluate(p Policy, e Evidence) Decision {
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return invalid(err)
	}
	if err := e.Validate(p); err != nil {
		return invalid(err)
	}
	alpha := p.TestAlpha(len(e.Strata))
	d := Decision{Alpha: p.Alpha, TestAlpha: alpha}

	soak := soakTest(p, e)
	guard := guardrailTest(p, e)
	d.Tests = append(d.Tests, soak, guard)

	groups := make([]group, 0, Groups(len(e.Strata)))
	for _, s := range e.Strata {
		groups = append(groups, group{key: s.Key, label: s.label(), strata: []Stratum{s}})
	}
	if len(e.Strata) > 1 {
		groups = append(groups, group{key: "", label: "all devices", strata: e.Strata})
	}
	var overall []TestResult
	for i, g := range groups {
		tests := []TestResult{installTest(p, g, alpha)}
		for _, m := range p.RateMetrics {
			tests = append(tests, rateTest(p, g, m, alpha))
		}
		d.Tests = append(d.Tests, tests...)
		if i == len(groups)-1 {
			overall = tests
		}
	}
	for _, s := range e.Strata {
		if note := installOnlyNote(s, p.RateMetrics); note != "" {
			d.InstallOnly = append(d.InstallOnly, sentence(note))
		}
	}

	var rejected []TestResult
	installs := 0
	for _, t := range d.Tests {
		if t.Outcome == Rejected && t.Method != MethodGuardrail {
			rejected = append(rejected, t)
		}
	}
	for _, s := range e.Strata {
		installs += s.Installs
	}

	var head string
	switch {
	case guard.Outcome == Rejected:
		d.Verdict = Halt
		head = "Halt: " + guard.Explanation
		if len(rejected) > 0 {
			head += fmt.Sprintf(" %s also rejected.", testsPhrase(len(rejected)))
		}
	case len(rejected) > 0:
		d.Verdict = Halt
		head = "Halt: " + rejected[0].Explanation
		if len(rejected) > 1 {
			head += fmt.Sprintf(" %s also rejected.", testsPhrase(len(rejected)-1))
		}
	case installs == 0:
		d.Verdict = Hold
		head = "Hold: no device has reported an install outcome yet."
	case soak.Outcome != Accepted:
		d.Verdict = Hold
		head = fmt.Sprintf("Hold: the wave has soaked %s of the required %s; no test has rejected so far.",
			durationHours(e.SoakElapsed), durationHours(p.MinSoak))
	default:
		d.Verdict = Advance
		head = fmt.Sprintf("Advance: the %s soak has passed, the guardrail is clean (%d of %d) and none of %d tests rejected (α = %g in total, %.2g each).",
			durationHours(p.MinSoak), int(guard.Statistic), p.GuardrailK, len(groups)*(1+len(p.RateMetrics)), p.Alpha, alpha)
	}
	parts := append([]string{head, detectableSentence(p, overall)}, d.InstallOnly...)
	d.Summary = strings.Join(parts, " ")
	return d
}

func invalid(err error) Decision {
	return Decision{Verdict: Hold, Summary: "Hold: the evidence cannot be judged: " + err.Error() + "."}
}

func testsPhrase(n int) string {
	if n == 1 {
		return "One other test"
	}
	return fmt.Sprintf("%d other tests", n)
}

// group is a set of strata judged together.
type group struct {
	key, label string
	strata     []Stratum
}

func soakTest(p Policy, e Evidence) TestResult {
	t := TestResult{
		Metric: "soak", Method: MethodSoak, Label: "current wave",
		Statistic: e.SoakElapsed.Hours(), Threshold: p.MinSoak.Hours(),
		Detectable: math.Inf(1),
	}
	if e.SoakElapsed >= p.MinSoak {
		t.Outcome = Accepted
		t.Explanation = fmt.Sprintf("The wave has soaked %s, at least the required %s.", durationHours(e.SoakElapsed), durationHours(p.MinSoak))
	} else {
		t.Outcome = Continuing
		t.Explanation = fmt.Sprintf("The wave has soaked %s of the required %s.", durationHours(e.SoakElapsed), durationHours(p.MinSoak))
	}
	return t
}

func guardrailTest(p Policy, e Evidence) TestResult {
	t := TestResult{
		Metric: "guardrail", Method: MethodGuardrail, Label: "all devices",
		Threshold: float64(p.GuardrailK), Detectable: math.Inf(1),
	}
	var parts []string
	total := 0
	for _, s := range e.Strata {
		n := s.Bricked + s.RolledBack
		total += n
		t.Devices += s.Installs
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%s: %d bricked, %d rolled back", s.label(), s.Bricked, s.RolledBack))
		}
	}
	t.Statistic = float64(total)
	t.Failures = total
	detail := ""
	if len(parts) > 0 {
		detail = " (" + strings.Join(parts, "; ") + ")"
	}
	if total >= p.GuardrailK {
		t.Outcome = Rejected
		t.Explanation = fmt.Sprintf("%s bricked or rolled back%s, reaching the guardrail of %d.", devicesPhrase(total), detail, p.GuardrailK)
	} else {
		t.Outcome = Continuing
		t.Explanation = fmt.Sprintf("%s bricked or rolled back%s, below the guardrail of %d.", devicesPhrase(total), detail, p.GuardrailK)
	}
	return t
}

func devicesPhrase(n int) string {
	if n == 1 {
		return "1 device"
	}
	return count(n) + " devices"
}

// installTest runs the mixture SPRT on a group's install outcomes. For
// several strata each component of the mixture multiplies the per-device
// likelihood ratios of all strata, each device's against its own stratum's
// baseline, so the product still has mean 1 under the null and Ville's
// bound holds unchanged. Wald's test at the design alternative runs
// alongside and only reports acceptance.
func installTest(p Policy, g group, alpha float64) TestResult {
	t := TestResult{Metric: installMetric, Stratum: g.key, Label: g.label, Method: MethodSPRT, Alpha: alpha}
	obs := make([]installObs, 0, len(g.strata))
	design, weighted := 0.0, 0.0
	lower := 0.0
	for _, s := range g.strata {
		p0 := s.Baseline.Rate()
		obs = append(obs, installObs{p0, s.Installs, s.Failures})
		sp := p.designSPRT(p0, alpha)
		design += sp.LogLR(s.Installs, s.Failures)
		lower = sp.PromoteBound() // the same for every stratum: it depends on α and β only
		t.Devices += s.Installs
		t.Failures += s.Failures
		weighted += float64(s.Installs) * p0
	}
	lambda := mixtureLogLR(p.InstallMixture, obs)
	if t.Devices > 0 {
		t.Baseline = weighted / float64(t.Devices)
	} else {
		// No outcomes yet: describe the plain average baseline.
		for _, s := range g.strata {
			t.Baseline += s.Baseline.Rate() / float64(len(g.strata))
		}
	}
	t.Statistic = lambda
	t.Threshold = -math.Log(alpha)
	t.EValue = math.Exp(lambda)
	t.PValue = math.Min(1, math.Exp(-lambda))
	t.Detectable = installDetectable(p, t.Devices, t.Baseline, alpha)

	base := "a baseline of " + pct(t.Baseline)
	if len(g.strata) == 1 {
		base = g.strata[0].Baseline.describe()
	}
	observed := fmt.Sprintf("%s of %s devices (%s)", count(t.Failures), count(t.Devices), pct(frac(t.Failures, t.Devices)))
	switch {
	case t.Devices == 0:
		t.Outcome = Skipped
		t.Explanation = fmt.Sprintf("%s: no install outcomes yet.", g.label)
	case lambda >= t.Threshold:
		t.Outcome = Rejected
		t.Explanation = fmt.Sprintf("%s failed to install on %s against %s; the sequential test crossed its halt bound (Λ = %s ≥ %s).",
			g.label, observed, base, signed(lambda), signed(t.Threshold))
	case design <= lower:
		t.Outcome = Accepted
		t.Explanation = fmt.Sprintf("%s failed to install on %s against %s; Wald's test against a %s regression crossed its promote bound (Λ = %s ≤ %s): the rate is consistent with the baseline.",
			g.label, observed, base, factor(p.Regression), signed(design), signed(lower))
	default:
		t.Outcome = Continuing
		t.Explanation = fmt.Sprintf("%s failed to install on %s against %s; no regression shown (Λ = %s < %s).",
			g.label, observed, base, signed(lambda), signed(t.Threshold))
	}
	return t
}

// installDetectable is the smallest factor f such that, with n devices and
// the true failure rate f·p0, this look at the install test halts with
// probability Policy.Power. Earlier looks could only have halted more
// often, so the true detection probability is at least that. For several
// strata it uses the pooled baseline, an approximation when their
// baselines differ.
func installDetectable(p Policy, n int, p0, alpha float64) float64 {
	if n == 0 {
		return math.Inf(1)
	}
	h := p.installTest(p0).HaltCount(n, -math.Log(alpha))
	// 0.5 % is finer than the one decimal the explanations print.
	return smallestRateForTail(n, h, p.Power, p0, 0.005) / p0
}

func frac(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

// rateTest runs the mixture e-process for one rate metric in a group. For
// several strata the periods of all of them enter one likelihood: each
// event's label probability uses its own stratum's exposures, and the
// alternative is a common ratio.
func rateTest(p Policy, g group, metric string, alpha float64) TestResult {
	t := TestResult{Metric: metric, Stratum: g.key, Label: g.label, Method: MethodMixture, Alpha: alpha}
	var periods []RatePeriod
	reporting := 0
	for _, s := range g.strata {
		for _, r := range s.Rates {
			if r.Metric != metric {
				continue
			}
			reporting++
			for _, per := range r.Periods {
				if !per.informative() {
					continue
				}
				periods = append(periods, per)
				t.CanaryEvents += per.CanaryEvents
				t.ControlEvents += per.ControlEvents
				t.CanaryHours += per.CanaryHours
				t.ControlHours += per.ControlHours
			}
		}
	}
	t.Threshold = -math.Log(alpha)
	r0 := p.RateTolerance
	switch {
	case reporting == 0:
		t.Outcome = Skipped
		t.Detectable = math.Inf(1)
		t.EValue, t.PValue = 1, 1
		t.Explanation = fmt.Sprintf("%s reports no %s telemetry; judged on install outcome only.", g.label, metric)
		return t
	case len(periods) == 0:
		t.Outcome = Skipped
		t.Detectable = math.Inf(1)
		t.EValue, t.PValue = 1, 1
		t.Explanation = fmt.Sprintf("%s has no %s exposure in both canary and control yet.", g.label, metric)
		return t
	}
	logE := RateLogE(periods, r0, p.RateMixture)
	t.Statistic = logE
	t.EValue = math.Exp(logE)
	t.PValue = math.Min(1, math.Exp(-logE))
	t.Detectable = rateDetectable(p, t.CanaryHours, t.ControlHours, t.ControlEvents, alpha)
	observed := fmt.Sprintf("%s had %s %s events in %s (%s) against %s in %s (%s) in the control",
		g.label, count(t.CanaryEvents), metric, hours(t.CanaryHours), perThousandHours(t.CanaryEvents, t.CanaryHours),
		count(t.ControlEvents), hours(t.ControlHours), perThousandHours(t.ControlEvents, t.ControlHours))
	tolerance := fmt.Sprintf("at most %s the control's rate", factor(r0))
	if logE >= t.Threshold {
		t.Outcome = Rejected
		t.Explanation = fmt.Sprintf("%s; the always-valid test of %q reached E = %s ≥ 1/α = %s.",
			observed, tolerance, magnitude(t.EValue), magnitude(math.Exp(t.Threshold)))
	} else {
		t.Outcome = Continuing
		t.Explanation = fmt.Sprintf("%s; no evidence of a rate above %s the control's (E = %s < 1/α = %s).",
			observed, factor(r0), magnitude(t.EValue), magnitude(math.Exp(t.Threshold)))
	}
	return t
}

// rateDetectable is the smallest canary:control ratio ρ for which a look at
// the current exposures, with the control's rate as observed and the total
// event count at its expected value, would reject with probability
// Policy.Power. It treats the exposures as one period, so it is an
// approximation, meant to say roughly how large a rise could have been
// missed.
func rateDetectable(p Policy, canaryHours, controlHours float64, controlEvents int, alpha float64) float64 {
	if canaryHours <= 0 || controlHours <= 0 {
		return math.Inf(1)
	}
	r0 := p.RateTolerance
	rate := (float64(controlEvents) + 0.5) / controlHours
	logThr := -math.Log(alpha)
	mix := p.RateMixture
	terms := make([]float64, len(mix.Factors))
	logF := make([]float64, len(mix.Factors))
	for j, f := range mix.Factors {
		logF[j] = math.Log(f)
	}
	power := func(rho float64) float64 {
		n := int(math.Round(rate * (rho*canaryHours + controlHours)))
		if n == 0 {
			return 0
		}
		// For one period, ln E(x) = ln Σ_j exp(a_j + x·ln f_j) with a_j
		// fixed by n and the exposures (see rateLogLR).
		a := make([]float64, len(mix.Factors))
		for j, f := range mix.Factors {
			a[j] = math.Log(mix.Weights[j]) + float64(n)*math.Log((r0*canaryHours+controlHours)/(r0*f*canaryHours+controlHours))
		}
		g := func(x float64) (float64, float64) {
			for j := range terms {
				terms[j] = a[j] + x*logF[j]
			}
			lse := logSumExp(terms)
			slope := 0.0
			for j := range terms {
				slope += math.Exp(terms[j]-lse) * logF[j]
			}
			return lse - logThr, slope
		}
		if v, _ := g(float64(n)); v < 0 {
			return 0
		}
		// ln E is convex and increasing in x, so Newton's method from the
		// right end moves monotonically down to the root.
		x := float64(n)
		for range 50 {
			v, slope := g(x)
			if v < 1e-9 || slope <= 0 {
				break
			}
			step := v / slope
			x -= step
			if step < 1e-6 {
				break
			}
		}
		hi := int(math.Ceil(x - 1e-9))
		for hi > 0 {
			if v, _ := g(float64(hi - 1)); v < 0 {
				break
			}
			hi--
		}
		for hi < n {
			if v, _ := g(float64(hi)); v >= 0 {
				break
			}
			hi++
		}
		pi := rho * canaryHours / (rho*canaryHours + controlHours)
		return BinomialTail(hi, n, pi)
	}
	lo, hi := math.Log(r0), math.Log(r0*1000)
	if power(math.Exp(hi)) < p.Power {
		return math.Inf(1)
	}
	// 0.5 % is finer than the one decimal the explanations print.
	for hi-lo > 0.005 {
		mid := (lo + hi) / 2
		if power(math.Exp(mid)) >= p.Power {
			hi = mid
		} else {
			lo = mid
		}
	}
	return math.Exp(hi)
}

// detectableSentence states the smallest regressions the overall group's
// evidence could have detected.
func detectableSentence(p Policy, overall []TestResult) string {
	var parts []string
	for _, t := range overall {
		if math.IsInf(t.Detectable, 1) {
			continue
		}
		if t.Metric == installMetric {
			parts = append(parts, fmt.Sprintf("a %s install-failure regression", factor(t.Detectable)))
		} else {
			parts = append(parts, fmt.Sprintf("a %s %s rate against the control", factor(t.Detectable), t.Metric))
		}
	}
	if len(parts) == 0 {
		return "The evidence so far is too thin to detect any regression."
	}
	return fmt.Sprintf("The evidence so far would have detected %s with %.0f%% probability.", joinAnd(parts), 100*p.Power)
}

func joinAnd(parts []string) string {
	switch len(parts) {
	case 1:
		return parts[0]
	case 2:
		return parts[0] + " and " + parts[1]
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}

// installOnlyNote says which devices of a stratum were judged on install
// outcome only, or "" when all of them report every rate metric.
func installOnlyNote(s Stratum, metrics []string) string {
	if len(metrics) == 0 || s.Installs == 0 {
		return ""
	}
	reported := map[string]bool{}
	for _, r := range s.Rates {
		reported[r.Metric] = true
	}
	var missing []string
	for _, m := range metrics {
		if !reported[m] {
			missing = append(missing, m)
		}
	}
	switch {
	case len(missing) == len(metrics):
		return fmt.Sprintf("%s sends no telemetry; its %s devices were judged on install outcome only.", s.label(), count(s.Installs))
	case s.Silent > 0:
		return fmt.Sprintf("%s: %s of %s devices send no telemetry and were judged on install outcome only.", s.label(), count(s.Silent), count(s.Installs))
	case len(missing) > 0:
		return fmt.Sprintf("%s reports no %s telemetry; that metric was not judged there.", s.label(), joinAnd(missing))
	}
	return ""
}
