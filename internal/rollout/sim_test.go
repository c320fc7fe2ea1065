package rollout_test

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// The simulation: devices live at store level. When the engine notifies a
// device, the device looks up its active assignment and, InstallTime
// later, reports the outcome its behaviour picks (store.RecordReports).
// Every simulated hour each device sends telemetry: crash and unexpected
// reboot counts drawn from Poisson laws whose rates depend on the version
// it runs. Everything runs on a fake clock; nothing sleeps.

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

var admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}

// behaviour decides a device's install outcome for a release version.
type behaviour func(d store.Device, version string, rng *rand.Rand) store.AssignmentState

// crashRate is a device's crash rate per hour on the version it runs.
type crashRate func(d store.Device, version string) float64

type sim struct {
	t     *testing.T
	ctx   context.Context
	st    *sqlstore.Store
	clock *clock.Fake
	eng   *rollout.Engine
	rng   *rand.Rand
	seed  uint64

	install   behaviour
	crashes   crashRate
	InstallIn time.Duration
	Step      time.Duration
	// NoTelemetry: devices send none (the campaign is judged on install
	// outcomes only), which makes long simulations cheaper.
	NoTelemetry bool

	mu       sync.Mutex
	notified map[string]bool

	devices  []store.Device
	version  map[string]string // installed version by device
	seq      map[string]int64
	pending  map[string]pendingReport // by device
	lastHour time.Time
	n        int
}

type pendingReport struct {
	assignment store.Assignment
	at         time.Time
}

func openStore(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(context.Background(), sqlstore.MigrateOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newSim(t *testing.T, st *sqlstore.Store, seed uint64) *sim {
	t.Helper()
	s := &sim{
		t: t, ctx: context.Background(), st: st, clock: clock.NewFake(t0), seed: seed,
		rng:       rand.New(rand.NewPCG(seed, 17)),
		install:   func(store.Device, string, *rand.Rand) store.AssignmentState { return store.AssignSucceeded },
		crashes:   func(store.Device, string) float64 { return 0.02 },
		InstallIn: 20 * time.Minute, Step: 10 * time.Minute,
		notified: map[string]bool{}, seq: map[string]int64{}, pending: map[string]pendingReport{}, version: map[string]string{},
		lastHour: t0,
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("simulation seed %d (rerun with the same seed to reproduce)", seed)
		}
	})
	s.eng = s.newEngine("replica-a")
	return s
}

func (s *sim) newEngine(holder string) *rollout.Engine { return s.newEngineOn(holder, s.st) }

// newEngineOn is the simulation's engine on st (the sim's store or a
// wrapper of it).
func (s *sim) newEngineOn(holder string, st store.Store) *rollout.Engine {
	e, err := rollout.New(rollout.Config{
		Store: st, Clock: s.clock, Holder: holder, Interval: 10 * time.Minute, LeaseTTL: 30 * time.Minute, Lag: -1,
		Notifier: notify.NotifierFunc(func(_, id string) {
			s.mu.Lock()
			s.notified[id] = true
			s.mu.Unlock()
		}),
	})
	if err != nil {
		s.t.Fatal(err)
	}
	return e
}

// device enrolls and accepts a native device.
func (s *sim) device(deviceType, rev, tz string, tags ...string) store.Device {
	s.t.Helper()
	s.n++
	serial := fmt.Sprintf("SN-%05d", s.n)
	d, err := s.st.Enroll(s.ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: rev, TimeZone: tz,
		Protocol: store.ProtocolNative,
		Key:      store.Credential{Kind: store.CredPublicKey, Algorithm: "ed25519", Fingerprint: "fp-" + serial, Material: "key of " + serial},
		Now:      s.clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 100000,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if d, err = s.st.AcceptDevice(s.ctx, store.DefaultTenant, d.ID, admin, s.clock.Now()); err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.st.UpdateDeviceReport(s.ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: "1.0.0", Now: s.clock.Now()}); err != nil {
		s.t.Fatal(err)
	}
	if len(tags) > 0 {
		if _, err := s.st.SetTags(s.ctx, store.DefaultTenant, d.ID, tags, nil, admin, s.clock.Now()); err != nil {
			s.t.Fatal(err)
		}
	}
	d, err = s.st.Device(s.ctx, store.DefaultTenant, d.ID)
	if err != nil {
		s.t.Fatal(err)
	}
	s.devices = append(s.devices, d)
	s.version[d.ID] = d.Version
	return d
}

// release publishes a release with a raw image for each revision.
func (s *sim) release(version string, security int64, sev store.Severity, deviceType string, revs ...string) store.Release {
	s.t.Helper()
	r, err := s.st.CreateRelease(s.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: security, Severity: sev}, admin, s.clock.Now())
	if err != nil {
		s.t.Fatal(err)
	}
	content := []byte(version + deviceType)
	s256, s1, m5 := sha256.Sum256(content), sha1.Sum(content), md5.Sum(content)
	if _, err := s.st.AddArtifact(s.ctx, store.Artifact{
		TenantID: store.DefaultTenant, ReleaseID: r.ID, DeviceType: deviceType, HWRevs: revs, Type: store.ArtifactRawImage,
		Component: "rootfs", Name: "image-" + version, Size: int64(len(content)),
		SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: hex.EncodeToString(m5[:]),
	}, admin, s.clock.Now()); err != nil {
		s.t.Fatal(err)
	}
	if r, err = s.st.PublishRelease(s.ctx, store.DefaultTenant, r.ID, admin, s.clock.Now()); err != nil {
		s.t.Fatal(err)
	}
	return r
}

