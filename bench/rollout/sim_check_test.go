package rolloutbench

import (
	"fmt"
	"math"
	"testing"

	"github.com/updraft/updraft/internal/health"
)

func setup(t *testing.T) (fleetConfig, health.WavePlan, []string, map[string]int) {
	t.Helper()
	cfg := defaultFleet()
	plan, err := health.PlanWaves(health.DefaultPolicy(), cfg.devices, len(cfg.strata), cfg.installFail, health.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ids := make([]string, cfg.devices)
	index := map[string]int{}
	for i := range ids {
		ids[i] = fmt.Sprintf("d%05d", i)
		index[ids[i]] = i
	}
	return cfg, plan, ids, index
}

// TestSimulatedFleet checks the simulator itself: the fleet, the draw and
// the simulated install and crash rates are what the configuration says.
func TestSimulatedFleet(t *testing.T) {
	t.Parallel()
	cfg, plan, ids, index := setup(t)
	s := newSim(cfg, scenario{installFactor: 3, crashFactor: 1, stratum: "rev=C"}, plan, ids, index, [2]uint64{7, 7})
	per := make([]int, 3)
	control := 0
	for _, d := range s.devices {
		per[d.stratum]++
		if d.wave < 0 {
			control++
		}
	}
	if fmt.Sprint(per) != "[5000 3000 2000]" || control != plan.Control {
		t.Fatalf("strata %v, control %d", per, control)
	}
	if len(s.waves) != len(plan.Waves) || len(s.waves[0]) != plan.Waves[0] {
		t.Fatalf("waves of %d, %d devices for plan %v", len(s.waves), len(s.waves[0]), plan.Waves)
	}
	// Install everyone at once and check the failure rates per stratum
	// (seed (7, 7)): 3 % on C, 1 % elsewhere, within 4 standard errors.
	for _, w := range s.waves {
		for _, i := range w {
			s.devices[i].installAt = 0
		}
	}
	s.advance(0, 1)
	for st, want := range []float64{0.01, 0.01, 0.03} {
		n := float64(s.installs[st])
		got := float64(s.failures[st]) / n
		if se := math.Sqrt(want * (1 - want) / n); math.Abs(got-want) > 4*se {
			t.Errorf("seed (7, 7): stratum %d failure rate %.4f, want %.3f ± %.4f", st, got, want, 4*se)
		}
	}
	// Crash events over a day with everyone but the control updated:
	// the canary:control event ratio follows the exposure ratio.
	var ce, be int
	var ch, bh float64
	for h := 1.0; h < 25; h++ {
		s.advance(h, h+1)
	}
	for st := range 3 {
		for _, p := range s.periods[st][crashMetric] {
			ce += p.CanaryEvents
			be += p.ControlEvents
			ch += p.CanaryHours
			bh += p.ControlHours
		}
	}
	rc, rb := float64(ce)/ch, float64(be)/bh
	if rc < 0.002 || rc > 0.004 || rb < 0.001 || rb > 0.006 {
		t.Errorf("seed (7, 7): crash rates %.4f canary, %.4f control per device-hour", rc, rb)
	}
}

// TestCampaignDeterministic: a campaign is a function of its seed.
func TestCampaignDeterministic(t *testing.T) {
	t.Parallel()
	cfg, plan, ids, index := setup(t)
	sc := scenario{name: "install-3x-fleet", installFactor: 3, crashFactor: 1}
	a := newSim(cfg, sc, plan, ids, index, [2]uint64{1, 2}).runPolicy()
	b := newSim(cfg, sc, plan, ids, index, [2]uint64{1, 2}).runPolicy()
	if a != b {
		t.Errorf("seed (1, 2): %+v then %+v", a, b)
	}
	if !a.halted || !a.early || a.metric != "install" {
		t.Errorf("seed (1, 2): a 3× install regression was not halted in the canary: %+v", a)
	}
	fixed := newSim(cfg, sc, plan, ids, index, [2]uint64{1, 2}).runFixed()
	if fixed.exposed < 50 {
		t.Errorf("the fixed rule halted before 50 devices: %+v", fixed)
	}
}
