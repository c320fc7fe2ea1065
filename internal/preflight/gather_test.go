package preflight

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// fakeHistory is an in-memory Reader: a registry, campaigns with tallies
// and assignments, and telemetry sums.
type fakeHistory struct {
	devices   []store.Device
	campaigns []store.Campaign
	releases  map[string]store.Release
	tallies   map[string][]store.CampaignTally
	changes   map[string][]store.AssignmentChange
	sums      map[string]map[string]float64 // metric -> device -> sum
}

func (f *fakeHistory) ListDevices(_ context.Context, _ string, q store.DeviceQuery) ([]store.Device, string, error) {
	start := 0
	if q.Page.After != "" {
		fmt.Sscan(q.Page.After, &start)
	}
	end := min(start+q.Page.Limit, len(f.devices))
	next := ""
	if end < len(f.devices) {
		next = fmt.Sprint(end)
	}
	return f.devices[start:end], next, nil
}

func (f *fakeHistory) ListCampaigns(context.Context, string, store.CampaignQuery) ([]store.Campaign, string, error) {
	return f.campaigns, "", nil
}

func (f *fakeHistory) Release(_ context.Context, _, id string) (store.Release, error) {
	r, ok := f.releases[id]
	if !ok {
		return r, store.ErrNotFound
	}
	return r, nil
}

func (f *fakeHistory) CampaignTallies(_ context.Context, _, id string) ([]store.CampaignTally, error) {
	return f.tallies[id], nil
}

func (f *fakeHistory) CampaignAssignmentChanges(_ context.Context, _, id string, since time.Time, after string, limit int) ([]store.AssignmentChange, error) {
	if after != "" {
		return nil, nil
	}
	cs := f.changes[id]
	return cs[:min(limit, len(cs))], nil
}

func (f *fakeHistory) TelemetrySums(_ context.Context, _, metric string, ids []string, from, to time.Time) (map[string]float64, error) {
	out := map[string]float64{}
	for _, id := range ids {
		if v, ok := f.sums[metric][id]; ok {
			out[id] = v
		}
	}
	return out, nil
}

