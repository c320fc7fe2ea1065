package agent_test

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/store"
)

func tarZst(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for name, body := range files {
		if err := tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	tw.Close()
	var zb bytes.Buffer
	zw, err := zstd.NewWriter(&zb)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write(tb.Bytes())
	zw.Close()
	return zb.Bytes()
}

func readFile(d *device, name string) string {
	b, err := devfs.ReadFile(d.fs, name, 0)
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return string(b)
}

// TestFileAndArchiveInstallers installs a single file and a tar.zst
// archive into configured destinations (no reboot), then rolls an archive
// back when the health check fails, restoring the previous directory.
func TestFileAndArchiveInstallers(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	var d *device
	d = newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Components = map[string]agent.Component{
			"config": {Path: "etc/app.conf"},
			"app":    {Path: "opt/app"},
		}
		c.Health.Check = func(context.Context) error {
			if strings.Contains(readFile(d, "opt/app/VERSION"), "broken") {
				return errors.New("app does not start")
			}
			return nil
		}
	}})
	id := d.deviceID()

	file := srv.release("1.1.0", artifact{typ: store.ArtifactFile, component: "config", content: []byte("level=3\n")})
	a1 := srv.assign(id, file)
	d.finished(a1.ID)
	if got := readFile(d, "etc/app.conf"); got != "level=3\n" {
		t.Fatalf("installed file %q", got)
	}
	if s := joined(srv.states(a1.ID)); s != "downloading,installing,verifying,succeeded" {
		t.Fatalf("file install reported %s", s)
	}

	arch := srv.release("1.2.0", artifact{typ: store.ArtifactArchive, component: "app", compression: "zstd",
		content: tarZst(t, map[string]string{"VERSION": "1.2.0\n", "bin/app": "binary"})})
	a2 := srv.assign(id, arch)
	d.finished(a2.ID)
	if got := readFile(d, "opt/app/VERSION"); got != "1.2.0\n" || readFile(d, "opt/app/bin/app") != "binary" {
		t.Fatalf("extracted VERSION %q", got)
	}
	if st := d.a.Status(); st.Version != "1.2.0" || st.Installed.Component != "app" {
		t.Fatalf("status %+v", st)
	}

	bad := srv.release("1.3.0", artifact{typ: store.ArtifactArchive, component: "app",
		content: tarZst(t, map[string]string{"VERSION": "broken\n"})})
	a3 := srv.assign(id, bad)
	d.finished(a3.ID)
	if got := srv.assignment(a3.ID); got.State != store.AssignRolledBack {
		t.Fatalf("bad archive: %s", got.State)
	}
	if got := readFile(d, "opt/app/VERSION"); got != "1.2.0\n" {
		t.Fatalf("after rollback VERSION %q, want the previous 1.2.0", got)
	}
	if st := d.a.Status(); st.Version != "1.2.0" {
		t.Fatalf("version after rollback %s", st.Version)
	}
	// The state survives a power cut.
	d.powerCycle()
	if got := readFile(d, "opt/app/VERSION"); got != "1.2.0\n" {
		t.Fatalf("after power cut VERSION %q", got)
	}
}

// fakeRunner records commands and reads the staged file they name.
type fakeRunner struct {
	mu    sync.Mutex
	d     *device
	argvs [][]string
	seen  []byte
	fail  error
}

func (f *fakeRunner) Run(_ context.Context, argv []string) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.argvs = append(f.argvs, argv)
	if len(argv) == 2 && argv[0] == "/bin/sh" {
		b, err := devfs.ReadFile(f.d.fs, argv[1], 0)
		if err != nil {
			return nil, err
		}
		f.seen = b
	}
	if f.fail != nil {
		return []byte("E: disk full"), f.fail
	}
	return []byte("ok"), nil
}

