package rollout

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// target draws the initial targets once, then follows device changes:
// devices that enroll or change and now match join, queued devices that no
// longer match are excluded (and come back if they match again).
func (r *run) target(ctx context.Context) error {
	if !r.rollout() || r.c.StartedAt == nil {
		return nil
	}
	switch r.cur() {
	case store.CampaignRunning, store.CampaignWaitingApproval, store.CampaignPaused:
	default:
		return nil
	}
	if !r.rt.Targeted {
		return r.initialTargets(ctx)
	}
	after := r.rt.DeviceCursor
	if r.e.cfg.Lag > 0 && !after.UpdatedAt.IsZero() {
		after = store.DeviceCursor{UpdatedAt: after.UpdatedAt.Add(-r.e.cfg.Lag)}
	}
	for page := 0; page < 20; page++ {
		cands, err := r.e.st.CampaignCandidates(ctx, r.c.TenantID, r.c.ID, r.sel, after, r.e.cfg.Batch)
		if err != nil {
			return err
		}
		var add []store.CampaignDevice
		var changes []store.CampaignDeviceChange
		for _, cand := range cands {
			switch {
			case cand.In == "" && cand.Matches:
				add = append(add, r.lateJoiner(cand.Device))
			case cand.In == store.CDQueued && !cand.Matches, cand.In == store.CDExcluded && cand.Matches:
				cd, err := r.e.st.CampaignDevice(ctx, r.c.TenantID, r.c.ID, cand.ID)
				if err != nil {
					return err
				}
				if cand.Matches {
					cd.State, cd.Reason, cd.EligibleAt = store.CDQueued, "", r.now
				} else {
					cd.State, cd.Reason = store.CDExcluded, "no longer matches the selector"
				}
				changes = append(changes, store.CampaignDeviceChange{Device: cd})
			}
			if cursorAfter(cand.Device, r.rt.DeviceCursor) {
				r.rt.DeviceCursor = store.DeviceCursor{UpdatedAt: cand.UpdatedAt, ID: cand.ID}
			}
		}
		if len(add) > 0 {
			if _, err := r.e.st.AddCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, add, r.now); err != nil {
				return err
			}
		}
		if len(changes) > 0 {
			if err := r.e.st.UpdateCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, changes, r.now); err != nil {
				return err
			}
		}
		if len(cands) < r.e.cfg.Batch {
			return nil
		}
		last := cands[len(cands)-1]
		after = store.DeviceCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
	}
	return nil
}

func cursorAfter(d store.Device, c store.DeviceCursor) bool {
	return d.UpdatedAt.After(c.UpdatedAt) || d.UpdatedAt.Equal(c.UpdatedAt) && d.ID > c.ID
}

// candidates pages through every device matching f, from the start.
func (r *run) candidates(ctx context.Context, f *filter.Expr, fn func(store.CampaignCandidate)) error {
	var after store.DeviceCursor
	for {
		cands, err := r.e.st.CampaignCandidates(ctx, r.c.TenantID, r.c.ID, f, after, r.e.cfg.Batch)
		if err != nil {
			return err
		}
		for _, c := range cands {
			fn(c)
		}
		if len(cands) < r.e.cfg.Batch {
			return nil
		}
		last := cands[len(cands)-1]
		after = store.DeviceCursor{UpdatedAt: last.UpdatedAt, ID: last.ID}
	}
}

