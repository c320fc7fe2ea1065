package preflight

import (
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/rollout"
)

// arrival is a batch of outcome reports due at a tick.
type arrival struct {
	step, stratum int
	kind          int // what the devices report
	n             int
}

const (
	arSucceededReporting = iota // succeeded, sends telemetry
	arSucceededSilent           // succeeded, sends none
	arFailed                    // failed to install
	arRolledBack                // failed and rolled back (also a failure)
	arTimedOut                  // never reported
)

// runResult is what one simulated campaign did.
type runResult struct {
	end        string  // outcomeCompleted, …
	hours      float64 // until it completed, halted as a whole or ended
	halted     bool    // some stratum or the campaign halted
	haltHours  float64 // until the first halt
	exposed    int     // devices handed the release by the first halt
	affected   int     // of them, in the regressed strata
	exposedAll int     // devices handed the release by the end
	// askedHours is when the engine asked the operator about a hold it
	// could not resolve, heldHours how long the next wave had been held
	// by then (the latest question, in a run that ended waiting).
	askedHours, heldHours float64
}

// Run ends.
const (
	endCompleted  = "completed"
	endHalted     = "halted"
	endSchedule   = "schedule_ended"
	endUnfinished = "unfinished"
	// endWaiting: still going at the horizon, waiting for the operator's
	// decision about a hold the engine escalated (rollout.HoldLimit, or
	// install evidence that cannot change); the twin does not decide.
	endWaiting = "waiting_operator"
)

// sim is one campaign's state.
type sim struct {
	m   *model
	sc  Scenario
	rng *rand.Rand

	queued   [][]int // [step][cell]
	qTotal   []int   // [step] devices queued, to skip empty steps fast
	open     [][]int // [step][stratum] dispatched, not yet reported
	done     [][]int // [step][stratum] reported an outcome
	inFlight int
	bucket   [][]arrival // ring of due reports, by tick modulo its length

	installs, failures, rolledBack, silent []int // per stratum, outside the control group
	canary                                 []int // per stratum: succeeded devices sending telemetry
	periods                                [][][]health.RatePeriod
	pending                                []pendingPeriod
	affected                               []bool // per stratum: the release regresses here

	step      int
	soakStart int  // tick, -1 when not started
	holdSince int  // tick the spread hold began, -1 when not held
	asked     bool // the engine asked the operator about the hold
	halted    []bool
	metrics   []string // metrics that halted strata
	tokens    float64
	changed   bool
	res       runResult
}

type pendingPeriod struct {
	due     int
	stratum int
	metric  int
	p       health.RatePeriod
}

func newSim(m *model, sc Scenario, seed [2]uint64) *sim {
	s := &sim{m: m, sc: sc, rng: rand.New(rand.NewPCG(seed[0], seed[1])), soakStart: -1, holdSince: -1}
	ns := len(m.strata)
	s.queued = make([][]int, len(m.queued))
	s.qTotal = make([]int, len(m.queued))
	for i, q := range m.queued {
		s.queued[i] = slices.Clone(q)
		for _, n := range q {
			s.qTotal[i] += n
		}
	}
	s.open = make([][]int, m.steps+1)
	s.done = make([][]int, m.steps+1)
	for i := range s.open {
		s.open[i] = make([]int, ns)
		s.done[i] = make([]int, ns)
	}
	s.bucket = make([][]arrival, max(m.timeout, len(m.delays))+2)
	s.installs, s.failures, s.rolledBack, s.silent = make([]int, ns), make([]int, ns), make([]int, ns), make([]int, ns)
	s.canary = make([]int, ns)
	s.halted = make([]bool, ns)
	s.affected = make([]bool, ns)
	for i, st := range m.strata {
		s.affected[i] = sc.Factor > 1 && (sc.Stratum == "" || sc.Stratum == st.Key)
	}
	s.periods = make([][][]health.RatePeriod, ns)
	for i := range s.periods {
		s.periods[i] = make([][]health.RatePeriod, len(m.pol.RateMetrics))
	}
	return s
}

// factor is the release's multiplier of a metric in a stratum.
func (s *sim) factor(stratum int, metric string) float64 {
	if !s.affected[stratum] || !s.sc.regresses(metric) {
		return 1
	}
	return s.sc.Factor
}

