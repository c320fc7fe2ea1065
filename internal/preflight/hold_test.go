package preflight

import (
	"math"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/rollout"
)

// TestLeaningHoldWaitsForTheOperator: after hw_rev=C halts on install
// failures, the other revisions' install evidence sometimes leans the same
// way (E > 1) with every device of the open wave reported, so it cannot
// change. The engine asks the operator then; the twin reports those runs
// as waiting for the operator, none as unfinished.
func TestLeaningHoldWaitsForTheOperator(t *testing.T) {
	t.Parallel()
	s, f := spec(), testFleet(10000)
	const runs, seed = 60, 3
	rep, err := Run(t.Context(), Input{Spec: s, Plan: planFor(t, s, f), Fleet: f, Start: start, Runs: runs, Seed: seed,
		MaxDuration: 10 * 24 * time.Hour,
		Scenarios:   []Scenario{{Name: "3× install on hw_rev=C", Factor: 3, Stratum: "hw_rev=C", Metrics: []string{RegressInstall}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Scenarios[0]
	t.Logf("seed %d: %d halted (whole %.0f%%), %d completed, %d waiting for the operator (asked at %v h, held %v h before), %d unfinished",
		seed, r.Halted, 100*r.CampaignHaltProbability, r.Completed, r.WaitingOperator, r.AskedHours, r.HeldHours, r.Unfinished)
	if r.Unfinished != 0 {
		t.Errorf("%d runs unfinished after 10 days: a hold the engine cannot resolve must end waiting for the operator", r.Unfinished)
	}
	if r.WaitingOperator == 0 {
		t.Fatalf("no run waiting for the operator (seed %d): the scenario no longer exercises the leaning hold", seed)
	}
	whole := int(math.Round(r.CampaignHaltProbability * runs))
	if got := r.Completed + r.ScheduleEnded + r.WaitingOperator + whole + r.Unfinished; got != runs {
		t.Errorf("runs accounted for: %d of %d", got, runs)
	}
	// The hold rests on install outcomes that cannot change: the engine
	// asks at once, after the first wave's soak.
	if r.HeldHours.P90 != 0 || r.AskedHours.P50 < 24 {
		t.Errorf("asked at %v h after holding %v h; want at once, after the first wave's 24 h soak", r.AskedHours, r.HeldHours)
	}
}

// TestHoldLimitAsksTheOperator: a hold whose evidence could still change
// is escalated once it has lasted rollout.HoldLimit (twice the minimum
// soak by default, or health.hold_limit), and taken back when it ends.
func TestHoldLimitAsksTheOperator(t *testing.T) {
	t.Parallel()
	for _, limit := range []time.Duration{0, 5 * time.Hour} {
		s, f := spec(), testFleet(1000)
		s.Health.HoldLimit = campaign.Duration(limit)
		in := Input{Spec: s.WithDefaults(), Plan: planFor(t, s, f), Fleet: f, Start: start, MaxDuration: 24 * time.Hour}
		m, err := newModel(in)
		if err != nil {
			t.Fatal(err)
		}
		want := rollout.HoldLimit(in.Spec, m.pol)
		if limit == 0 && want != 2*m.pol.MinSoak || limit != 0 && want != limit {
			t.Fatalf("hold limit %v with health.hold_limit %v, min soak %v", want, limit, m.pol.MinSoak)
		}
		sm := newSim(m, Scenario{Name: "good", Factor: 1}, [2]uint64{1, 1})
		ticks := int(want / Tick)
		sm.hold(10, false)
		sm.hold(10+ticks-1, false)
		if sm.asked {
			t.Fatalf("limit %v: asked after %v", want, time.Duration(ticks-1)*Tick)
		}
		sm.hold(10+ticks, false)
		if !sm.asked || sm.res.heldHours != want.Hours() {
			t.Fatalf("limit %v: asked %v after %v h", want, sm.asked, sm.res.heldHours)
		}
		sm.unhold()
		if sm.asked || sm.holdSince >= 0 {
			t.Fatal("the question stands after the hold ended")
		}
	}
}
