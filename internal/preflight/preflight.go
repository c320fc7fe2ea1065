package preflight

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/updraft/updraft/internal/campaign"
)

// Limits on the work one pre-flight may ask for.
const (
	DefaultRuns = 200
	MaxRuns     = 2000
	// DefaultSeed is the seed when none is given, so that the same plan
	// gives the same figures every time.
	DefaultSeed        = 1
	DefaultMaxDuration = 60 * 24 * time.Hour
	MaxMaxDuration     = 180 * 24 * time.Hour
	// MaxDevices is the largest twin simulated (counts per cell make the
	// cost grow with strata and zones, not devices; this bounds the
	// samplers' work).
	MaxDevices = 10_000_000
	// MaxCells bounds strata × time zones × telemetry flag.
	MaxCells = 2000
	// MaxRunGroups bounds runs × groups (strata + 1): the cost of a run
	// grows with the groups health.Evaluate judges. It allows the default
	// 200 runs up to 32 strata.
	MaxRunGroups = 200 * 33
)

// MaxRunsFor is the most runs per scenario a fleet of the given number of
// strata may ask for.
func MaxRunsFor(strata int) int {
	return max(1, min(MaxRuns, MaxRunGroups/(strata+1)))
}

// Regression kinds: which of the release's metrics a scenario multiplies.
const (
	RegressAll     = "all"     // install failures and every rate metric
	RegressInstall = "install" // install failures only
)

// Scenario is an assumed release behaviour.
type Scenario struct {
	Name string `json:"name"`
	// Factor multiplies the baseline install-failure rate and event rates
	// of the metrics in Metrics; 1 is a good release.
	Factor float64 `json:"factor"`
	// Stratum confines the regression to one stratum; "" is fleet-wide.
	Stratum string `json:"stratum,omitempty"`
	// Metrics regressed: "install" and rate test names; empty: all.
	Metrics []string `json:"metrics,omitempty"`
}

// Good reports whether the scenario is a good release.
func (s Scenario) Good() bool { return s.Factor <= 1 }

func (s Scenario) regresses(metric string) bool {
	return len(s.Metrics) == 0 || slices.Contains(s.Metrics, metric)
}

// DefaultFactors are the regressions every pre-flight tries.
var DefaultFactors = []float64{1.5, 2, 3}

// Scenarios returns the default scenarios for a fleet: a good release,
// then each factor fleet-wide, then each factor confined to the smallest
// stratum (the hardest place to see a regression: its share of every wave
// is the smallest) when the fleet has more than one. metrics narrows what
// regresses (nil: everything).
func Scenarios(f Fleet, metrics []string) []Scenario {
	out := []Scenario{{Name: "good", Factor: 1}}
	for _, x := range DefaultFactors {
		out = append(out, Scenario{Name: fmt.Sprintf("%g× fleet-wide", x), Factor: x, Metrics: metrics})
	}
	f = f.sorted()
	nonEmpty := 0
	for _, s := range f.Strata {
		if s.Devices > 0 {
			nonEmpty++
		}
	}
	if i := f.smallest(); i >= 0 && nonEmpty > 1 {
		key := f.Strata[i].Key
		for _, x := range DefaultFactors {
			out = append(out, Scenario{Name: fmt.Sprintf("%g× on %s", x, key), Factor: x, Stratum: key, Metrics: metrics})
		}
	}
	return out
}

// Input is a pre-flight: the campaign as it would start, the twin, and
// how much to simulate.
type Input struct {
	// Spec is the campaign's spec (defaults are filled in by Run).
	Spec campaign.Spec
	// Plan is the plan the preview resolved (campaign.Check).
	Plan campaign.Resolved
	// Fleet is the twin (Gather builds it from the store).
	Fleet Fleet
	// Start is when the campaign would start: windows are judged from it.
	Start time.Time
	// Critical is the release's severity being critical: only then does
	// the schedule's deadline force it (windows no longer apply).
	Critical bool
	// Runs per scenario (default DefaultRuns, at most MaxRuns) and the
	// seed of the first; run i of scenario k uses PCG(Seed, k<<32 | i).
	Runs int
	Seed uint64
	// MaxDuration stops a run that has not finished (default 60 days).
	MaxDuration time.Duration
	// Scenarios to run; nil: Scenarios(Fleet, nil).
	Scenarios []Scenario
}

// Report is the result of a pre-flight.
type Report struct {
	Runs             int      `json:"runs"`
	Seed             uint64   `json:"seed"`
	SeedRule         string   `json:"seed_rule"`
	Start            string   `json:"start"`
	MaxDurationHours float64  `json:"max_duration_hours"`
	Devices          int      `json:"devices"`
	Steps            []string `json:"steps"`
	// Waves are the devices each step takes per stratum in the twin
	// (the last row is the control group).
	Waves []StepCounts `json:"waves"`
	Fleet Fleet        `json:"fleet"`
	// Scenarios in order: the good release first.
	Scenarios []ScenarioResult `json:"scenarios"`
	// Model states what the twin does and does not simulate.
	Model []string `json:"model"`
	// ElapsedMS is how long the simulation took (filled in by the caller,
	// which owns the clock).
	ElapsedMS int64 `json:"elapsed_ms"`
}

