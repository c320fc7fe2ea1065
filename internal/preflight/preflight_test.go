package preflight

import (
	"fmt"
	"math"
	"math/rand/v2"
	"reflect"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/tufmeta"
)

// testFleet is a fleet in three revisions (50/30/20 %) over two time
// zones, every device sending telemetry, failing to install at 1 %.
func testFleet(devices int) Fleet {
	shares := []float64{0.5, 0.3, 0.2}
	var f Fleet
	left := devices
	for i, key := range []string{"hw_rev=A", "hw_rev=B", "hw_rev=C"} {
		n := int(math.Round(shares[i] * float64(devices)))
		if i == 2 {
			n = left
		}
		left -= n
		f.Strata = append(f.Strata, Stratum{
			Key: key, Devices: n, Reporting: 1, InstallFailure: 0.01,
			Zones: map[string]int{"Europe/Berlin": n / 2, "America/New_York": n - n/2},
			Rates: map[string]float64{"crash": DefaultCrashRate, "reboot": DefaultRebootRate},
		})
	}
	return f
}

// planFor resolves the spec's plan for the fleet as campaign.Check does:
// explicit waves, or a power calculation by health.PlanWaves.
func planFor(t testing.TB, s campaign.Spec, f Fleet) campaign.Resolved {
	t.Helper()
	s = s.WithDefaults()
	pol, err := s.Health.Policy()
	if err != nil {
		t.Fatal(err)
	}
	r := campaign.Resolved{Targets: f.Devices(), Strata: map[string]int{}, ControlFraction: s.Plan.ControlPercent / 100, Baseline: s.Health.BaselineSLO}
	for _, st := range f.Strata {
		r.Strata[st.Key] = st.Devices
	}
	waves := s.Plan.Waves
	if len(waves) == 0 {
		wp, err := health.PlanWaves(pol, f.Devices(), len(f.Strata), r.Baseline, health.PlanOptions{ControlFraction: r.ControlFraction, MaxCanaryFraction: 0.5})
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range wp.Waves {
			waves = append(waves, 100*float64(n)/float64(wp.Targets-wp.Control))
		}
	}
	for i, w := range waves {
		if i == len(waves)-1 {
			w = 100
		}
		r.Steps = append(r.Steps, campaign.Step{Name: fmt.Sprintf("wave %d", i+1), Kind: campaign.StepWave, Fraction: w / 100})
	}
	return r
}

// start is a Monday morning in UTC.
var start = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

func spec() campaign.Spec {
	return campaign.Spec{Name: "t", Release: "2.0.0", Health: campaign.Health{BaselineSLO: 0.01}}
}

func run(t *testing.T, s campaign.Spec, f Fleet, runs int, seed uint64, scenarios []Scenario) Report {
	t.Helper()
	rep, err := Run(t.Context(), Input{Spec: s, Plan: planFor(t, s, f), Fleet: f, Start: start, Runs: runs, Seed: seed, Scenarios: scenarios})
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func find(t *testing.T, rep Report, name string) ScenarioResult {
	t.Helper()
	for _, r := range rep.Scenarios {
		if r.Scenario.Name == name {
			return r
		}
	}
	t.Fatalf("no scenario %q in %+v", name, rep.Scenarios)
	return ScenarioResult{}
}

// TestDeterministic: the same input and seed give the same report, and a
// different seed draws different runs.
func TestDeterministic(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{10, 100}
	f := testFleet(2000)
	scs := []Scenario{{Name: "good", Factor: 1}, {Name: "2× fleet-wide", Factor: 2}}
	a := run(t, s, f, 16, 42, scs)
	b := run(t, s, f, 16, 42, scs)
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("seed 42 gave two reports:\n%+v\n%+v", a.Scenarios, b.Scenarios)
	}
	c := run(t, s, f, 16, 43, scs)
	if reflect.DeepEqual(a.Scenarios, c.Scenarios) {
		t.Errorf("seeds 42 and 43 gave identical scenarios %+v", a.Scenarios)
	}
}

// TestStrongRegressionDetectedGoodRarelyHalted: a 3× regression of every
// metric is halted in (nearly) every run, and before the last wave; a good
// release almost never is. The policy's false-halt budget is 1 %, so 3 of
// 60 runs is far outside what a correct simulation produces, and the 3×
// regression is caught by the first wave with a margin of several powers
// of ten (seeds fixed: seed 5).
func TestStrongRegressionDetectedGoodRarelyHalted(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{10, 40, 100}
	f := testFleet(4000)
	rep := run(t, s, f, 60, 5, []Scenario{{Name: "good", Factor: 1}, {Name: "3×", Factor: 3}})
	good, bad := find(t, rep, "good"), find(t, rep, "3×")
	if good.HaltProbability > 0.05 {
		t.Errorf("good release halted in %.0f%% of runs (seed 5), want at most 5%%", 100*good.HaltProbability)
	}
	if good.Completed < 57 || good.DurationHours.P50 <= 48 {
		t.Errorf("good release completed %d runs in p50 %.1f h, want ≥ 57 runs and more than two 24 h soaks", good.Completed, good.DurationHours.P50)
	}
	if bad.HaltProbability < 0.95 {
		t.Errorf("3× regression detected in %.0f%% of runs (seed 5), want at least 95%%", 100*bad.HaltProbability)
	}
	if first := rep.Waves[0].Devices; bad.ExposedAtHalt.Mean > float64(first)*1.01 || bad.ExposedAtHalt.Mean == 0 {
		t.Errorf("3× regression exposed %.0f devices on average before the halt, want within the first wave's %d", bad.ExposedAtHalt.Mean, first)
	}
}

