package demo_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/demo"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
)

// logWriter collects the narration and streams it to the test log (seen
// with -v, and on failure).
type logWriter struct {
	t *testing.T
	b strings.Builder
}

func (w *logWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return w.b.Write(p)
}

// TestDemoScenario runs the whole demo at reduced size: 2.0.0 fails its
// self-test on every revision B device (strong enough for 60 devices to
// decide), the health gate halts revision B and its devices end on 1.0.0,
// and 2.0.1 completes every wave with the whole fleet on it. Waves soak one
// simulated hour instead of 24, and the devices never crash and send
// telemetry every four hours (this test judges installs, not crash rates),
// so the test stays short.
func TestDemoScenario(t *testing.T) {
	const seed = 7
	out := &logWriter{t: t}
	defer func() {
		if t.Failed() {
			t.Logf("seed %d (the narration is above)", seed)
		}
	}()
	bad := sim.Behaviour{Version: demo.BadVersion, HWRevs: []string{"B"}, InstallFailRate: 1}
	p := sim.DefaultProfile()
	p.PollInterval = sim.Duration(20 * time.Minute)
	p.TelemetryInterval = sim.Duration(4 * time.Hour)
	p.CrashesPerDay = 0
	p.Releases = []sim.Behaviour{bad}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	res, err := demo.Run(ctx, demo.Options{
		Addr: "127.0.0.1:0", AddrRequired: true, Devices: 60, Factor: 800, Seed: seed,
		Profile: &p, Regression: &bad, MinSoak: time.Hour, PollInterval: 20 * time.Minute,
		Timeout: 4 * 24 * time.Hour,
	}, out)
	if err != nil {
		t.Fatalf("demo: %v", err)
	}
	t.Logf("real %s, simulated %s", res.Real, res.Simulated)
	b, g := res.Bad, res.Good
	if len(b.HaltedStrata) != 1 || !strings.HasSuffix(b.HaltedStrata[0], "hw_rev=B") {
		t.Errorf("bad campaign halted strata %v, want revision B only", b.HaltedStrata)
	}
	if b.Halt == "" || len(b.HaltTests) == 0 {
		t.Errorf("no halting decision with a rejected test: %+v", b)
	}
	if b.Step != 0 {
		t.Errorf("bad campaign halted at step %d, want the first wave", b.Step)
	}
	if b.SelfRolledBack+b.RolledBack == 0 {
		t.Errorf("nothing was rolled back: %+v", b)
	}
	if n := res.BadRevVersions[demo.FactoryVersion]; n == 0 || n != total(res.BadRevVersions) {
		t.Errorf("revision B runs %v, want all on %s", res.BadRevVersions, demo.FactoryVersion)
	}
	if g.State != string(store.CampaignCompleted) || g.Step < g.Waves {
		t.Errorf("good campaign %s at step %d of %d waves, want completed", g.State, g.Step, g.Waves)
	}
	if res.FinalVersions[demo.GoodVersion] != res.Devices {
		t.Errorf("fleet runs %v, want all %d on %s", res.FinalVersions, res.Devices, demo.GoodVersion)
	}
	if res.AdminPassword == "" || !strings.HasSuffix(res.Dashboard, "/ui/") {
		t.Errorf("credentials %q, dashboard %q", res.AdminPassword, res.Dashboard)
	}
	for _, want := range []string{"decision in wave 1: HALT", "Summary", "rolled back"} {
		if !strings.Contains(out.b.String(), want) {
			t.Errorf("narration lacks %q", want)
		}
	}
}

func total(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}