// StepCounts is one step's devices per stratum.
type StepCounts struct {
	Step    string         `json:"step"`
	Devices int            `json:"devices"`
	Strata  map[string]int `json:"strata"`
}

// ScenarioResult summarises a scenario's runs. Hours are simulated hours
// from the start; quantiles are over the runs that qualify (zero when
// none does, with the count saying so).
type ScenarioResult struct {
	Scenario Scenario `json:"scenario"`
	// HaltProbability is the share of runs in which some stratum or the
	// whole campaign halted: the chance of a false halt for a good
	// release, the detection probability for a regression.
	HaltProbability float64 `json:"halt_probability"`
	// CampaignHaltProbability counts only halts of the whole campaign.
	CampaignHaltProbability float64 `json:"campaign_halt_probability"`
	Halted                  int     `json:"halted_runs"`
	// Hours until the first halt, and devices handed the release by then
	// (all, and in the regressed strata), over the runs that halted.
	HaltHours       Quantiles `json:"halt_hours"`
	ExposedAtHalt   Spread    `json:"exposed_before_halt"`
	AffectedAtHalt  Spread    `json:"affected_exposed_before_halt"`
	ExposedByTheEnd Spread    `json:"exposed_by_end"`
	Completed       int       `json:"completed_runs"`
	DurationHours   Quantiles `json:"duration_hours"`
	ScheduleEnded   int       `json:"schedule_ended_runs"`
	// WaitingOperator counts runs still waiting at the end for the
	// operator's decision about a hold the engine asked about (the strata
	// still running lean the way that halted another, and the evidence
	// cannot change or the hold reached rollout.HoldLimit); AskedHours is
	// when it asked, from the start, and HeldHours how long the next wave
	// had been held by then.
	WaitingOperator int       `json:"waiting_operator_runs"`
	AskedHours      Quantiles `json:"waiting_operator_hours"`
	HeldHours       Quantiles `json:"held_before_asking_hours"`
	Unfinished      int       `json:"unfinished_runs"`
}

// Quantiles are the median and 90th percentile.
type Quantiles struct {
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
}

// Spread is a mean and 90th percentile.
type Spread struct {
	Mean float64 `json:"mean"`
	P90  float64 `json:"p90"`
}

// Validate checks an input before it is run.
func (in Input) Validate() error {
	if in.Runs < 0 || in.Runs > MaxRuns {
		return fmt.Errorf("preflight: runs %d is not in [1, %d]", in.Runs, MaxRuns)
	}
	if in.MaxDuration < 0 || in.MaxDuration > MaxMaxDuration {
		return fmt.Errorf("preflight: maximum duration %v is not in (0, %v]", in.MaxDuration, MaxMaxDuration)
	}
	if err := in.Fleet.Validate(); err != nil {
		return err
	}
	if n := in.Fleet.Devices(); n > MaxDevices {
		return fmt.Errorf("preflight: %d devices exceed the limit of %d", n, MaxDevices)
	}
	cells := 0
	for _, s := range in.Fleet.Strata {
		cells += 2 * max(1, len(s.Zones))
	}
	if cells > MaxCells {
		return fmt.Errorf("preflight: %d strata × time zones exceed the limit of %d", cells/2, MaxCells/2)
	}
	if strata := len(in.Fleet.Strata); in.Runs > MaxRunsFor(strata) {
		return fmt.Errorf("preflight: %d runs of a fleet in %d strata exceed the work limit; ask for at most %d runs, or stratify by fewer fields", in.Runs, strata, MaxRunsFor(strata))
	}
	if len(in.Plan.Steps) == 0 {
		return errors.New("preflight: the plan has no steps")
	}
	if in.Fleet.Devices() == 0 {
		return errors.New("preflight: the fleet has no devices")
	}
	for _, sc := range in.Scenarios {
		if !(sc.Factor > 0) || math.IsInf(sc.Factor, 0) {
			return fmt.Errorf("preflight: scenario %q factor %g", sc.Name, sc.Factor)
		}
	}
	return nil
}

