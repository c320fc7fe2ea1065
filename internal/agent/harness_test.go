package agent_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
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
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/verifier"
)

// T0 is where every test's fake clock starts.
var T0 = time.Date(2025, 6, 2, 9, 0, 0, 0, time.UTC)

var admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}

// server is a real device API on a real SQLite store, on loopback HTTP,
// driven by a fake clock.
type server struct {
	t       testing.TB
	ctx     context.Context
	clock   *clock.Fake
	store   *sqlstore.Store
	blobs   *blob.Disk
	blobDir string
	hub     *notify.Hub
	api     *deviceapi.API
	srv     *httptest.Server
	url     string
	// down makes every request fail as if the server were unreachable.
	mu   sync.Mutex
	down bool
}

type serverOptions struct {
	director deviceapi.AssignmentSigner
	longPoll bool
	// clock replaces the fake clock (for a real agent process).
	clock clock.Clock
	// metadata, when set, serves TUF metadata by name under
	// /api/device/v1/tuf/ to bearers of a valid device token, standing in
	// for the device API's metadata route.
	metadata verifier.Fetcher
	// finalizer adds finalize documents to check-ins.
	finalizer deviceapi.FinalizeSigner
}

func newServer(t testing.TB, o serverOptions) *server {
	t.Helper()
	s := &server{t: t, ctx: context.Background(), clock: clock.NewFake(T0), hub: notify.NewHub()}
	var clk clock.Clock = s.clock
	if o.clock != nil {
		clk = o.clock
	}
	var err error
	s.store, err = sqlite.Open(filepath.Join(fastTempDir(t), "updraft.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.store.Close() })
	if _, err := s.store.Migrate(s.ctx, sqlstore.MigrateOptions{Now: T0}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	s.blobDir = filepath.Join(t.TempDir(), "blobs")
	if s.blobs, err = blob.NewDisk(s.blobDir, clk); err != nil {
		t.Fatal(err)
	}
	key, err := identity.GenerateTokenKey("t1")
	if err != nil {
		t.Fatal(err)
	}
	issuer := &identity.Issuer{Keys: identity.TokenKeys{Current: key}, Clock: clk, TTL: time.Hour}
	ukey, err := signedurl.GenerateKey("u1")
	if err != nil {
		t.Fatal(err)
	}
	urls, err := signedurl.NewSigner(clk, ukey)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	limits := deviceapi.Limits{GroupCommitWindow: -1, PollInterval: time.Minute}
	if !o.longPoll {
		limits.MaxLongPoll = -1
	}
	s.api, err = deviceapi.New(deviceapi.Config{
		Store: s.store, Blobs: s.blobs, Tokens: issuer, URLs: urls, Clock: clk,
		PublicURL: "http://" + ln.Addr().String(), Hub: s.hub, Director: o.director, Finalizer: o.finalizer, Limits: limits,
	})
	if err != nil {
		t.Fatal(err)
	}
	h := s.api.Handler()
	if o.metadata != nil {
		mux := http.NewServeMux()
		mux.Handle("/", h)
		mux.HandleFunc("GET /api/device/v1/tuf/{name}", func(w http.ResponseWriter, r *http.Request) {
			tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
			if _, err := issuer.Verify(tok); !ok || err != nil {
				http.Error(w, "device token required", http.StatusUnauthorized)
				return
			}
			b, err := o.metadata.Get(r.Context(), r.PathValue("name"), 1<<20)
			if err != nil {
				http.NotFound(w, r)
				return
			}
			w.Write(b)
		})
		h = mux
	}
	s.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		down := s.down
		s.mu.Unlock()
		if down {
			// Drop the connection without an answer.
			if hj, ok := w.(http.Hijacker); ok {
				if c, _, err := hj.Hijack(); err == nil {
					c.Close()
					return
				}
			}
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		h.ServeHTTP(w, r)
	})}}
	s.srv.Start()
	t.Cleanup(s.srv.Close)
	if err := s.api.Start(s.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.api.Stop)
	s.url = s.srv.URL
	return s
}

