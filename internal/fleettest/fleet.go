// Package fleettest runs a fleet of real agents (internal/agent, each on
// its own crash-testing filesystem with two file-backed slots and a
// simulated U-Boot) against a real server — the device API on loopback
// HTTP, a SQLite store, the rollout engine — on one fake clock, with
// release behaviour scripted per hardware revision: whether the new image
// passes its health check, and how often it crashes.
//
// Nothing sleeps: Step advances the clock, runs one engine tick and lets
// every agent whose wait has passed take its steps. Everything random
// derives from Options.Seed, so a run is replayed by its seed. A Fleet is
// used by one goroutine. The simulator (issue: fleet simulator) extends it.
package fleettest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// T0 is where a fleet's clock starts.
var T0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

// Admin is the actor the harness makes operator changes as.
var Admin = store.Actor{Kind: store.ActorUser, ID: "u-fleet", Name: "fleet harness"}

// DeviceType is every simulated device's type.
const DeviceType = "gw"

// Behaviour scripts how a release behaves on a device.
type Behaviour struct {
	// Healthy reports whether a device of the revision passes its health
	// check running version; nil: always.
	Healthy func(rev, version string) bool
	// CrashRate is the crashes per hour of a device of the revision
	// running version; nil: 0.01.
	CrashRate func(rev, version string) float64
}

// Options configure a fleet.
type Options struct {
	Seed uint64
	// Poll is the check-in interval the server hands out [10m].
	Poll time.Duration
	// Telemetry is how often agents send telemetry [1h].
	Telemetry time.Duration
}

// Fleet is a server and its devices.
type Fleet struct {
	T      testing.TB
	Ctx    context.Context
	Clock  *clock.Fake
	Store  *sqlstore.Store
	Blobs  *blob.Disk
	Hub    *notify.Hub
	Engine *rollout.Engine
	URL    string

	Behaviour Behaviour
	Devices   []*Device
	opts      Options
	rng       *rand.Rand
}

// New starts the server side of a fleet.
func New(t testing.TB, o Options) *Fleet {
	t.Helper()
	if o.Poll == 0 {
		o.Poll = 10 * time.Minute
	}
	if o.Telemetry == 0 {
		o.Telemetry = time.Hour
	}
	f := &Fleet{T: t, Ctx: context.Background(), Clock: clock.NewFake(T0), Hub: notify.NewHub(), opts: o, rng: rand.New(rand.NewPCG(o.Seed, 99))}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("fleet seed %d (rerun with it to reproduce)", o.Seed)
		}
	})
	var err error
	if f.Store, err = sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Store.Close() })
	if _, err := f.Store.Migrate(f.Ctx, sqlstore.MigrateOptions{Now: T0}); err != nil {
		t.Fatal(err)
	}
	if f.Blobs, err = blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), f.Clock); err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateTokenKey("t1")
	if err != nil {
		t.Fatal(err)
	}
	issuer := &identity.Issuer{Keys: identity.TokenKeys{Current: key}, Clock: f.Clock, TTL: 24 * time.Hour}
	ukey, err := signedurl.GenerateKey("u1")
	if err != nil {
		t.Fatal(err)
	}
	urls, err := signedurl.NewSigner(f.Clock, ukey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	api, err := deviceapi.New(deviceapi.Config{
		Store: f.Store, Blobs: f.Blobs, Tokens: issuer, URLs: urls, Clock: f.Clock,
		PublicURL: "http://" + ln.Addr().String(), Hub: f.Hub,
		Limits: deviceapi.Limits{GroupCommitWindow: -1, PollInterval: o.Poll, PollJitter: 0.01, MaxLongPoll: -1, URLTTL: 48 * time.Hour},
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: api.Handler()}}
	srv.Start()
	t.Cleanup(srv.Close)
	if err := api.Start(f.Ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(api.Stop)
	f.URL = srv.URL
	if f.Engine, err = rollout.New(rollout.Config{Store: f.Store, Clock: f.Clock, Notifier: f.Hub, Holder: "fleet",
		Interval: 10 * time.Minute, LeaseTTL: time.Hour, Lag: -1}); err != nil {
		t.Fatal(err)
	}
	return f
}

// image is a release's bytes for one revision: a marker naming the
// version, padded.
func image(version, rev string) []byte {
	return []byte(fmt.Sprintf("updraft-image version=%s rev=%s\n%s", version, rev, strings.Repeat("x", 4096)))
}

// versionOf reads the version marker of a slot's content ("" when none).
func versionOf(content []byte) string {
	line, _, _ := bytes.Cut(content, []byte("\n"))
	for _, f := range strings.Fields(string(line)) {
		if v, ok := strings.CutPrefix(f, "version="); ok {
			return v
		}
	}
	return ""
}

// Release publishes a release with a raw image for each revision.
func (f *Fleet) Release(version string, security int64, revs ...string) store.Release {
	f.T.Helper()
	now := f.Clock.Now()
	rel, err := f.Store.CreateRelease(f.Ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: security}, Admin, now)
	if err != nil {
		f.T.Fatal(err)
	}
	for _, rev := range revs {
		info, err := f.Blobs.Put(f.Ctx, bytes.NewReader(image(version, rev)), 1<<20)
		if err != nil {
			f.T.Fatal(err)
		}
		if _, err := f.Store.AddArtifact(f.Ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: DeviceType,
			HWRevs: []string{rev}, Type: store.ArtifactRawImage, Component: "rootfs", Name: "image-" + version + "-" + rev + ".bin",
			Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5}, Admin, now); err != nil {
			f.T.Fatal(err)
		}
	}
	if rel, err = f.Store.PublishRelease(f.Ctx, store.DefaultTenant, rel.ID, Admin, now); err != nil {
		f.T.Fatal(err)
	}
	return rel
}

