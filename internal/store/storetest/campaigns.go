package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

func (e *releaseEnv) lease(holder string, now time.Time) store.Lease {
	e.t.Helper()
	l, err := e.s.AcquireLease(e.ctx, "rollout-engine", holder, 24*time.Hour, now)
	if err != nil || !l.Held(holder, now) {
		e.t.Fatalf("acquire lease: %+v %v", l, err)
	}
	return l
}

func (e *releaseEnv) campaign(name, releaseID string) store.Campaign {
	e.t.Helper()
	c, err := e.s.CreateCampaign(e.ctx, store.Campaign{TenantID: store.DefaultTenant, Name: name, Kind: store.CampaignKindRollout,
		ReleaseID: releaseID, Spec: json.RawMessage(`{"name":"` + name + `"}`), ApprovedStep: -1, Seed: 7}, Admin, T0)
	if err != nil {
		e.t.Fatalf("create campaign: %v", err)
	}
	return c
}

func tallyOf(t *testing.T, e *releaseEnv, campaignID string) map[store.CampaignDeviceState]int {
	t.Helper()
	ts, err := e.s.CampaignTallies(e.ctx, store.DefaultTenant, campaignID)
	if err != nil {
		t.Fatal(err)
	}
	out := map[store.CampaignDeviceState]int{}
	for _, tl := range ts {
		out[tl.State] += tl.N
	}
	return out
}

