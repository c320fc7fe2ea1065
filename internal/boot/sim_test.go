package boot_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/devfs"
)

// device is a simulated device for the tests: a crash-testing disk and the
// simulated bootloader on it.
type device struct {
	t    *testing.T
	ctx  context.Context
	disk *devfs.CrashFS
	sim  *boot.Sim
}

func newDevice(t *testing.T, scheme boot.Scheme, attempts int) *device {
	t.Helper()
	disk := devfs.NewCrashFS()
	if err := disk.MkdirAll("boot", 0o755); err != nil {
		t.Fatal(err)
	}
	disk.SyncAll()
	sim, err := boot.NewSim(boot.SimConfig{FS: disk, Env: "boot/env", Scheme: scheme, Attempts: attempts})
	if err != nil {
		t.Fatal(err)
	}
	return &device{t: t, ctx: context.Background(), disk: disk, sim: sim}
}

// boot powers the device on and requires it to start want.
func (d *device) boot(want string) {
	d.t.Helper()
	got, err := d.sim.Boot(d.ctx)
	if err != nil || got != want {
		d.t.Fatalf("Boot = %q, %v; want %q (env %v)", got, err, want, d.vars())
	}
	cur, err := d.sim.Current(d.ctx)
	if err != nil || cur != want {
		d.t.Fatalf("Current after booting %s = %q, %v", want, cur, err)
	}
}

func (d *device) vars() map[string]string {
	v, err := d.sim.Vars(d.ctx)
	if err != nil {
		d.t.Fatalf("Vars: %v", err)
	}
	return v
}

func (d *device) do(err error) {
	d.t.Helper()
	if err != nil {
		d.t.Fatal(err)
	}
}

func (d *device) wantPrimary(want string) {
	d.t.Helper()
	got, err := d.sim.Primary(d.ctx)
	if err != nil || got != want {
		d.t.Fatalf("Primary = %q, %v; want %q (env %v)", got, err, want, d.vars())
	}
}

func (d *device) wantState(slot string, want boot.State) {
	d.t.Helper()
	got, err := d.sim.State(d.ctx, slot)
	if err != nil || got != want {
		d.t.Fatalf("State(%s) = %q, %v; want %q (env %v)", slot, got, err, want, d.vars())
	}
}

// tries is how many boots a freshly primary slot gets under scheme.
func tries(scheme boot.Scheme, attempts int) int {
	if scheme == boot.SchemeRAUCGRUB {
		return 1
	}
	return attempts
}

var schemes = []boot.Scheme{boot.SchemeRAUCUBoot, boot.SchemeRAUCGRUB, boot.SchemeBootcount}

// TestSimTryThenFallBack runs the agent's install order against every
// scheme's simulated boot script: mark the target bad, make it primary,
// and never mark it good; the bootloader must try it the configured
// number of times and then fall back on its own.
func TestSimTryThenFallBack(t *testing.T) {
	t.Parallel()
	for _, scheme := range schemes {
		for _, attempts := range []int{1, 3} {
			t.Run(fmt.Sprintf("%s/%d", scheme, attempts), func(t *testing.T) {
				t.Parallel()
				d := newDevice(t, scheme, attempts)
				d.boot("A")
				d.do(d.sim.SetState(d.ctx, "A", boot.Good))

				d.do(d.sim.SetState(d.ctx, "B", boot.Bad))
				d.wantState("B", boot.Bad)
				d.wantPrimary("A")
				d.boot("A") // a reboot while B is being written stays on A
				d.do(d.sim.SetState(d.ctx, "A", boot.Good))

				d.do(d.sim.SetPrimary(d.ctx, "B"))
				d.wantPrimary("B")
				d.wantState("B", boot.Good)
				for range tries(scheme, attempts) {
					d.boot("B") // comes up but never passes its health check
				}
				d.boot("A")
				d.wantState("B", boot.Bad)
				// The agent sees it runs A although it installed B: it marks
				// B bad (otherwise a scheme that resets its counters would
				// try B again) and A good.
				d.do(d.sim.SetState(d.ctx, "B", boot.Bad))
				d.do(d.sim.SetState(d.ctx, "A", boot.Good))
				d.wantPrimary("A")
				for range 5 {
					d.boot("A")
					d.do(d.sim.SetState(d.ctx, "A", boot.Good))
				}
			})
		}
	}
}

