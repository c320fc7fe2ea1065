package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
)

// run plays the scenario; the caller stops the fleet and the server.
func (d *demo) run(ctx context.Context) error {
	if err := d.setupAdmin(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "Dashboard: %s  (user %s, password %s — set by the demo, no change needed at sign-in)\n\n",
		d.res.Dashboard, d.res.AdminUser, d.res.AdminPassword)
	if err := d.setupKeys(ctx); err != nil {
		return err
	}
	if err := d.release(ctx, FactoryVersion, 1, "the factory image every device runs"); err != nil {
		return err
	}
	if err := d.release(ctx, BadVersion, 2, "new modem stack"); err != nil {
		return err
	}
	reg := d.o.Regression
	fmt.Fprintf(d.w, "  (hidden from the server: on revision %s, %s)\n\n", strings.Join(reg.HWRevs, ","), describe(*reg))
	if err := d.startFleet(ctx); err != nil {
		return err
	}
	fmt.Fprintf(d.w, "Fleet: %d simulated devices, each the real agent in signed mode (TUF root shipped in its image), keys preauthorized.\n", d.o.Devices)
	if err := d.until(ctx, "enrollment", func() (bool, string) {
		n, err := d.st.CountDevicesBy(ctx, store.DefaultTenant, nil, store.CountByVersion)
		if err != nil {
			return false, err.Error()
		}
		s := d.fleet.Stats()
		return n[FactoryVersion] == d.o.Devices, fmt.Sprintf("enrolled %d of %d, checked in %d", s.Enrolled, d.o.Devices, n[FactoryVersion])
	}); err != nil {
		return err
	}
	revs, err := d.st.CountDevicesBy(ctx, store.DefaultTenant, nil, store.CountByHWRev)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.w, "All %d devices enrolled and report %s (%s).\n\n", d.o.Devices, FactoryVersion, fmtCounts(revs, "rev "))

	bad, err := d.campaign(ctx, BadVersion, &d.res.Bad, func(c store.Campaign, rt campaign.Runtime) bool {
		if c.State.Terminal() {
			return true
		}
		if len(rt.HaltedStrata) == 0 || len(rt.RollbackPending) > 0 {
			return false
		}
		for _, id := range rt.Rollbacks {
			rb, err := d.st.Campaign(ctx, store.DefaultTenant, id)
			if err != nil || rb.State != store.CampaignCompleted {
				return false
			}
		}
		return d.fleetSettled()
	})
	if err != nil {
		return err
	}
	d.res.BadRevision = strings.Join(reg.HWRevs, ",")
	d.res.BadRevVersions = d.versions(func(rev string) bool { return contains(reg.HWRevs, rev) })
	if bad.State == store.CampaignRunning || bad.State == store.CampaignWaitingApproval || bad.State == store.CampaignPaused {
		fmt.Fprintf(d.w, "\nOperator: 2.0.1 fixes revision %s, so the rest of the %s campaign is aborted rather than finished.\n", d.res.BadRevision, BadVersion)
		if _, err := campaign.Abort(ctx, d.st, store.DefaultTenant, bad.ID, GoodVersion+" replaces "+BadVersion, d.admin, d.clock.Now()); err != nil {
			return fmt.Errorf("demo: abort the %s campaign: %w", BadVersion, err)
		}
		if c, err := d.st.Campaign(ctx, store.DefaultTenant, bad.ID); err == nil {
			d.res.Bad.State = string(c.State)
		}
	}
	fmt.Fprintln(d.w)

	if err := d.release(ctx, GoodVersion, 2, "the fix"); err != nil {
		return err
	}
	fmt.Fprintln(d.w)
	_, err = d.campaign(ctx, GoodVersion, &d.res.Good, func(c store.Campaign, _ campaign.Runtime) bool {
		if c.State == store.CampaignHalted {
			return true
		}
		return c.State == store.CampaignCompleted && d.fleetSettled()
	})
	if err != nil {
		return err
	}
	d.res.FinalVersions = d.versions(nil)
	d.res.Good.Updated = d.res.FinalVersions[GoodVersion]
	return nil
}

// describe says what a release behaviour does.
func describe(b sim.Behaviour) string {
	var parts []string
	if b.CrashMultiplier > 0 && b.CrashMultiplier != 1 {
		parts = append(parts, fmt.Sprintf("it crashes %g× as often", b.CrashMultiplier))
	}
	if b.InstallFailRate > 0 {
		parts = append(parts, fmt.Sprintf("%g%% fail their post-install self-test", 100*b.InstallFailRate))
	}
	if b.BootFailRate > 0 {
		parts = append(parts, fmt.Sprintf("%g%% never boot the new image", 100*b.BootFailRate))
	}
	if len(parts) == 0 {
		return "it behaves like the factory image"
	}
	return strings.Join(parts, ", ")
}

