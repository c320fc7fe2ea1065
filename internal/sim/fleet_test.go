package sim_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"io"
	"math/rand/v2"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
)

var t0 = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

var admin = store.Actor{Kind: store.ActorUser, ID: "u-sim-test", Name: "sim-test"}

// env is a real server on SQLite, on loopback HTTP, on an accelerated
// clock (its report group commit waits on the server's clock, so a fake
// clock would need a pump; 120× makes a simulated minute 0.5 s, slow
// enough that a stall under -race does not outlast the agent's 10-minute
// window to reach the server from a new image).
type env struct {
	ctx   context.Context
	clock *sim.Accelerated
	srv   *server.Server
	store store.Store
	blobs *blob.Disk
	url   string
}

func setup(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	e := &env{ctx: context.Background(), clock: sim.NewAccelerated(t0, 120)}
	// The server hands out download links under its public URL, so it
	// needs its port before it starts.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	srv, err := server.New(e.ctx, server.Config{DataDir: dir, Addr: addr, PublicURL: "http://" + addr, Clock: e.clock, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	e.srv, e.store, e.url = srv, srv.Store(), "http://"+srv.Addr()
	if e.blobs, err = blob.NewDisk(filepath.Join(dir, "artifacts"), e.clock); err != nil {
		t.Fatal(err)
	}
	return e
}

func (e *env) preauthorize(ctx context.Context, pub ed25519.PublicKey, _ string) error {
	pk, err := identity.NewPublicKey(pub)
	if err != nil {
		return err
	}
	c := pk.Credential()
	_, err = e.store.PreauthorizeKey(ctx, store.Credential{TenantID: store.DefaultTenant, Kind: store.CredentialKind(c.Kind),
		Algorithm: c.Algorithm, Fingerprint: c.Fingerprint, Material: c.Material}, admin, e.clock.Now())
	return err
}

// release publishes a raw-image release for every revision in revs.
func (e *env) release(t *testing.T, version string, revs ...string) store.Release {
	t.Helper()
	now := e.clock.Now()
	rel, err := e.store.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: 1}, admin, now)
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 96<<10)
	r := rand.NewChaCha8([32]byte{byte(len(version)), 9})
	_, _ = r.Read(content)
	info, err := e.blobs.Put(e.ctx, bytes.NewReader(content), 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	a := store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "gw-200", HWRevs: revs,
		Type: store.ArtifactRawImage, Component: "rootfs", Name: "gw-200-" + version + ".img",
		Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5}
	if _, err := e.store.AddArtifact(e.ctx, a, admin, now); err != nil {
		t.Fatal(err)
	}
	if rel, err = e.store.PublishRelease(e.ctx, store.DefaultTenant, rel.ID, admin, now); err != nil {
		t.Fatal(err)
	}
	return rel
}

// drive waits (on the accelerated clock) until cond, failing after the
// given simulated time.
func drive(t *testing.T, e *env, f *sim.Fleet, what string, budget time.Duration, cond func() bool) {
	t.Helper()
	end := e.clock.Now().Add(budget)
	for !cond() {
		if e.clock.Now().After(end) {
			t.Fatalf("%s: not reached after %v: %+v", what, budget, f.Stats())
		}
		clock.Sleep(e.clock, 10*time.Second, nil)
	}
}