// TestGatherFromHistory: a registry of 300 devices in two revisions and
// zones (a tenth speaking DDI, a few unreachable), a good and a bad
// release's campaigns, a week of telemetry. The twin takes the strata and
// zones from the registry, failure and time-out rates from the good
// campaign only, event rates from telemetry, delays from assignments, and
// says so.
func TestGatherFromHistory(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 4, 12, 0, 0, 0, time.UTC)
	h := &fakeHistory{releases: map[string]store.Release{"good": {ID: "good"}, "bad": {ID: "bad", Bad: true}},
		tallies: map[string][]store.CampaignTally{}, changes: map[string][]store.AssignmentChange{},
		sums: map[string]map[string]float64{"uptime_s": {}, "crashes": {}, "unexpected_reboots": {}}}
	for i := range 300 {
		rev, tz := "B", "Europe/Berlin"
		if i%3 == 0 {
			rev, tz = "C", "Asia/Tokyo"
		}
		d := store.Device{ID: fmt.Sprintf("d%03d", i), DeviceType: "gw", HWRev: rev, TimeZone: tz, Protocol: store.ProtocolNative,
			CreatedAt: now.Add(-30 * 24 * time.Hour)}
		if i%10 == 1 {
			d.Protocol = store.ProtocolDDI
		}
		seen := now.Add(-time.Hour)
		d.LastSeenAt = &seen
		h.devices = append(h.devices, d)
		if d.Protocol == store.ProtocolNative {
			h.sums["uptime_s"][d.ID] = 1000
			if i%5 == 0 {
				h.sums["crashes"][d.ID] = 2
			}
		}
	}
	started := now.Add(-48 * time.Hour)
	h.campaigns = []store.Campaign{
		{ID: "c-bad", Kind: store.CampaignKindRollout, ReleaseID: "bad", StartedAt: &started},
		{ID: "c-good", Kind: store.CampaignKindRollout, ReleaseID: "good", StartedAt: &started},
	}
	h.tallies["c-bad"] = []store.CampaignTally{{Stratum: "hw_rev=B", State: store.CDFailed, N: 500}}
	h.tallies["c-good"] = []store.CampaignTally{
		{Stratum: "hw_rev=B", State: store.CDSucceeded, N: 180}, {Stratum: "hw_rev=B", State: store.CDFailed, N: 10},
		{Stratum: "hw_rev=B", State: store.CDRolledBack, N: 10}, {Stratum: "hw_rev=B", State: store.CDTimedOut, N: 0},
		{Stratum: "hw_rev=C", State: store.CDSucceeded, N: 20}, {Stratum: "hw_rev=C", State: store.CDTimedOut, N: 5},
	}
	for i := range 40 {
		c := now.Add(-40 * time.Hour)
		h.changes["c-good"] = append(h.changes["c-good"], store.AssignmentChange{Assignment: store.Assignment{
			ID: fmt.Sprint(i), State: store.AssignSucceeded, CreatedAt: c, UpdatedAt: c.Add(time.Duration(10+i) * time.Minute)}})
	}
	spec := campaign.Spec{Name: "x", Release: "2.0.0", Strata: []string{"hw_rev"}}
	pv := campaign.Preview{Strata: map[string]int{"hw_rev=B": 200, "hw_rev=C": 100}}
	f, err := Gather(t.Context(), h, store.DefaultTenant, spec, pv, now)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Validate(); err != nil {
		t.Fatal(err)
	}
	b, c := f.Strata[0], f.Strata[1]
	if b.Key != "hw_rev=B" || c.Key != "hw_rev=C" || b.Zones["Europe/Berlin"] != 200 || c.Zones["Asia/Tokyo"] != 100 {
		t.Errorf("strata %+v %+v: want 200 B in Berlin and 100 C in Tokyo", b, c)
	}
	// B: 20 of 200 history outcomes failed, half rolled back; C has too
	// few outcomes (25) and takes the pooled history.
	if math.Abs(b.InstallFailure-20.0/201) > 1e-9 || b.RollbackShare != 0.5 || b.Timeout != 0 {
		t.Errorf("hw_rev=B failure %g rollback %g timeout %g, want 20/201, 0.5 and 0 (the bad release's campaign ignored)", b.InstallFailure, b.RollbackShare, b.Timeout)
	}
	if math.Abs(c.Timeout-5.0/225) > 1e-9 {
		t.Errorf("hw_rev=C timeout %g, want the pooled 5/225", c.Timeout)
	}
	// 10 % of the devices speak DDI: no telemetry.
	if math.Abs(b.Reporting-0.9) > 0.02 || math.Abs(c.Reporting-0.9) > 0.02 {
		t.Errorf("telemetry shares %g and %g, want about 0.9", b.Reporting, c.Reporting)
	}
	// Every fifth native device crashed twice in a week.
	wantCrash := 2.0 / 5 / (7 * 24)
	if r := b.Rates["crash"]; math.Abs(r-wantCrash)/wantCrash > 0.15 {
		t.Errorf("hw_rev=B crash rate %g, want about %g", r, wantCrash)
	}
	if b.Rates["reboot"] != 0 {
		t.Errorf("no reboot events: rate %g, want 0", b.Rates["reboot"])
	}
	if len(f.ReportDelays) != 40 {
		t.Errorf("%d report delays, want the 40 assignments", len(f.ReportDelays))
	}
	for field, want := range map[string]string{"install_failure": "history", "timeout": "history", "rates": "telemetry", "report_delay": "history", "time_zones": "registry"} {
		if f.Sources[field] != want {
			t.Errorf("source of %s %q, want %q", field, f.Sources[field], want)
		}
	}
	if notes := strings.Join(f.Notes, " "); !strings.Contains(notes, "1 recent campaigns") || strings.Contains(notes, "No campaign history") {
		t.Errorf("notes %q: want the one good campaign named", notes)
	}
}