// campaign creates and starts a campaign of version over the whole fleet
// with the default, power-based plan and health policy, rolling back on a
// halt, and narrates it until done says so.
func (d *demo) campaign(ctx context.Context, version string, out *CampaignResult, done func(store.Campaign, campaign.Runtime) bool) (store.Campaign, error) {
	spec := campaign.Spec{
		Name: version + " to the fleet", Release: version,
		OnFailure:     campaign.Failure{Action: campaign.FailRollback},
		Seed:          int64(d.o.Seed),
		Health:        campaign.Health{MinSoak: campaign.Duration(d.o.MinSoak)},
		DeviceTimeout: campaign.Duration(d.o.DeviceTimeout),
	}
	c, pv, err := campaign.Create(ctx, d.st, store.DefaultTenant, spec, d.admin, d.clock.Now())
	if err != nil {
		return c, fmt.Errorf("demo: create the %s campaign: %w", version, err)
	}
	fmt.Fprintf(d.w, "Campaign %q (%s): %s.\n", spec.Name, c.ID, pv.Summary())
	plan := pv.Plan
	pol, _ := spec.WithDefaults().Health.Policy()
	fmt.Fprintf(d.w, "  plan (power calculation, %s health policy): control group %d%%, install baseline %.1f%%", "standard", int(math.Round(100*plan.ControlFraction)), 100*plan.Baseline)
	if plan.BaselineVersion != "" {
		fmt.Fprintf(d.w, " (from %s: %d failures of %d)", plan.BaselineVersion, plan.BaselineFailures, plan.BaselineDevices)
	}
	fmt.Fprintln(d.w)
	for i, s := range plan.Steps {
		det := "no install-failure regression detectable yet"
		if s.Detectable != nil {
			det = fmt.Sprintf("detects a %.1f× install-failure regression", *s.Detectable)
		}
		fmt.Fprintf(d.w, "  wave %d: %d devices cumulative, %s\n", i+1-plan.Staging, s.Planned, det)
		out.Planned = append(out.Planned, s.Planned)
	}
	fmt.Fprintf(d.w, "  each wave soaks %s; the gates test installs, crash and reboot rates per hardware revision against the control (α = %g)\n",
		pol.MinSoak, pol.Alpha)
	if plan.Note != "" {
		fmt.Fprintf(d.w, "  note: %s\n", plan.Note)
	}
	if c, err = campaign.Start(ctx, d.st, store.DefaultTenant, c.ID, d.admin, d.clock.Now()); err != nil {
		return c, fmt.Errorf("demo: start the %s campaign: %w", version, err)
	}
	out.ID, out.Version, out.Waves = c.ID, version, plan.Production()
	started := d.clock.Now()
	w := &watcher{d: d, id: c.ID}
	err = d.until(ctx, version+" campaign", func() (bool, string) {
		c, rt, line, err := w.poll(ctx)
		if err != nil {
			return false, err.Error()
		}
		return done(c, rt), line
	})
	c, rt, _, perr := w.poll(ctx)
	out.State, out.Step, out.HaltedStrata = string(c.State), c.Step, rt.HaltedStrata
	out.Simulated = d.clock.Now().Sub(started)
	if err != nil {
		if ctx.Err() == nil {
			// Say why devices failed, to diagnose the phase.
			if oerr := d.outcome(ctx, c, rt, out); oerr == nil {
				err = fmt.Errorf("%w; failures %v; last agent error: %s", err, out.Failures, d.fleet.Stats().LastError)
			}
		}
		return c, err
	}
	if perr != nil {
		return c, perr
	}
	return c, d.outcome(ctx, c, rt, out)
}

// outcome fills a campaign's result from what the engine stored.
func (d *demo) outcome(ctx context.Context, c store.Campaign, rt campaign.Runtime, out *CampaignResult) error {
	tallies, err := d.st.CampaignTallies(ctx, store.DefaultTenant, c.ID)
	if err != nil {
		return err
	}
	for _, t := range tallies {
		installed := 0
		switch t.State {
		case store.CDSucceeded:
			installed = t.N
			out.Updated += t.N
		case store.CDRolledBack:
			installed = t.N
			out.SelfRolledBack += t.N
		case store.CDFailed, store.CDTimedOut:
			installed = t.N
		}
		out.Exposed += installed
		if contains(rt.HaltedStrata, t.Stratum) || contains(rt.HaltedStrata, "*") {
			out.ExposedHalted += installed
		}
	}
	out.Failures = map[string]int{}
	for _, state := range []store.CampaignDeviceState{store.CDFailed, store.CDRolledBack, store.CDTimedOut} {
		cds, _, err := d.st.ListCampaignDevices(ctx, store.DefaultTenant, c.ID, state, store.Page{Limit: 1000})
		if err != nil {
			return err
		}
		for _, cd := range cds {
			out.Failures[string(state)+": "+cd.Reason]++
		}
	}
	for _, id := range rt.Rollbacks {
		ts, err := d.st.CampaignTallies(ctx, store.DefaultTenant, id)
		if err != nil {
			return err
		}
		for _, t := range ts {
			if t.State == store.CDSucceeded {
				out.RolledBack += t.N
			}
		}
	}
	ds, err := d.decisions(ctx, c.ID, 0)
	if err != nil {
		return err
	}
	for _, dec := range ds {
		if dec.Verdict != string(health.Halt) || out.Halt != "" {
			continue
		}
		out.Halt = dec.Summary
		out.Step = dec.Step
		out.HaltTests = rejected(dec)
	}
	return nil
}