func (s *server) setDown(down bool) {
	s.mu.Lock()
	s.down = down
	s.mu.Unlock()
}

// fastTempDir is a temporary directory in memory when the machine has
// /dev/shm: the tests commit thousands of small SQLite transactions, and
// an fsync on a shared disk would dominate their run time.
func fastTempDir(t testing.TB) string {
	t.Helper()
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if dir, err := os.MkdirTemp("/dev/shm", "updraft-agent-test-"); err == nil {
			t.Cleanup(func() { os.RemoveAll(dir) })
			return dir
		}
	}
	return t.TempDir()
}

// artifact describes one artifact of a test release.
type artifact struct {
	typ         store.ArtifactType
	component   string
	compression string
	content     []byte
}

// release publishes a release for gw-200 rev B.
func (s *server) release(version string, arts ...artifact) store.Release {
	s.t.Helper()
	now := s.clock.Now()
	rel, err := s.store.CreateRelease(s.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: 1, Severity: store.SeverityHigh}, admin, now)
	if err != nil {
		s.t.Fatal(err)
	}
	for i, art := range arts {
		info, err := s.blobs.Put(s.ctx, bytes.NewReader(art.content), 1<<30)
		if err != nil {
			s.t.Fatal(err)
		}
		comp := art.component
		if comp == "" {
			comp = "rootfs"
		}
		a := store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "gw-200", HWRevs: []string{"B"},
			Type: art.typ, Component: comp, Compression: art.compression, Name: fmt.Sprintf("gw-200-%s-%d.bin", version, i),
			Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5}
		if _, err := s.store.AddArtifact(s.ctx, a, admin, now); err != nil {
			s.t.Fatal(err)
		}
	}
	if rel, err = s.store.PublishRelease(s.ctx, store.DefaultTenant, rel.ID, admin, now); err != nil {
		s.t.Fatal(err)
	}
	return rel
}

// blobPath is where the disk blob store keeps a blob's bytes.
func (s *server) blobPath(sha string) string {
	return filepath.Join(s.blobDir, sha[:2], sha, "data")
}

// corrupt flips a byte in the middle of a file.
func corrupt(t testing.TB, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if err := os.WriteFile(name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func (s *server) image(version string, content []byte) store.Release {
	return s.release(version, artifact{typ: store.ArtifactRawImage, content: content})
}

func (s *server) assign(deviceID string, rel store.Release) store.Assignment {
	s.t.Helper()
	a, _, err := s.store.Assign(s.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: deviceID, ReleaseID: rel.ID, Now: s.clock.Now()}, admin)
	if err != nil {
		s.t.Fatal(err)
	}
	s.hub.Notify(store.DefaultTenant, deviceID)
	return a
}

func (s *server) assignment(id string) store.Assignment {
	s.t.Helper()
	a, err := s.store.Assignment(s.ctx, store.DefaultTenant, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return a
}

// states lists the states a device reported for an assignment, in order.
func (s *server) states(id string) []string {
	s.t.Helper()
	evs, err := s.store.AssignmentEvents(s.ctx, store.DefaultTenant, id)
	if err != nil {
		s.t.Fatal(err)
	}
	var out []string
	for _, e := range evs {
		out = append(out, string(e.State))
	}
	return out
}

func (s *server) events(id string) []store.AssignmentEvent {
	s.t.Helper()
	evs, err := s.store.AssignmentEvents(s.ctx, store.DefaultTenant, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return evs
}

// preauthorize registers a device key so the device is accepted on its
// first enrollment.
func (s *server) preauthorize(pub ed25519.PublicKey) {
	s.t.Helper()
	pk, err := identity.NewPublicKey(pub)
	if err != nil {
		s.t.Fatal(err)
	}
	c := pk.Credential()
	if _, err := s.store.PreauthorizeKey(s.ctx, store.Credential{TenantID: store.DefaultTenant, Kind: store.CredentialKind(c.Kind),
		Algorithm: c.Algorithm, Fingerprint: c.Fingerprint, Material: c.Material}, admin, s.clock.Now()); err != nil {
		s.t.Fatal(err)
	}
}

// entropy is a deterministic random source for device keys.
func entropy(seed uint64) io.Reader {
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), 7})
	return r
}