// TestCommandInstaller runs a script artifact through the injected
// runner; a failing script fails the assignment with its output attached.
func TestCommandInstaller(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	run := &fakeRunner{}
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) { c.Commands = run }})
	run.d = d
	id := d.deviceID()
	script := []byte("#!/bin/sh\necho migrating\n")
	a1 := srv.assign(id, srv.release("1.0.1", artifact{typ: store.ArtifactScript, component: "migrate", content: script}))
	d.finished(a1.ID)
	if got := srv.assignment(a1.ID); got.State != store.AssignSucceeded || !bytes.Equal(run.seen, script) {
		t.Fatalf("assignment %s, script seen %q", got.State, run.seen)
	}
	run.fail = errors.New("exit status 2")
	a2 := srv.assign(id, srv.release("1.0.2", artifact{typ: store.ArtifactScript, component: "migrate", content: []byte("exit 2")}))
	d.finished(a2.ID)
	last := lastEvent(t, srv, a2.ID)
	if last.State != store.AssignFailed || last.ErrorCode != "install-command" || !strings.Contains(last.LogTail, "E: disk full") {
		t.Fatalf("failed report %+v", last.StatusReport)
	}
}

// TestHashOnlySlots: a simulated device whose slots keep no bytes still
// verifies, records length and SHA-256, boots the new slot and commits.
func TestHashOnlySlots(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{hashOnly: true})
	img := image("GOOD", 2<<20, 13)
	asg := srv.assign(d.deviceID(), srv.image("2.0.0", img))
	d.finished(asg.ID)
	sum := sha256.Sum256(img)
	st := d.a.Status()
	if st.Version != "2.0.0" || st.Slot != "B" || st.Slots["B"].SHA256 != hex.EncodeToString(sum[:]) || st.Slots["B"].Length != int64(len(img)) {
		t.Fatalf("status %+v", st)
	}
	if n := len(d.slotContent("B")); n != 0 {
		t.Fatalf("hash-only slot holds %d bytes", n)
	}
}

// TestUnsupportedAndCorruptArtifacts: an artifact type without a
// configured installer fails at once; a server whose bytes do not match
// the announced SHA-256 fails after one fresh retry.
func TestUnsupportedAndCorruptArtifacts(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	d := newDevice(t, srv, deviceOptions{})
	id := d.deviceID()
	a1 := srv.assign(id, srv.release("1.0.1", artifact{typ: store.ArtifactFile, component: "nowhere", content: []byte("x")}))
	d.finished(a1.ID)
	if last := lastEvent(t, srv, a1.ID); last.State != store.AssignFailed || last.ErrorCode != "unsupported-artifact" {
		t.Fatalf("report %+v", last.StatusReport)
	}
	rel := srv.image("2.0.0", image("GOOD", 300<<10, 14))
	// Corrupt the stored blob behind the server's back.
	art := rel.Artifacts[0]
	blobPath := srv.blobPath(art.SHA256)
	corrupt(t, blobPath)
	a2 := srv.assign(id, rel)
	d.finished(a2.ID)
	last := lastEvent(t, srv, a2.ID)
	if last.State != store.AssignFailed || last.ErrorCode != "hash-mismatch" {
		t.Fatalf("report %+v", last.StatusReport)
	}
	if p, _ := d.boot.Primary(context.Background()); p != "A" {
		t.Fatalf("primary %s after a failed download", p)
	}
}

