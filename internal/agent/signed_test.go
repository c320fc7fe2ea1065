package agent_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
	"github.com/updraft/updraft/internal/verifier"
)

// director signs assignments for the device API like the server's
// director: it finds the offline-signed target whose bytes the artifact
// holds and signs a per-device document for it with the repository's
// director key. edit can falsify what it signs.
type director struct {
	repo *tufrepotest.Repo
	mu   sync.Mutex
	// targets by artifact SHA-256
	targets map[string]tufrepo.Target
	docs    map[string][]byte
	edit    func(*tufrepo.Assignment)
}

func (d *director) SignAssignment(_ context.Context, dev store.Device, a store.Assignment, _ store.Release, art store.Artifact) (json.RawMessage, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if doc, ok := d.docs[a.ID]; ok {
		return doc, nil
	}
	tg, ok := d.targets[art.SHA256]
	if !ok {
		// Not offline-signed: a compromised server may still try.
		tg = tufrepo.Target{Path: tufmeta.TargetPath(art.DeviceType, art.Component, "9.9.9", art.Name), Length: art.Size, SHA256: art.SHA256,
			Custom: tufmeta.TargetCustom{Version: "9.9.9", DeviceType: art.DeviceType, HWRevs: art.HWRevs, ArtifactType: string(art.Type), Component: art.Component}}
	}
	as := tufrepo.Assignment{DeviceID: dev.ID, AssignmentID: a.ID, Target: tg, Counter: d.repo.NextCounter(dev.ID),
		Expires: d.repo.Clock.Now().Add(7 * 24 * time.Hour)}
	if d.edit != nil {
		d.edit(&as)
	}
	doc, err := tufrepo.SignAssignment(as, d.repo.Director)
	if err != nil {
		return nil, err
	}
	d.docs[a.ID] = doc
	return doc, nil
}

type signedEnv struct {
	srv  *server
	repo *tufrepotest.Repo
	dir  *director
	fin  *finalizer
}

// finalizer stands in for the server's finalize signer: once an operator
// finalizes (version set), devices running that version whose floor is
// below its security version get a director-signed finalize document.
type finalizer struct {
	repo            *tufrepotest.Repo
	mu              sync.Mutex
	version         string
	securityVersion int64
	sent            int
}

func (f *finalizer) FinalizeFor(_ context.Context, d store.Device, floor *int64) (json.RawMessage, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.version == "" || d.Version != f.version || (floor != nil && *floor >= f.securityVersion) {
		return nil, nil
	}
	f.sent++
	return tufrepo.SignFinalize(tufrepo.Finalize{DeviceID: d.ID, Version: f.version, SecurityVersion: f.securityVersion,
		Counter: f.repo.NextCounter(d.ID), Expires: f.repo.Clock.Now().Add(7 * 24 * time.Hour)}, f.repo.Director)
}

func newSignedEnv(t *testing.T) *signedEnv {
	t.Helper()
	e := &signedEnv{}
	// The repository and the device API share the fake clock.
	e.dir = &director{targets: map[string]tufrepo.Target{}, docs: map[string][]byte{}}
	meta := &lateFetcher{}
	e.fin = &finalizer{}
	e.srv = newServer(t, serverOptions{director: e.dir, metadata: meta, finalizer: e.fin})
	e.repo = tufrepotest.New(t, tufrepotest.Options{Clock: e.srv.clock, Lines: []string{"gw-200", "gw-300"}})
	e.dir.repo = e.repo
	e.fin.repo = e.repo
	meta.f = e.repo.Server
	return e
}

// release signs a release offline (TUF) and publishes the same bytes on
// the server.
func (e *signedEnv) release(version string, securityVersion int64, hwRevs ...string) store.Release {
	arts := e.repo.Release("gw-200", tufrepotest.Release{Version: version, SecurityVersion: securityVersion, HWRevs: hwRevs, Size: 96 << 10})
	e.dir.mu.Lock()
	e.dir.targets[arts[0].Target.SHA256] = arts[0].Target
	e.dir.mu.Unlock()
	return e.srv.image(version, arts[0].Data)
}

// lateFetcher lets the server start before the repository exists.
type lateFetcher struct{ f verifier.Fetcher }

func (l *lateFetcher) Get(ctx context.Context, name string, n int64) ([]byte, error) {
	return l.f.Get(ctx, name, n)
}

// device opens the real verifier on the device's own disk once it knows
// its id; it fetches metadata through the agent's own fetcher, over HTTP
// with the device token.
func (e *signedEnv) device(t *testing.T, serial string, seed uint64) *device {
	d, _ := e.deviceWithVerifier(t, serial, seed)
	return d
}

