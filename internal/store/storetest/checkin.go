package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// checkInState reads the device's check-in state and checks that the
// device part is the device as Device reads it, minus tags and groups.
func (e *releaseEnv) checkInState(deviceID string) (store.Device, *store.Assignment) {
	e.t.Helper()
	d, act, err := e.s.CheckInState(e.ctx, store.DefaultTenant, deviceID)
	if err != nil {
		e.t.Fatalf("check-in state of %s: %v", deviceID, err)
	}
	full, err := e.s.Device(e.ctx, store.DefaultTenant, deviceID)
	if err != nil {
		e.t.Fatalf("device %s: %v", deviceID, err)
	}
	full.Tags, full.Groups = nil, nil
	if !reflect.DeepEqual(d, full) {
		e.t.Fatalf("check-in state device\n%+v\nwant (Device without labels)\n%+v", d, full)
	}
	return d, act
}

// wantActive checks that act is the device's active assignment as
// ActiveAssignment reads it, or nil when it has none.
func (e *releaseEnv) wantActive(what, deviceID string, act *store.Assignment) {
	e.t.Helper()
	want, err := e.s.ActiveAssignment(e.ctx, store.DefaultTenant, deviceID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		if act != nil {
			e.t.Fatalf("%s: check-in state has assignment %+v, want none", what, *act)
		}
	case err != nil:
		e.t.Fatalf("%s: active assignment: %v", what, err)
	case act == nil:
		e.t.Fatalf("%s: check-in state has no assignment, want %+v", what, want)
	case !reflect.DeepEqual(*act, want):
		e.t.Fatalf("%s: check-in state assignment\n%+v\nwant\n%+v", what, *act, want)
	}
}

func (e *releaseEnv) assignmentState(id string) store.Assignment {
	e.t.Helper()
	a, err := e.s.Assignment(e.ctx, store.DefaultTenant, id)
	if err != nil {
		e.t.Fatalf("assignment %s: %v", id, err)
	}
	return a
}