// run plays the campaign tick by tick until it ends or the horizon.
func (s *sim) run() runResult {
	m := s.m
	for t := 0; t <= m.horizon; t++ {
		s.arrive(t)
		if t > 0 && (m.in.Start.Add(time.Duration(t)*Tick).Truncate(time.Hour) != m.in.Start.Add(time.Duration(t-1)*Tick).Truncate(time.Hour)) {
			s.collectHour(t)
		}
		s.settle(t)
		s.dispatch(t)
		if end := s.evaluate(t); end != "" {
			s.res.end, s.res.hours = end, s.hours(t)
			s.res.exposedAll = s.exposedTotal()
			return s.res
		}
		if end := s.complete(t); end != "" {
			s.res.end, s.res.hours = end, s.hours(t)
			s.res.exposedAll = s.exposedTotal()
			return s.res
		}
	}
	s.res.end, s.res.hours = endUnfinished, s.hours(m.horizon)
	if s.asked {
		s.res.end = endWaiting
	}
	s.res.exposedAll = s.exposedTotal()
	return s.res
}

func (s *sim) hours(t int) float64 { return float64(t) * Tick.Hours() }

func (s *sim) exposedTotal() int {
	n := 0
	for step := range s.open {
		for si := range s.open[step] {
			n += s.open[step][si] + s.done[step][si]
		}
	}
	return n
}

func (s *sim) exposedAffected() int {
	n := 0
	for step := range s.open {
		for si := range s.open[step] {
			if s.affected[si] {
				n += s.open[step][si] + s.done[step][si]
			}
		}
	}
	return n
}

// arrive books the reports due at tick t.
func (s *sim) arrive(t int) {
	slot := t % len(s.bucket)
	for _, a := range s.bucket[slot] {
		s.open[a.step][a.stratum] -= a.n
		s.done[a.step][a.stratum] += a.n
		s.inFlight -= a.n
		if a.step == s.m.steps || s.halted[a.stratum] {
			continue // the control group and halted strata are not judged
		}
		s.changed = true
		st := a.stratum
		s.installs[st] += a.n
		switch a.kind {
		case arSucceededReporting:
			s.canary[st] += a.n
		case arSucceededSilent:
			s.silent[st] += a.n
		case arFailed:
			s.failures[st] += a.n
		case arRolledBack:
			s.failures[st] += a.n
			s.rolledBack[st] += a.n
		case arTimedOut:
			s.failures[st] += a.n
		}
	}
	s.bucket[slot] = s.bucket[slot][:0]
}

// collectHour draws the rate events of the hour that ended at tick t, for
// each stratum and metric: the canary (updated devices that send
// telemetry) against the control (targets not yet handed the release),
// with the arms as they stood at the end of the hour. The engine judges an
// hour rollout.RateSettle after it ends.
func (s *sim) collectHour(t int) {
	ns := len(s.m.strata)
	control := make([]int, ns)
	for step := range s.queued {
		for ci, n := range s.queued[step] {
			if c := s.m.cells[ci]; c.reports {
				control[c.stratum] += n
			}
		}
	}
	due := t + int(math.Ceil(float64(rollout.RateSettle)/float64(Tick)))
	for si, st := range s.m.strata {
		if s.halted[si] || s.canary[si] == 0 || control[si] == 0 {
			continue
		}
		for mi, metric := range s.m.pol.RateMetrics {
			base := st.Rates[metric]
			p := health.RatePeriod{CanaryHours: float64(s.canary[si]), ControlHours: float64(control[si])}
			p.CanaryEvents = poisson(s.rng, base*s.factor(si, metric)*p.CanaryHours)
			p.ControlEvents = poisson(s.rng, base*p.ControlHours)
			s.pending = append(s.pending, pendingPeriod{due: due, stratum: si, metric: mi, p: p})
		}
	}
}