// deviceWithVerifier is device, also returning the latest verifier the
// agent opened (it opens a new one after every restart).
func (e *signedEnv) deviceWithVerifier(t *testing.T, serial string, seed uint64) (*device, func() verifier.Verifier) {
	var d *device
	var mu sync.Mutex
	var latest verifier.Verifier
	d = newDevice(t, e.srv, deviceOptions{serial: serial, seed: seed, configure: func(c *agent.Config) {
		c.NewVerifier = func(_ context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error) {
			v, err := verifier.New(verifier.Config{
				FS: d.fs, Dir: "var/lib/updraft/tuf", Clock: e.srv.clock, Fetcher: fetch,
				DeviceID: deviceID, DeviceType: "gw-200", HWRev: "B", TrustedRoot: e.repo.TrustedRoot(),
			})
			if err == nil {
				mu.Lock()
				latest = v
				mu.Unlock()
			}
			return v, err
		}
	}})
	return d, func() verifier.Verifier {
		mu.Lock()
		defer mu.Unlock()
		return latest
	}
}

// checkIns lets the agent run n rounds of due work, advancing the fake
// clock to each next wake-up (every round includes a check-in when one is due).
func checkIns(d *device, n int) {
	d.t.Helper()
	for range n {
		wait, err := d.step(context.Background())
		if err != nil {
			d.t.Fatalf("step: %v\nlog:\n%s", err, d.logTail())
		}
		d.srv.clock.Advance(max(wait, time.Second))
	}
}

// TestFinalizeRaisesFloorOnlyWhenFinalized: committing a release with a
// higher security version does not raise the floor (so the fleet can still
// be rolled back); the server's signed finalize, delivered at check-in,
// does, after which an older build is refused as below the floor.
func TestFinalizeRaisesFloorOnlyWhenFinalized(t *testing.T) {
	t.Parallel()
	e := newSignedEnv(t)
	d, ver := e.deviceWithVerifier(t, "SN-FLOOR", 503)
	old := e.release("1.5.0", 1, "B")
	rel := e.release("2.0.0", 2, "B")
	asg := e.srv.assign(d.deviceID(), rel)
	d.finished(asg.ID)
	if got := e.srv.assignment(asg.ID); got.State != store.AssignSucceeded {
		t.Fatalf("install of 2.0.0: %s\n%s", got.State, d.logTail())
	}
	checkIns(d, 5)
	if f := ver().Floor(); f != 0 {
		t.Fatalf("floor %d after commit without finalize, want 0", f)
	}
	e.fin.mu.Lock()
	e.fin.version, e.fin.securityVersion = "2.0.0", 2
	e.fin.mu.Unlock()
	d.until("the floor rises to 2", 100, func() bool { return ver().Floor() == 2 })
	// Once the agent reports the raised floor, the server stops sending it.
	e.fin.mu.Lock()
	sent := e.fin.sent
	e.fin.mu.Unlock()
	checkIns(d, 5)
	e.fin.mu.Lock()
	again := e.fin.sent
	e.fin.mu.Unlock()
	if again != sent {
		t.Fatalf("finalize sent %d more times after the floor rose", again-sent)
	}
	back := e.srv.assign(d.deviceID(), old)
	d.until("the rollback below the floor is refused", 200, func() bool {
		st := e.srv.assignment(back.ID)
		return st.State == store.AssignFailed
	})
	if got := e.srv.assignment(back.ID); !strings.Contains(got.ErrorCode+got.Reason, "below-floor") {
		t.Fatalf("rollback below the floor: %s %q %q, want a below-floor refusal", got.State, got.ErrorCode, got.Reason)
	}
	if v := d.a.Status().Version; v != "2.0.0" {
		t.Fatalf("device runs %s after the refused rollback, want 2.0.0", v)
	}
}

// TestSignedUpdate installs a release whose director document and
// offline-signed targets agree, across a power cut mid-download.
func TestSignedUpdate(t *testing.T) {
	t.Parallel()
	e := newSignedEnv(t)
	d := e.device(t, "SN-SIGNED", 501)
	rel := e.release("2.0.0", 2, "B")
	asg := e.srv.assign(d.deviceID(), rel)
	writes := 0
	d.fs.CutWhen(func(op devfs.Op) bool {
		if op.Name == "dev/slot-b" && op.Kind == devfs.OpWrite {
			writes++
		}
		return writes == 2
	})
	d.until("power cut", 20, func() bool { return d.fs.PowerCut() })
	d.powerCycle()
	d.finished(asg.ID)
	if got := e.srv.assignment(asg.ID); got.State != store.AssignSucceeded || d.a.Status().Version != "2.0.0" {
		t.Fatalf("assignment %s version %s\n%s", got.State, d.a.Status().Version, d.logTail())
	}
}

