package agent_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/store"
)

// lastEvent returns the last report of an assignment.
func lastEvent(t *testing.T, srv *server, id string) store.AssignmentEvent {
	t.Helper()
	evs := srv.events(id)
	if len(evs) == 0 {
		t.Fatal("no reports")
	}
	return evs[len(evs)-1]
}

// lastMessage is the message of the last report, or "".
func lastMessage(srv *server, id string) string {
	evs := srv.events(id)
	if len(evs) == 0 {
		return ""
	}
	return evs[len(evs)-1].Message
}

// TestBadImageRollsBack: the new image boots but fails its health check;
// the agent marks it bad, switches back, reboots and reports rolled-back
// with the reason and a log tail.
func TestBadImageRollsBack(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{})
	writeFactory(t, d)
	d.health = healthyUnlessBad
	img := image("BAD", 200<<10, 3)
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", img))
	d.finished(asg.ID)

	got := srv.assignment(asg.ID)
	if got.State != store.AssignRolledBack {
		t.Fatalf("assignment %s, want rolled-back", got.State)
	}
	last := lastEvent(t, srv, asg.ID)
	if last.ErrorCode != "health-check" || !strings.Contains(last.Message, "firmwared crashed") || !strings.Contains(last.LogTail, "rolling back") {
		t.Fatalf("rolled-back report %+v", last.StatusReport)
	}
	if want := "downloading,installing,rebooting,verifying,rolled-back"; !strings.HasSuffix(joined(srv.states(asg.ID)), want) {
		t.Fatalf("reported %s", joined(srv.states(asg.ID)))
	}
	if st := d.a.Status(); d.current() != "A" || st.Version != "1.0.0" || st.Result.State != "rolled-back" {
		t.Fatalf("after rollback: booted %s, status %+v", d.current(), st)
	}
	if s, _ := d.boot.State(context.Background(), "B"); s != boot.Bad {
		t.Fatalf("slot B is %s after the rollback, want bad", s)
	}
	checkBootable(t, d, img, "after rollback")
}

// TestNewSlotNeverBoots: the bootloader tries the new slot, it never comes
// up, the bootloader falls back after its tries; the agent notices and
// reports it.
func TestNewSlotNeverBoots(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{})
	writeFactory(t, d)
	d.broken["B"] = true
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", image("GOOD", 100<<10, 4)))
	d.finished(asg.ID)
	if got := srv.assignment(asg.ID); got.State != store.AssignRolledBack {
		t.Fatalf("assignment %s, want rolled-back", got.State)
	}
	last := lastEvent(t, srv, asg.ID)
	if last.ErrorCode != "boot-fallback" || !strings.Contains(last.Message, "fell back to slot A") {
		t.Fatalf("report %+v", last.StatusReport)
	}
	if d.bootN < 4 || d.current() != "A" {
		t.Fatalf("boots %d current %s: the bootloader should have tried B three times", d.bootN, d.current())
	}
}

// TestGatesBlockThenAllow: a low battery holds the download back and is
// reported as "notified" naming the gate; once charging, the update runs.
// A hot device then holds the install, even for a forced assignment.
func TestGatesBlockThenAllow(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	battery := gate.Battery{Percent: 12}
	temp, hotOnceDownloading := 40.0, false
	maxTemp := 70.0
	var d *device
	d = newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Gates.MinBattery = 30
		c.Gates.MaxTemperatureC = &maxTemp
		c.Sensors.Battery = func(context.Context) (gate.Battery, error) { return battery, nil }
		c.Sensors.Temperature = func(context.Context) (float64, error) {
			if hotOnceDownloading && d.a.Status().Phase == agent.PhaseDownloading {
				return 85, nil
			}
			return temp, nil
		}
	}})
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", image("GOOD", 100<<10, 5)))
	d.until("notified", 20, func() bool { return strings.Contains(lastMessage(srv, asg.ID), "waiting to download") })
	ev := lastEvent(t, srv, asg.ID)
	if ev.State != store.AssignNotified || !strings.Contains(ev.Message, "battery") || !strings.Contains(ev.Message, "12%") {
		t.Fatalf("notified report %+v", ev.StatusReport)
	}
	reports := func() int {
		n := 0
		for _, ev := range srv.events(asg.ID) {
			if strings.Contains(ev.Message, "waiting to download") {
				n++
			}
		}
		return n
	}
	// Blocked for hours: one report, not one per poll.
	for range 20 {
		d.step(context.Background())
		srv.clock.Advance(10 * time.Minute)
	}
	if n := reports(); n != 1 {
		t.Fatalf("%d gate reports while blocked, want 1", n)
	}
	battery.Charging = true
	hotOnceDownloading = true
	d.until("downloaded and held by temperature", 50, func() bool {
		return strings.Contains(lastMessage(srv, asg.ID), "temperature")
	})
	if st := d.a.Status(); st.Phase != agent.PhaseDownloading {
		t.Fatalf("phase %s while the temperature gate blocks the install", st.Phase)
	}
	hotOnceDownloading = false
	d.finished(asg.ID)
	if got := srv.assignment(asg.ID); got.State != store.AssignSucceeded {
		t.Fatalf("assignment %s", got.State)
	}
}

