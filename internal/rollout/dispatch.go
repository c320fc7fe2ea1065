package rollout

import (
	"context"
	"math"
	"time"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

// dispatch hands the release to queued devices of the open step, within
// the rate limit (with its ramp), the in-flight cap, the schedule and each
// device's maintenance windows. Devices outside their window are parked
// until it opens (eligible_at), so a tick never rescans them.
func (r *run) dispatch(ctx context.Context) error {
	if r.cur() != store.CampaignRunning || !r.rt.Targeted && r.rollout() {
		return nil
	}
	if s := r.spec.Schedule.Start; s != nil && r.now.Before(*s) {
		return nil
	}
	if e := r.spec.Schedule.End; e != nil && !r.now.Before(*e) {
		return nil
	}
	maxStep, control := r.step, false
	if r.step >= r.plan.ControlPhase() {
		maxStep, control = len(r.plan.Steps)-1, true
	}
	budget := r.e.cfg.Batch
	if rate := r.rate(); rate > 0 {
		r.refill(rate)
		budget = min(budget, int(math.Floor(r.rt.Tokens)))
	}
	if r.spec.Pacing.MaxInFlight > 0 {
		tallies, err := r.loadTallies(ctx)
		if err != nil {
			return err
		}
		inFlight := 0
		for _, t := range tallies {
			if t.State == store.CDAssigned {
				inFlight += t.N
			}
		}
		budget = min(budget, r.spec.Pacing.MaxInFlight-inFlight)
	}
	if budget <= 0 {
		return nil
	}
	// Devices parked until their window opens are eligible at once when
	// the deadline has forced the campaign.
	cutoff := r.now
	if r.forced() {
		cutoff = r.now.Add(100 * 365 * 24 * time.Hour)
	}
	queued, devs, err := r.e.st.QueuedCampaignDevices(ctx, r.c.TenantID, r.c.ID, maxStep, control, cutoff, budget)
	if err != nil {
		return err
	}
	var ds []store.CampaignDispatch
	var park []store.CampaignDeviceChange
	due := r.now.Add(r.spec.DeviceTimeout.D())
	windows := r.spec.Schedule.Windows
	if r.forced() {
		windows = nil
	}
	for i, cd := range queued {
		if r.halted(cd.Stratum) {
			cd.State, cd.Reason = store.CDExcluded, "its stratum was halted"
			park = append(park, store.CampaignDeviceChange{Device: cd})
			continue
		}
		if in, _ := insideWindow(r.now, devs[i].TimeZone, windows); !in {
			cd.EligibleAt = nextWindowOpen(r.now, devs[i].TimeZone, windows)
			park = append(park, store.CampaignDeviceChange{Device: cd})
			continue
		}
		release := cd.ReleaseID
		if release == "" {
			release = r.c.ReleaseID
		}
		ds = append(ds, store.CampaignDispatch{DeviceID: cd.DeviceID, ReleaseID: release, AllowBad: r.spec.AllowBad, DueAt: &due})
	}
	if len(park) > 0 {
		if err := r.e.st.UpdateCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, park, r.now); err != nil {
			return err
		}
	}
	if len(ds) == 0 {
		return nil
	}
	res, err := r.e.st.DispatchCampaign(ctx, r.l, r.c.TenantID, r.c.ID, ds, actor, r.now)
	if err != nil {
		return err
	}
	for _, d := range res {
		if d.Assignment != nil {
			r.notifyDevices = append(r.notifyDevices, d.DeviceID)
		}
	}
	if r.rate() > 0 {
		r.rt.Tokens -= float64(len(ds))
	}
	r.tallies = nil
	return nil
}

// rate is the current dispatch rate in devices per minute (0: unlimited),
// with the exponential ramp applied since the campaign started.
func (r *run) rate() float64 {
	p := r.spec.Pacing
	if p.PerMinute <= 0 {
		return 0
	}
	rate := p.PerMinute
	if p.RampFactor > 1 && p.RampEvery > 0 && r.c.StartedAt != nil {
		n := math.Floor(r.now.Sub(*r.c.StartedAt).Minutes() / p.RampEvery.D().Minutes())
		rate *= math.Pow(p.RampFactor, math.Min(n, 64))
	}
	return rate
}

// refill adds the tokens earned since the last tick; the bucket holds at
// most one tick interval's worth (at least a minute's, and one device).
func (r *run) refill(rate float64) {
	burst := math.Max(rate*math.Max(1, r.e.cfg.Interval.Minutes()), 1)
	if r.rt.TokensAt.IsZero() {
		r.rt.Tokens, r.rt.TokensAt = math.Min(burst, math.Max(1, rate/60*r.e.cfg.Interval.Seconds())), r.now
		return
	}
	elapsed := r.now.Sub(r.rt.TokensAt).Minutes()
	if elapsed > 0 {
		r.rt.Tokens = math.Min(burst, r.rt.Tokens+rate*elapsed)
		r.rt.TokensAt = r.now
	}
}

func (r *run) loadTallies(ctx context.Context) ([]store.CampaignTally, error) {
	if r.tallies != nil {
		return r.tallies, nil
	}
	t, err := r.e.st.CampaignTallies(ctx, r.c.TenantID, r.c.ID)
	if err != nil {
		return nil, err
	}
	if t == nil {
		t = []store.CampaignTally{}
	}
	r.tallies = t
	return t, nil
}

// location returns the device's time zone, UTC when unknown.
func location(tz string) *time.Location {
	if tz == "" {
		return time.UTC
	}
	loc, err := time.LoadLocation(tz)
	if err != nil {
		return time.UTC
	}
	return loc
}

// insideWindow applies the device's own rule (agent/gate.Inside) in its zone.
func insideWindow(now time.Time, tz string, ws []tufmeta.Window) (bool, error) {
	return gate.Inside(now, location(tz), ws)
}

// nextWindowOpen returns when the device's next maintenance window opens
// after now (now itself when there are no windows).
func nextWindowOpen(now time.Time, tz string, ws []tufmeta.Window) time.Time {
	if len(ws) == 0 {
		return now
	}
	loc := location(tz)
	local := now.In(loc)
	best := time.Time{}
	for _, w := range ws {
		var hh, mm int
		if len(w.Start) != 5 {
			continue
		}
		hh = int(w.Start[0]-'0')*10 + int(w.Start[1]-'0')
		mm = int(w.Start[3]-'0')*10 + int(w.Start[4]-'0')
		for i := 0; i <= 8; i++ {
			day := time.Date(local.Year(), local.Month(), local.Day()+i, hh, mm, 0, 0, loc)
			if len(w.Days) > 0 && !containsDay(w.Days, day.Weekday()) {
				continue
			}
			if day.After(now) && (best.IsZero() || day.Before(best)) {
				best = day
			}
		}
	}
	if best.IsZero() {
		return now.Add(24 * time.Hour)
	}
	return best
}

func containsDay(days []time.Weekday, d time.Weekday) bool {
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}
