package preflight

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// Reader is the part of the store Gather reads; it never writes.
type Reader interface {
	ListDevices(ctx context.Context, tenant string, q store.DeviceQuery) ([]store.Device, string, error)
	ListCampaigns(ctx context.Context, tenant string, q store.CampaignQuery) ([]store.Campaign, string, error)
	Release(ctx context.Context, tenant, id string) (store.Release, error)
	CampaignTallies(ctx context.Context, tenant, campaignID string) ([]store.CampaignTally, error)
	CampaignAssignmentChanges(ctx context.Context, tenant, campaignID string, since time.Time, afterID string, limit int) ([]store.AssignmentChange, error)
	TelemetrySums(ctx context.Context, tenant, metric string, deviceIDs []string, from, to time.Time) (map[string]float64, error)
}

// Gathering limits: how much of the registry and history a twin reads.
const (
	// SampleDevices is how many targeted devices (in enrollment order)
	// give the time zones, protocols and last-seen times; strata larger
	// than their share of the sample are scaled up.
	SampleDevices = 20_000
	// TelemetryDevices of the sample give the baseline event rates.
	TelemetryDevices = 5_000
	// TelemetryWindow is how far back the event rates look.
	TelemetryWindow = 7 * 24 * time.Hour
	// HistoryCampaigns is how many recent campaigns give install outcomes,
	// time-outs and report delays.
	HistoryCampaigns = 10
	// HistoryDelays is the most report delays read.
	HistoryDelays = 2_000
	// minOutcomes is the fewest outcomes a stratum's history needs to be
	// used on its own (else the pooled history is).
	minOutcomes = 50
	// minEvents is the fewest events a stratum's rate needs to be used on
	// its own (else the pooled rate is).
	minEvents = 10
)

