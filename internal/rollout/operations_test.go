package rollout_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
	"github.com/updraft/updraft/internal/tufmeta"
)

// allAssignments lists every assignment of the tenant.
func (s *sim) allAssignments() []store.Assignment {
	s.t.Helper()
	var out []store.Assignment
	after := ""
	for {
		as, next, err := s.st.ListAssignments(s.ctx, store.DefaultTenant, "", store.Page{Limit: store.MaxPageLimit, After: after})
		if err != nil {
			s.t.Fatal(err)
		}
		out = append(out, as...)
		if next == "" {
			return out
		}
		after = next
	}
}

func TestWindowsAndRateLimitAreHonoured(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 4)
	zones := []string{"Europe/Berlin", "America/New_York"}
	for i := 0; i < 40; i++ {
		s.device("gw", "B", zones[i%2])
	}
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B")
	spec := baseSpec("windowed", "2.0.0")
	spec.Plan = campaign.Plan{Waves: []float64{100}, NoControl: true}
	spec.Pacing = campaign.Pacing{PerMinute: 0.5}
	spec.Schedule.Windows = []tufmeta.Window{{Start: "02:00", Duration: tufmeta.Duration(2 * time.Hour)}}
	c := s.start(spec)
	s.runUntil(4*24*time.Hour, "completion", func() bool { return s.campaign(c.ID).State == store.CampaignCompleted })

	zone := map[string]string{}
	for _, d := range s.devices {
		zone[d.ID] = d.TimeZone
	}
	perTick := map[time.Time]int{}
	for _, a := range s.allAssignments() {
		loc, err := time.LoadLocation(zone[a.DeviceID])
		if err != nil {
			t.Fatal(err)
		}
		local := a.CreatedAt.In(loc)
		if h := local.Hour(); h < 2 || h >= 4 {
			t.Errorf("device in %s assigned at %s local time, outside 02:00-04:00", zone[a.DeviceID], local.Format("15:04"))
		}
		perTick[a.CreatedAt]++
	}
	// 0.5 devices a minute with ticks every 10 minutes: at most 5 a tick.
	for at, n := range perTick {
		if n > 5 {
			t.Errorf("%d devices dispatched at %v; the limit allows 5 per 10 minutes", n, at.Sub(t0))
		}
	}
	if v := s.versions(""); v["2.0.0"] != 40 {
		t.Fatalf("versions %v, want all 40 updated", v)
	}
}

func TestRestartMidCampaignLosesNothing(t *testing.T) {
	t.Parallel()
	st := openStore(t)
	s := newSim(t, st, 5)
	fleet(s, 100, 0)
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	c := s.start(baseSpec("restart", "2.0.0"))
	s.runUntil(3*24*time.Hour, "second wave", func() bool { return s.campaign(c.ID).Step >= 1 })
	before := len(s.decisions(c.ID))

	// The first server dies without releasing its lease; a second one
	// takes over once the lease expires and must not lead before.
	s.eng = s.newEngine("replica-b")
	if led, err := s.eng.Tick(s.ctx); err != nil || led {
		t.Fatalf("new replica led at once (%v, %v) while the old lease was live", led, err)
	}
	s.runUntil(10*24*time.Hour, "completion after restart", func() bool { return s.campaign(c.ID).State == store.CampaignCompleted })
	if after := len(s.decisions(c.ID)); after <= before {
		t.Fatalf("decisions %d after restart, %d before: the new leader stored none", after, before)
	}
	perDevice := map[string]int{}
	for _, a := range s.allAssignments() {
		if a.CampaignID == c.ID {
			perDevice[a.DeviceID]++
		}
	}
	for _, d := range s.devices {
		if perDevice[d.ID] != 1 {
			t.Errorf("device %s got %d assignments, want exactly 1", d.Serial, perDevice[d.ID])
		}
	}
	if got := s.counts(c.ID, ""); got[store.CDSucceeded] != 100 {
		t.Fatalf("campaign devices %v, want all 100 succeeded", got)
	}
}

