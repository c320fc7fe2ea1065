package verifier_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
	"github.com/updraft/updraft/internal/verifier"
)

// TestMetadataBytesPerDevice checks that a device downloads only its own
// product line's targets metadata, and caps the metadata bytes a device
// downloads per release of its line while other lines have many releases.
func TestMetadataBytesPerDevice(t *testing.T) {
	t.Parallel()
	const (
		otherLines   = 6
		otherRelease = 5
		artifacts    = 20
		perReleaseKB = 64
	)
	lines := []string{deviceType}
	for i := range otherLines {
		lines = append(lines, fmt.Sprintf("line-%02d", i))
	}
	srv := clock.NewFake(start)
	repo := tufrepotest.New(t, tufrepotest.Options{Clock: srv, Lines: lines})
	for _, line := range lines[1:] {
		for r := range otherRelease {
			repo.Release(line, tufrepotest.Release{Version: fmt.Sprintf("1.%d.0", r), Artifacts: artifacts, HWRevs: []string{"A", "B", "C"}})
		}
	}
	repo.Release(deviceType, tufrepotest.Release{Version: "1.0.0", Artifacts: artifacts, HWRevs: []string{"A", "B", "C"}})

	dev, err := verifier.New(verifier.Config{
		FS: devfs.OS{}, Dir: t.TempDir(), Clock: &deviceClock{now: start}, Fetcher: repo.Server,
		DeviceID: deviceID, DeviceType: deviceType, HWRev: hwRev, TrustedRoot: repo.TrustedRoot(),
	})
	if err != nil {
		t.Fatal(err)
	}
	measure := func(what string) ([]string, int64) {
		t.Helper()
		repo.Server.ResetStats()
		if err := dev.Refresh(context.Background()); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		names, n := repo.Server.Stats()
		for _, name := range names {
			if strings.Contains(name, "line-") {
				t.Errorf("%s: device fetched another line's metadata %s", what, name)
			}
		}
		t.Logf("%s: %d bytes in %v", what, n, names)
		return names, n
	}

	_, first := measure("first refresh")
	if first > 2*perReleaseKB<<10 {
		t.Errorf("first refresh downloaded %d bytes", first)
	}

	repo.Release(deviceType, tufrepotest.Release{Version: "1.1.0", Artifacts: artifacts, HWRevs: []string{"A", "B", "C"}})
	names, perRelease := measure("release of the device's line")
	if !slices.Contains(names, "2."+deviceType+".json") {
		t.Fatalf("device did not fetch its line's new role version: %v", names)
	}
	if perRelease >= perReleaseKB<<10 {
		t.Errorf("a release with %d artifacts cost the device %d bytes of metadata, cap %d KiB", artifacts, perRelease, perReleaseKB)
	}

	repo.Release(lines[1], tufrepotest.Release{Version: "9.0.0", Artifacts: artifacts})
	names, other := measure("release of another line")
	if slices.ContainsFunc(names, func(n string) bool { return strings.HasSuffix(n, deviceType+".json") }) {
		t.Errorf("device re-fetched its unchanged role: %v", names)
	}
	if other >= perRelease {
		t.Errorf("another line's release cost %d bytes, not less than the device's own line (%d)", other, perRelease)
	}
}
