package verifier_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
	"github.com/updraft/updraft/internal/verifier"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// deviceClock is a device's clock: unlike clock.Fake it can be set back.
type deviceClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *deviceClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *deviceClock) NewTimer(d time.Duration) clock.Timer {
	return clock.NewFake(c.Now()).NewTimer(d)
}

func (c *deviceClock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// env is a server-side repository and one device that trusts it.
type env struct {
	t      testing.TB
	server *clock.Fake // the server's clock
	clock  *deviceClock
	repo   *tufrepotest.Repo
	dir    string
	dev    *verifier.Client
	cfg    verifier.Config
	// v1 is release 1.0.0 (security version 1) of gw-200 for hardware A.
	v1 []tufrepotest.Artifact
}

type setupOpts struct {
	rootKeys, rootThreshold int
	limits                  tufmeta.Limits
}

const (
	deviceID   = "dev-1"
	deviceType = "gw-200"
	hwRev      = "A"
)

func setup(t testing.TB, opts ...func(*setupOpts)) *env {
	t.Helper()
	o := setupOpts{rootKeys: 1, rootThreshold: 1}
	for _, f := range opts {
		f(&o)
	}
	e := &env{t: t, server: clock.NewFake(start), clock: &deviceClock{now: start}, dir: filepath.ToSlash(t.TempDir())}
	e.repo = tufrepotest.New(t, tufrepotest.Options{
		Clock: e.server, Lines: []string{deviceType, "gw-300"},
		RootKeys: o.rootKeys, RootThreshold: o.rootThreshold,
	})
	e.v1 = e.repo.Release(deviceType, tufrepotest.Release{Version: "1.0.0", SecurityVersion: 1})
	e.cfg = verifier.Config{
		FS: devfs.OS{}, Dir: e.dir, Clock: e.clock, Fetcher: e.repo.Server,
		DeviceID: deviceID, DeviceType: deviceType, HWRev: hwRev,
		TrustedRoot: e.repo.TrustedRoot(), Limits: o.limits,
	}
	e.dev = e.open()
	e.refresh()
	return e
}

func (e *env) open() *verifier.Client {
	e.t.Helper()
	v, err := verifier.New(e.cfg)
	if err != nil {
		e.t.Fatal(err)
	}
	return v
}

// restart opens the device's verifier again from its directory.
func (e *env) restart() { e.dev = e.open() }

// advance moves both clocks forward.
func (e *env) advance(d time.Duration) {
	e.server.Advance(d)
	e.clock.Set(e.clock.Now().Add(d))
}

func (e *env) refresh() {
	e.t.Helper()
	if err := e.dev.Refresh(context.Background()); err != nil {
		e.t.Fatalf("refresh: %v", err)
	}
}

func (e *env) verify(doc []byte) (*verifier.Target, error) {
	return e.dev.VerifyAssignment(context.Background(), doc)
}

// install verifies, accepts and streams an assignment.
func (e *env) install(a tufrepotest.Artifact, doc []byte) {
	e.t.Helper()
	tg, err := e.verify(doc)
	if err != nil {
		e.t.Fatalf("verify assignment: %v", err)
	}
	if err := e.dev.Accept(tg); err != nil {
		e.t.Fatal(err)
	}
	s, err := e.dev.NewStream(tg, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if _, err := s.Write(a.Data); err != nil {
		e.t.Fatal(err)
	}
	if err := s.Finish(); err != nil {
		e.t.Fatal(err)
	}
}

// refused asserts that err is a refusal with reason want.
func refused(t testing.TB, err error, want verifier.Reason) {
	t.Helper()
	if err == nil {
		t.Fatalf("accepted; want refusal %q", want)
	}
	var r *verifier.Refusal
	if !errors.As(err, &r) {
		t.Fatalf("error %v is no refusal; want %q", err, want)
	}
	if r.Reason != want {
		t.Fatalf("refused with %q (%v); want %q", r.Reason, err, want)
	}
}

func TestInstallHappyPath(t *testing.T) {
	t.Parallel()
	e := setup(t)
	doc := e.repo.Assign(deviceID, e.v1[0])
	tg, err := e.verify(doc)
	if err != nil {
		t.Fatal(err)
	}
	if tg.Path != e.v1[0].Target.Path || tg.Length != e.v1[0].Target.Length || tg.SHA256 != e.v1[0].Target.SHA256 ||
		!tg.Custom.Equal(e.v1[0].Target.Custom) || tg.DeviceID != deviceID || tg.Counter != 1 || tg.Gates.MinBattery != 30 {
		t.Fatalf("target = %+v", tg)
	}
	e.install(e.v1[0], doc)
	if e.dev.Floor() != 0 {
		t.Fatalf("floor %d before any finalize", e.dev.Floor())
	}
	if err := e.dev.Finalize(context.Background(), e.repo.Finalize(deviceID, "1.0.0", 1), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if e.dev.Floor() != 1 {
		t.Fatalf("floor %d after finalize, want 1", e.dev.Floor())
	}
	e.restart()
	if e.dev.Floor() != 1 {
		t.Fatalf("floor %d after restart, want 1", e.dev.Floor())
	}
	// The persisted metadata alone verifies an assignment after a restart.
	if _, err := e.verify(e.repo.Assign(deviceID, e.v1[0])); err != nil {
		t.Fatalf("verify after restart without refresh: %v", err)
	}
}