func testCampaigns(t *testing.T, h Harness) {
	t.Run("CreateUpdateDecide", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		rel := e.published("1.2.0", "gw-200", "B")
		draft := e.draft("1.3.0")
		if _, err := e.s.CreateCampaign(e.ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "d", Kind: store.CampaignKindRollout, ReleaseID: draft.ID}, Admin, T0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("campaign of a draft release: %v, want conflict", err)
		}
		c := e.campaign("spring", rel.ID)
		if c.State != store.CampaignDraft || c.Version != "1.2.0" || c.Revision != 1 || c.ApprovedStep != -1 {
			t.Fatalf("created %+v", c)
		}
		got, err := e.s.UpdateCampaign(e.ctx, store.DefaultTenant, c.ID, store.CampaignUpdate{
			By: Admin, Now: T0.Add(time.Minute), Action: "campaign.start",
			Apply:       func(c *store.Campaign) error { c.State, c.Step = store.CampaignRunning, 1; return nil },
			Decision:    &store.CampaignDecision{Step: 1, Verdict: "hold", Action: "hold", Summary: "Hold: soaking.", Detail: json.RawMessage(`{"tests":[]}`)},
			RatePeriods: []store.CampaignRatePeriod{{Hour: T0, Stratum: "hw_rev=B", Metric: "crash", CanaryEvents: 2, CanaryHours: 10, ControlEvents: 5, ControlHours: 100}},
		})
		if err != nil || got.State != store.CampaignRunning || got.Step != 1 || got.Revision != 2 {
			t.Fatalf("update: %+v %v", got, err)
		}
		if _, err := e.s.UpdateCampaign(e.ctx, store.DefaultTenant, c.ID, store.CampaignUpdate{Now: T0,
			Apply: func(c *store.Campaign) error { c.ReleaseID = "other"; return nil }}); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("changing the release: %v, want invalid", err)
		}
		ds, _, err := e.s.ListCampaignDecisions(e.ctx, store.DefaultTenant, c.ID, store.Page{})
		if err != nil || len(ds) != 1 || ds[0].Seq != 1 || ds[0].Summary != "Hold: soaking." {
			t.Fatalf("decisions %+v %v", ds, err)
		}
		ps, err := e.s.CampaignRatePeriods(e.ctx, store.DefaultTenant, c.ID)
		if err != nil || len(ps) != 1 || ps[0].ControlHours != 100 || !ps[0].Hour.Equal(T0) {
			t.Fatalf("rate periods %+v %v", ps, err)
		}
		active, err := e.s.ActiveCampaigns(e.ctx)
		if err != nil || len(active) != 1 || active[0].ID != c.ID {
			t.Fatalf("active campaigns %v %v", active, err)
		}
		list, _, err := e.s.ListCampaigns(e.ctx, store.DefaultTenant, store.CampaignQuery{States: []store.CampaignState{store.CampaignDraft}})
		if err != nil || len(list) != 0 {
			t.Fatalf("draft campaigns %v %v, want none", list, err)
		}
		if got := e.auditActions(c.ID); len(got) != 2 || got[0] != "campaign.create" || got[1] != "campaign.start" {
			t.Fatalf("audit %v", got)
		}
	})

	t.Run("TargetDispatchEndAndFence", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		b1, b2, d1 := e.device("gw-200", "B"), e.device("gw-200", "B"), e.device("gw-200", "D")
		rel := e.published("1.2.0", "gw-200", "B", "C")
		manual, _ := e.assign(b2.ID, rel.ID, T0)
		c := e.campaign("c", rel.ID)
		l := e.lease("a", T0)

		counts, err := e.s.CountTargets(e.ctx, store.DefaultTenant, filter.MustParse(`device_type == "gw-200"`), []string{store.CountByHWRev})
		if err != nil || counts["hw_rev=B"] != 2 || counts["hw_rev=D"] != 1 {
			t.Fatalf("count targets %v %v", counts, err)
		}
		hw, err := e.s.HardwareOf(e.ctx, store.DefaultTenant, nil)
		if err != nil || hw[[2]string{"gw-200", "D"}] != 1 {
			t.Fatalf("hardware %v %v", hw, err)
		}
		cands, err := e.s.CampaignCandidates(e.ctx, store.DefaultTenant, c.ID, filter.MustParse(`hw_rev == "B"`), store.DeviceCursor{}, 10)
		if err != nil || len(cands) != 3 {
			t.Fatalf("candidates %v %v", cands, err)
		}
		matched := 0
		for _, cd := range cands {
			if cd.Matches {
				matched++
			}
		}
		if matched != 2 {
			t.Fatalf("%d candidates match hw_rev == B, want 2", matched)
		}
		var devs []store.CampaignDevice
		for _, d := range []store.Device{b1, b2, d1} {
			devs = append(devs, store.CampaignDevice{DeviceID: d.ID, Stratum: "hw_rev=" + d.HWRev, Step: 0, EligibleAt: T0})
		}
		if n, err := e.s.AddCampaignDevices(e.ctx, l, store.DefaultTenant, c.ID, devs, T0); err != nil || n != 3 {
			t.Fatalf("add: %d %v", n, err)
		}
		if n, err := e.s.AddCampaignDevices(e.ctx, l, store.DefaultTenant, c.ID, devs, T0); err != nil || n != 0 {
			t.Fatalf("add again: %d %v, want none added", n, err)
		}
		queued, qdevs, err := e.s.QueuedCampaignDevices(e.ctx, store.DefaultTenant, c.ID, 0, false, T0, 10)
		if err != nil || len(queued) != 3 || qdevs[0].DeviceType != "gw-200" {
			t.Fatalf("queued %v %v", queued, err)
		}
		var ds []store.CampaignDispatch
		for _, q := range queued {
			ds = append(ds, store.CampaignDispatch{DeviceID: q.DeviceID, ReleaseID: rel.ID})
		}
		// A deposed leader changes nothing.
		stale := l
		stale.Epoch--
		if _, err := e.s.DispatchCampaign(e.ctx, stale, store.DefaultTenant, c.ID, ds, Admin, T0); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("dispatch with a stale lease: %v", err)
		}
		if got := tallyOf(t, e, c.ID); got[store.CDQueued] != 3 {
			t.Fatalf("tallies after a fenced-off dispatch %v", got)
		}
		res, err := e.s.DispatchCampaign(e.ctx, l, store.DefaultTenant, c.ID, ds, Admin, T0.Add(time.Second))
		if err != nil || len(res) != 3 {
			t.Fatalf("dispatch %v %v", res, err)
		}
		byDev := map[string]store.DispatchResult{}
		for _, r := range res {
			byDev[r.DeviceID] = r
		}
		if r := byDev[d1.ID]; r.Assignment != nil || r.Skipped == "" {
			t.Fatalf("rev D dispatch %+v, want skipped for want of an artifact", r)
		}
		if r := byDev[b2.ID]; r.Assignment == nil || r.Superseded == nil || r.Superseded.ID != manual.ID {
			t.Fatalf("dispatch over a manual assignment %+v, want it superseded", r)
		}
		if got := tallyOf(t, e, c.ID); got[store.CDAssigned] != 2 || got[store.CDSkipped] != 1 {
			t.Fatalf("tallies after dispatch %v", got)
		}
		changes, err := e.s.CampaignAssignmentChanges(e.ctx, store.DefaultTenant, c.ID, time.Time{}, "", 10)
		if err != nil || len(changes) != 2 {
			t.Fatalf("changes %v %v", changes, err)
		}
		ended, err := e.s.EndCampaignAssignments(e.ctx, l, store.DefaultTenant, c.ID, []store.CampaignEnd{
			{DeviceID: b1.ID, State: store.AssignTimedOut, DeviceState: store.CDTimedOut, Reason: "no progress"},
		}, Admin, T0.Add(time.Hour))
		if err != nil || len(ended) != 1 || ended[0].State != store.AssignTimedOut {
			t.Fatalf("end %v %v", ended, err)
		}
		if _, err := e.s.ActiveAssignment(e.ctx, store.DefaultTenant, b1.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("active assignment after time-out: %v", err)
		}
		if got := tallyOf(t, e, c.ID); got[store.CDAssigned] != 1 || got[store.CDTimedOut] != 1 {
			t.Fatalf("tallies after time-out %v", got)
		}
		cd, err := e.s.CampaignDevice(e.ctx, store.DefaultTenant, c.ID, b2.ID)
		if err != nil {
			t.Fatal(err)
		}
		cd.State, cd.SoakStartedAt = store.CDSucceeded, &T0
		if err := e.s.UpdateCampaignDevices(e.ctx, l, store.DefaultTenant, c.ID, []store.CampaignDeviceChange{{Device: cd}}, T0.Add(2*time.Hour)); err != nil {
			t.Fatal(err)
		}
		if got := tallyOf(t, e, c.ID); got[store.CDAssigned] != 0 || got[store.CDSucceeded] != 1 {
			t.Fatalf("tallies after success %v", got)
		}
		// Telemetry of the hour after the soak started counts b2 in the canary.
		hour := T0.Add(time.Hour)
		if err := e.s.RecordTelemetry(e.ctx, store.DefaultTenant, b2.ID, []store.MetricPoint{{Name: "crashes", At: hour.Add(time.Minute), Value: 4}}); err != nil {
			t.Fatal(err)
		}
		counts2, exp, err := e.s.CampaignHourCounts(e.ctx, store.DefaultTenant, c.ID, []string{"crashes"}, hour)
		if err != nil || len(counts2) != 1 || counts2[0].Arm != store.ArmCanary || counts2[0].Sum != 4 || len(exp) != 1 || exp[0].Hours != 1 {
			t.Fatalf("hour counts %+v %+v %v", counts2, exp, err)
		}
		sums, err := e.s.TelemetrySums(e.ctx, store.DefaultTenant, "crashes", []string{b2.ID}, T0, T0.Add(3*time.Hour))
		if err != nil || sums[b2.ID] != 4 {
			t.Fatalf("sums %v %v", sums, err)
		}
		devsOut, _, err := e.s.ListCampaignDevices(e.ctx, store.DefaultTenant, c.ID, store.CDSkipped, store.Page{})
		if err != nil || len(devsOut) != 1 || devsOut[0].DeviceID != d1.ID {
			t.Fatalf("skipped devices %v %v", devsOut, err)
		}
	})

	t.Run("Webhooks", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		w, err := e.s.CreateWebhook(e.ctx, store.Webhook{TenantID: store.DefaultTenant, URL: "https://hooks.example.com/x", Secret: "sixteen bytes!!!", Events: []string{"campaign.halted"}}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.CreateWebhook(e.ctx, store.Webhook{TenantID: store.DefaultTenant, URL: "ftp://x", Secret: "sixteen bytes!!!", Events: []string{"x"}}, Admin, T0); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("ftp webhook: %v", err)
		}
		if err := e.s.EnqueueWebhookEvents(e.ctx, store.DefaultTenant, []store.WebhookEvent{
			{Event: "campaign.halted", Payload: json.RawMessage(`{"a":1}`)}, {Event: "campaign.finished", Payload: json.RawMessage(`{}`)},
		}, T0); err != nil {
			t.Fatal(err)
		}
		due, hooks, err := e.s.DueWebhookDeliveries(e.ctx, T0, 10)
		if err != nil || len(due) != 1 || hooks[0].Secret != "sixteen bytes!!!" {
			t.Fatalf("due %v %v", due, err)
		}
		if err := e.s.RecordDeliveryAttempt(e.ctx, store.DeliveryAttempt{TenantID: store.DefaultTenant, ID: due[0].ID, Status: 503, Error: "busy", NextAt: T0.Add(time.Minute), Now: T0}); err != nil {
			t.Fatal(err)
		}
		if due, _, _ := e.s.DueWebhookDeliveries(e.ctx, T0.Add(30*time.Second), 10); len(due) != 0 {
			t.Fatalf("due before the retry time: %v", due)
		}
		if err := e.s.RecordDeliveryAttempt(e.ctx, store.DeliveryAttempt{TenantID: store.DefaultTenant, ID: due0(t, e), Status: 200, Done: true, Now: T0.Add(time.Minute)}); err != nil {
			t.Fatal(err)
		}
		list, _, err := e.s.ListWebhookDeliveries(e.ctx, store.DefaultTenant, w.ID, store.Page{})
		if err != nil || len(list) != 1 || list[0].State != store.DeliveryDelivered || list[0].Attempts != 2 {
			t.Fatalf("deliveries %+v %v", list, err)
		}
		if err := e.s.DeleteWebhook(e.ctx, store.DefaultTenant, w.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, _, err := e.s.ListWebhookDeliveries(e.ctx, store.DefaultTenant, w.ID, store.Page{}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("deliveries of a deleted webhook: %v", err)
		}
	})
}

// due0 returns the id of the one delivery due a minute after T0.
func due0(t *testing.T, e *releaseEnv) string {
	t.Helper()
	due, _, err := e.s.DueWebhookDeliveries(e.ctx, T0.Add(time.Minute), 10)
	if err != nil || len(due) != 1 {
		t.Fatalf("due after the retry time: %v %v", due, err)
	}
	return due[0].ID
}