// TestWindowsLengthenDuration: a two-hour nightly window makes the good
// release's campaign longer than one that may dispatch at any time.
func TestWindowsLengthenDuration(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{10, 100}
	f := testFleet(2000)
	good := []Scenario{{Name: "good", Factor: 1}}
	open := find(t, run(t, s, f, 12, 3, good), "good")
	s.Schedule.Windows = []tufmeta.Window{{Start: "02:00", Duration: tufmeta.Duration(2 * time.Hour)}}
	windowed := find(t, run(t, s, f, 12, 3, good), "good")
	if open.Completed == 0 || windowed.Completed == 0 {
		t.Fatalf("completed %d and %d runs, want both to finish", open.Completed, windowed.Completed)
	}
	if windowed.DurationHours.P50 < open.DurationHours.P50+6 {
		t.Errorf("median duration %.1f h with a 2 h window, %.1f h without: want the window to add hours", windowed.DurationHours.P50, open.DurationHours.P50)
	}
}

// TestPacingLengthensDuration: at 5 devices a minute, 2,000 devices take
// more than 6 hours to dispatch.
func TestPacingLengthensDuration(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{10, 100}
	f := testFleet(2000)
	good := []Scenario{{Name: "good", Factor: 1}}
	open := find(t, run(t, s, f, 8, 3, good), "good")
	s.Pacing.PerMinute = 5
	paced := find(t, run(t, s, f, 8, 3, good), "good")
	// Dispatching the 1,800 devices of the last wave takes 6 h; devices
	// report up to 2 h after dispatch either way, so the soak starts at
	// least 4 h later than when they all go at once.
	if paced.DurationHours.P50 < open.DurationHours.P50+3.5 {
		t.Errorf("median duration %.1f h at 5 per minute, %.1f h unlimited: want ≥ 3.5 h more", paced.DurationHours.P50, open.DurationHours.P50)
	}
}

// TestStratumRegression: a 3× regression (install failures, crashes and
// reboots) confined to the smallest revision
// halts that stratum, not (usually) the campaign, and the devices of that
// stratum exposed before the halt are counted apart.
func TestStratumRegression(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{10, 40, 100}
	f := testFleet(4000)
	scs := Scenarios(f, nil)
	if got := scs[len(scs)-1]; got.Stratum != "hw_rev=C" || got.Factor != 3 {
		t.Fatalf("last default scenario %+v, want 3× on the smallest stratum hw_rev=C", got)
	}
	rep := run(t, s, f, 40, 11, scs[len(scs)-1:])
	r := rep.Scenarios[0]
	if r.HaltProbability < 0.9 {
		t.Errorf("3× on hw_rev=C halted in %.0f%% of runs (seed 11), want at least 90%%", 100*r.HaltProbability)
	}
	if r.CampaignHaltProbability >= r.HaltProbability/2 {
		t.Errorf("whole-campaign halts %.0f%% of %.0f%% halts: a one-stratum regression should mostly halt its stratum alone", 100*r.CampaignHaltProbability, 100*r.HaltProbability)
	}
	if r.AffectedAtHalt.Mean <= 0 || r.AffectedAtHalt.Mean >= r.ExposedAtHalt.Mean {
		t.Errorf("affected %.0f of %.0f exposed: want a positive part", r.AffectedAtHalt.Mean, r.ExposedAtHalt.Mean)
	}
	if r.Completed < 30 {
		t.Errorf("%d of 40 runs completed: the other strata should finish", r.Completed)
	}
}