func testCheckIn(t *testing.T, h Harness) {
	t.Run("StateFollowsTheActiveAssignment", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		other := e.device("gw-200", "B")
		if _, err := e.s.SetTags(e.ctx, store.DefaultTenant, dev.ID, []string{"lab"}, nil, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.SetGroups(e.ctx, store.DefaultTenant, dev.ID, []string{"canary"}, nil, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, err := e.s.UpdateDeviceReport(e.ctx, store.DefaultTenant, dev.ID, store.DeviceReport{
			Version: "1.0.0", TimeZone: "Europe/Berlin", Attributes: map[string]string{"kernel": "6.1.0"}, Now: T0,
		}); err != nil {
			t.Fatal(err)
		}

		d, act := e.checkInState(dev.ID)
		if act != nil || d.State != store.DeviceAccepted || d.Version != "1.0.0" || d.Attributes["kernel"] != "6.1.0" ||
			d.Tags != nil || d.Groups != nil {
			t.Fatalf("no assignment yet: device %+v, assignment %+v", d, act)
		}

		relA := e.published("1.1.0", "gw-200", "B")
		relB := e.published("1.2.0", "gw-200", "B")
		a, _ := e.assign(dev.ID, relA.ID, T0.Add(time.Minute))
		e.assign(other.ID, relB.ID, T0.Add(time.Minute)) // another device's work stays out
		_, act = e.checkInState(dev.ID)
		e.wantActive("assigned", dev.ID, act)
		if act.ID != a.ID || act.Version != "1.1.0" || act.State != store.AssignPending || !act.Active {
			t.Fatalf("assigned: %+v, want %s pending", *act, a.ID)
		}

		b, _ := e.assign(dev.ID, relB.ID, T0.Add(2*time.Minute))
		_, act = e.checkInState(dev.ID)
		e.wantActive("superseded", dev.ID, act)
		if act.ID != b.ID || act.Version != "1.2.0" {
			t.Fatalf("after supersede: %+v, want %s", *act, b.ID)
		}

		e.report(dev.ID, T0.Add(3*time.Minute), rep(b.ID, 1, store.AssignDownloading, 50))
		_, act = e.checkInState(dev.ID)
		e.wantActive("downloading", dev.ID, act)
		if act.State != store.AssignDownloading || act.Progress != 50 {
			t.Fatalf("downloading: %+v", *act)
		}

		e.report(dev.ID, T0.Add(4*time.Minute), rep(b.ID, 2, store.AssignSucceeded, 100))
		d, act = e.checkInState(dev.ID)
		e.wantActive("succeeded", dev.ID, act)
		if act != nil || d.Version != "1.2.0" {
			t.Fatalf("after success: device version %s, assignment %+v", d.Version, act)
		}
	})

	t.Run("DecommissionedDevice", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		e.assign(dev.ID, e.published("1.1.0", "gw-200", "B").ID, T0)
		if _, err := e.s.DecommissionDevice(e.ctx, store.DefaultTenant, dev.ID, Admin, T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		d, act := e.checkInState(dev.ID)
		e.wantActive("decommissioned", dev.ID, act)
		if d.State != store.DeviceDecommissioned || d.CredentialEpoch <= dev.CredentialEpoch || act != nil {
			t.Fatalf("decommissioned: device %+v (epoch was %d), assignment %+v", d, dev.CredentialEpoch, act)
		}
	})

	t.Run("PendingDevice", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.pendingDevice("gw-200", "B")
		d, act := e.checkInState(dev.ID)
		if d.State != store.DevicePending || d.PendingExpiresAt == nil || act != nil {
			t.Fatalf("pending: device %+v, assignment %+v", d, act)
		}
	})

	t.Run("UnknownDevice", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		for _, c := range []struct{ name, tenant, id string }{
			{"UnknownID", store.DefaultTenant, "no-such-device"},
			{"OtherTenant", "other", dev.ID},
			{"Empty", store.DefaultTenant, ""},
		} {
			d, act, err := e.s.CheckInState(e.ctx, c.tenant, c.id)
			if !errors.Is(err, store.ErrNotFound) || act != nil || d.ID != "" {
				t.Fatalf("%s: device %+v, assignment %+v, err %v; want ErrNotFound", c.name, d, act, err)
			}
		}
	})

	t.Run("ConcurrentReadsAndClose", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		devs := []store.Device{e.device("gw-200", "B"), e.device("gw-200", "B")}
		a, _ := e.assign(devs[1].ID, e.published("1.1.0", "gw-200", "B").ID, T0)
		var wg sync.WaitGroup
		errs := make(chan error, 16)
		for g := range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range 50 {
					dev := devs[(g+i)%2]
					d, act, err := e.s.CheckInState(e.ctx, store.DefaultTenant, dev.ID)
					switch {
					case err != nil:
						errs <- err
						return
					case d.ID != dev.ID || (act != nil) != (dev.ID == devs[1].ID) || (act != nil && act.ID != a.ID):
						errs <- fmt.Errorf("device %s: got device %s, assignment %+v", dev.ID, d.ID, act)
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		if err := e.s.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		if _, _, err := e.s.CheckInState(e.ctx, store.DefaultTenant, devs[0].ID); err == nil || errors.Is(err, store.ErrNotFound) {
			t.Fatalf("check-in state on a closed store: err %v, want a failure", err)
		}
	})

	t.Run("MarkNotified", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		rel := e.published("1.1.0", "gw-200", "B")
		a, _ := e.assign(dev.ID, rel.ID, T0)
		audited := e.auditSeq()

		at := T0.Add(time.Minute)
		changed, err := e.s.MarkNotified(e.ctx, store.DefaultTenant, a.ID, at)
		if err != nil || !changed {
			t.Fatalf("first delivery: changed %v, err %v", changed, err)
		}
		got := e.assignmentState(a.ID)
		if got.State != store.AssignNotified || !got.Active || !got.UpdatedAt.Equal(at) {
			t.Fatalf("after first delivery: %+v", got)
		}
		_, act := e.checkInState(dev.ID)
		e.wantActive("notified", dev.ID, act)

		// Later deliveries change nothing, not even the update time.
		changed, err = e.s.MarkNotified(e.ctx, store.DefaultTenant, a.ID, at.Add(time.Minute))
		if err != nil || changed {
			t.Fatalf("second delivery: changed %v, err %v", changed, err)
		}
		if again := e.assignmentState(a.ID); !reflect.DeepEqual(again, got) {
			t.Fatalf("second delivery wrote: %+v, was %+v", again, got)
		}
		if e.auditSeq() != audited {
			t.Fatal("marking an assignment notified was audited")
		}

		// A device that reported first, and an ended assignment, keep their state.
		b, _ := e.assign(dev.ID, rel.ID, T0.Add(2*time.Minute))
		e.report(dev.ID, T0.Add(3*time.Minute), rep(b.ID, 1, store.AssignDownloading, 10))
		for _, c := range []struct {
			name string
			id   string
			want store.AssignmentState
		}{
			{"Reported", b.ID, store.AssignDownloading},
			{"Superseded", a.ID, store.AssignSuperseded},
		} {
			before := e.assignmentState(c.id)
			changed, err := e.s.MarkNotified(e.ctx, store.DefaultTenant, c.id, T0.Add(4*time.Minute))
			if err != nil || changed {
				t.Fatalf("%s: changed %v, err %v", c.name, changed, err)
			}
			if after := e.assignmentState(c.id); after.State != c.want || !reflect.DeepEqual(after, before) {
				t.Fatalf("%s: %+v, want unchanged in state %s", c.name, after, c.want)
			}
		}

		for _, c := range []struct{ name, tenant, id string }{
			{"UnknownID", store.DefaultTenant, "no-such-assignment"},
			{"OtherTenant", "other", b.ID},
		} {
			if changed, err := e.s.MarkNotified(e.ctx, c.tenant, c.id, T0); !errors.Is(err, store.ErrNotFound) || changed {
				t.Fatalf("%s: changed %v, err %v; want ErrNotFound", c.name, changed, err)
			}
		}
	})
}