// Device is one simulated device running a real agent.
type Device struct {
	f       *Fleet
	Serial  string
	Rev     string
	fs      *devfs.CrashFS
	boot    *boot.Sim
	cfg     agent.Config
	a       *agent.Agent
	seed    uint64
	bootN   int
	next    time.Time
	crashes int64
	sensed  time.Time
	rng     *rand.Rand
	log     *bytes.Buffer
}

// entropy is a deterministic random source for a device's key.
func entropy(seed uint64) io.Reader {
	return rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 11})
}

// AddDevice creates a device of the revision running version 1.0.0, its
// key preauthorized so that it is accepted when it enrolls.
func (f *Fleet) AddDevice(rev string) *Device {
	f.T.Helper()
	n := len(f.Devices) + 1
	d := &Device{f: f, Serial: fmt.Sprintf("SN-%05d", n), Rev: rev, fs: devfs.NewCrashFS(), seed: f.opts.Seed*100003 + uint64(n),
		log: &bytes.Buffer{}, sensed: f.Clock.Now()}
	d.rng = rand.New(rand.NewPCG(d.seed, 5))
	for _, dir := range []string{"boot", "dev"} {
		if err := d.fs.MkdirAll(dir, 0o755); err != nil {
			f.T.Fatal(err)
		}
	}
	for _, name := range []string{"dev/slot-a", "dev/slot-b"} {
		file, err := d.fs.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			f.T.Fatal(err)
		}
		file.Close()
	}
	d.fs.SyncAll()
	sim, err := boot.NewSim(boot.SimConfig{FS: d.fs, Env: "boot/uboot.env"})
	if err != nil {
		f.T.Fatal(err)
	}
	d.boot = sim
	if _, err := sim.Boot(f.Ctx); err != nil {
		f.T.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(entropy(d.seed), seed); err != nil {
		f.T.Fatal(err)
	}
	pk, err := identity.NewPublicKey(ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey))
	if err != nil {
		f.T.Fatal(err)
	}
	c := pk.Credential()
	if _, err := f.Store.PreauthorizeKey(f.Ctx, store.Credential{TenantID: store.DefaultTenant, Kind: store.CredentialKind(c.Kind),
		Algorithm: c.Algorithm, Fingerprint: c.Fingerprint, Material: c.Material}, Admin, f.Clock.Now()); err != nil {
		f.T.Fatal(err)
	}
	d.cfg = agent.Config{
		FS: d.fs, Dir: "var/lib/updraft", Clock: f.Clock,
		HTTP:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		ServerURL: f.URL,
		Identity:  identity.Identity{Serial: d.Serial, DeviceType: DeviceType, HWRev: rev, Region: "eu", TimeZone: "UTC"},
		Version:   "1.0.0",
		Entropy:   entropy(d.seed),
		Boot:      d.boot,
		Slots:     []agent.Slot{{Name: "A", Device: "dev/slot-a"}, {Name: "B", Device: "dev/slot-b"}},
		Reboot:    func(context.Context) error { return nil },
		BootID:    func(context.Context) (string, error) { return fmt.Sprintf("boot-%d", d.bootN), nil },
		Health: agent.Health{Check: func(context.Context) error {
			if h := f.Behaviour.Healthy; h != nil && !h(rev, d.Version()) {
				return errors.New("the application does not come up")
			}
			return nil
		}},
		Sensors: agent.Sensors{Crashes: d.sense},
		Timing: agent.Timing{DisableLongPoll: true, PollInterval: f.opts.Poll, Jitter: 0.01,
			TelemetrySample: f.opts.Telemetry, TelemetrySend: f.opts.Telemetry},
		Logger: slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	}
	d.start()
	f.Devices = append(f.Devices, d)
	return d
}