// initialTargets draws the targets at the campaign's start: staging
// devices by their waves' selectors, the rest at random within strata into
// the control group and the production waves (health.DrawWaves, seeded by
// the campaign's seed so the draw is reproducible).
func (r *run) initialTargets(ctx context.Context) error {
	devices := map[string]store.Device{}
	var order []string
	cursor := r.rt.DeviceCursor
	if err := r.candidates(ctx, r.sel, func(c store.CampaignCandidate) {
		if c.Matches && c.In == "" {
			devices[c.ID] = c.Device
			order = append(order, c.ID)
		}
		if cursorAfter(c.Device, cursor) {
			cursor = store.DeviceCursor{UpdatedAt: c.UpdatedAt, ID: c.ID}
		}
	}); err != nil {
		return err
	}
	staged := map[string]int{}
	for i := 0; i < r.plan.Staging; i++ {
		f, err := filter.Parse(r.plan.Steps[i].Selector)
		if err != nil {
			return err
		}
		if err := r.candidates(ctx, f, func(c store.CampaignCandidate) {
			if _, ok := devices[c.ID]; ok && c.Matches {
				if _, done := staged[c.ID]; !done {
					staged[c.ID] = i
				}
			}
		}); err != nil {
			return err
		}
	}
	var targets []health.Target
	for _, id := range order {
		if _, ok := staged[id]; !ok {
			targets = append(targets, health.Target{ID: id, Stratum: campaign.StratumOf(r.spec.Strata, devices[id])})
		}
	}
	var sizes []health.WaveSize
	for _, s := range r.plan.Steps[r.plan.Staging:] {
		sizes = append(sizes, health.WaveSize{Fraction: math.Min(1, math.Max(s.Fraction, 1e-9))})
	}
	rng := rand.New(rand.NewPCG(uint64(r.c.Seed), 0x5eed))
	draw, err := health.DrawWaves(targets, sizes, r.plan.ControlFraction, rng)
	if err != nil {
		return err
	}
	var add []store.CampaignDevice
	mk := func(id string, step int) store.CampaignDevice {
		d := devices[id]
		return store.CampaignDevice{DeviceID: id, Stratum: campaign.StratumOf(r.spec.Strata, d), Step: step,
			Silent: d.Protocol != store.ProtocolNative, State: store.CDQueued, EligibleAt: r.startAt()}
	}
	for id, step := range staged {
		add = append(add, mk(id, step))
	}
	for i, wave := range draw.Waves {
		for _, id := range wave {
			add = append(add, mk(id, r.plan.Staging+i))
		}
	}
	for _, id := range draw.Rest {
		add = append(add, mk(id, len(r.plan.Steps)-1))
	}
	for _, id := range draw.Control {
		add = append(add, mk(id, store.ControlStep))
	}
	for start := 0; start < len(add); start += r.e.cfg.Batch {
		end := min(start+r.e.cfg.Batch, len(add))
		if _, err := r.e.st.AddCampaignDevices(ctx, r.l, r.c.TenantID, r.c.ID, add[start:end], r.now); err != nil {
			return err
		}
	}
	r.rt.Targeted, r.rt.DeviceCursor, r.rt.StepStartedAt = true, cursor, r.now
	if r.rt.RateHour.IsZero() {
		r.rt.RateHour = r.now.Truncate(time.Hour)
	}
	return nil
}

// startAt is when devices first become eligible: the schedule's start.
func (r *run) startAt() time.Time {
	if s := r.spec.Schedule.Start; s != nil && s.After(r.now) {
		return *s
	}
	return r.now
}

// lateJoiner places a device that came to match after the start: into
// the control group with the control's probability (by a hash of the
// campaign seed and the device, so the choice is stable), otherwise into
// the current production wave.
func (r *run) lateJoiner(d store.Device) store.CampaignDevice {
	cd := store.CampaignDevice{DeviceID: d.ID, Stratum: campaign.StratumOf(r.spec.Strata, d), Silent: d.Protocol != store.ProtocolNative,
		State: store.CDQueued, EligibleAt: r.startAt()}
	switch {
	case rank(r.c.Seed, d.ID) < r.plan.ControlFraction && r.c.Step < r.plan.ControlPhase():
		cd.Step = store.ControlStep
	case r.c.Step < r.plan.Staging:
		cd.Step = r.plan.Staging
	default:
		cd.Step = min(r.c.Step, len(r.plan.Steps)-1)
	}
	return cd
}

// rank maps (seed, device) to a uniform number in [0, 1).
func rank(seed int64, id string) float64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(seed))
	h := sha256.Sum256(append(b[:], id...))
	return float64(binary.BigEndian.Uint64(h[:8])>>11) / (1 << 53)
}