// settle adds the hours whose telemetry has settled to the evidence.
// Consecutive hours with the same exposures are merged into one period:
// the likelihood ratio of a period depends only on its events and the
// ratio of its exposures, so this changes no statistic and keeps the
// evaluation cheap.
func (s *sim) settle(t int) {
	keep := s.pending[:0]
	for _, p := range s.pending {
		if p.due > t {
			keep = append(keep, p)
			continue
		}
		if s.halted[p.stratum] {
			continue
		}
		s.changed = true
		list := s.periods[p.stratum][p.metric]
		if n := len(list); n > 0 && list[n-1].CanaryHours*p.p.ControlHours == list[n-1].ControlHours*p.p.CanaryHours {
			last := &list[n-1]
			last.CanaryEvents += p.p.CanaryEvents
			last.ControlEvents += p.p.ControlEvents
			last.CanaryHours += p.p.CanaryHours
			last.ControlHours += p.p.ControlHours
			continue
		}
		s.periods[p.stratum][p.metric] = append(list, p.p)
	}
	s.pending = keep
}

// dispatch hands the release to queued devices of the open steps, within
// the engine's batch, the rate limit with its ramp, the in-flight cap, the
// schedule and each zone's windows.
func (s *sim) dispatch(t int) {
	m := s.m
	if m.endTick >= 0 && t >= m.endTick {
		return
	}
	budget := m.batch
	if rate := m.rateAt(t); rate > 0 {
		earned := rate * Tick.Minutes()
		s.tokens = math.Min(earned, s.tokens+earned)
		budget = min(budget, int(math.Floor(s.tokens)))
	}
	if c := m.in.Spec.Pacing.MaxInFlight; c > 0 {
		budget = min(budget, c-s.inFlight)
	}
	if budget <= 0 {
		return
	}
	maxStep, control := s.step, false
	if s.step >= m.steps {
		maxStep, control = m.steps-1, true
	}
	type slot struct{ step, cell int }
	var slots []slot
	var sizes []int
	for step := 0; step <= m.steps; step++ {
		if step > maxStep && !(control && step == m.steps) || s.qTotal[step] == 0 {
			continue
		}
		for ci, n := range s.queued[step] {
			c := m.cells[ci]
			if n == 0 || s.halted[c.stratum] || !m.inside(c.zone, t) {
				continue
			}
			slots = append(slots, slot{step, ci})
			sizes = append(sizes, n)
		}
	}
	if len(slots) == 0 {
		return
	}
	alloc := health.Allocate(budget, sizes)
	sent := 0
	for i, k := range alloc {
		if k > 0 {
			s.hand(t, slots[i].step, slots[i].cell, k)
			sent += k
		}
	}
	if m.rateAt(t) > 0 {
		s.tokens -= float64(sent)
	}
}

// hand gives the release to k devices of a cell and draws their outcomes
// and when they report them.
func (s *sim) hand(t, step, ci, k int) {
	m := s.m
	c := m.cells[ci]
	st := m.strata[c.stratum]
	s.queued[step][ci] -= k
	s.qTotal[step] -= k
	s.open[step][c.stratum] += k
	s.inFlight += k
	timedOut := binomial(s.rng, k, st.Timeout)
	rest := k - timedOut
	pf := math.Min(st.InstallFailure*s.factor(c.stratum, "install"), 0.999)
	failed := binomial(s.rng, rest, pf)
	rolled := binomial(s.rng, failed, st.RollbackShare)
	succeeded := rest - failed
	s.push(t+m.timeout, arrival{step: step, stratum: c.stratum, kind: arTimedOut, n: timedOut})
	succKind := arSucceededSilent
	if c.reports {
		succKind = arSucceededReporting
	}
	for _, part := range []struct{ kind, n int }{{succKind, succeeded}, {arFailed, failed - rolled}, {arRolledBack, rolled}} {
		if part.n == 0 {
			continue
		}
		counts := make([]int, len(m.delays))
		multinomialSplit(s.rng, part.n, m.delays, counts)
		for d, n := range counts {
			if n > 0 {
				s.push(t+d, arrival{step: step, stratum: c.stratum, kind: part.kind, n: n})
			}
		}
	}
}

func (s *sim) push(t int, a arrival) {
	if a.n == 0 {
		return
	}
	slot := t % len(s.bucket)
	s.bucket[slot] = append(s.bucket[slot], a)
}

// soakReady is the engine's rule: none of the current step's devices is
// queued and at most a tenth of those dispatched are unfinished (halted
// strata aside).
func (s *sim) soakReady() bool {
	queued, open, done := 0, 0, 0
	for ci, n := range s.queued[s.step] {
		if !s.halted[s.m.cells[ci].stratum] {
			queued += n
		}
	}
	for si := range s.m.strata {
		if !s.halted[si] {
			open += s.open[s.step][si]
			done += s.done[s.step][si]
		}
	}
	return queued == 0 && done > 0 && open*10 <= open+done
}

