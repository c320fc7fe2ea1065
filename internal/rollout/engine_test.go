package rollout_test

import (
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// fleet enrolls n devices of type gw, alternating revisions B and C; the
// first lab devices are tagged lab.
func fleet(s *sim, n, lab int) {
	for i := 0; i < n; i++ {
		rev := "B"
		if i%2 == 1 {
			rev = "C"
		}
		var tags []string
		if i < lab {
			tags = []string{"lab"}
		}
		s.device("gw", rev, "", tags...)
	}
}

func baseSpec(name, version string) campaign.Spec {
	return campaign.Spec{
		Name: name, Release: version, Strata: []string{store.CountByHWRev},
		Plan:   campaign.Plan{Waves: []float64{10, 50, 100}, ControlPercent: 10},
		Health: campaign.Health{MinSoak: campaign.Duration(6 * time.Hour), EventCap: 20},
	}
}

func TestGoodReleasePassesStagingAndEveryWave(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 1)
	fleet(s, 120, 6)
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	spec := baseSpec("good", "2.0.0")
	spec.Plan.Staging = []campaign.StagingWave{{Name: "lab", Selector: "tag:lab"}}
	c := s.start(spec)

	s.runUntil(24*time.Hour, "staging waits for approval", func() bool {
		return s.campaign(c.ID).State == store.CampaignWaitingApproval
	})
	if got := s.counts(c.ID, ""); got[store.CDSucceeded] != 6 {
		t.Fatalf("after staging: %v, want the 6 lab devices succeeded and nothing else dispatched", got)
	}
	if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(10*24*time.Hour, "completion", func() bool { return s.campaign(c.ID).State == store.CampaignCompleted })
	if got := s.versions(""); got["2.0.0"] != 120 {
		t.Fatalf("versions at the end: %v, want all 120 on 2.0.0", got)
	}
	var advances []string
	for _, d := range s.decisions(c.ID) {
		if d.Verdict == "halt" {
			t.Fatalf("a good release was halted: %s", d.Summary)
		}
		if d.Verdict == "advance" && strings.HasPrefix(d.Action, "advance") {
			advances = append(advances, d.Action)
		}
		if d.Summary == "" || len(d.Detail) < 10 {
			t.Fatalf("decision without explanation or tests: %+v", d)
		}
	}
	// Staging, wave 1, wave 2 and wave 3 each advanced once.
	if len(advances) != 4 {
		t.Fatalf("advances %q, want 4 (staging, 3 waves)", advances)
	}
}

func TestInstallFailuresOnOneRevisionHaltOnlyThatRevision(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 2)
	fleet(s, 160, 0)
	s.release("1.0.0", 1, store.SeverityMedium, "gw", "B", "C")
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	s.install = func(d store.Device, version string, rng *rand.Rand) store.AssignmentState {
		if version == "2.0.0" && d.HWRev == "B" && rng.Float64() < 0.7 {
			return store.AssignRolledBack
		}
		return store.AssignSucceeded
	}
	spec := baseSpec("rev-b-breaks", "2.0.0")
	spec.OnFailure = campaign.Failure{Action: campaign.FailRollback}
	hook, err := s.st.CreateWebhook(s.ctx, store.Webhook{TenantID: store.DefaultTenant, URL: "https://hooks.example.com/u", Secret: "0123456789abcdef",
		Events: []string{"campaign.halted", "campaign.rollback", "campaign.finished"}}, admin, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := s.start(spec)

	s.runUntil(10*24*time.Hour, "completion", func() bool { return s.campaign(c.ID).State == store.CampaignCompleted })
	cur := s.campaign(c.ID)
	rt, err := campaign.RuntimeOf(cur)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.HaltedStrata) != 1 || rt.HaltedStrata[0] != "hw_rev=B" {
		t.Fatalf("halted strata %v, want only hw_rev=B", rt.HaltedStrata)
	}
	// Rev B never went past the canary: its later devices were not dispatched.
	b := s.counts(c.ID, "hw_rev=B")
	if b[store.CDSucceeded]+b[store.CDRolledBack]+b[store.CDFailed] > 20 {
		t.Fatalf("rev B devices updated: %v; the halt should have stopped rev B in the first wave", b)
	}
	// Rev C went through every wave.
	if v := s.versions("C"); v["2.0.0"] != 80 {
		t.Fatalf("rev C versions %v, want all 80 on 2.0.0", v)
	}
	// The rev B devices that installed were rolled back.
	if len(rt.Rollbacks) != 1 {
		t.Fatalf("rollback campaigns %v, want 1", rt.Rollbacks)
	}
	s.runUntil(24*time.Hour, "rollback completion", func() bool {
		return s.campaign(rt.Rollbacks[0]).State == store.CampaignCompleted
	})
	if v := s.versions("B"); v["2.0.0"] != 0 {
		t.Fatalf("rev B versions after the rollback %v, want none on 2.0.0", v)
	}
	found := false
	for _, d := range s.decisions(c.ID) {
		if d.Verdict == "halt" && strings.Contains(d.Action, "hw_rev=B") {
			found = true
		}
	}
	if !found {
		t.Fatal("no stored halt decision naming hw_rev=B")
	}
	// The halt, the rollback and the completion were queued for the webhook.
	ds, _, err := s.st.ListWebhookDeliveries(s.ctx, store.DefaultTenant, hook.ID, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	events := map[string]bool{}
	for _, d := range ds {
		events[d.Event] = true
	}
	for _, want := range []string{"campaign.halted", "campaign.rollback", "campaign.finished"} {
		if !events[want] {
			t.Errorf("no %s delivery queued; got %v", want, events)
		}
	}
}

func TestTripledCrashRateHaltsBeforeTheLargeWave(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 3)
	fleet(s, 200, 0)
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	// Rates high enough that the first wave's 24 h soak holds enough
	// events to decide whatever devices the draw puts in the canary (device
	// ids, and so the draw, differ from run to run): at 0.05 and 0.15 per
	// device-hour about one run in forty only halted in the second wave.
	s.crashes = func(d store.Device, version string) float64 {
		if version == "2.0.0" {
			return 0.3
		}
		return 0.1
	}
	spec := baseSpec("crashy", "2.0.0")
	spec.Plan.Waves = []float64{10, 25, 100}
	spec.Health.MinSoak = campaign.Duration(24 * time.Hour)
	c := s.start(spec)
	s.runUntil(6*24*time.Hour, "halt", func() bool { return s.campaign(c.ID).State == store.CampaignHalted })
	cur := s.campaign(c.ID)
	if cur.Step != 0 {
		t.Fatalf("halted at step %d, want in the first wave (before the 25%% wave)", cur.Step)
	}
	var halt store.CampaignDecision
	for _, d := range s.decisions(c.ID) {
		if d.Verdict == "halt" {
			halt = d
		}
	}
	if !strings.Contains(halt.Summary, "crash") {
		t.Fatalf("halt summary %q does not name the crash rate", halt.Summary)
	}
	if got := s.counts(c.ID, ""); got[store.CDSucceeded] > 30 {
		t.Fatalf("%d devices updated before the halt, want at most the first wave", got[store.CDSucceeded])
	}
}