// device is one simulated device: a crash-testing filesystem with two
// file-backed slots, a simulated bootloader, and the agent restarted on
// them after every reboot or power cut.
type device struct {
	t      testing.TB
	srv    *server
	fs     *devfs.CrashFS
	boot   *boot.Sim
	cfg    agent.Config
	a      *agent.Agent
	key    ed25519.PrivateKey
	seed   uint64
	bootN  int
	broken map[string]bool // slots whose image never comes up
	// health decides the health check from the booted slot's content.
	health  func(slotContent []byte) error
	reboots int
	log     *bytes.Buffer
}

type deviceOptions struct {
	serial    string
	seed      uint64
	hashOnly  bool
	configure func(cfg *agent.Config)
	noPreauth bool
	version   string
}

func newDevice(t testing.TB, srv *server, o deviceOptions) *device {
	t.Helper()
	if o.serial == "" {
		o.serial = "SN-0001"
	}
	if o.version == "" {
		o.version = "1.0.0"
	}
	d := &device{t: t, srv: srv, fs: devfs.NewCrashFS(), seed: o.seed, broken: map[string]bool{}, log: &bytes.Buffer{}}
	// The simulated U-Boot keeps its environment on the device's own
	// crash-testing disk, so power cuts hit it too.
	if err := d.fs.MkdirAll("boot", 0o755); err != nil {
		t.Fatal(err)
	}
	d.fs.SyncAll()
	sim, err := boot.NewSim(boot.SimConfig{FS: d.fs, Env: "boot/uboot.env"})
	if err != nil {
		t.Fatal(err)
	}
	d.boot = sim
	if _, err := sim.Boot(context.Background()); err != nil {
		t.Fatal(err)
	}
	seed := make([]byte, ed25519.SeedSize)
	if _, err := io.ReadFull(entropy(o.seed), seed); err != nil {
		t.Fatal(err)
	}
	d.key = ed25519.NewKeyFromSeed(seed)
	if !o.noPreauth {
		srv.preauthorize(d.key.Public().(ed25519.PublicKey))
	}
	if err := d.fs.MkdirAll("dev", 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"dev/slot-a", "dev/slot-b"} {
		f, err := d.fs.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	d.fs.SyncAll()
	d.cfg = agent.Config{
		FS:        d.fs,
		Dir:       "var/lib/updraft",
		Clock:     srv.clock,
		HTTP:      &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		ServerURL: srv.url,
		Identity:  identity.Identity{Serial: o.serial, DeviceType: "gw-200", HWRev: "B", Region: "eu-west", TimeZone: "Europe/Berlin"},
		Version:   o.version,
		Entropy:   entropy(o.seed),
		Boot:      d.boot,
		Slots: []agent.Slot{
			{Name: "A", Device: "dev/slot-a", HashOnly: o.hashOnly},
			{Name: "B", Device: "dev/slot-b", HashOnly: o.hashOnly},
		},
		Reboot: func(context.Context) error { d.reboots++; return nil },
		BootID: func(context.Context) (string, error) { return fmt.Sprintf("boot-%d", d.bootN), nil },
		Health: agent.Health{Check: func(ctx context.Context) error {
			if d.health == nil {
				return nil
			}
			return d.health(d.slotContent(d.current()))
		}},
		Timing:   agent.Timing{DisableLongPoll: true, TelemetrySample: 10 * time.Minute, TelemetrySend: 30 * time.Minute},
		Download: agent.DownloadOptions{CheckpointBytes: 256 << 10, BufferBytes: 32 << 10},
		Logger:   slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if o.configure != nil {
		o.configure(&d.cfg)
	}
	d.start()
	return d
}

func (d *device) slotContent(slot string) []byte {
	name := "dev/slot-a"
	if slot == "B" {
		name = "dev/slot-b"
	}
	b, err := devfs.ReadFile(d.fs, name, 0)
	if err != nil {
		return nil
	}
	return b
}

// start creates a fresh agent on the device's filesystem, as a process
// start after boot does.
func (d *device) start() {
	d.t.Helper()
	cfg := d.cfg
	cfg.Rand = rand.New(rand.NewPCG(d.seed, uint64(d.bootN)))
	a, err := agent.New(cfg)
	if err != nil {
		d.t.Fatal(err)
	}
	d.a = a
}

// powerCycle cuts power (discarding every write not made durable), boots
// the simulated bootloader (again, while the chosen slot's image never
// comes up) and starts a new agent.
func (d *device) powerCycle() { d.powerCycleWith(devfs.DropUnsynced) }

// powerCycleWith is powerCycle with a choice of what the disk kept.
func (d *device) powerCycleWith(mode devfs.CrashMode) {
	d.t.Helper()
	d.fs.CrashWith(mode)
	for {
		d.bootN++
		slot, err := d.boot.Boot(context.Background())
		if err != nil {
			d.t.Fatalf("boot: %v", err)
		}
		if !d.broken[slot] {
			break
		}
		// The image never comes up: the watchdog resets the board.
		d.fs.Crash()
	}
	d.start()
}

// current is the booted slot.
func (d *device) current() string {
	s, err := d.boot.Current(context.Background())
	if err != nil {
		d.t.Fatalf("current slot: %v", err)
	}
	return s
}

// restart kills the agent process without a reboot (kill -9): the page
// cache survives, the boot is the same.
func (d *device) restart() { d.start() }

// step runs one agent step; a reboot request becomes a power cycle.
func (d *device) step(ctx context.Context) (time.Duration, error) {
	wait, err := d.a.Step(ctx)
	if errors.Is(err, agent.ErrRebooted) {
		d.powerCycle()
		return 0, nil
	}
	return wait, err
}

// until steps the agent, advancing the fake clock by the waits it asks
// for, until cond holds; it fails the test after max steps.
func (d *device) until(what string, maxSteps int, cond func() bool) {
	d.t.Helper()
	ctx := context.Background()
	for i := 0; i < maxSteps; i++ {
		if cond() {
			return
		}
		wait, err := d.step(ctx)
		if cond() {
			return
		}
		if err != nil {
			d.t.Fatalf("step: %v\nlog:\n%s", err, d.logTail())
		}
		d.srv.clock.Advance(max(wait, time.Second))
	}
	d.t.Fatalf("%s: not reached after %d steps; status %+v\nlog:\n%s", what, maxSteps, d.a.Status(), d.logTail())
}

func (d *device) logTail() string {
	s := d.log.String()
	if len(s) > 6000 {
		s = s[len(s)-6000:]
	}
	return s
}

// idleAfter waits until the agent is idle with its outbox empty and the
// assignment ended on the server.
func (d *device) finished(id string) {
	d.t.Helper()
	d.until("assignment "+id+" finished", 400, func() bool {
		st := d.a.Status()
		if st.Phase != agent.PhaseIdle || st.Outbox != 0 {
			return false
		}
		return !d.srv.assignment(id).Active
	})
}

func (d *device) deviceID() string {
	d.t.Helper()
	d.until("enrolled", 50, func() bool { return d.a.Status().DeviceID != "" })
	return d.a.Status().DeviceID
}

// image returns deterministic pseudo-random content of n bytes with a
// marker at the start (the health check reads it).
func image(marker string, n int, seed uint64) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 42})
	_, _ = r.Read(b)
	copy(b, marker)
	return b
}

func healthyUnlessBad(content []byte) error {
	if bytes.HasPrefix(content, []byte("BAD")) {
		return errors.New("service firmwared crashed 5 times in 60 s")
	}
	return nil
}

func joined(ss []string) string { return strings.Join(ss, ",") }
