package storetest

import (
	"maps"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func testFleetStats(t *testing.T, h Harness) {
	t.Parallel()
	e := newReleaseEnv(t, h)
	s := e.s
	rel := e.published("1.0.0", "gw", "A")
	// Devices: seen within the window, seen before it, never seen; one
	// pending device seen recently.
	recent, earlier, never := e.device("gw", "A"), e.device("gw", "A"), e.device("gw", "A")
	third := e.device("gw", "A")
	pend := e.pendingDevice("gw", "A")
	since := T0.Add(time.Hour)
	if err := s.TouchLastSeen(e.ctx, store.DefaultTenant, map[string]time.Time{
		recent.ID: since.Add(time.Minute), earlier.ID: since.Add(-time.Second), pend.ID: since, third.ID: since,
	}); err != nil {
		t.Fatal(err)
	}
	seen, err := s.CountDevicesSeen(e.ctx, store.DefaultTenant, since)
	if err != nil {
		t.Fatal(err)
	}
	want := map[store.DeviceState]store.SeenCounts{
		store.DeviceAccepted: {Recent: 2, Earlier: 1, Never: 1},
		store.DevicePending:  {Recent: 1},
	}
	if !maps.Equal(seen, want) {
		t.Fatalf("CountDevicesSeen = %+v, want %+v", seen, want)
	}
	if got, err := s.CountDevicesSeen(e.ctx, "other-tenant", since); err != nil || len(got) != 0 {
		t.Fatalf("another tenant: %v, %v", got, err)
	}
	_ = never

	// Outcomes: never failed at T0+30m (before since), recent failed at
	// T0+2h, earlier rolled back at T0+3h, third succeeded at T0+4h.
	end := func(d store.Device, state store.AssignmentState, at time.Time) store.Assignment {
		t.Helper()
		a, _ := e.assign(d.ID, rel.ID, T0)
		r := rep(a.ID, 1, state, 0)
		r.ErrorCode = "E_" + string(state)
		if out := e.report(d.ID, at, r); out[0] != store.ReportApplied {
			t.Fatalf("report %s: %v", state, out)
		}
		return a
	}
	end(never, store.AssignFailed, T0.Add(30*time.Minute))
	failed := end(recent, store.AssignFailed, T0.Add(2*time.Hour))
	rolled := end(earlier, store.AssignRolledBack, T0.Add(3*time.Hour))
	end(third, store.AssignSucceeded, T0.Add(4*time.Hour))

	counts, list, err := s.AssignmentOutcomes(e.ctx, store.DefaultTenant, store.OutcomeQuery{States: store.FailedStates(), Since: since, Recent: 5})
	if err != nil {
		t.Fatal(err)
	}
	if wantC := map[store.AssignmentState]int{store.AssignFailed: 1, store.AssignRolledBack: 1}; !maps.Equal(counts, wantC) {
		t.Fatalf("outcome counts %v, want %v", counts, wantC)
	}
	if len(list) != 2 || list[0].ID != rolled.ID || list[1].ID != failed.ID {
		t.Fatalf("recent outcomes %+v, want the rollback then the failure", list)
	}
	if list[0].Version != "1.0.0" || list[0].ErrorCode != "E_rolled-back" || !list[0].UpdatedAt.Equal(T0.Add(3*time.Hour)) {
		t.Fatalf("recent outcome %+v", list[0])
	}
	// Recent bounds the list, not the counts; no states count nothing.
	counts, list, err = s.AssignmentOutcomes(e.ctx, store.DefaultTenant, store.OutcomeQuery{States: store.FailedStates(), Since: T0, Recent: 1})
	if err != nil || counts[store.AssignFailed] != 2 || len(list) != 1 || list[0].ID != rolled.ID {
		t.Fatalf("since T0, one recent: %v %+v %v", counts, list, err)
	}
	counts, list, err = s.AssignmentOutcomes(e.ctx, store.DefaultTenant, store.OutcomeQuery{Since: T0, Recent: 3})
	if err != nil || len(counts) != 0 || len(list) != 0 {
		t.Fatalf("no states: %v %+v %v", counts, list, err)
	}
	if _, _, err := s.AssignmentOutcomes(e.ctx, store.DefaultTenant, store.OutcomeQuery{States: store.FailedStates(), Recent: store.MaxPageLimit + 1}); err == nil {
		t.Fatal("an oversized recent list was accepted")
	}
}