func TestSimMarkGoodResetsTries(t *testing.T) {
	t.Parallel()
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			t.Parallel()
			d := newDevice(t, scheme, 3)
			d.boot("A")
			d.do(d.sim.SetState(d.ctx, "A", boot.Good))
			d.do(d.sim.SetState(d.ctx, "B", boot.Bad))
			d.do(d.sim.SetPrimary(d.ctx, "B"))
			d.boot("B")
			d.do(d.sim.SetState(d.ctx, "B", boot.Good))
			d.wantState("B", boot.Good)
			d.wantPrimary("B")
			// Marked good after every boot, B stays forever.
			for range 10 {
				d.boot("B")
				d.do(d.sim.SetState(d.ctx, "B", boot.Good))
			}
			d.wantState("A", boot.Good) // the old slot remains a fallback
		})
	}
}

// TestSimUBootCounters pins the RAUC U-Boot variables themselves, which
// real boot scripts read.
func TestSimUBootCounters(t *testing.T) {
	t.Parallel()
	d := newDevice(t, "", 0)
	if v := d.vars(); len(v) != 0 {
		t.Fatalf("fresh environment = %v, want empty", v)
	}
	d.wantPrimary("A")
	d.wantState("A", boot.Good)
	d.wantState("B", boot.Good)
	d.boot("A")
	want := map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"}
	if got := d.vars(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("after first boot env = %v, want %v", got, want)
	}
	b, err := devfs.ReadFile(d.disk, "boot/env", 0)
	if err != nil || string(b) != "BOOT_A_LEFT=2\nBOOT_B_LEFT=3\nBOOT_ORDER=A B\n" {
		t.Fatalf("env file = %q, %v", b, err)
	}
	steps := []struct {
		do   func() error
		want map[string]string
	}{
		{func() error { return d.sim.SetState(d.ctx, "A", boot.Good) },
			map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}},
		{func() error { return d.sim.SetState(d.ctx, "B", boot.Bad) },
			map[string]string{"BOOT_ORDER": "A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "0"}},
		{func() error { return d.sim.SetPrimary(d.ctx, "B") },
			map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}},
		{func() error { _, err := d.sim.Boot(d.ctx); return err },
			map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "2"}},
		{func() error { return d.sim.SetState(d.ctx, "B", boot.Good) },
			map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}},
		{func() error { return d.sim.SetState(d.ctx, "A", boot.Bad) },
			map[string]string{"BOOT_ORDER": "B", "BOOT_A_LEFT": "0", "BOOT_B_LEFT": "3"}},
		{func() error { return d.sim.SetState(d.ctx, "A", boot.Good) },
			map[string]string{"BOOT_ORDER": "B A", "BOOT_A_LEFT": "3", "BOOT_B_LEFT": "3"}},
	}
	for i, s := range steps {
		d.do(s.do())
		if got := d.vars(); fmt.Sprint(got) != fmt.Sprint(s.want) {
			t.Fatalf("step %d: env = %v, want %v", i, got, s.want)
		}
	}
}

func TestSimMarkBadRemovesFromOrder(t *testing.T) {
	t.Parallel()
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			t.Parallel()
			d := newDevice(t, scheme, 3)
			d.boot("A")
			d.do(d.sim.SetPrimary(d.ctx, "B"))
			d.boot("B")
			// The health check failed: mark the running slot bad and reboot.
			d.do(d.sim.SetState(d.ctx, "B", boot.Bad))
			d.wantPrimary("A")
			d.wantState("B", boot.Bad)
			for range 7 {
				d.boot("A")
				d.do(d.sim.SetState(d.ctx, "A", boot.Good))
			}
			d.wantState("B", boot.Bad)
		})
	}
}

// TestSimAllBadBootsSomething: a device whose every slot is marked bad still
// boots (the scripts reset their counters or take a last resort) rather than
// looping forever.
func TestSimAllBadBootsSomething(t *testing.T) {
	t.Parallel()
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			t.Parallel()
			d := newDevice(t, scheme, 3)
			d.boot("A")
			d.do(d.sim.SetState(d.ctx, "B", boot.Bad))
			d.do(d.sim.SetState(d.ctx, "A", boot.Bad))
			d.boot("A")
		})
	}
}

func TestSimErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := newDevice(t, "", 0)
	if _, err := d.sim.Current(ctx); !errors.Is(err, boot.ErrNotBooted) {
		t.Fatalf("Current before Boot = %v", err)
	}
	if err := d.sim.SetPrimary(ctx, "C"); !errors.Is(err, boot.ErrUnknownSlot) {
		t.Fatalf("SetPrimary(C) = %v", err)
	}
	if _, err := d.sim.State(ctx, "A B"); !errors.Is(err, boot.ErrInvalidSlotName) {
		t.Fatalf("State(\"A B\") = %v", err)
	}
	if err := d.sim.SetState(ctx, "A", "meh"); err == nil {
		t.Fatal("SetState accepted an invalid state")
	}
	// An order naming no known slot resets the board forever.
	if err := devfs.WriteFileAtomic(d.disk, "boot/env", []byte("BOOT_ORDER=C\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sim.Boot(ctx); !errors.Is(err, boot.ErrNoBootableSlot) {
		t.Fatalf("Boot with BOOT_ORDER=C = %v", err)
	}
	if _, err := d.sim.Primary(ctx); err == nil {
		t.Fatal("Primary with BOOT_ORDER=C succeeded")
	}
	// A corrupt environment is an error, not a silent default.
	if err := devfs.WriteFileAtomic(d.disk, "boot/env", []byte("garbage\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := d.sim.Boot(ctx); err == nil {
		t.Fatal("Boot with a corrupt environment succeeded")
	}
	for _, cfg := range []boot.SimConfig{
		{},
		{FS: d.disk, Env: "e", Slots: []string{"A", "A"}},
		{FS: d.disk, Env: "e", Slots: []string{"A/B"}},
		{FS: d.disk, Env: "e", Attempts: -1},
		{FS: d.disk, Env: "e", Scheme: "barebox"},
	} {
		if _, err := boot.NewSim(cfg); err == nil {
			t.Errorf("NewSim(%+v) succeeded", cfg)
		}
	}
}

// TestSimPowerCutDuringInstall cuts power at every disk operation of the
// bootloader part of an install (mark the target bad, make it primary)
// under every crash mode, and requires the device to boot the old slot
// unless the switch was reported done, and the new slot if it was.
func TestSimPowerCutDuringInstall(t *testing.T) {
	t.Parallel()
	for _, scheme := range schemes {
		t.Run(string(scheme), func(t *testing.T) {
			t.Parallel()
			base := newDevice(t, scheme, 3)
			base.boot("A")
			base.do(base.sim.SetState(base.ctx, "A", boot.Good))
			install := func(s *boot.Sim) (bool, error) {
				if err := s.SetState(context.Background(), "B", boot.Bad); err != nil {
					return false, err
				}
				return true, s.SetPrimary(context.Background(), "B")
			}
			dry := base.disk.Clone()
			before := dry.Ops()
			sim := newSimOn(t, dry, scheme)
			if _, err := install(sim); err != nil {
				t.Fatal(err)
			}
			total := dry.Ops() - before
			sawOld, sawNew := false, false
			for n := 0; n <= total; n++ {
				for _, mode := range []devfs.CrashMode{devfs.DropUnsynced, devfs.KeepData, devfs.KeepNames} {
					disk := base.disk.Clone()
					sim := newSimOn(t, disk, scheme)
					disk.CutAfter(n)
					markedBad, err := install(sim)
					disk.CrashWith(mode)
					got, berr := sim.Boot(context.Background())
					switch {
					case berr != nil:
						t.Fatalf("cut after %d/%d, mode %d: Boot: %v", n, total, mode, berr)
					case err == nil && got != "B":
						t.Fatalf("cut after %d/%d, mode %d: install succeeded but booted %s", n, total, mode, got)
					case err != nil && !markedBad && got != "A":
						t.Fatalf("cut after %d/%d, mode %d: booted %s before B was even marked bad", n, total, mode, got)
					}
					sawOld = sawOld || got == "A"
					sawNew = sawNew || got == "B"
				}
			}
			if !sawOld || !sawNew {
				t.Fatalf("cuts produced old=%v new=%v; want both", sawOld, sawNew)
			}
		})
	}
}

func newSimOn(t *testing.T, disk *devfs.CrashFS, scheme boot.Scheme) *boot.Sim {
	t.Helper()
	sim, err := boot.NewSim(boot.SimConfig{FS: disk, Env: "boot/env", Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return sim
}

func TestSimConcurrentUse(t *testing.T) {
	t.Parallel()
	d := newDevice(t, "", 0)
	d.boot("A")
	done := make(chan error, 4)
	for i := range 4 {
		go func() {
			for range 25 {
				var err error
				switch i {
				case 0:
					err = d.sim.SetState(d.ctx, "A", boot.Good)
				case 1:
					_, err = d.sim.Primary(d.ctx)
				case 2:
					_, err = d.sim.State(d.ctx, "B")
				case 3:
					_, err = d.sim.Current(d.ctx)
				}
				if err != nil {
					done <- err
					return
				}
			}
			done <- nil
		}()
	}
	for range 4 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	d.wantState("A", boot.Good)
}