func TestSecurityReleaseRolledBackBeforeFinalize(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 6)
	fleet(s, 80, 0)
	s.release("1.0.0", 1, store.SeverityMedium, "gw", "B", "C")
	rel := s.release("2.0.0", 5, store.SeverityCritical, "gw", "B", "C")
	c := s.start(baseSpec("security", "2.0.0"))
	s.runUntil(3*24*time.Hour, "second wave", func() bool { return s.campaign(c.ID).Step >= 1 })
	if _, err := campaign.Rollback(s.ctx, s.st, store.DefaultTenant, c.ID, "CVE fix breaks pairing", admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(2*24*time.Hour, "rollback campaign", func() bool {
		rt, err := campaign.RuntimeOf(s.campaign(c.ID))
		return err == nil && len(rt.Rollbacks) == 1 && len(rt.RollbackPending) == 0
	})
	rt, _ := campaign.RuntimeOf(s.campaign(c.ID))
	s.runUntil(2*24*time.Hour, "rollback completion", func() bool {
		return s.campaign(rt.Rollbacks[0]).State == store.CampaignCompleted
	})
	if v := s.versions(""); v["2.0.0"] != 0 || v["1.0.0"] != 80 {
		t.Fatalf("versions after the rollback %v, want all 80 back on 1.0.0", v)
	}
	r, err := s.st.Release(s.ctx, store.DefaultTenant, rel.ID)
	if err != nil || !r.Bad {
		t.Fatalf("release after rollback: bad=%v err=%v, want marked bad", r.Bad, err)
	}
	if s.campaign(c.ID).State != store.CampaignHalted {
		t.Fatalf("campaign state %s, want halted", s.campaign(c.ID).State)
	}
	if _, err := campaign.Finalize(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("finalize after rollback: %v, want a conflict", err)
	}
}

func TestFinalizedCampaignCannotRollBack(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 7)
	fleet(s, 20, 0)
	s.release("2.0.0", 5, store.SeverityHigh, "gw", "B", "C")
	spec := baseSpec("final", "2.0.0")
	spec.Plan = campaign.Plan{Waves: []float64{100}, NoControl: true}
	c := s.start(spec)
	s.runUntil(2*24*time.Hour, "completion", func() bool { return s.campaign(c.ID).State == store.CampaignCompleted })
	if _, err := campaign.Finalize(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := campaign.Rollback(s.ctx, s.st, store.DefaultTenant, c.ID, "", admin, s.clock.Now()); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("rollback after finalize: %v, want a conflict", err)
	}
}