// decisions lists a campaign's decisions after seq, oldest first.
func (d *demo) decisions(ctx context.Context, id string, after int64) ([]store.CampaignDecision, error) {
	var all []store.CampaignDecision
	p := store.Page{Limit: 500}
	for {
		ds, next, err := d.st.ListCampaignDecisions(ctx, store.DefaultTenant, id, p)
		if err != nil {
			return nil, err
		}
		for _, dec := range ds {
			if dec.Seq > after {
				all = append(all, dec)
			}
		}
		if next == "" {
			break
		}
		p.After = next
	}
	sort.Slice(all, func(i, j int) bool { return all[i].Seq < all[j].Seq })
	return all, nil
}

// rejected returns the tests of a decision that rejected.
func rejected(dec store.CampaignDecision) []TestLine {
	var detail struct {
		Tests []health.TestResult `json:"tests"`
	}
	if json.Unmarshal(dec.Detail, &detail) != nil {
		return nil
	}
	var out []TestLine
	for _, t := range detail.Tests {
		if t.Outcome != health.Rejected {
			continue
		}
		out = append(out, TestLine{Group: t.Label, Metric: t.Metric, Statistic: t.Statistic, Threshold: t.Threshold, Explanation: t.Explanation})
	}
	return out
}

// until polls cond every few hundred real milliseconds until it holds,
// ctx ends or the phase's simulated time budget runs out. It prints cond's
// progress line when it changed (at most every Options.Progress of real
// time), and otherwise every six simulated hours.
func (d *demo) until(ctx context.Context, what string, cond func() (bool, string)) error {
	start := d.clock.Now()
	real := clock.Real{}
	lastReal, lastSim, last := real.Now(), d.clock.Now(), ""
	for {
		ok, line := cond()
		if ok {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if d.clock.Now().Sub(start) > d.o.Timeout {
			return fmt.Errorf("demo: %s did not finish within %s of simulated time (%s)", what, fmtSim(d.o.Timeout), line)
		}
		changed := soakClause.ReplaceAllString(line, "") != soakClause.ReplaceAllString(last, "")
		if (changed && real.Now().Sub(lastReal) >= d.o.Progress) || d.clock.Now().Sub(lastSim) >= 6*time.Hour {
			lastReal, lastSim, last = real.Now(), d.clock.Now(), line
			fmt.Fprintf(d.w, "  [%s] %s\n", d.stamp(), line)
		}
		t := real.NewTimer(250 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C():
		}
	}
}

// soakClause is the part of a progress line that changes with time alone.
var soakClause = regexp.MustCompile(` \(soaked [^)]*\)`)

// stamp is the simulated time since the demo started.
func (d *demo) stamp() string {
	return "sim +" + fmtSim(d.clock.Now().Sub(d.clock.Start()))
}

// versions counts the fleet's devices by running version, for the
// revisions keep accepts (nil: all).
func (d *demo) versions(keep func(rev string) bool) map[string]int {
	out := map[string]int{}
	for _, dev := range d.fleet.Devices() {
		if keep == nil || keep(dev.Identity.HWRev) {
			v := dev.Status.Version
			if v == "" {
				v = "mid-update"
			}
			out[v]++
		}
	}
	return out
}

// fleetSettled reports whether every device is idle with its reports sent.
func (d *demo) fleetSettled() bool {
	for _, dev := range d.fleet.Devices() {
		if dev.Status.Phase != agent.PhaseIdle || dev.Status.Outbox != 0 {
			return false
		}
	}
	return true
}

func contains(xs []string, x string) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// fmtCounts writes "rev A 498, rev B 301, …" in key order.
func fmtCounts(m map[string]int, prefix string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s%s %d", prefix, k, m[k])
	}
	return strings.Join(parts, ", ")
}