func (d *Device) start() {
	cfg := d.cfg
	cfg.Rand = rand.New(rand.NewPCG(d.seed, uint64(d.bootN)))
	a, err := agent.New(cfg)
	if err != nil {
		d.f.T.Fatal(err)
	}
	d.a = a
}

// Version is the version the device runs: the marker of its booted
// slot's image, or 1.0.0 before its first update.
func (d *Device) Version() string {
	slot, err := d.boot.Current(d.f.Ctx)
	if err != nil {
		d.f.T.Fatal(err)
	}
	name := "dev/slot-a"
	if slot == "B" {
		name = "dev/slot-b"
	}
	b, _ := devfs.ReadFile(d.fs, name, 0)
	if v := versionOf(b); v != "" {
		return v
	}
	return "1.0.0"
}

// sense is the crash counter: Poisson increments at the behaviour's rate
// for the running version since the last reading.
func (d *Device) sense(context.Context) (int64, error) {
	now := d.f.Clock.Now()
	hours := now.Sub(d.sensed).Hours()
	d.sensed = now
	rate := 0.01
	if cr := d.f.Behaviour.CrashRate; cr != nil {
		rate = cr(d.Rev, d.Version())
	}
	d.crashes += int64(poisson(d.rng, rate*hours))
	return d.crashes, nil
}

func poisson(rng *rand.Rand, lambda float64) int {
	if lambda <= 0 {
		return 0
	}
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// run lets the agent take every step that is due now.
func (d *Device) run() {
	now := d.f.Clock.Now()
	if now.Before(d.next) {
		return
	}
	for i := 0; i < 50; i++ {
		wait, err := d.a.Step(d.f.Ctx)
		if errors.Is(err, agent.ErrRebooted) {
			d.fs.Crash()
			d.bootN++
			if _, err := d.boot.Boot(d.f.Ctx); err != nil {
				d.f.T.Fatalf("%s boot: %v", d.Serial, err)
			}
			d.start()
			continue
		}
		if err != nil {
			d.f.T.Fatalf("%s step: %v\n%s", d.Serial, err, d.log.String())
		}
		if wait > 0 {
			d.next = now.Add(wait)
			return
		}
	}
	d.next = now.Add(time.Second)
}

// Step advances the clock by dt, runs one engine tick, then every agent
// that is due.
func (f *Fleet) Step(dt time.Duration) {
	f.T.Helper()
	f.Clock.Advance(dt)
	if _, err := f.Engine.Tick(f.Ctx); err != nil {
		f.T.Fatalf("engine tick at %v: %v", f.Clock.Now().Sub(T0), err)
	}
	for _, d := range f.Devices {
		d.run()
	}
}

// RunUntil steps until done holds, failing after limit of fake time.
func (f *Fleet) RunUntil(limit, dt time.Duration, what string, done func() bool) {
	f.T.Helper()
	end := f.Clock.Now().Add(limit)
	for !done() {
		if f.Clock.Now().After(end) {
			f.T.Fatalf("%s: not reached after %v of simulated time", what, limit)
		}
		f.Step(dt)
	}
}

// Campaign reads a campaign.
func (f *Fleet) Campaign(id string) store.Campaign {
	f.T.Helper()
	c, err := f.Store.Campaign(f.Ctx, store.DefaultTenant, id)
	if err != nil {
		f.T.Fatal(err)
	}
	return c
}

// Versions counts the devices' running versions, for one revision or all.
func (f *Fleet) Versions(rev string) map[string]int {
	out := map[string]int{}
	for _, d := range f.Devices {
		if rev == "" || d.Rev == rev {
			out[d.Version()]++
		}
	}
	return out
}