// TestDeposedLeaderCannotWrite runs two engines on one PostgreSQL
// database: after the first one's lease expires and the second takes
// over, a write the first one still attempts with its old lease fails
// and changes nothing.
func TestDeposedLeaderCannotWrite(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	open := func() *postgresStore {
		st, err := postgres.Open(context.Background(), dsn, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { st.Close() })
		return st
	}
	a := open()
	b := open()
	if _, err := a.Migrate(context.Background(), migrateAt); err != nil {
		t.Fatal(err)
	}
	s := newSim(t, a, 8)
	fleet(s, 20, 0)
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	spec := baseSpec("fenced", "2.0.0")
	spec.Pacing = campaign.Pacing{PerMinute: 0.1}
	c := s.start(spec)
	s.step()
	if led, err := s.eng.Tick(s.ctx); err != nil || !led {
		t.Fatalf("first engine: led=%v err=%v", led, err)
	}
	old, err := a.AcquireLease(s.ctx, rollout.LeaseName, s.eng.Holder(), 30*time.Minute, s.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	// The first engine pauses past its lease; the second, on its own
	// connection pool, takes over.
	s.clock.Advance(31 * time.Minute)
	engB, err := rollout.New(rollout.Config{Store: b, Clock: s.clock, Holder: "replica-b", Interval: 10 * time.Minute, LeaseTTL: 30 * time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	if led, err := engB.Tick(s.ctx); err != nil || !led {
		t.Fatalf("second engine: led=%v err=%v", led, err)
	}
	before := s.counts(c.ID, "")
	queued, _, err := a.QueuedCampaignDevices(s.ctx, store.DefaultTenant, c.ID, 10, true, s.clock.Now(), 5)
	if err != nil || len(queued) == 0 {
		t.Fatalf("queued devices: %d, %v", len(queued), err)
	}
	var ds []store.CampaignDispatch
	for _, q := range queued {
		ds = append(ds, store.CampaignDispatch{DeviceID: q.DeviceID, ReleaseID: c.ReleaseID})
	}
	if _, err := a.DispatchCampaign(s.ctx, old, store.DefaultTenant, c.ID, ds, admin, s.clock.Now()); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("deposed leader's dispatch: %v, want ErrLeaseLost", err)
	}
	if _, err := a.UpdateCampaign(s.ctx, store.DefaultTenant, c.ID, store.CampaignUpdate{Lease: &old, Now: s.clock.Now(),
		Apply: func(c *store.Campaign) error { c.State = store.CampaignCompleted; return nil }}); !errors.Is(err, store.ErrLeaseLost) {
		t.Fatalf("deposed leader's campaign update: %v, want ErrLeaseLost", err)
	}
	if led, err := s.eng.Tick(s.ctx); err != nil || led {
		t.Fatalf("deposed engine ticked as leader: led=%v err=%v", led, err)
	}
	after := s.counts(c.ID, "")
	if len(before) != len(after) || before[store.CDAssigned] != after[store.CDAssigned] || before[store.CDQueued] != after[store.CDQueued] {
		t.Fatalf("tallies changed from %v to %v by a deposed leader", before, after)
	}
	if got := s.campaign(c.ID).State; got != store.CampaignRunning {
		t.Fatalf("campaign state %s, want running", got)
	}
}

type postgresStore = sqlstore.Store

var migrateAt = sqlstore.MigrateOptions{Now: t0}

// TestDeadlineForcesCriticalRelease: outside their maintenance window,
// devices wait; once a critical release's deadline passes, windows no
// longer hold them back and they are dispatched at once.
func TestDeadlineForcesCriticalRelease(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 9)
	for i := 0; i < 10; i++ {
		s.device("gw", "B", "UTC")
	}
	s.release("2.0.0", 3, store.SeverityCritical, "gw", "B")
	spec := baseSpec("urgent", "2.0.0")
	spec.Plan = campaign.Plan{Waves: []float64{100}, NoControl: true}
	// The window opens at 22:00 UTC; the deadline is at 06:00.
	spec.Schedule.Windows = []tufmeta.Window{{Start: "22:00", Duration: tufmeta.Duration(time.Hour)}}
	deadline := t0.Add(6 * time.Hour)
	spec.Schedule.Deadline = &deadline
	c := s.start(spec)
	s.runUntil(5*time.Hour, "five hours", func() bool { return s.clock.Now().After(t0.Add(5 * time.Hour)) })
	if got := s.counts(c.ID, ""); got[store.CDQueued] != 10 {
		t.Fatalf("before the deadline: %v, want all 10 waiting for their window", got)
	}
	s.runUntil(3*time.Hour, "dispatch after the deadline", func() bool { return s.counts(c.ID, "")[store.CDQueued] == 0 })
	for _, a := range s.allAssignments() {
		if a.CreatedAt.Before(deadline) {
			t.Fatalf("assignment created at %v, before the deadline", a.CreatedAt.Sub(t0))
		}
	}
	terms, err := campaign.AssignmentTerms(s.campaign(c.ID), store.Release{Severity: store.SeverityCritical}, s.clock.Now())
	if err != nil || !terms.Forced {
		t.Fatalf("terms after the deadline: %+v %v, want forced", terms, err)
	}
}