// TestCancelBeforePointOfNoReturn: a downloaded update held by a gate is
// canceled by the operator; the agent stops, leaves the old slot primary
// and acknowledges with "canceled". A superseding assignment then runs.
func TestCancelBeforePointOfNoReturn(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	// The battery runs low once the download has started, so the
	// downloaded update waits before its install.
	battery, lowOnceStarted := gate.Battery{Percent: 90}, false
	var d *device
	d = newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Gates.MinBattery = 30
		c.Sensors.Battery = func(context.Context) (gate.Battery, error) {
			if lowOnceStarted && d.a.Status().Phase == agent.PhaseDownloading {
				return gate.Battery{Percent: 5}, nil
			}
			return battery, nil
		}
	}})
	writeFactory(t, d)
	id := d.deviceID()
	lowOnceStarted = true
	asg := srv.assign(id, srv.image("2.0.0", image("GOOD", 100<<10, 6)))
	d.until("held before install", 20, func() bool { return strings.Contains(lastMessage(srv, asg.ID), "waiting to install") })
	if _, err := srv.store.CancelAssignment(srv.ctx, store.DefaultTenant, asg.ID, "operator changed their mind", admin, srv.clock.Now()); err != nil {
		t.Fatal(err)
	}
	d.until("canceled", 20, func() bool {
		st := d.a.Status()
		return st.Phase == agent.PhaseIdle && st.Result != nil && st.Result.State == "canceled" && st.Outbox == 0
	})
	if s := joined(srv.states(asg.ID)); !strings.HasSuffix(s, "canceled") {
		t.Fatalf("reported %s", s)
	}
	if p, _ := d.boot.Primary(context.Background()); p != "A" || d.current() != "A" {
		t.Fatalf("primary %s current %s after cancel", p, d.current())
	}

	// Supersede: a new assignment replaces one in progress.
	first := srv.assign(id, srv.image("3.0.0", image("GOOD", 100<<10, 7)))
	d.until("held", 20, func() bool { return strings.Contains(lastMessage(srv, first.ID), "waiting to install") })
	second := srv.assign(id, srv.image("3.0.1", image("GOOD", 100<<10, 8)))
	d.until("3.0.0 abandoned", 20, func() bool { return d.a.Status().AssignmentID == second.ID })
	lowOnceStarted = false
	d.finished(second.ID)
	if got := srv.assignment(second.ID); got.State != store.AssignSucceeded || d.a.Status().Version != "3.0.1" {
		t.Fatalf("second assignment %s, version %s", got.State, d.a.Status().Version)
	}
	if s := joined(srv.states(first.ID)); !strings.HasSuffix(s, "canceled") {
		t.Fatalf("superseded assignment reported %s", s)
	}
}

// TestCancelAfterPointOfNoReturn: the cancel arrives once the new slot is
// primary; the agent answers "too late" and finishes the update.
func TestCancelAfterPointOfNoReturn(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	var asgID string
	canceled := false
	d := newDevice(t, srv, deviceOptions{})
	d.cfg.Reboot = func(context.Context) error {
		if !canceled {
			canceled = true
			if _, err := srv.store.CancelAssignment(srv.ctx, store.DefaultTenant, asgID, "too slow", admin, srv.clock.Now()); err != nil {
				return err
			}
		}
		return nil
	}
	d.start()
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", image("GOOD", 100<<10, 9)))
	asgID = asg.ID
	d.until("done", 100, func() bool {
		st := d.a.Status()
		return st.Phase == agent.PhaseIdle && st.Result != nil && st.Outbox == 0
	})
	if st := d.a.Status(); st.Result.State != "succeeded" || st.Version != "2.0.0" || d.current() != "B" {
		t.Fatalf("status %+v booted %s", st, d.current())
	}
	var tooLate bool
	for _, ev := range srv.events(asg.ID) {
		if ev.ErrorCode == "too-late" && strings.Contains(ev.Message, "point of no return") {
			tooLate = true
		}
	}
	if !tooLate {
		t.Fatalf("no too-late report in %s", joined(srv.states(asg.ID)))
	}
	if got := srv.assignment(asg.ID); got.State != store.AssignCanceled {
		t.Fatalf("server state %s: the operator's cancel stays, the device's reports are history", got.State)
	}
}