// TestTelemetry: samples and event counters reach the server; an
// unexpected reboot (power cut without a planned reboot) is counted.
func TestTelemetry(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	crashes := int64(3)
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Sensors.Crashes = func(context.Context) (int64, error) { return crashes, nil }
		c.Sensors.Signal = func(context.Context) (float64, error) { return -71, nil }
		c.Sensors.Custom = func(context.Context) (map[string]float64, error) {
			return map[string]float64{"queue_depth": 12, "bad name!": 1}, nil
		}
	}})
	id := d.deviceID()
	d.powerCycle() // unexpected: no planned reboot, no clean shutdown
	crashes = 5
	from := srv.clock.Now()
	for srv.clock.Now().Sub(from) < 45*time.Minute {
		wait, err := d.step(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		srv.clock.Advance(max(wait, time.Second))
	}
	to := srv.clock.Now().Add(time.Second)
	sum := func(name string) (float64, int) {
		pts, err := srv.store.TelemetryRaw(srv.ctx, store.DefaultTenant, id, name, from.Add(-time.Hour), to)
		if err != nil {
			t.Fatal(err)
		}
		var s float64
		for _, p := range pts {
			s += p.Value
		}
		return s, len(pts)
	}
	if s, n := sum(agent.MetricUnexpectedReboots); s != 1 || n == 0 {
		t.Fatalf("unexpected reboots %v in %d points, want 1", s, n)
	}
	// The first read finds 3 (the baseline is 0), then 2 more.
	if s, _ := sum(agent.MetricCrashes); s != 5 {
		t.Fatalf("crashes %v, want 5", s)
	}
	for _, m := range []string{agent.MetricSignal, agent.MetricBootCount, agent.MetricUptime, "custom.queue_depth"} {
		if _, n := sum(m); n == 0 {
			t.Errorf("no %s points", m)
		}
	}
}

// TestTelemetryGapAttribution: counter increments read after a gap in
// sampling (the device off, busy installing or starved for hours) and an
// unexpected reboot are stamped at the gap's start, not at the send after
// it, so a rollout's evidence does not count them in the hours after an
// update; increments read while sampling runs are stamped when sent.
func TestTelemetryGapAttribution(t *testing.T) {
	t.Parallel()
	srv := newServer(t, serverOptions{})
	crashes := int64(3)
	d := newDevice(t, srv, deviceOptions{configure: func(c *agent.Config) {
		c.Sensors.Crashes = func(context.Context) (int64, error) { return crashes, nil }
	}})
	id := d.deviceID()
	run := func(d2 time.Duration) {
		from := srv.clock.Now()
		for srv.clock.Now().Sub(from) < d2 {
			wait, err := d.step(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			srv.clock.Advance(max(wait, time.Second))
		}
	}
	start := srv.clock.Now()
	run(time.Hour)
	gapStart := srv.clock.Now()
	// Five hours without a sample, 7 crashes in them, and the power cut
	// that ends them.
	srv.clock.Advance(5 * time.Hour)
	crashes = 10
	d.powerCycle()
	gapEnd := srv.clock.Now()
	run(time.Hour)
	crashes = 12 // read while sampling runs
	run(time.Hour)
	type stamped struct {
		at time.Time
		v  float64
	}
	points := func(name string) (sum float64, late []stamped) {
		pts, err := srv.store.TelemetryRaw(srv.ctx, store.DefaultTenant, id, name, start.Add(-time.Hour), srv.clock.Now().Add(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range pts {
			sum += p.Value
			if p.Value > 0 && !p.At.After(gapEnd) {
				continue
			}
			if p.Value > 0 {
				late = append(late, stamped{p.At, p.Value})
			}
		}
		return sum, late
	}
	if sum, late := points(agent.MetricUnexpectedReboots); sum != 1 || len(late) != 0 {
		t.Fatalf("unexpected reboots: sum %v, stamped after the gap %v; want 1, none", sum, late)
	}
	sum, late := points(agent.MetricCrashes)
	if sum != 12 {
		t.Fatalf("crashes %v, want 12", sum)
	}
	if len(late) != 1 || late[0].v != 2 {
		t.Fatalf("crashes stamped after the gap (gap %s..%s): %v; want only the 2 read while sampling", gapStart.Format(time.TimeOnly), gapEnd.Format(time.TimeOnly), late)
	}
	pts, err := srv.store.TelemetryRaw(srv.ctx, store.DefaultTenant, id, agent.MetricCrashes, gapStart.Add(time.Second), gapEnd)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pts {
		if p.Value > 0 {
			t.Fatalf("a crash point inside the gap at %s: increments must be stamped at its start", p.At.Format(time.TimeOnly))
		}
	}
}