// start creates and starts a campaign.
func (s *sim) start(spec campaign.Spec) store.Campaign {
	s.t.Helper()
	spec.Seed = int64(s.seed)
	c, _, err := campaign.Create(s.ctx, s.st, store.DefaultTenant, spec, admin, s.clock.Now())
	if err != nil {
		s.t.Fatalf("create campaign: %v", err)
	}
	if c, err = campaign.Start(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		s.t.Fatalf("start campaign: %v", err)
	}
	return c
}

// step advances the clock by one step, runs the engine and the devices.
func (s *sim) step() {
	s.t.Helper()
	s.clock.Advance(s.Step)
	if _, err := s.eng.Tick(s.ctx); err != nil {
		s.t.Fatalf("tick at %v: %v", s.clock.Now().Sub(t0), err)
	}
	s.devicesAct()
	for !s.lastHour.Add(time.Hour).After(s.clock.Now()) {
		if !s.NoTelemetry {
			s.telemetry(s.lastHour)
		}
		s.lastHour = s.lastHour.Add(time.Hour)
	}
}

// runUntil steps until done returns true, failing after limit of fake time.
func (s *sim) runUntil(limit time.Duration, what string, done func() bool) {
	s.t.Helper()
	end := s.clock.Now().Add(limit)
	for !done() {
		if s.clock.Now().After(end) {
			s.t.Fatalf("%s: not reached after %v of simulated time", what, limit)
		}
		s.step()
	}
}

// devicesAct lets notified devices pick up their assignment and reports
// outcomes that fell due.
func (s *sim) devicesAct() {
	s.t.Helper()
	s.mu.Lock()
	ids := make([]string, 0, len(s.notified))
	for id := range s.notified {
		ids = append(ids, id)
	}
	s.notified = map[string]bool{}
	s.mu.Unlock()
	sort.Strings(ids)
	now := s.clock.Now()
	for _, id := range ids {
		a, err := s.st.ActiveAssignment(s.ctx, store.DefaultTenant, id)
		if err != nil {
			delete(s.pending, id)
			continue
		}
		if p, ok := s.pending[id]; !ok || p.assignment.ID != a.ID {
			s.pending[id] = pendingReport{assignment: a, at: now.Add(s.InstallIn)}
		}
	}
	var due []string
	for id, p := range s.pending {
		if !p.at.After(now) {
			due = append(due, id)
		}
	}
	sort.Strings(due)
	var batch []store.DeviceReports
	for _, id := range due {
		p := s.pending[id]
		delete(s.pending, id)
		d, err := s.st.Device(s.ctx, store.DefaultTenant, id)
		if err != nil {
			s.t.Fatal(err)
		}
		state := s.install(d, p.assignment.Version, s.rng)
		if state == store.AssignSucceeded {
			s.version[id] = p.assignment.Version
		}
		s.seq[id]++
		batch = append(batch, store.DeviceReports{TenantID: store.DefaultTenant, DeviceID: id, Reports: []store.StatusReport{{
			AssignmentID: p.assignment.ID, Seq: s.seq[id], State: state, Progress: 100, ReportedAt: now,
		}}})
	}
	if len(batch) > 0 {
		if _, err := s.st.RecordReports(s.ctx, batch, now); err != nil {
			s.t.Fatal(err)
		}
	}
}

// telemetry sends one hour of counters from every device.
func (s *sim) telemetry(hour time.Time) {
	s.t.Helper()
	at := hour.Add(30 * time.Minute)
	for _, d := range s.devices {
		crashes := poisson(s.rng, s.crashes(d, s.version[d.ID]))
		if err := s.st.RecordTelemetry(s.ctx, store.DefaultTenant, d.ID, []store.MetricPoint{
			{Name: "crashes", At: at, Value: float64(crashes)},
			{Name: "unexpected_reboots", At: at, Value: float64(poisson(s.rng, 0.005))},
		}); err != nil {
			s.t.Fatal(err)
		}
	}
}

func poisson(rng *rand.Rand, lambda float64) int {
	l, k, p := math.Exp(-lambda), 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

func (s *sim) campaign(id string) store.Campaign {
	s.t.Helper()
	c, err := s.st.Campaign(s.ctx, store.DefaultTenant, id)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// counts returns the campaign's devices per state (from its tallies),
// optionally only in one stratum.
func (s *sim) counts(id, stratum string) map[store.CampaignDeviceState]int {
	s.t.Helper()
	ts, err := s.st.CampaignTallies(s.ctx, store.DefaultTenant, id)
	if err != nil {
		s.t.Fatal(err)
	}
	out := map[store.CampaignDeviceState]int{}
	for _, t := range ts {
		if stratum == "" || t.Stratum == stratum {
			out[t.State] += t.N
		}
	}
	return out
}

func (s *sim) decisions(id string) []store.CampaignDecision {
	s.t.Helper()
	ds, _, err := s.st.ListCampaignDecisions(s.ctx, store.DefaultTenant, id, store.Page{Limit: store.MaxPageLimit})
	if err != nil {
		s.t.Fatal(err)
	}
	return ds
}

// versions counts the fleet's installed versions, optionally by revision.
func (s *sim) versions(rev string) map[string]int {
	s.t.Helper()
	out := map[string]int{}
	for _, d0 := range s.devices {
		d, err := s.st.Device(s.ctx, store.DefaultTenant, d0.ID)
		if err != nil {
			s.t.Fatal(err)
		}
		if rev == "" || d.HWRev == rev {
			out[d.Version]++
		}
	}
	return out
}