// evidence is what the engine would hand health.Evaluate now; halted
// strata (and those in skip) are listed without evidence.
func (s *sim) evidence(t int, skip []bool) health.Evidence {
	var e health.Evidence
	if s.soakStart >= 0 {
		e.SoakElapsed = time.Duration(t-s.soakStart) * Tick
	}
	for si, st := range s.m.strata {
		hs := health.Stratum{Key: st.Key, Baseline: s.m.base}
		if !s.halted[si] && (skip == nil || !skip[si]) {
			hs.Installs, hs.Failures, hs.RolledBack, hs.Silent = s.installs[si], s.failures[si], s.rolledBack[si], s.silent[si]
			for mi, metric := range s.m.pol.RateMetrics {
				if len(s.periods[si][mi]) > 0 {
					hs.Rates = append(hs.Rates, health.RateSeries{Metric: metric, Periods: s.periods[si][mi]})
				}
			}
		}
		e.Strata = append(e.Strata, hs)
	}
	return e
}

// evaluate judges the evidence like the engine and acts on the verdict.
// It reports endHalted when the whole campaign halted, else "".
func (s *sim) evaluate(t int) string {
	m := s.m
	if s.step >= m.steps {
		return ""
	}
	if s.soakStart < 0 && s.soakReady() {
		s.soakStart = t
	}
	soaked := s.soakStart >= 0 && time.Duration(t-s.soakStart)*Tick >= m.pol.MinSoak
	if t%evalEvery != 0 || !s.changed && !soaked {
		return ""
	}
	s.changed = false
	ev := s.evidence(t, nil)
	mayHalt, worst, worstInstall := screen(m.pol, ev, s.metrics)
	if !mayHalt && !soaked {
		s.unhold()
		return "" // Evaluate would hold: the wave soaks
	}
	if !mayHalt && worst > 1 {
		// Evaluate would advance and the strata still running lean the
		// way that halted others: the engine's hold.
		s.hold(t, worstInstall > 1)
		return ""
	}
	d := health.Evaluate(m.pol, ev)
	if s.watchSpread(&d) {
		installLeans := false
		for _, r := range d.Tests {
			if r.Metric == RegressInstall && slices.Contains(s.metrics, RegressInstall) && r.EValue > 1 && (r.Stratum == "" || !s.halted[s.m.index[r.Stratum]]) {
				installLeans = true
			}
		}
		s.hold(t, installLeans)
		return ""
	}
	s.unhold()
	switch d.Verdict {
	case health.Halt:
		if s.halt(t, d) {
			return endHalted
		}
	case health.Advance:
		if s.soakStart < 0 {
			return ""
		}
		// Approvals (staging waves, approve_waves) are assumed to come at once.
		s.step++
		s.soakStart = -1
		s.changed = true
	}
	return ""
}

// hold applies the engine's escalation to a spread hold: once the install
// evidence it rests on cannot change (installLeans, and no device of the
// strata still running in the open steps is queued or unreported) or the
// hold has lasted rollout.HoldLimit, the engine asks the operator. The
// run goes on as the engine does while it waits: judging the evidence,
// which may still halt the campaign or resolve the hold; a run still
// waiting at the horizon ends endWaiting.
func (s *sim) hold(t int, installLeans bool) {
	if s.holdSince < 0 {
		s.holdSince = t
	}
	if !s.asked && (installLeans && s.installFinal() || time.Duration(t-s.holdSince)*Tick >= s.m.holdLimit) {
		s.asked = true
		s.res.askedHours, s.res.heldHours = s.hours(t), s.hours(t-s.holdSince)
	}
}

// unhold ends a hold; the engine takes back its question to the operator.
func (s *sim) unhold() { s.holdSince, s.asked = -1, false }

// installFinal is the engine's rule for install evidence that cannot
// change: no device of the strata still running in the open step or an
// earlier one is queued or has yet to report.
func (s *sim) installFinal() bool {
	for step := 0; step <= s.step; step++ {
		for ci, n := range s.queued[step] {
			if n > 0 && !s.halted[s.m.cells[ci].stratum] {
				return false
			}
		}
		for si, n := range s.open[step] {
			if n > 0 && !s.halted[si] {
				return false
			}
		}
	}
	return true
}

