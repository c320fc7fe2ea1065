package rollout_test

import (
	"context"
	"encoding/json"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// leaningHold starts a campaign in which every rev B device fails to
// install 2.0.0 and exactly one rev C device does: rev B halts on its
// install test, and rev C's install evidence then leans the same way
// (E > 1) without reaching SpreadE. Once rev C's first-wave devices have
// reported, no install outcome can arrive until a new wave opens. With
// unfinished, the second rev C device to install stays installing (for
// longer than the test runs), so the evidence could still change and only
// the hold limit (3 h) ends the wait. It runs until the campaign asks the
// operator and returns the campaign then.
func leaningHold(t *testing.T, seed uint64, unfinished bool) (*sim, store.Campaign, store.Webhook) {
	t.Helper()
	s, spec := leaningSetup(t, seed, unfinished)
	hook, err := s.st.CreateWebhook(s.ctx, store.Webhook{TenantID: store.DefaultTenant, URL: "https://hooks.example.com/u", Secret: "0123456789abcdef",
		Events: []string{"campaign.approval_needed"}}, admin, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	c := s.start(spec)
	// Without the escalation the campaign holds in running forever; two
	// days bound the wait (the escalation comes within a day).
	s.runUntil(2*24*time.Hour, "the operator asked about the hold", func() bool {
		return s.campaign(c.ID).State == store.CampaignWaitingApproval
	})
	return s, s.campaign(c.ID), hook
}

// lastDecision returns the newest stored decision.
func lastDecision(s *sim, id string) store.CampaignDecision {
	s.t.Helper()
	ds := s.decisions(id)
	if len(ds) == 0 {
		s.t.Fatal("no decisions")
	}
	latest := ds[0]
	for _, d := range ds {
		if d.Seq > latest.Seq {
			latest = d
		}
	}
	return latest
}

func TestLeaningHoldAsksTheOperatorAndApprovalResumes(t *testing.T) {
	t.Parallel()
	s, c, hook := leaningHold(t, 21, false)
	if c.Step != 0 {
		t.Fatalf("asked at step %d, want in the first wave", c.Step)
	}
	rt, err := campaign.RuntimeOf(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(rt.HaltedStrata) != 1 || rt.HaltedStrata[0] != "hw_rev=B" || rt.EscalatedAt == nil || rt.HoldSince == nil {
		t.Fatalf("runtime halted %v, hold since %v, asked at %v; want hw_rev=B halted and the hold escalated", rt.HaltedStrata, rt.HoldSince, rt.EscalatedAt)
	}
	d := lastDecision(s, c.ID)
	t.Logf("decision: %s", d.Summary)
	for _, want := range []string{"Needs a decision", "hw_rev=B halted on install", "hw_rev=C", "cannot resolve by itself", "approve", "abort", "roll back"} {
		if !strings.Contains(d.Summary, want) || !strings.Contains(c.StateReason, want) {
			t.Errorf("decision %q / reason %q does not say %q", d.Summary, c.StateReason, want)
		}
	}
	if d.Verdict != "hold" || !strings.HasPrefix(d.Action, "ask the operator") {
		t.Errorf("decision verdict %q action %q, want a hold asking the operator", d.Verdict, d.Action)
	}
	ds, _, err := s.st.ListWebhookDeliveries(s.ctx, store.DefaultTenant, hook.ID, store.Page{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Event != "campaign.approval_needed" {
		t.Fatalf("deliveries %+v, want one campaign.approval_needed", ds)
	}
	var payload map[string]any
	if err := json.Unmarshal(ds[0].Payload, &payload); err != nil {
		t.Fatal(err)
	}
	if payload["needs"] != "hold_decision" || payload["metric"] != "install" || payload["state"] != string(store.CampaignWaitingApproval) {
		t.Errorf("payload %v, want a hold decision on install while waiting for approval", payload)
	}

	// Waiting does not ask again, nor dispatch.
	before := s.counts(c.ID, "")
	for range 12 {
		s.step()
	}
	if got := s.campaign(c.ID); got.State != store.CampaignWaitingApproval || got.Step != 0 {
		t.Fatalf("after 2 h of waiting: %s at step %d, want still waiting at step 0", got.State, got.Step)
	}
	if after := s.counts(c.ID, ""); after[store.CDAssigned]+after[store.CDSucceeded]+after[store.CDFailed] != before[store.CDAssigned]+before[store.CDSucceeded]+before[store.CDFailed] {
		t.Fatalf("devices dispatched while waiting: %v, before %v", after, before)
	}
	if ds, _, _ := s.st.ListWebhookDeliveries(s.ctx, store.DefaultTenant, hook.ID, store.Page{Limit: 100}); len(ds) != 1 {
		t.Fatalf("%d deliveries after waiting, want the one", len(ds))
	}

	if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(time.Hour, "the next wave after approval", func() bool { return s.campaign(c.ID).Step == 1 })
	if got := s.campaign(c.ID); got.State != store.CampaignRunning {
		t.Fatalf("after approval: %s (%s), want running", got.State, got.StateReason)
	}
	if d := lastDecision(s, c.ID); d.Verdict != "advance" || !strings.Contains(d.Summary, "approved by an operator") {
		t.Fatalf("decision after approval %q: %q, want an advance saying an operator approved it", d.Verdict, d.Summary)
	}
	// Rev C's later waves install cleanly; the campaign completes (asking
	// again whenever a wave ends leaning the same way).
	s.runUntil(10*24*time.Hour, "completion", func() bool {
		cur := s.campaign(c.ID)
		if cur.State == store.CampaignWaitingApproval {
			if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
		return cur.State == store.CampaignCompleted
	})
	// The one rev C device that failed stays on 1.0.0.
	if v := s.versions("C"); v["2.0.0"] != 49 {
		t.Fatalf("rev C versions %v, want 49 of 50 on 2.0.0", v)
	}
}

func TestLeaningHoldAbort(t *testing.T) {
	t.Parallel()
	s, c, _ := leaningHold(t, 22, false)
	if _, err := campaign.Abort(s.ctx, s.st, store.DefaultTenant, c.ID, "", admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(time.Hour, "abort finished", func() bool { return s.campaign(c.ID).FinishedAt != nil })
	if got := s.campaign(c.ID); got.State != store.CampaignAborted || got.Step != 0 {
		t.Fatalf("after abort: %s at step %d", got.State, got.Step)
	}
	if got := s.counts(c.ID, ""); got[store.CDAssigned] != 0 {
		t.Fatalf("assignments still open after abort: %v", got)
	}
}

func TestLeaningHoldRollback(t *testing.T) {
	t.Parallel()
	s, c, _ := leaningHold(t, 23, false)
	if _, err := campaign.Rollback(s.ctx, s.st, store.DefaultTenant, c.ID, "", admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "rev C back on 1.0.0", func() bool { return s.versions("C")["2.0.0"] == 0 })
	if got := s.campaign(c.ID); got.State != store.CampaignHalted {
		t.Fatalf("after rollback: %s", got.State)
	}
}

func TestLeaningHoldThatCouldResolveAsksAfterTheHoldLimit(t *testing.T) {
	t.Parallel()
	s, c, _ := leaningHold(t, 24, true)
	if got := s.counts(c.ID, "hw_rev=C"); got[store.CDAssigned] != 1 {
		t.Fatalf("rev C devices %v, want one still installing", got)
	}
	rt, err := campaign.RuntimeOf(c)
	if err != nil {
		t.Fatal(err)
	}
	if rt.HoldSince == nil || rt.EscalatedAt == nil {
		t.Fatalf("hold since %v, asked at %v", rt.HoldSince, rt.EscalatedAt)
	}
	// health.hold_limit is 3 h (one tick of slack).
	if held := rt.EscalatedAt.Sub(*rt.HoldSince); held < 3*time.Hour || held > 3*time.Hour+10*time.Minute {
		t.Fatalf("asked after a hold of %v, want 3 h", held)
	}
	d := lastDecision(s, c.ID)
	t.Logf("decision: %s", d.Summary)
	if !strings.Contains(d.Summary, "The hold has lasted 3 h") || strings.Contains(d.Summary, "cannot resolve") {
		t.Fatalf("decision %q does not give the hold limit as the reason", d.Summary)
	}
}

// leaningSetup is leaningHold's fleet, release behaviour and spec, not
// started.
func leaningSetup(t *testing.T, seed uint64, unfinished bool) (*sim, campaign.Spec) {
	t.Helper()
	s := newSim(t, openStore(t), seed)
	s.NoTelemetry = true
	fleet(s, 100, 0)
	s.release("1.0.0", 1, store.SeverityMedium, "gw", "B", "C")
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	cInstalls := 0
	s.install = func(d store.Device, version string, _ *rand.Rand) store.AssignmentState {
		switch {
		case version != "2.0.0":
			return store.AssignSucceeded
		case d.HWRev == "B":
			return store.AssignFailed
		}
		cInstalls++
		switch {
		case cInstalls == 1:
			return store.AssignFailed
		case cInstalls == 2 && unfinished:
			return store.AssignInstalling
		}
		return store.AssignSucceeded
	}
	spec := baseSpec("leaning", "2.0.0")
	spec.Health.MinSoak = campaign.Duration(2 * time.Hour)
	if unfinished {
		// A first wave large enough that one device still installing
		// leaves the soak rule's tenth unfinished.
		spec.Plan.Waves = []float64{25, 50, 100}
		spec.DeviceTimeout = campaign.Duration(10 * 24 * time.Hour)
		spec.Health.HoldLimit = campaign.Duration(3 * time.Hour)
	}
	return s, spec
}

// A held campaign whose schedule ends completes ("the schedule ended"),
// whether or not the engine had asked about the hold: no wave can open
// after the end, so there is nothing left to decide.
func TestLeaningHoldEndsWithTheSchedule(t *testing.T) {
	s, spec := leaningSetup(t, 21, false)
	end := s.clock.Now().Add(36 * time.Hour)
	spec.Schedule.End = &end
	c := s.start(spec)
	asked := false
	s.runUntil(4*24*time.Hour, "the campaign to complete after its schedule's end", func() bool {
		cur := s.campaign(c.ID)
		asked = asked || cur.State == store.CampaignWaitingApproval
		return cur.State == store.CampaignCompleted
	})
	if !asked {
		t.Fatal("the engine never asked about the hold before the schedule's end: the test no longer covers a question left open at the end")
	}
	if cur := s.campaign(c.ID); !strings.Contains(cur.StateReason, "the schedule ended") || cur.Step != 0 {
		t.Fatalf("completed at step %d with reason %q", cur.Step, cur.StateReason)
	}
}

// racer runs an operator's command just before the engine saves the tick
// in which it asks about a hold: the command commits during that tick.
type racer struct {
	store.Store
	op    func(ctx context.Context, id string)
	fired bool
}

func (r *racer) UpdateCampaign(ctx context.Context, tenant, id string, u store.CampaignUpdate) (store.Campaign, error) {
	if !r.fired && u.By.Kind == store.ActorSystem && u.Apply != nil {
		if row, err := r.Store.Campaign(ctx, tenant, id); err == nil {
			before, _ := campaign.RuntimeOf(row)
			cp := row
			cp.Engine = slices.Clone(row.Engine)
			if u.Apply(&cp) == nil {
				if after, _ := campaign.RuntimeOf(cp); before.EscalatedAt == nil && after.EscalatedAt != nil {
					r.fired = true
					r.op(ctx, id)
				}
			}
		}
	}
	return r.Store.UpdateCampaign(ctx, tenant, id, u)
}

// raceAsking starts the leaning campaign with an engine whose store runs
// op during the tick that asks about the hold.
func raceAsking(t *testing.T, op func(s *sim, ctx context.Context, id string), preApprove bool) (*sim, store.Campaign, *racer) {
	t.Helper()
	s, spec := leaningSetup(t, 21, false)
	c := s.start(spec)
	if preApprove {
		if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	rc := &racer{Store: s.st, op: func(ctx context.Context, id string) { op(s, ctx, id) }}
	s.eng = s.newEngineOn("replica-a", rc)
	return s, c, rc
}

// An approval committed while the engine asks about the hold was given
// before the question: it does not open the next wave.
func TestLeaningHoldApprovalDuringTheAskingTick(t *testing.T) {
	s, c, rc := raceAsking(t, func(s *sim, ctx context.Context, id string) {
		if _, err := campaign.Approve(ctx, s.st, store.DefaultTenant, id, admin, s.clock.Now()); err != nil {
			s.t.Fatal(err)
		}
	}, false)
	s.runUntil(2*24*time.Hour, "the operator asked about the hold", func() bool {
		return s.campaign(c.ID).State == store.CampaignWaitingApproval
	})
	if !rc.fired {
		t.Fatal("the approval was not raced with the asking tick")
	}
	for range 12 {
		s.step()
	}
	if cur := s.campaign(c.ID); cur.Step != 0 || cur.State != store.CampaignWaitingApproval || cur.ApprovedStep >= 0 {
		t.Fatalf("after an approval given during the question's tick: %s at step %d, approved step %d", cur.State, cur.Step, cur.ApprovedStep)
	}
}

// A pause committed while the engine asks wins, and the question is not
// asked: an approval given before stays an approval given before, so after
// resume the engine asks again instead of opening the next wave.
func TestLeaningHoldPauseDuringTheAskingTick(t *testing.T) {
	s, c, rc := raceAsking(t, func(s *sim, ctx context.Context, id string) {
		if _, err := campaign.Pause(ctx, s.st, store.DefaultTenant, id, admin, s.clock.Now()); err != nil {
			s.t.Fatal(err)
		}
	}, true)
	s.runUntil(2*24*time.Hour, "the pause", func() bool { return s.campaign(c.ID).State == store.CampaignPaused })
	if !rc.fired {
		t.Fatal("the pause was not raced with the asking tick")
	}
	if rt, _ := campaign.RuntimeOf(s.campaign(c.ID)); rt.EscalatedAt != nil {
		t.Fatalf("the question was recorded as asked (%v) although the pause won", rt.EscalatedAt)
	}
	if _, err := campaign.Resume(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "the question asked again", func() bool {
		cur := s.campaign(c.ID)
		if cur.Step != 0 {
			t.Fatalf("after resume the campaign opened step %d without an approval given after the question", cur.Step)
		}
		return cur.State == store.CampaignWaitingApproval
	})
	if cur := s.campaign(c.ID); cur.ApprovedStep >= 0 {
		t.Fatalf("the approval given before the question still stands (approved step %d)", cur.ApprovedStep)
	}
}

// Time paused before the engine asked does not count toward the hold
// limit, and the time held before the pause still does: held for 2 h of a
// 3 h limit, paused for 10 h, the engine asks about an hour after resume.
func TestLeaningHoldPausedTimeDoesNotCount(t *testing.T) {
	s, spec := leaningSetup(t, 21, true)
	c := s.start(spec)
	s.runUntil(2*24*time.Hour, "the hold to start", func() bool {
		rt, _ := campaign.RuntimeOf(s.campaign(c.ID))
		return rt.HoldSince != nil
	})
	for range 12 { // two hours held
		s.step()
	}
	if st := s.campaign(c.ID).State; st != store.CampaignRunning {
		t.Fatalf("after 2 h of a 3 h hold the campaign is %s", st)
	}
	if _, err := campaign.Pause(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 60 { // ten hours of ten-minute ticks
		s.step()
	}
	resumed := s.clock.Now()
	if _, err := campaign.Resume(s.ctx, s.st, store.DefaultTenant, c.ID, admin, resumed); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "the operator asked about the hold", func() bool {
		return s.campaign(c.ID).State == store.CampaignWaitingApproval
	})
	if waited := s.clock.Now().Sub(resumed); waited < 40*time.Minute || waited > 90*time.Minute {
		t.Fatalf("the engine asked %v after resume, want about an hour (the 3 h limit less the 2 h held before the pause)", waited)
	}
	if d := lastDecision(s, c.ID); !strings.Contains(d.Summary, "The hold has lasted 3 h") {
		t.Fatalf("decision: %s", d.Summary)
	}
}

// approvalEvents counts the campaign.approval_needed deliveries to hook.
func approvalEvents(s *sim, hook store.Webhook) int {
	s.t.Helper()
	ds, _, err := s.st.ListWebhookDeliveries(s.ctx, store.DefaultTenant, hook.ID, store.Page{Limit: 100})
	if err != nil {
		s.t.Fatal(err)
	}
	return len(ds)
}

// Devices that join the open wave after the engine asked make the install
// evidence open again: the campaign runs (their installs are dispatched),
// but the question stays asked, so the operator's answer given meanwhile
// still counts and is not withdrawn, and nothing is asked twice.
func TestLeaningHoldJoinersKeepTheAnswer(t *testing.T) {
	s, c, hook := leaningHold(t, 21, false)
	inner := s.install
	s.install = func(d store.Device, v string, rng *rand.Rand) store.AssignmentState {
		if v == "2.0.0" && d.HWRev == "C" {
			return store.AssignInstalling
		}
		return inner(d, v, rng)
	}
	for range 10 {
		s.device("gw", "C", "")
	}
	s.step()
	s.step()
	if cur := s.campaign(c.ID); cur.State != store.CampaignRunning {
		t.Fatalf("with devices joining the open wave the campaign is %s, want running", cur.State)
	}
	if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	for range 36 { // six hours: past the hold limit
		s.step()
	}
	cur := s.campaign(c.ID)
	if cur.ApprovedStep < 0 {
		t.Fatalf("the operator's answer was withdrawn: %s at step %d, reason %q", cur.State, cur.Step, cur.StateReason)
	}
	if cur.State == store.CampaignWaitingApproval {
		t.Fatalf("the campaign asks again although the operator answered: %q", cur.StateReason)
	}
	if n := approvalEvents(s, hook); n != 1 {
		t.Fatalf("%d approval_needed events, want the one question", n)
	}
}

// stepRacer runs an operator's command just before the engine saves a
// tick that opens the next step.
type stepRacer struct {
	store.Store
	op    func(ctx context.Context, id string)
	fired bool
}

func (r *stepRacer) UpdateCampaign(ctx context.Context, tenant, id string, u store.CampaignUpdate) (store.Campaign, error) {
	if !r.fired && u.By.Kind == store.ActorSystem && u.Apply != nil {
		if row, err := r.Store.Campaign(ctx, tenant, id); err == nil {
			cp := row
			cp.Engine = slices.Clone(row.Engine)
			if u.Apply(&cp) == nil && cp.Step != row.Step {
				r.fired = true
				r.op(ctx, id)
			}
		}
	}
	return r.Store.UpdateCampaign(ctx, tenant, id, u)
}

// A pause that wins over the tick opening the next wave (after the
// operator answered the question) keeps the step's records: after resume
// the answer still counts and the wave opens, without a second question.
func TestLeaningHoldPauseDuringTheAdvancingTick(t *testing.T) {
	s, c, hook := leaningHold(t, 21, false)
	rc := &stepRacer{Store: s.st, op: func(ctx context.Context, id string) {
		if _, err := campaign.Pause(ctx, s.st, store.DefaultTenant, id, admin, s.clock.Now()); err != nil {
			s.t.Fatal(err)
		}
	}}
	s.eng = s.newEngineOn("replica-a", rc)
	if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "the pause", func() bool { return s.campaign(c.ID).State == store.CampaignPaused })
	if !rc.fired {
		t.Fatal("the pause was not raced with the advancing tick")
	}
	cur := s.campaign(c.ID)
	if rt, _ := campaign.RuntimeOf(cur); cur.Step != 0 || rt.EscalatedAt == nil || rt.SoakStartedAt == nil || cur.ApprovedStep != 0 {
		t.Fatalf("after the pause won: step %d, approved step %d, asked %v, soak started %v", cur.Step, cur.ApprovedStep, rt.EscalatedAt, rt.SoakStartedAt)
	}
	if _, err := campaign.Resume(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "the next wave", func() bool {
		if st := s.campaign(c.ID).State; st == store.CampaignWaitingApproval {
			t.Fatalf("asked again after resume: %q", s.campaign(c.ID).StateReason)
		}
		return s.campaign(c.ID).Step == 1
	})
	if n := approvalEvents(s, hook); n != 1 {
		t.Fatalf("%d approval_needed events, want the one question", n)
	}
}
