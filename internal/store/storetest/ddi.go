package storetest

import (
	"errors"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func testDDI(t *testing.T, h Harness) {
	t.Parallel()
	e := newReleaseEnv(t, h)
	reg := func(cid string, now time.Time, maxPending int) (store.Device, bool, error) {
		return e.s.RegisterDDIDevice(e.ctx, store.RegisterDDIParams{
			TenantID: store.DefaultTenant, ControllerID: cid, DeviceType: "gw", HWRev: "1",
			Now: now, PendingTTL: time.Hour, MaxPending: maxPending,
		})
	}
	d, created, err := reg("ctrl-1", T0, 2)
	if err != nil || !created {
		t.Fatalf("register: created=%v err=%v", created, err)
	}
	if d.State != store.DevicePending || d.Protocol != store.ProtocolDDI || d.Serial != "ctrl-1" || d.DeviceType != "gw" || d.HWRev != "1" {
		t.Fatalf("registered device %+v", d)
	}
	again, created, err := reg("ctrl-1", T0.Add(time.Minute), 2)
	if err != nil || created || again.ID != d.ID {
		t.Fatalf("second registration: %+v created=%v err=%v", again, created, err)
	}
	if got, err := e.s.DDIDevice(e.ctx, store.DefaultTenant, "ctrl-1"); err != nil || got.ID != d.ID {
		t.Fatalf("DDIDevice: %+v %v", got, err)
	}
	if _, err := e.s.DDIDevice(e.ctx, store.DefaultTenant, "nobody"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("DDIDevice(unknown) = %v, want ErrNotFound", err)
	}
	if _, _, err := reg("ctrl-2", T0, 2); err != nil {
		t.Fatalf("register second: %v", err)
	}
	if _, _, err := reg("ctrl-3", T0, 2); !errors.Is(err, store.ErrPendingLimit) {
		t.Fatalf("third pending registration = %v, want ErrPendingLimit", err)
	}
	// An expired pending registration is replaced by a new device.
	fresh, created, err := reg("ctrl-1", T0.Add(2*time.Hour), 5)
	if err != nil || !created || fresh.ID == d.ID {
		t.Fatalf("registration after expiry: %+v created=%v err=%v", fresh, created, err)
	}
	if _, _, err := reg("bad\x00id", T0, 0); !errors.Is(err, store.ErrInvalidRequest) {
		t.Fatalf("controller id with NUL = %v, want ErrInvalidRequest", err)
	}

	dev, err := e.s.AcceptDevice(e.ctx, store.DefaultTenant, fresh.ID, Admin, T0)
	if err != nil {
		t.Fatalf("accept: %v", err)
	}
	r1 := e.published("1.0.0", "gw", "1")
	r2 := e.published("2.0.0", "gw", "1")
	a1, _ := e.assign(dev.ID, r1.ID, T0)
	a2, _ := e.assign(dev.ID, r2.ID, T0)
	id1, err := e.s.DDIActionID(e.ctx, store.DefaultTenant, a1.ID, T0)
	if err != nil || id1 <= 0 {
		t.Fatalf("action id: %d %v", id1, err)
	}
	id2, err := e.s.DDIActionID(e.ctx, store.DefaultTenant, a2.ID, T0)
	if err != nil || id2 <= 0 || id2 == id1 {
		t.Fatalf("second action id: %d (first %d) %v", id2, id1, err)
	}
	if again, err := e.s.DDIActionID(e.ctx, store.DefaultTenant, a1.ID, T0); err != nil || again != id1 {
		t.Fatalf("action id is not stable: %d, want %d (%v)", again, id1, err)
	}
	if got, err := e.s.DDIActionAssignment(e.ctx, store.DefaultTenant, id2); err != nil || got != a2.ID {
		t.Fatalf("DDIActionAssignment(%d) = %q %v, want %q", id2, got, err, a2.ID)
	}
	if _, err := e.s.DDIActionAssignment(e.ctx, store.DefaultTenant, id2+100); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown action = %v, want ErrNotFound", err)
	}
	if _, err := e.s.DDIActionID(e.ctx, store.DefaultTenant, "no-such-assignment", T0); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("action id of unknown assignment = %v, want ErrNotFound", err)
	}
}