// TestDrawMatchesEngine: the twin's per-step, per-stratum counts are what
// health.DrawWaves gives the engine for the same targets.
func TestDrawMatchesEngine(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{1, 5, 25, 100}
	s.Plan.ControlPercent = 2
	f := testFleet(3001)
	plan := planFor(t, s, f)
	m, err := newModel(Input{Spec: s.WithDefaults(), Plan: plan, Fleet: f, Start: start, MaxDuration: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var targets []health.Target
	for _, st := range f.Strata {
		for i := range st.Devices {
			targets = append(targets, health.Target{ID: fmt.Sprintf("%s-%d", st.Key, i), Stratum: st.Key})
		}
	}
	var sizes []health.WaveSize
	for _, step := range plan.Steps {
		sizes = append(sizes, health.WaveSize{Fraction: step.Fraction})
	}
	d, err := health.DrawWaves(targets, sizes, plan.ControlFraction, rand.New(rand.NewPCG(1, 2)))
	if err != nil {
		t.Fatal(err)
	}
	stratumOf := map[string]string{}
	for _, tg := range targets {
		stratumOf[tg.ID] = tg.Stratum
	}
	count := func(ids []string) map[string]int {
		out := map[string]int{}
		for _, id := range ids {
			out[stratumOf[id]]++
		}
		return out
	}
	twin := func(step int) map[string]int {
		out := map[string]int{}
		for ci, n := range m.queued[step] {
			if n > 0 {
				out[m.strata[m.cells[ci].stratum].Key] += n
			}
		}
		return out
	}
	for i, w := range d.Waves {
		want := count(w)
		if i == len(d.Waves)-1 {
			want = count(append(append([]string(nil), w...), d.Rest...))
		}
		if got := twin(i); !reflect.DeepEqual(got, want) {
			t.Errorf("wave %d: twin %v, DrawWaves %v", i+1, got, want)
		}
	}
	if got, want := twin(m.steps), count(d.Control); !reflect.DeepEqual(got, want) {
		t.Errorf("control: twin %v, DrawWaves %v", got, want)
	}
}

// TestLargeFleet: a million devices simulate as fast as a small fleet,
// since the twin draws counts.
func TestLargeFleet(t *testing.T) {
	t.Parallel()
	s := spec()
	f := testFleet(1_000_000)
	rep := run(t, s, f, 4, 1, []Scenario{{Name: "good", Factor: 1}, {Name: "2×", Factor: 2}})
	if rep.Devices != 1_000_000 || find(t, rep, "good").Completed != 4 || find(t, rep, "2×").HaltProbability != 1 {
		t.Errorf("1M fleet: %+v", rep.Scenarios)
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	s := spec()
	f := testFleet(100)
	base := Input{Spec: s, Plan: planFor(t, s, f), Fleet: f, Start: start}
	for name, mut := range map[string]func(*Input){
		"too many runs":      func(in *Input) { in.Runs = MaxRuns + 1 },
		"negative runs":      func(in *Input) { in.Runs = -1 },
		"long horizon":       func(in *Input) { in.MaxDuration = MaxMaxDuration + time.Hour },
		"no devices":         func(in *Input) { in.Fleet = Fleet{Strata: []Stratum{{Key: "a"}}} },
		"bad failure rate":   func(in *Input) { in.Fleet.Strata[0].InstallFailure = 1.5 },
		"zones do not add":   func(in *Input) { in.Fleet.Strata[0].Zones = map[string]int{"UTC": 1} },
		"negative rate":      func(in *Input) { in.Fleet.Strata[0].Rates = map[string]float64{"crash": -1} },
		"no steps":           func(in *Input) { in.Plan.Steps = nil },
		"zero factor":        func(in *Input) { in.Scenarios = []Scenario{{Name: "x"}} },
		"repeated stratum":   func(in *Input) { in.Fleet.Strata = append(in.Fleet.Strata, in.Fleet.Strata[0]) },
		"too many strata":    func(in *Input) { in.Fleet = manyStrata(MaxCells) },
		"too many devices":   func(in *Input) { in.Fleet.Strata[0].Devices, in.Fleet.Strata[0].Zones = MaxDevices+1, nil },
		"bad telemetry part": func(in *Input) { in.Fleet.Strata[0].Reporting = 2 },
		"runs × strata":      func(in *Input) { in.Runs = MaxRunsFor(3) + 1 },
	} {
		in := base
		in.Fleet = testFleet(100)
		in.Plan = planFor(t, s, in.Fleet)
		mut(&in)
		if _, err := Run(t.Context(), in); err == nil {
			t.Errorf("%s: Run accepted it", name)
		}
	}
}

func manyStrata(n int) Fleet {
	var f Fleet
	for i := range n {
		f.Strata = append(f.Strata, Stratum{Key: fmt.Sprint(i), Devices: 1})
	}
	return f
}

// TestDeadlineForcesOnlyCriticalReleases: with a Sunday-only window and a
// deadline an hour after a Monday start, a critical release dispatches
// after the deadline while another waits for Sunday.
func TestDeadlineForcesOnlyCriticalReleases(t *testing.T) {
	t.Parallel()
	s := spec()
	s.Plan.Waves = []float64{100}
	s.Schedule.Windows = []tufmeta.Window{{Start: "00:00", Duration: tufmeta.Duration(24 * time.Hour), Days: []time.Weekday{time.Sunday}}}
	deadline := start.Add(time.Hour)
	s.Schedule.Deadline = &deadline
	f := testFleet(600)
	in := Input{Spec: s, Plan: planFor(t, s, f), Fleet: f, Start: start, Runs: 4, Seed: 2, Scenarios: []Scenario{{Name: "good", Factor: 1}}}
	durations := map[bool]float64{}
	for _, critical := range []bool{false, true} {
		in.Critical = critical
		rep, err := Run(t.Context(), in)
		if err != nil {
			t.Fatal(err)
		}
		durations[critical] = rep.Scenarios[0].DurationHours.P50
	}
	// Sunday 00:00 in New York is 125 hours after Monday 09:00 UTC.
	if durations[true] > 24+6 || durations[false] < 100 {
		t.Errorf("median durations: critical %.1f h, not critical %.1f h; want about a day and more than 100 h", durations[true], durations[false])
	}
}
