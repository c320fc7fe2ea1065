package sim

import (
	"context"
	"crypto/ed25519"
	"io"
	"log/slog"
	"net/http"
	"path"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/identity"
)

// TestCrashSensorChargesTheImageThatRan: hours that pass before an
// update's reboot, unread by the agent, are charged at the old release's
// crash rate, not at the rate of the image that boots after them (which
// made a burst of crashes at the new release's rate appear in its first
// reading).
func TestCrashSensorChargesTheImageThatRan(t *testing.T) {
	t.Parallel()
	const seed = 7
	p := DefaultProfile()
	p.CrashesPerDay = 24 // one an hour on the factory image
	p.Releases = []Behaviour{{Version: "2.0.0", CrashMultiplier: 100}}
	fc := clock.NewFake(time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC))
	key := ed25519.NewKeyFromSeed(make([]byte, ed25519.SeedSize))
	id := identity.Identity{Serial: "SN-1", DeviceType: "gw-200", HWRev: "A", Region: "eu-west", TimeZone: "Europe/Berlin"}
	d, err := newDevice(id, key, &p, seed, deviceOptions{clock: fc, http: &http.Client{}, serverURL: "http://127.0.0.1:1", logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	before, _ := d.crashCount(ctx)
	// Ten hours on 1.0.0 without a sensor read; then the agent reboots
	// into 2.0.0, staged in slot B.
	fc.Advance(10 * time.Hour)
	if err := d.fs.MkdirAll(d.cfg.Dir, 0o700); err != nil {
		t.Fatal(err)
	}
	state := []byte(`{"job":{"target":{"custom":{"version":"2.0.0"}},"to_slot":"B"}}`)
	if err := devfs.WriteFileAtomic(d.fs, path.Join(d.cfg.Dir, "state.json"), state, 0o600); err != nil {
		t.Fatal(err)
	}
	d.fs.SyncAll()
	if err := d.boot.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	d.powerCycle(devfs.KeepData)
	if v := d.runningVersion(); v != "2.0.0" {
		t.Fatalf("running %q after the reboot, want 2.0.0", v)
	}
	after, _ := d.crashCount(ctx)
	// About 10 at one an hour; charged at 2.0.0's rate it would be about
	// 1,000.
	if n := after - before; n > 40 {
		t.Fatalf("seed %d: %d crashes for 10 hours on 1.0.0 at 1/h", seed, n)
	}
}