// Gather builds the twin of the fleet a campaign targets from the
// registry and recent history, falling back to documented defaults (and
// saying so in Fleet.Notes) where there is none:
//
//   - strata: the preview's counts (campaign.Check);
//   - time zones, protocols (telemetry or not) and reachability: a sample
//     of the targeted devices;
//   - install-failure, rollback and time-out rates: the outcomes of recent
//     campaigns of releases not marked bad (per stratum when it has
//     enough, else pooled), else the previous release's outcomes, else the
//     baseline SLO; devices not seen (or enrolled) within the device
//     timeout count as time-outs when history has none;
//   - event rates per rate test: the sampled devices' telemetry over the
//     last week, else DefaultCrashRate, DefaultRebootRate or
//     DefaultOtherRate;
//   - report delays: dispatch-to-outcome times of recent campaigns'
//     assignments, else uniform between DefaultDelayMin and
//     DefaultDelayMax.
func Gather(ctx context.Context, st Reader, tenant string, spec campaign.Spec, pv campaign.Preview, now time.Time) (Fleet, error) {
	spec = spec.WithDefaults()
	f := Fleet{Sources: map[string]string{}, Notes: []string{}}
	if len(pv.Strata) == 0 {
		return f, errors.New("preflight: the campaign targets no device")
	}
	keys := make([]string, 0, len(pv.Strata))
	for k := range pv.Strata {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	index := map[string]int{}
	for i, k := range keys {
		index[k] = i
		f.Strata = append(f.Strata, Stratum{Key: k, Devices: pv.Strata[k], Rates: map[string]float64{}})
	}
	sel, err := spec.SelectorExpr()
	if err != nil {
		return f, err
	}

	// The registry: a sample of the targets.
	type sampled struct {
		zones               map[string]int
		native, unreachable int
		n                   int
	}
	samples := make([]sampled, len(keys))
	for i := range samples {
		samples[i].zones = map[string]int{}
	}
	var telemetryIDs []string
	var created []time.Time
	var telemetryStratum []int
	after, total := "", 0
	for total < SampleDevices {
		devs, next, err := st.ListDevices(ctx, tenant, store.DeviceQuery{Filter: sel, State: store.DeviceAccepted, Page: store.Page{Limit: store.MaxPageLimit, After: after}})
		if err != nil {
			return f, fmt.Errorf("preflight: sample devices: %w", err)
		}
		for _, d := range devs {
			i, ok := index[campaign.StratumOf(spec.Strata, d)]
			if !ok {
				continue
			}
			s := &samples[i]
			s.n++
			s.zones[d.TimeZone]++
			if d.Protocol == store.ProtocolNative || d.Protocol == "" {
				s.native++
				if len(telemetryIDs) < TelemetryDevices {
					telemetryIDs = append(telemetryIDs, d.ID)
					created = append(created, d.CreatedAt)
					telemetryStratum = append(telemetryStratum, i)
				}
			}
			// Enrolling is a contact too: a device never seen since
			// counts from its enrollment.
			last := d.CreatedAt
			if d.LastSeenAt != nil && d.LastSeenAt.After(last) {
				last = *d.LastSeenAt
			}
			if now.Sub(last) > spec.DeviceTimeout.D() {
				s.unreachable++
			}
			total++
		}
		if next == "" || len(devs) == 0 {
			break
		}
		after = next
	}
	pooledZones := map[string]int{}
	for _, s := range samples {
		for z, n := range s.zones {
			pooledZones[z] += n
		}
	}
	for i := range f.Strata {
		st := &f.Strata[i]
		zones := samples[i].zones
		if samples[i].n == 0 {
			zones = pooledZones
		}
		st.Zones = scaleZones(zones, st.Devices)
		if samples[i].n > 0 {
			st.Reporting = float64(samples[i].native) / float64(samples[i].n)
		}
	}
	f.Sources["strata"] = "registry"
	f.Sources["time_zones"] = "registry"
	f.Notes = append(f.Notes, fmt.Sprintf("Time zones, protocols and last-seen times from %d sampled targets (in enrollment order) of %d.", total, f.Devices()))

	if err := gatherTelemetry(ctx, st, tenant, spec, &f, telemetryIDs, created, telemetryStratum, now); err != nil {
		return f, err
	}
	if err := gatherHistory(ctx, st, tenant, spec, pv, &f, index, now); err != nil {
		return f, err
	}
	if f.Sources["timeout"] == "registry" {
		unreachable := 0
		for i := range f.Strata {
			if samples[i].n > 0 {
				f.Strata[i].Timeout = math.Min(0.99, float64(samples[i].unreachable)/float64(samples[i].n))
			}
			unreachable += samples[i].unreachable
		}
		f.Notes = append(f.Notes, fmt.Sprintf("%d of %d sampled targets were not seen (nor enrolled) within the device timeout (%v); that share of each stratum is assumed to time out.",
			unreachable, total, short(spec.DeviceTimeout.D())))
	}
	return f, nil
}

// scaleZones spreads devices over zones in proportion to a sample.
func scaleZones(sample map[string]int, devices int) map[string]int {
	names := zoneNames(sample)
	if len(names) == 0 {
		return map[string]int{"": devices}
	}
	sizes := make([]int, len(names))
	for i, z := range names {
		sizes[i] = sample[z]
	}
	out := map[string]int{}
	for i, n := range allocateAll(devices, sizes) {
		if n > 0 {
			out[names[i]] = n
		}
	}
	return out
}

// allocateAll is health.Allocate for any n (more devices than the sample).
func allocateAll(n int, sizes []int) []int {
	total := 0
	for _, s := range sizes {
		total += s
	}
	if total == 0 {
		return make([]int, len(sizes))
	}
	scaled := make([]int, len(sizes))
	k := (n + total - 1) / total
	for i, s := range sizes {
		scaled[i] = s * k
	}
	return health.Allocate(n, scaled)
}

// gatherTelemetry estimates each rate test's events per device-hour from
// the sampled devices' hourly sums over the last TelemetryWindow.
func gatherTelemetry(ctx context.Context, st Reader, tenant string, spec campaign.Spec, f *Fleet, ids []string, created []time.Time, stratum []int, now time.Time) error {
	pol, err := spec.Health.Policy()
	if err != nil {
		return err
	}
	from := now.Add(-TelemetryWindow)
	// Devices that sent any telemetry in the window, by the uptime gauge
	// every agent samples.
	reporting := map[string]bool{}
	if len(ids) > 0 {
		up, err := st.TelemetrySums(ctx, tenant, "uptime_s", ids, from, now)
		if err != nil {
			return fmt.Errorf("preflight: telemetry: %w", err)
		}
		for id := range up {
			reporting[id] = true
		}
	}
	hours := make([]float64, len(f.Strata))
	var pooledHours float64
	active := make([]int, len(f.Strata))
	natives := make([]int, len(f.Strata))
	for i, id := range ids {
		natives[stratum[i]]++
		if !reporting[id] {
			continue
		}
		active[stratum[i]]++
		start := from
		if created[i].After(start) {
			start = created[i]
		}
		h := math.Max(0, now.Sub(start).Hours())
		hours[stratum[i]] += h
		pooledHours += h
	}
	if len(reporting) == 0 {
		for _, m := range pol.RateMetrics {
			for i := range f.Strata {
				f.Strata[i].Rates[m] = defaultRate(m)
			}
		}
		f.Sources["rates"] = "default"
		f.Sources["telemetry_share"] = "registry"
		f.Notes = append(f.Notes, fmt.Sprintf("No telemetry in the last %v: event rates are the defaults (crash %g, reboot %g, other %g per device-hour) and every native agent is assumed to send telemetry.",
			short(TelemetryWindow), DefaultCrashRate, DefaultRebootRate, DefaultOtherRate))
		return nil
	}
	// Native agents that sent nothing in the window are not exposure.
	for i := range f.Strata {
		if natives[i] > 0 {
			f.Strata[i].Reporting *= float64(active[i]) / float64(natives[i])
		}
	}
	f.Sources["telemetry_share"] = "telemetry"
	f.Sources["rates"] = "telemetry"
	for _, m := range pol.RateMetrics {
		sums, err := st.TelemetrySums(ctx, tenant, spec.Health.TelemetryOf(m), ids, from, now)
		if err != nil {
			return fmt.Errorf("preflight: telemetry %s: %w", m, err)
		}
		events := make([]float64, len(f.Strata))
		pooled := 0.0
		for i, id := range ids {
			if v := sums[id]; v > 0 && reporting[id] {
				events[stratum[i]] += v
				pooled += v
			}
		}
		pooledRate := 0.0
		if pooledHours > 0 {
			pooledRate = pooled / pooledHours
		}
		for i := range f.Strata {
			rate := pooledRate
			if events[i] >= minEvents && hours[i] > 0 {
				rate = events[i] / hours[i]
			}
			f.Strata[i].Rates[m] = rate
		}
		f.Notes = append(f.Notes, fmt.Sprintf("%s rate from %.0f %s events in %.0f device-hours of %d reporting devices over the last %v (strata with fewer than %d events use the pooled rate).",
			m, pooled, spec.Health.TelemetryOf(m), pooledHours, len(reporting), short(TelemetryWindow), minEvents))
	}
	return nil
}

func defaultRate(metric string) float64 {
	switch metric {
	case "crash":
		return DefaultCrashRate
	case "reboot":
		return DefaultRebootRate
	}
	return DefaultOtherRate
}

// gatherHistory reads the outcomes and report delays of recent campaigns
// of releases not marked bad.
func gatherHistory(ctx context.Context, st Reader, tenant string, spec campaign.Spec, pv campaign.Preview, f *Fleet, index map[string]int, now time.Time) error {
	type tally struct{ ok, failed, rolled, timedOut int }
	per := make([]tally, len(f.Strata))
	var pooled tally
	var delays []time.Duration
	used := 0
	cs, _, err := st.ListCampaigns(ctx, tenant, store.CampaignQuery{Page: store.Page{Limit: 100}})
	if err != nil {
		return fmt.Errorf("preflight: campaigns: %w", err)
	}
	for _, c := range cs {
		if used >= HistoryCampaigns {
			break
		}
		if c.Kind != store.CampaignKindRollout || c.StartedAt == nil {
			continue
		}
		rel, err := st.Release(ctx, tenant, c.ReleaseID)
		if err != nil || rel.Bad {
			continue
		}
		tallies, err := st.CampaignTallies(ctx, tenant, c.ID)
		if err != nil {
			return fmt.Errorf("preflight: campaign %s tallies: %w", c.ID, err)
		}
		used++
		for _, t := range tallies {
			var x *tally
			if i, ok := index[t.Stratum]; ok {
				x = &per[i]
			}
			add := func(fn func(*tally)) {
				fn(&pooled)
				if x != nil {
					fn(x)
				}
			}
			switch t.State {
			case store.CDSucceeded:
				add(func(a *tally) { a.ok += t.N })
			case store.CDFailed:
				add(func(a *tally) { a.failed += t.N })
			case store.CDRolledBack:
				add(func(a *tally) { a.rolled += t.N })
			case store.CDTimedOut:
				add(func(a *tally) { a.timedOut += t.N })
			}
		}
		for after, since := "", (time.Time{}); len(delays) < HistoryDelays; {
			chs, err := st.CampaignAssignmentChanges(ctx, tenant, c.ID, since, after, store.MaxPageLimit)
			if err != nil {
				return fmt.Errorf("preflight: campaign %s assignments: %w", c.ID, err)
			}
			for _, a := range chs {
				switch a.State {
				case store.AssignSucceeded, store.AssignFailed, store.AssignRolledBack:
					if d := a.UpdatedAt.Sub(a.CreatedAt); d >= 0 && len(delays) < HistoryDelays {
						delays = append(delays, d)
					}
				}
			}
			if len(chs) < store.MaxPageLimit {
				break
			}
			last := chs[len(chs)-1]
			since, after = last.UpdatedAt, last.ID
		}
	}
	outcomes := func(t tally) int { return t.ok + t.failed + t.rolled + t.timedOut }
	if n := outcomes(pooled); n >= minOutcomes {
		f.Sources["install_failure"], f.Sources["timeout"] = "history", "history"
		for i := range f.Strata {
			t := per[i]
			if outcomes(t) < minOutcomes {
				t = pooled
			}
			n := outcomes(t)
			f.Strata[i].InstallFailure = float64(t.failed+t.rolled) / float64(n-t.timedOut+1) // never exactly 1
			f.Strata[i].Timeout = math.Min(0.99, float64(t.timedOut)/float64(n))
			if t.failed+t.rolled > 0 {
				f.Strata[i].RollbackShare = float64(t.rolled) / float64(t.failed+t.rolled)
			}
		}
		f.Notes = append(f.Notes, fmt.Sprintf("Install failures, rollbacks and time-outs from %d outcomes of %d recent campaigns of good releases (strata with fewer than %d use the pooled rates).",
			n, used, minOutcomes))
	} else {
		rate, src := spec.Health.BaselineSLO, "default"
		note := fmt.Sprintf("No campaign history: a good release is assumed to fail at the baseline SLO of %.2g%% (the rate the policy judges against), with no rollbacks; devices not seen within the device timeout (%v) are assumed to time out.",
			100*rate, short(spec.DeviceTimeout.D()))
		if pv.Plan.BaselineDevices > 0 {
			rate, src = pv.Plan.Baseline, "previous_release"
			note = fmt.Sprintf("No campaign history: a good release is assumed to fail like %s (%d of %d devices failed), with no rollbacks; devices not seen within the device timeout (%v) are assumed to time out.",
				pv.Plan.BaselineVersion, pv.Plan.BaselineFailures, pv.Plan.BaselineDevices, short(spec.DeviceTimeout.D()))
		}
		for i := range f.Strata {
			f.Strata[i].InstallFailure = rate
		}
		f.Sources["install_failure"], f.Sources["timeout"] = src, "registry"
		f.Notes = append(f.Notes, note)
	}
	if len(delays) >= 20 {
		f.ReportDelays = delays
		sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
		f.Sources["report_delay"] = "history"
		f.Notes = append(f.Notes, fmt.Sprintf("Report delays from %d recent assignments (median %v, p90 %v).",
			len(delays), short(delays[len(delays)/2].Round(time.Minute)), short(delays[len(delays)*9/10].Round(time.Minute))))
	} else {
		f.Sources["report_delay"] = "default"
		f.Notes = append(f.Notes, fmt.Sprintf("No report delays in the history: devices are assumed to report %v to %v after dispatch (uniform).", short(DefaultDelayMin), short(DefaultDelayMax)))
	}
	return nil
}

// short writes a duration without trailing zero units: 24h, 2h30m, 5m.
func short(d time.Duration) string {
	t := d.String()
	if strings.HasSuffix(t, "m0s") {
		t = strings.TrimSuffix(t, "0s")
	}
	if strings.HasSuffix(t, "h0m") {
		t = strings.TrimSuffix(t, "0m")
	}
	return t
}