// halt confines a halt to the strata whose tests rejected, or halts the
// whole campaign, by the engine's rule; it reports a whole-campaign halt.
func (s *sim) halt(t int, d health.Decision) bool {
	if !s.res.halted {
		s.res.halted, s.res.haltHours = true, s.hours(t)
		s.res.exposed, s.res.affected = s.exposedTotal(), s.exposedAffected()
	}
	index := map[string]int{}
	for i, st := range s.m.strata {
		index[st.Key] = i
	}
	bad := make([]bool, len(s.m.strata))
	nbad := 0
	rejected := map[string]bool{}
	for _, r := range d.Tests {
		if r.Outcome != health.Rejected {
			continue
		}
		switch {
		case r.Method == health.MethodGuardrail:
			for si := range s.m.strata {
				if s.rolledBack[si] > 0 && !s.halted[si] && !bad[si] {
					bad[si] = true
					nbad++
				}
			}
		case r.Stratum != "":
			if si := index[r.Stratum]; !bad[si] {
				bad[si] = true
				nbad++
			}
		}
		if r.Method != health.MethodGuardrail {
			rejected[r.Metric] = true
		}
	}
	whole := false
	if nbad > 0 {
		whole = s.spreads(t, bad, rejected)
	}
	live := 0
	for si, st := range s.m.strata {
		if !s.halted[si] && !bad[si] && st.Devices > 0 {
			live++
		}
	}
	if whole || live == 0 || nbad == 0 {
		return true
	}
	for metric := range rejected {
		if !slices.Contains(s.metrics, metric) {
			s.metrics = append(s.metrics, metric)
		}
	}
	for si := range bad {
		if bad[si] {
			s.halted[si] = true
		}
	}
	s.changed = true
	return false
}

// spreads judges the strata outside bad on their own: the halt widens to
// the whole campaign when they show the regression too.
func (s *sim) spreads(t int, bad []bool, metrics map[string]bool) bool {
	d := health.Evaluate(s.m.pol, s.evidence(t, bad))
	index := map[string]int{}
	for i, st := range s.m.strata {
		index[st.Key] = i
	}
	for _, r := range d.Tests {
		if r.Method == health.MethodGuardrail || r.Method == health.MethodSoak {
			continue
		}
		if r.Stratum != "" && bad[index[r.Stratum]] {
			continue
		}
		if r.Outcome == health.Rejected || metrics[r.Metric] && r.EValue >= rollout.SpreadE {
			return true
		}
	}
	return false
}

// watchSpread: after strata halted, the others' evidence on the halting
// metric widens the halt (E ≥ rollout.SpreadE) or holds the next wave
// (E > 1), as the engine does. It reports a hold.
func (s *sim) watchSpread(d *health.Decision) bool {
	if len(s.metrics) == 0 || d.Verdict == health.Halt {
		return false
	}
	index := map[string]int{}
	for i, st := range s.m.strata {
		index[st.Key] = i
	}
	worst := 0.0
	for _, r := range d.Tests {
		if !slices.Contains(s.metrics, r.Metric) || r.Stratum != "" && s.halted[index[r.Stratum]] {
			continue
		}
		worst = math.Max(worst, r.EValue)
	}
	switch {
	case worst >= rollout.SpreadE:
		d.Verdict = health.Halt
		d.Tests = nil // no test rejected: the halt is the whole campaign's
	case worst > 1 && d.Verdict == health.Advance:
		d.Verdict = health.Hold
		return true
	}
	return false
}

// complete reports how the campaign ended at tick t, or "".
func (s *sim) complete(t int) string {
	m := s.m
	ended := m.endTick >= 0 && t >= m.endTick
	if s.inFlight > 0 {
		return ""
	}
	queued := 0
	for step := range s.queued {
		if s.qTotal[step] == 0 {
			continue
		}
		for ci, n := range s.queued[step] {
			if !s.halted[m.cells[ci].stratum] {
				queued += n
			}
		}
	}
	switch {
	case s.step >= m.steps && queued == 0:
		return endCompleted
	case ended:
		return endSchedule
	}
	return ""
}
