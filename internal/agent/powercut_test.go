package agent_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/store"
)

// factory is slot A's content when the device leaves the factory.
var factory = image("FACTORY", 64<<10, 99)

func writeFactory(t testing.TB, d *device) {
	t.Helper()
	f, err := d.fs.OpenFile("dev/slot-a", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(factory, 0); err != nil {
		t.Fatal(err)
	}
	f.Close()
	d.fs.SyncAll()
}

// checkBootable fails unless the booted slot holds a complete image: the
// factory image in A, or the new image in B.
func checkBootable(t testing.TB, d *device, img []byte, when string) {
	t.Helper()
	switch cur := d.current(); cur {
	case "A":
		if !bytes.HasPrefix(d.slotContent("A"), factory) {
			t.Fatalf("%s: booted A, which no longer holds the factory image", when)
		}
	case "B":
		if !bytes.HasPrefix(d.slotContent("B"), img) {
			t.Fatalf("%s: booted B, which does not hold the complete new image", when)
		}
	default:
		t.Fatalf("%s: booted unknown slot %q", when, cur)
	}
}

// TestPowerCutAtEveryStep cuts power at every counted filesystem operation
// of a whole update (state transitions, outbox writes, checkpoints, slot
// writes and syncs), under each crash mode, then restarts the device and
// requires that it always boots a complete image and that the update ends
// succeeded with every report delivered exactly once (no sequence gaps).
func TestPowerCutAtEveryStep(t *testing.T) {
	t.Parallel()
	for _, mode := range []devfs.CrashMode{devfs.DropUnsynced, devfs.KeepData, devfs.KeepNames} {
		t.Run(fmt.Sprintf("mode-%d", mode), func(t *testing.T) {
			t.Parallel()
			testPowerCuts(t, mode)
		})
	}
}

func testPowerCuts(t *testing.T, mode devfs.CrashMode) {
	srv := newServer(t, serverOptions{})
	img := image("GOOD", 320<<10, 2)
	rel := srv.image("2.0.0", img)

	run := func(cut int) (fired bool) {
		serial := fmt.Sprintf("SN-CUT-%d-%d", cut, mode)
		d := newDevice(t, srv, deviceOptions{serial: serial, seed: uint64(1000*int(mode) + cut)})
		writeFactory(t, d)
		id := d.deviceID()
		asg := srv.assign(id, rel)
		base := d.fs.Ops()
		d.fs.CutAfter(cut)
		ctx := context.Background()
		for i := 0; i < 200 && !d.fs.PowerCut(); i++ {
			wait, err := d.step(ctx)
			if err != nil && !d.fs.PowerCut() {
				t.Fatalf("cut %d: step: %v", cut, err)
			}
			if d.a.Status().Phase == agent.PhaseIdle && !srv.assignment(asg.ID).Active {
				break
			}
			srv.clock.Advance(max(wait, 1))
		}
		fired = d.fs.PowerCut()
		if fired {
			d.powerCycleWith(mode)
			checkBootable(t, d, img, fmt.Sprintf("cut after %d ops (mode %d)", cut, mode))
		} else {
			d.fs.CutAfter(-1)
			d.fs.CutWhen(nil)
		}
		_ = base
		d.finished(asg.ID)
		checkBootable(t, d, img, "after the update")
		got := srv.assignment(asg.ID)
		if got.State != store.AssignSucceeded || d.current() != "B" || d.a.Status().Version != "2.0.0" {
			t.Fatalf("cut %d mode %d: assignment %s, booted %s, version %s\nlog:\n%s", cut, mode, got.State, d.current(), d.a.Status().Version, d.logTail())
		}
		gaps, err := srv.store.ReportGaps(srv.ctx, store.DefaultTenant, id)
		if err != nil || len(gaps) != 0 {
			t.Fatalf("cut %d mode %d: report gaps %+v, %v (a report was lost)", cut, mode, gaps, err)
		}
		states := joined(srv.states(asg.ID))
		if !strings.HasSuffix(states, "verifying,succeeded") {
			t.Fatalf("cut %d mode %d: reported %s", cut, mode, states)
		}
		return fired
	}
	// Every operation under the strictest mode; every fourth under the
	// others, which only keep more.
	stride := 1
	if mode != devfs.DropUnsynced {
		stride = 4
	}
	cuts := 0
	for cut := 0; ; cut += stride {
		if !run(cut) {
			break
		}
		cuts++
	}
	if cuts*stride < 30 {
		t.Fatalf("only %d cut points; the update should take far more filesystem operations", cuts)
	}
	t.Logf("cut power at %d points", cuts)
}