// TestSignedRefusals: the agent refuses, and reports why, an assignment
// whose bytes the offline keys never signed, one for other hardware and one
// signed for another device; it stays on its slot.
func TestSignedRefusals(t *testing.T) {
	t.Parallel()
	e := newSignedEnv(t)
	d := e.device(t, "SN-REFUSE", 502)
	id := d.deviceID()

	check := func(rel store.Release, code string) {
		t.Helper()
		asg := e.srv.assign(id, rel)
		d.finished(asg.ID)
		last := lastEvent(t, e.srv, asg.ID)
		if last.State != store.AssignFailed || last.ErrorCode != code {
			t.Fatalf("want failed/%s, got %+v\n%s", code, last.StatusReport, d.logTail())
		}
		if d.current() != "A" {
			t.Fatalf("booted %s after a refusal", d.current())
		}
	}
	// Bytes the offline keys never signed.
	check(e.srv.image("6.6.6", image("EVIL", 50<<10, 66)), string(verifier.ReasonNotInTargets))
	// Signed, but for hardware revision C only.
	check(e.release("2.1.0", 2, "C"), string(verifier.ReasonWrongHardware))
	// A director document for another device.
	e.dir.edit = func(a *tufrepo.Assignment) { a.DeviceID = "someone-else" }
	check(e.release("2.2.0", 2, "B"), string(verifier.ReasonWrongDevice))
	e.dir.edit = nil
}

// TestSignedWindowFromAssignment: the maintenance window comes from the
// signed assignment and holds the download back until it opens.
func TestSignedWindowFromAssignment(t *testing.T) {
	t.Parallel()
	e := newSignedEnv(t)
	d := e.device(t, "SN-WINDOW", 503)
	id := d.deviceID()
	// The fake clock starts Monday 2025-06-02 09:00 UTC (11:00 in Berlin).
	e.dir.edit = func(a *tufrepo.Assignment) {
		a.Windows = []tufmeta.Window{{Start: "13:00", Duration: tufmeta.Duration(time.Hour)}}
	}
	asg := e.srv.assign(id, e.release("2.0.0", 2, "B"))
	d.until("notified", 20, func() bool { return strings.Contains(lastMessage(e.srv, asg.ID), "window") })
	if st := d.a.Status(); st.Phase != agent.PhaseIdle {
		t.Fatalf("phase %s outside the window", st.Phase)
	}
	// Skip the idle hours: just before the window opens.
	e.srv.clock.Set(time.Date(2025, 6, 2, 12, 58, 0, 0, mustBerlin(t)))
	d.step(context.Background())
	if st := d.a.Status(); st.Phase != agent.PhaseIdle {
		t.Fatalf("phase %s before the window opened", st.Phase)
	}
	d.finished(asg.ID)
	if now := e.srv.clock.Now().In(mustBerlin(t)); now.Hour() != 13 {
		t.Fatalf("installed at %s Berlin time, want within the 13:00 window", now.Format("15:04"))
	}
}

// TestUnsignedAssignmentRefused: with signed updates on, an assignment
// without a director document is refused.
func TestUnsignedAssignmentRefused(t *testing.T) {
	t.Parallel()
	repoSrv := newSignedEnv(t)
	plain := newServer(t, serverOptions{})
	var d *device
	d = newDevice(t, plain, deviceOptions{serial: "SN-PLAIN", seed: 504, configure: func(c *agent.Config) {
		c.NewVerifier = func(_ context.Context, deviceID string, _ verifier.Fetcher) (verifier.Verifier, error) {
			return verifier.New(verifier.Config{FS: d.fs, Dir: "var/lib/updraft/tuf", Clock: plain.clock, Fetcher: repoSrv.repo.Server,
				DeviceID: deviceID, DeviceType: "gw-200", HWRev: "B", TrustedRoot: repoSrv.repo.TrustedRoot()})
		}
	}})
	asg := plain.assign(d.deviceID(), plain.image("2.0.0", image("GOOD", 10<<10, 5)))
	d.finished(asg.ID)
	if last := lastEvent(t, plain, asg.ID); last.ErrorCode != "unsigned" {
		t.Fatalf("report %+v", last.StatusReport)
	}
}

func mustBerlin(t *testing.T) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	return loc
}