// Run simulates every scenario over Runs seeded runs. It stops early with
// the context's error when ctx is done.
func Run(ctx context.Context, in Input) (Report, error) {
	if in.Runs == 0 {
		in.Runs = DefaultRuns
	}
	if in.Seed == 0 {
		in.Seed = DefaultSeed
	}
	if in.MaxDuration == 0 {
		in.MaxDuration = DefaultMaxDuration
	}
	in.Spec = in.Spec.WithDefaults()
	if err := in.Validate(); err != nil {
		return Report{}, err
	}
	if in.Scenarios == nil {
		in.Scenarios = Scenarios(in.Fleet, nil)
	}
	m, err := newModel(in)
	if err != nil {
		return Report{}, err
	}
	rep := Report{
		Runs: in.Runs, Seed: in.Seed,
		SeedRule:         "run i of scenario k draws from PCG(seed, k<<32 | i)",
		Start:            in.Start.UTC().Format(time.RFC3339),
		MaxDurationHours: in.MaxDuration.Hours(),
		Devices:          in.Fleet.Devices(),
		Fleet:            in.Fleet.sorted(),
		Model:            modelNotes(m),
	}
	for i := 0; i <= m.steps; i++ {
		sc := StepCounts{Step: stepName(in.Plan, i), Strata: map[string]int{}}
		for ci, n := range m.queued[i] {
			sc.Strata[m.strata[m.cells[ci].stratum].Key] += n
			sc.Devices += n
		}
		rep.Steps = append(rep.Steps, sc.Step)
		rep.Waves = append(rep.Waves, sc)
	}
	type job struct{ k, i int }
	results := make([][]runResult, len(in.Scenarios))
	for k := range results {
		results[k] = make([]runResult, in.Runs)
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for j := range jobs {
				if ctx.Err() != nil {
					continue
				}
				s := newSim(m, in.Scenarios[j.k], [2]uint64{in.Seed, uint64(j.k)<<32 | uint64(j.i)})
				results[j.k][j.i] = s.run()
			}
		})
	}
feed:
	for k := range in.Scenarios {
		for i := range in.Runs {
			select {
			case jobs <- job{k, i}:
			case <-ctx.Done():
				break feed
			}
		}
	}
	close(jobs)
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return Report{}, err
	}
	for k, sc := range in.Scenarios {
		rep.Scenarios = append(rep.Scenarios, summarise(sc, results[k]))
	}
	return rep, nil
}

func summarise(sc Scenario, rs []runResult) ScenarioResult {
	out := ScenarioResult{Scenario: sc}
	var haltH, exposed, affected, all, dur, asked, held []float64
	for _, r := range rs {
		all = append(all, float64(r.exposedAll))
		if r.halted {
			out.Halted++
			haltH = append(haltH, r.haltHours)
			exposed = append(exposed, float64(r.exposed))
			affected = append(affected, float64(r.affected))
		}
		switch r.end {
		case endHalted:
			out.CampaignHaltProbability++
		case endCompleted:
			out.Completed++
			dur = append(dur, r.hours)
		case endSchedule:
			out.ScheduleEnded++
		case endWaiting:
			out.WaitingOperator++
			asked = append(asked, r.askedHours)
			held = append(held, r.heldHours)
		case endUnfinished:
			out.Unfinished++
		}
	}
	n := float64(len(rs))
	out.HaltProbability = float64(out.Halted) / n
	out.CampaignHaltProbability /= n
	out.HaltHours = quantiles(haltH)
	out.ExposedAtHalt = spread(exposed)
	out.AffectedAtHalt = spread(affected)
	out.ExposedByTheEnd = spread(all)
	out.DurationHours = quantiles(dur)
	out.AskedHours = quantiles(asked)
	out.HeldHours = quantiles(held)
	return out
}

// quantile is the nearest-rank quantile of sorted values.
func quantile(sorted []float64, q float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func quantiles(v []float64) Quantiles {
	sort.Float64s(v)
	return Quantiles{P50: round1(quantile(v, 0.5)), P90: round1(quantile(v, 0.9))}
}

func spread(v []float64) Spread {
	if len(v) == 0 {
		return Spread{}
	}
	sort.Float64s(v)
	sum := 0.0
	for _, x := range v {
		sum += x
	}
	return Spread{Mean: round1(sum / float64(len(v))), P90: quantile(v, 0.9)}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }

// modelNotes state what the twin simulates and assumes.
func modelNotes(m *model) []string {
	notes := []string{
		"Devices are modelled statistically (counts per stratum, time zone and telemetry flag), not as running agents; `updraft sim` runs real agents.",
		"Decisions are health.Evaluate under the campaign's policy with the engine's soak rule and stratum confinement; waves are split over strata by the engine's stratified allocation.",
		fmt.Sprintf("Time advances in %v steps; the policy is judged every %v while evidence changes (the engine: every tick), so halts and exposure err late and high by up to that much.", short(Tick), short(evalEvery*Tick)),
		"Approvals (staging waves, approve_waves) are assumed to be given as soon as a step passes.",
		fmt.Sprintf("When the strata still running lean the way that halted another, the engine holds the next wave and asks the operator: at once when the hold rests on install outcomes that cannot change, else after the hold limit (%s). The run goes on judging the evidence as the engine does while it waits; what the operator decides is not simulated, so a run still waiting at the end counts as waiting for the operator.", short(m.holdLimit)),
		"Rates are constant over the day; crash-looping devices and the per-device-day event cap are not modelled.",
		"A device that times out reports after the device timeout whether or not it is inside a window.",
	}
	if m.staging > 0 {
		notes = append(notes, "Staging waves take their planned counts in proportion to the strata (their selectors are not evaluated per device).")
	}
	return notes
}
