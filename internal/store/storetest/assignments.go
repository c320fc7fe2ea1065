package storetest

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// assign assigns a release to a device and fails the test on error.
func (e *releaseEnv) assign(deviceID, releaseID string, now time.Time) (store.Assignment, *store.Assignment) {
	e.t.Helper()
	a, prev, err := e.s.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: deviceID, ReleaseID: releaseID, Now: now}, Admin)
	if err != nil {
		e.t.Fatalf("assign: %v", err)
	}
	return a, prev
}

// activeCount counts the device's active assignments in its history.
func (e *releaseEnv) activeCount(deviceID string) (active, total int) {
	e.t.Helper()
	list, _, err := e.s.ListAssignments(e.ctx, store.DefaultTenant, deviceID, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		e.t.Fatalf("list assignments: %v", err)
	}
	for _, a := range list {
		if a.Active {
			active++
		}
	}
	return active, len(list)
}

func testAssignments(t *testing.T, h Harness) {
	t.Run("RefusedAssignmentsChangeNothing", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		revD := e.device("gw-200", "D")
		pending := e.pendingDevice("gw-200", "B")
		rel := e.published("1.2.0", "gw-200", "A", "B", "C")
		draft := e.draft("1.3.0")
		e.addArtifact(rawImage(draft.ID, "gw-200", "B"))
		bad := e.published("1.1.0", "gw-200", "B")
		if _, err := e.s.MarkBad(e.ctx, store.DefaultTenant, bad.ID, true, "boot loop", Admin, T0); err != nil {
			t.Fatal(err)
		}
		deltaOnly := e.draft("1.4.0")
		delta := artifactOf(deltaOnly.ID, "gw-200", store.ArtifactDelta, "rootfs", "B")
		delta.FromVersion = "1.2.0"
		e.addArtifact(delta)
		if _, err := e.s.PublishRelease(e.ctx, store.DefaultTenant, deltaOnly.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		cases := []struct {
			name      string
			device    string
			release   string
			target    error
			mentioned []string
		}{
			{"PendingDevice", pending.ID, rel.ID, store.ErrConflict, []string{"pending"}},
			{"Draft", dev.ID, draft.ID, store.ErrConflict, []string{"1.3.0", "draft"}},
			{"BadRelease", dev.ID, bad.ID, store.ErrConflict, []string{"1.1.0", "bad", "boot loop"}},
			{"NoArtifactForRevision", revD.ID, rel.ID, store.ErrConflict, []string{"release 1.2.0 has no artifact for gw-200 rev D"}},
			{"DeltaFromAnotherVersion", dev.ID, deltaOnly.ID, store.ErrConflict, []string{"no artifact for gw-200 rev B"}},
			{"UnknownDevice", "no-such-device", rel.ID, store.ErrNotFound, nil},
			{"UnknownRelease", dev.ID, "no-such-release", store.ErrNotFound, nil},
		}
		before := e.auditSeq()
		for _, c := range cases {
			_, _, err := e.s.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: c.device, ReleaseID: c.release, Now: T0}, Admin)
			wantErr(t, c.name, err, c.target, c.mentioned...)
		}
		if got := e.auditSeq(); got != before {
			t.Fatalf("refused assignments wrote %d audit entries", got-before)
		}
		list, _, err := e.s.ListAssignments(e.ctx, store.DefaultTenant, "", store.Page{})
		if err != nil || len(list) != 0 {
			t.Fatalf("after refused assignments: %d assignments, err %v", len(list), err)
		}
		e.verifyAudit()
	})

	t.Run("BadReleaseOverrideIsAudited", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		bad := e.published("1.1.0", "gw-200", "B")
		if _, err := e.s.MarkBad(e.ctx, store.DefaultTenant, bad.ID, true, "boot loop", Admin, T0); err != nil {
			t.Fatal(err)
		}
		a, prev, err := e.s.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: dev.ID, ReleaseID: bad.ID, AllowBad: true, Now: T0}, Admin)
		if err != nil || prev != nil {
			t.Fatalf("assign bad release with override: %v (superseded %v)", err, prev)
		}
		if got := e.auditActions(a.ID); !slices.Equal(got, []string{"assignment.override_bad", "assignment.create"}) {
			t.Fatalf("audit of overriding assignment = %v", got)
		}
		entries, _, err := e.s.ListAudit(e.ctx, store.DefaultTenant, store.AuditQuery{Action: "assignment.override_bad"})
		if err != nil || len(entries) != 1 || entries[0].Actor != Admin {
			t.Fatalf("override audit entries = %+v, %v", entries, err)
		}
		// A good release needs no override and records none.
		good := e.published("1.2.0", "gw-200", "B")
		if _, _, err := e.s.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: dev.ID, ReleaseID: good.ID, AllowBad: true, Now: T0}, Admin); err != nil {
			t.Fatal(err)
		}
		entries, _, err = e.s.ListAudit(e.ctx, store.DefaultTenant, store.AuditQuery{Action: "assignment.override_bad"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("override entries after a good release: %d, %v", len(entries), err)
		}
		e.verifyAudit()
	})

	t.Run("SupersedeKeepsOneActive", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		r1 := e.published("1.1.0", "gw-200", "B")
		r2 := e.published("1.2.0", "gw-200", "A", "B")
		first, prev := e.assign(dev.ID, r1.ID, T0)
		if prev != nil {
			t.Fatalf("first assignment superseded %+v", prev)
		}
		if first.State != store.AssignPending || !first.Active || first.Version != "1.1.0" || first.DeviceID != dev.ID {
			t.Fatalf("first assignment = %+v", first)
		}
		got, err := e.s.Assignment(e.ctx, store.DefaultTenant, first.ID)
		if err != nil || fmt.Sprint(got) != fmt.Sprint(first) {
			t.Fatalf("stored assignment = %+v, %v; want %+v", got, err, first)
		}
		second, prev := e.assign(dev.ID, r2.ID, T0.Add(time.Minute))
		if prev == nil || prev.ID != first.ID || prev.State != store.AssignSuperseded || prev.Active || prev.SupersededBy != second.ID {
			t.Fatalf("superseded = %+v; want the first assignment, superseded by %s", prev, second.ID)
		}
		old, err := e.s.Assignment(e.ctx, store.DefaultTenant, first.ID)
		if err != nil || fmt.Sprint(old) != fmt.Sprint(*prev) {
			t.Fatalf("stored superseded assignment = %+v, %v; want %+v", old, err, *prev)
		}
		active, err := e.s.ActiveAssignment(e.ctx, store.DefaultTenant, dev.ID)
		if err != nil || active.ID != second.ID || active.Version != "1.2.0" {
			t.Fatalf("active assignment = %+v, %v; want %s", active, err, second.ID)
		}
		list, next, err := e.s.ListAssignments(e.ctx, store.DefaultTenant, dev.ID, store.Page{Limit: 1})
		if err != nil || len(list) != 1 || list[0].ID != second.ID || next == "" {
			t.Fatalf("newest assignment = %+v, next %q, %v", list, next, err)
		}
		list, next, err = e.s.ListAssignments(e.ctx, store.DefaultTenant, dev.ID, store.Page{Limit: 1, After: next})
		if err != nil || len(list) != 1 || list[0].ID != first.ID || next != "" {
			t.Fatalf("second page = %+v, next %q, %v", list, next, err)
		}
		if got := e.auditActions(first.ID); !slices.Equal(got, []string{"assignment.create", "assignment.supersede"}) {
			t.Fatalf("audit of superseded assignment = %v", got)
		}
		if _, err := e.s.ActiveAssignment(e.ctx, store.DefaultTenant, e.device("gw-200", "B").ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("active assignment of a device without one: err = %v, want ErrNotFound", err)
		}
		e.verifyAudit()
	})

	t.Run("ConcurrentAssignLeavesOneActive", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		var rels []store.Release
		for i := range 4 {
			rels = append(rels, e.published(fmt.Sprintf("1.%d.0", i), "gw-200", "B"))
		}
		const n = 16
		var wg sync.WaitGroup
		errs := make([]error, n)
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _, errs[i] = e.s.Assign(e.ctx, store.AssignParams{
					TenantID: store.DefaultTenant, DeviceID: dev.ID, ReleaseID: rels[i%len(rels)].ID, Now: T0,
				}, Admin)
			}()
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("concurrent assign %d: %v", i, err)
			}
		}
		active, total := e.activeCount(dev.ID)
		if active != 1 || total != n {
			t.Fatalf("after %d concurrent assigns: %d active of %d; want exactly 1 of %d", n, active, total, n)
		}
		// Every superseded assignment points at one that exists, forming one chain.
		list, _, err := e.s.ListAssignments(e.ctx, store.DefaultTenant, dev.ID, store.Page{Limit: store.MaxPageLimit})
		if err != nil {
			t.Fatal(err)
		}
		successors := map[string]bool{}
		for _, a := range list {
			if a.Active {
				continue
			}
			if a.State != store.AssignSuperseded || a.SupersededBy == "" || successors[a.SupersededBy] {
				t.Fatalf("inactive assignment %+v is not superseded by a unique successor", a)
			}
			successors[a.SupersededBy] = true
		}
		e.verifyAudit()
	})

	t.Run("Cancel", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		rel := e.published("1.2.0", "gw-200", "B")
		a, _ := e.assign(dev.ID, rel.ID, T0)
		at := T0.Add(time.Hour)
		c, err := e.s.CancelAssignment(e.ctx, store.DefaultTenant, a.ID, "operator changed plans", Admin, at)
		if err != nil {
			t.Fatal(err)
		}
		if c.State != store.AssignCanceled || c.Active || c.Reason != "operator changed plans" || !c.UpdatedAt.Equal(at) || c.Version != "1.2.0" {
			t.Fatalf("canceled assignment = %+v", c)
		}
		stored, err := e.s.Assignment(e.ctx, store.DefaultTenant, a.ID)
		if err != nil || fmt.Sprint(stored) != fmt.Sprint(c) {
			t.Fatalf("stored = %+v, %v; want %+v", stored, err, c)
		}
		_, err = e.s.ActiveAssignment(e.ctx, store.DefaultTenant, dev.ID)
		wantErr(t, "active after cancel", err, store.ErrNotFound)
		before := e.auditSeq()
		_, err = e.s.CancelAssignment(e.ctx, store.DefaultTenant, a.ID, "again", Admin, at)
		wantErr(t, "cancel twice", err, store.ErrConflict, "canceled")
		_, err = e.s.CancelAssignment(e.ctx, store.DefaultTenant, "no-such-assignment", "", Admin, at)
		wantErr(t, "cancel unknown", err, store.ErrNotFound)
		if e.auditSeq() != before {
			t.Fatal("refused cancels were audited")
		}
		if got := e.auditActions(a.ID); !slices.Equal(got, []string{"assignment.create", "assignment.cancel"}) {
			t.Fatalf("audit of canceled assignment = %v", got)
		}
		// A superseded assignment has ended too.
		b, _ := e.assign(dev.ID, rel.ID, at)
		e.assign(dev.ID, rel.ID, at)
		_, err = e.s.CancelAssignment(e.ctx, store.DefaultTenant, b.ID, "", Admin, at)
		wantErr(t, "cancel superseded", err, store.ErrConflict, "superseded")
		e.verifyAudit()
	})
}
