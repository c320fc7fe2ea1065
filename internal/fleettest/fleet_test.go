package fleettest

import (
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// fleetOf enrolls n agents alternating revisions B and C and waits until
// every one is accepted and has checked in.
func fleetOf(t *testing.T, seed uint64, n int) *Fleet {
	t.Helper()
	f := New(t, Options{Seed: seed})
	for i := 0; i < n; i++ {
		rev := "B"
		if i%2 == 1 {
			rev = "C"
		}
		f.AddDevice(rev)
	}
	f.RunUntil(time.Hour, time.Minute, "enrollment", func() bool {
		counts, err := f.Store.CountDevicesBy(f.Ctx, store.DefaultTenant, nil, store.CountByVersion)
		return err == nil && counts["1.0.0"] == n
	})
	return f
}

func (f *Fleet) start(spec campaign.Spec) store.Campaign {
	f.T.Helper()
	spec.Seed = int64(f.opts.Seed)
	c, _, err := campaign.Create(f.Ctx, f.Store, store.DefaultTenant, spec, Admin, f.Clock.Now())
	if err != nil {
		f.T.Fatalf("create: %v", err)
	}
	if c, err = campaign.Start(f.Ctx, f.Store, store.DefaultTenant, c.ID, Admin, f.Clock.Now()); err != nil {
		f.T.Fatalf("start: %v", err)
	}
	return c
}

func spec(name string) campaign.Spec {
	return campaign.Spec{
		Name: name, Release: "2.0.0", Strata: []string{store.CountByHWRev},
		Plan:      campaign.Plan{Waves: []float64{20, 50, 100}, ControlPercent: 10},
		Health:    campaign.Health{MinSoak: campaign.Duration(6 * time.Hour), EventCap: 20},
		OnFailure: campaign.Failure{Action: campaign.FailRollback},
	}
}

// TestFleetGoodRelease: real agents take a good release through every wave.
func TestFleetGoodRelease(t *testing.T) {
	t.Parallel()
	f := fleetOf(t, 11, 40)
	f.Release("2.0.0", 2, "B", "C")
	c := f.start(spec("good"))
	f.RunUntil(6*24*time.Hour, 10*time.Minute, "completion", func() bool { return f.Campaign(c.ID).State == store.CampaignCompleted })
	if v := f.Versions(""); v["2.0.0"] != 40 {
		t.Fatalf("versions %v, want all 40 agents on 2.0.0", v)
	}
}

// TestFleetRevisionBFailsHealthCheck: on revision B the new image fails
// its health check, so the agents roll back by themselves; the engine
// halts revision B in the first wave and revision C completes.
func TestFleetRevisionBFailsHealthCheck(t *testing.T) {
	t.Parallel()
	f := fleetOf(t, 12, 60)
	f.Release("1.0.0", 1, "B", "C")
	f.Release("2.0.0", 2, "B", "C")
	f.Behaviour.Healthy = func(rev, version string) bool { return !(rev == "B" && version == "2.0.0") }
	c := f.start(spec("rev-b"))
	f.RunUntil(8*24*time.Hour, 10*time.Minute, "completion", func() bool { return f.Campaign(c.ID).State == store.CampaignCompleted })
	rt, err := campaign.RuntimeOf(f.Campaign(c.ID))
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.HaltedStrata) != 1 || rt.HaltedStrata[0] != "hw_rev=B" {
		t.Fatalf("halted strata %v, want hw_rev=B", rt.HaltedStrata)
	}
	if v := f.Versions("C"); v["2.0.0"] != 30 {
		t.Fatalf("rev C versions %v, want all 30 on 2.0.0", v)
	}
	if v := f.Versions("B"); v["2.0.0"] != 0 {
		t.Fatalf("rev B versions %v, want none left on 2.0.0", v)
	}
	var halt string
	ds, _, _ := f.Store.ListCampaignDecisions(f.Ctx, store.DefaultTenant, c.ID, store.Page{Limit: 100})
	for _, d := range ds {
		if d.Verdict == "halt" {
			halt = d.Summary
		}
	}
	if !strings.Contains(halt, "rolled back") && !strings.Contains(halt, "failed to install") {
		t.Fatalf("halt summary %q", halt)
	}
}

// TestFleetTripledCrashes: the release installs fine but triples the
// crash rate; the engine halts in the first wave, before the larger ones.
func TestFleetTripledCrashes(t *testing.T) {
	t.Parallel()
	f := fleetOf(t, 13, 80)
	f.Release("2.0.0", 2, "B", "C")
	f.Behaviour.CrashRate = func(rev, version string) float64 {
		if version == "2.0.0" {
			return 0.3
		}
		return 0.1
	}
	s := spec("crashy")
	s.Plan.Waves = []float64{25, 50, 100}
	s.Health.MinSoak = campaign.Duration(24 * time.Hour)
	c := f.start(s)
	f.RunUntil(6*24*time.Hour, 10*time.Minute, "halt", func() bool { return f.Campaign(c.ID).State == store.CampaignHalted })
	if step := f.Campaign(c.ID).Step; step != 0 {
		t.Fatalf("halted at step %d, want in the first wave", step)
	}
	if v := f.Versions(""); v["2.0.0"] > 20 {
		t.Fatalf("versions %v: more devices updated than the first wave holds", v)
	}
}
