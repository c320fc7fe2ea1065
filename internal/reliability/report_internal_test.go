package reliability

import (
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
)

func TestBricked(t *testing.T) {
	t.Parallel()
	dev := func(rev string, phase agent.Phase, version, slot, slotVersion string) sim.Device {
		return sim.Device{Identity: identity.Identity{Serial: "SIM-1", HWRev: rev}, Status: agent.Status{
			DeviceID: "d1", Phase: phase, Version: version, Slot: slot,
			Slots: map[string]agent.Record{slot: {Version: slotVersion}},
		}}
	}
	tests := []struct {
		name string
		d    sim.Device
		want string
	}{
		{"committed good release", dev("A", agent.PhaseIdle, Good, "B", Good), ""},
		{"back on the initial release", dev(BadRev, agent.PhaseIdle, Initial, "A", Initial), ""},
		{"bad release on revision A is bootable", dev("A", agent.PhaseIdle, Bad, "B", Bad), ""},
		{"bad release on revision B", dev(BadRev, agent.PhaseIdle, Bad, "B", Bad), "never boots"},
		{"update not committed", dev("A", agent.PhaseIdle, Good, "B", Initial), "uncommitted"},
		{"agent mid-update", dev("A", agent.PhaseDownloading, Initial, "A", Initial), "phase"},
		{"never enrolled", sim.Device{}, "never enrolled"},
	}
	for _, tt := range tests {
		got := bricked(tt.d)
		if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
			t.Errorf("%s: bricked = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestProblems(t *testing.T) {
	t.Parallel()
	good := Report{Devices: 120, Faults: StandardFaults(), Kills: 2, PowerCuts: 3, Dropped: 10, Exposed: 12, Campaigns: []CampaignResult{
		{Name: "bad", State: store.CampaignHalted, Want: store.CampaignHalted},
		{Name: "rollback", State: store.CampaignCompleted, Want: store.CampaignCompleted},
		{Name: "good", State: store.CampaignCompleted, Want: store.CampaignCompleted},
	}}
	if p := good.Problems(); len(p) != 0 {
		t.Fatalf("a clean run has problems: %v", p)
	}
	for name, mutate := range map[string]func(r *Report){
		"bricked":        func(r *Report) { r.Bricked = 1 },
		"reports lost":   func(r *Report) { r.ReportsLost, r.DevicesWithGaps = 2, 1 },
		"unsent":         func(r *Report) { r.Unsent = 1 },
		"wrong state":    func(r *Report) { r.Campaigns[0].State = store.CampaignCompleted },
		"missing kill":   func(r *Report) { r.Kills = 1 },
		"no power cut":   func(r *Report) { r.PowerCuts = 0 },
		"no exposure":    func(r *Report) { r.Exposed = 0 },
		"campaigns left": func(r *Report) { r.Campaigns = r.Campaigns[:2] },
	} {
		r := good
		r.Campaigns = append([]CampaignResult(nil), good.Campaigns...)
		mutate(&r)
		if len(r.Problems()) == 0 {
			t.Errorf("%s: no problem reported", name)
		}
	}
}