// TestServerOutageLosesNoReport: the server disappears while the update
// runs and the device is power-cycled during the outage; when the server
// is back, every report arrives, in order, without gaps.
func TestServerOutageLosesNoReport(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Health.ServerWindow = 24 * time.Hour
		c.Timing.BackoffMax = 5 * time.Minute
	}})
	id := d.deviceID()
	asg := srv.assign(id, srv.image("2.0.0", image("GOOD", 300<<10, 10)))
	d.until("downloading", 20, func() bool { return d.a.Status().Phase != agent.PhaseIdle })
	srv.setDown(true)
	d.until("verifying while the server is down", 100, func() bool { return d.a.Status().Phase == agent.PhaseVerifying })
	if n := d.a.Status().Outbox; n < 3 {
		t.Fatalf("outbox holds %d reports during the outage, want the queued transitions", n)
	}
	d.powerCycle()
	start := srv.clock.Now()
	for srv.clock.Now().Sub(start) < 2*time.Hour {
		wait, err := d.step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if d.a.Status().Phase != agent.PhaseVerifying {
			t.Fatalf("left verifying without the server: %s", d.a.Status().Phase)
		}
		srv.clock.Advance(max(wait, time.Second))
	}
	srv.setDown(false)
	d.finished(asg.ID)
	if s := joined(srv.states(asg.ID)); !strings.HasSuffix(s, "installing,rebooting,verifying,succeeded") {
		t.Fatalf("reported %s", s)
	}
	gaps, err := srv.store.ReportGaps(srv.ctx, store.DefaultTenant, id)
	if err != nil || len(gaps) != 0 {
		t.Fatalf("gaps %+v %v", gaps, err)
	}
}

// TestServerUnreachableBacksOff: with the server gone the agent's waits
// grow exponentially up to the cap.
func TestServerUnreachableBacksOff(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Timing.BackoffMin = 10 * time.Second
		c.Timing.BackoffMax = 10 * time.Minute
		c.Timing.DisableTelemetry = true
	}})
	d.deviceID()
	srv.setDown(true)
	var waits []time.Duration
	for range 12 {
		wait, err := d.step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, wait)
		srv.clock.Advance(max(wait, time.Second))
	}
	last := waits[len(waits)-1]
	if last < 5*time.Minute || last > 10*time.Minute {
		t.Fatalf("waits %v: the last should sit between half the cap and the cap", waits)
	}
	if waits[2] >= waits[6] {
		t.Fatalf("waits %v do not grow", waits)
	}
	srv.setDown(false)
	srv.clock.Advance(last)
	if _, err := d.step(context.Background()); err != nil {
		t.Fatal(err)
	}
	if wait, _ := d.step(context.Background()); wait > 2*time.Minute {
		t.Fatalf("after the server is back the agent waits %v (poll interval is 1m)", wait)
	}
}

// TestKill9Restarts restarts the agent process (no power cut, same boot)
// after every step of an update.
func TestKill9Restarts(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{})
	img := image("GOOD", 200<<10, 11)
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", img))
	ctx := context.Background()
	for i := 0; i < 200; i++ {
		st := d.a.Status()
		if st.Phase == agent.PhaseIdle && st.Outbox == 0 && !srv.assignment(asg.ID).Active {
			break
		}
		wait, err := d.step(ctx)
		if err != nil {
			t.Fatal(err)
		}
		d.restart()
		srv.clock.Advance(max(wait, time.Second))
	}
	if got := srv.assignment(asg.ID); got.State != store.AssignSucceeded || d.current() != "B" {
		t.Fatalf("assignment %s booted %s\n%s", got.State, d.current(), d.logTail())
	}
	checkBootable(t, d, img, "after kill -9 restarts")
}

// TestPendingEnrollment: a device whose key nobody preauthorized waits,
// polling at the server's retry_after, until an operator accepts it; its
// generated key survives restarts.
func TestPendingEnrollment(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{noPreauth: true, seed: 77})
	d.until("pending", 5, func() bool { return d.a.Status().DeviceID != "" })
	id := d.a.Status().DeviceID
	dev, err := srv.store.Device(srv.ctx, store.DefaultTenant, id)
	if err != nil || dev.State != store.DevicePending {
		t.Fatalf("device %+v %v", dev, err)
	}
	wait, _ := d.step(context.Background())
	if wait < 50*time.Second || wait > 70*time.Second {
		t.Fatalf("pending device waits %v, want about the server's 60 s", wait)
	}
	d.powerCycle()
	if _, err := srv.store.AcceptDevice(srv.ctx, store.DefaultTenant, id, admin, srv.clock.Now()); err != nil {
		t.Fatal(err)
	}
	asg := srv.assign(id, srv.image("2.0.0", image("GOOD", 10<<10, 12)))
	d.finished(asg.ID)
	if d.a.Status().DeviceID != id {
		t.Fatalf("device id changed to %s", d.a.Status().DeviceID)
	}
}