// TestFleetRegressionOnOneRevision runs 40 real agents over a lossy link
// with power cuts against a real server; a release that never boots on
// revision B rolls back there and commits on A, and no report is lost.
func TestFleetRegressionOnOneRevision(t *testing.T) {
	t.Parallel()
	e := setup(t)
	p := sim.DefaultProfile()
	p.Hardware = []sim.Hardware{{DeviceType: "gw-200", HWRev: "A", Weight: 1}, {DeviceType: "gw-200", HWRev: "B", Weight: 1}}
	p.PollInterval = sim.Duration(time.Minute)
	p.Link.DropRate = 0.05
	p.PowerCutRate = 0.3
	p.Releases = []sim.Behaviour{{Version: "2.0.0", HWRevs: []string{"B"}, BootFailRate: 1}}
	f, err := sim.New(sim.Config{ServerURL: e.url, Devices: 40, Profile: p, Clock: e.clock, Seed: 7, Preauthorize: e.preauthorize})
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Preauthorize(e.ctx); err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(e.ctx)
	ran := make(chan error, 1)
	go func() { ran <- f.Run(ctx) }()
	defer func() {
		stop()
		<-ran
	}()
	drive(t, e, f, "all enrolled", time.Hour, func() bool { return f.Stats().Enrolled == 40 })

	rel := e.release(t, "2.0.0", "A", "B")
	var asgs []string
	for _, d := range f.Devices() {
		a, _, err := e.store.Assign(e.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.Status.DeviceID, ReleaseID: rel.ID, Now: e.clock.Now()}, admin)
		if err != nil {
			t.Fatal(err)
		}
		asgs = append(asgs, a.ID)
	}
	finished := func() bool {
		for _, d := range f.Devices() {
			if d.Status.Result == nil || d.Status.Phase != agent.PhaseIdle || d.Status.Outbox != 0 {
				return false
			}
		}
		return true
	}
	drive(t, e, f, "every assignment finished on the devices", 6*time.Hour, finished)

	s := f.Stats()
	rolledBackOnA := 0
	for i, d := range f.Devices() {
		want, wantState := "2.0.0", "succeeded"
		if d.Identity.HWRev == "B" {
			want, wantState = "1.0.0", "rolled-back"
		} else if d.Status.Result.State == "rolled-back" {
			// The agent treats a power cut before commit, or a new
			// image that cannot reach the server for 10 minutes over
			// the lossy link, as a failed update and rolls back.
			rolledBackOnA++
			t.Logf("%s rev A rolled back: %s", d.Identity.Serial, d.Status.Result.Reason)
			if strings.Contains(d.Status.Result.Reason, "self-test") {
				t.Errorf("%s rev A: the revision B regression showed on A: %s", d.Identity.Serial, d.Status.Result.Reason)
			}
			want, wantState = "1.0.0", "rolled-back"
		}
		if d.Status.Version != want || d.Status.Result.State != wantState {
			t.Errorf("%s rev %s: runs %s (%s), want %s (%s)", d.Identity.Serial, d.Identity.HWRev, d.Status.Version, d.Status.Result.State, want, wantState)
		}
		got, err := e.store.Assignment(e.ctx, store.DefaultTenant, asgs[i])
		if err != nil {
			t.Fatal(err)
		}
		if got.Active {
			t.Errorf("%s: assignment still active on the server (%s)", d.Identity.Serial, got.State)
		}
		gaps, err := e.store.ReportGaps(e.ctx, store.DefaultTenant, d.Status.DeviceID)
		if err != nil || len(gaps) != 0 {
			t.Errorf("%s: report gaps %+v, %v", d.Identity.Serial, gaps, err)
		}
	}
	if rolledBackOnA > s.PowerCuts+2 {
		t.Errorf("%d revision A devices rolled back (%d power cuts)", rolledBackOnA, s.PowerCuts)
	}
	if s.PowerCuts == 0 || s.WatchdogResets == 0 || s.DroppedConnections == 0 {
		t.Errorf("the scenario did not exercise its faults: %+v", s)
	}
	t.Logf("%+v", s)
}

func TestParseProfile(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in string
		ok       bool
	}{
		{"empty object keeps defaults", `{}`, true},
		{"link and behaviour", `{"link":{"latency":"20ms","drop_rate":0.1},"releases":[{"version":"2.0.0","hw_revs":["B"],"crash_multiplier":3}]}`, true},
		{"unknown field", `{"devices":5}`, false},
		{"bad time zone", `{"regions":[{"name":"x","weight":1,"time_zones":["Mars/Olympus"]}]}`, false},
		{"rate above one", `{"power_cut_rate":1.5}`, false},
		{"zero weight", `{"hardware":[{"device_type":"a","hw_rev":"1","weight":0}]}`, false},
		{"bad duration", `{"poll_interval":"soon"}`, false},
		{"trailing data", `{} {}`, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := sim.ParseProfile([]byte(tt.in))
			if (err == nil) != tt.ok {
				t.Fatalf("ParseProfile(%s): err %v, want ok=%v", tt.in, err, tt.ok)
			}
		})
	}
}
