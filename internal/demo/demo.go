// Package demo runs Updraft's guided demonstration (updraft demo): a real
// server (internal/server, SQLite in a fresh directory) on an accelerated
// clock, offline TUF keys and three signed releases, a simulated fleet of
// real agents (internal/sim) in signed mode, and two campaigns driven by the
// real rollout engine — one whose release hides a regression on one
// hardware revision, which the health gate halts and rolls back, and one
// good release that completes through all its waves.
//
// Nothing here decides anything about campaigns: the demo creates and
// starts them with internal/campaign, exactly as the management API does,
// and reads back what the engine stored (tallies, decisions, runtime). It
// only narrates. Run owns everything it starts and stops it before it
// returns, including on cancellation; with Options.Keep it leaves the data
// directory behind.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/sim"
)

// Options configure a demo run; zero values take the defaults in brackets.
type Options struct {
	// Addr is the listen address [127.0.0.1:8080]. When it is taken and
	// AddrRequired is false, a free port on 127.0.0.1 is used instead.
	Addr         string
	AddrRequired bool
	// Devices is the size of the simulated fleet [1000].
	Devices int
	// Factor is how much faster than real time the simulated clock runs
	// [1000]; network timeouts stay real.
	Factor float64
	// Seed makes the fleet, its keys and the campaigns' wave draws
	// reproducible [1].
	Seed uint64
	// Keep leaves the server and the fleet running after the scenario,
	// on a clock slowed to real time, until ctx ends, and keeps the data
	// directory.
	Keep bool
	// Dir is the working directory (server data, keys, images); empty: a
	// new temporary directory, removed at the end unless Keep.
	Dir string
	// Profile is the fleet; nil: the default profile with the demo's
	// release behaviour (Regression).
	Profile *sim.Profile
	// Regression is how 2.0.0 behaves on its bad hardware revision
	// [crash rate ×5 on revision B, installs fine].
	Regression *sim.Behaviour
	// MinSoak overrides the health policy's minimum soak per wave [the
	// standard policy's 24h]; tests shorten it.
	MinSoak time.Duration
	// DeviceTimeout is how long a campaign device may make no progress
	// before it times out [the campaign default of 24h, or two minutes of
	// real time when that is longer]: a process starved by a busy machine
	// loses simulated hours in seconds, and that must not fail devices.
	DeviceTimeout time.Duration
	// PollInterval is the check-in interval the server hands out, in
	// simulated time [1h].
	PollInterval time.Duration
	// Progress is the real-time interval between progress lines [2s].
	Progress time.Duration
	// Timeout bounds each phase in simulated time [10 days].
	Timeout time.Duration
	// Logger receives the server's log; nil discards it.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Addr == "" {
		o.Addr = "127.0.0.1:8080"
	}
	if o.Devices <= 0 {
		o.Devices = 1000
	}
	if o.Factor <= 0 {
		o.Factor = 1000
	}
	if o.Seed == 0 {
		o.Seed = 1
	}
	if o.Regression == nil {
		o.Regression = &sim.Behaviour{Version: BadVersion, HWRevs: []string{"B"}, CrashMultiplier: 5}
	}
	if o.DeviceTimeout <= 0 {
		o.DeviceTimeout = max(24*time.Hour, time.Duration(120*o.Factor)*time.Second)
	}
	if o.PollInterval <= 0 {
		o.PollInterval = time.Hour
	}
	if o.Progress <= 0 {
		o.Progress = 2 * time.Second
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * 24 * time.Hour
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// The releases of the scenario.
const (
	FactoryVersion = "1.0.0"
	BadVersion     = "2.0.0"
	GoodVersion    = "2.0.1"
	// DeviceType is the simulated product line, and its release role.
	DeviceType = "gw-200"
)

// Result is what a demo run found, read back from the server and the fleet.
type Result struct {
	URL       string // the server's public URL
	Dashboard string // URL of the dashboard
	Dir       string // working directory (removed unless Keep)
	AdminUser string
	// AdminPassword was set by the demo (no change required at sign-in).
	AdminPassword string
	AdminToken    string

	Devices int
	Seed    uint64
	// Bad and Good are the two campaigns.
	Bad  CampaignResult
	Good CampaignResult
	// BadRevision is the hardware revision 2.0.0 regresses on;
	// BadRevVersions counts that revision's devices by running version
	// after the bad campaign, FinalVersions every device's after the good.
	BadRevision    string
	BadRevVersions map[string]int
	FinalVersions  map[string]int
	// Real and Simulated are the scenario's elapsed times.
	Real, Simulated time.Duration
}

// CampaignResult summarises one campaign as the engine left it.
type CampaignResult struct {
	ID      string
	Version string
	State   string
	// Waves is the number of production waves; Step the index of the last
	// open step (Waves means the control group's phase).
	Waves, Step int
	// Planned are the cumulative wave sizes the plan drew.
	Planned []int
	// Exposed is the number of devices that installed the release (or
	// tried to), ExposedHalted those of them in the halted strata.
	Exposed, ExposedHalted int
	// HaltedStrata are the strata the health gate halted; Halt is the
	// halting decision's summary and HaltTests its rejected tests.
	HaltedStrata []string
	Halt         string
	HaltTests    []TestLine
	// RolledBack counts devices moved back by the engine's rollback
	// campaigns; SelfRolledBack devices whose agent rolled back itself.
	RolledBack, SelfRolledBack int
	// Updated is the number of devices that ended on the release.
	Updated int
	// Failures counts the reasons of failed, rolled-back and timed-out
	// devices.
	Failures map[string]int
	// Simulated is how long the campaign ran in simulated time.
	Simulated time.Duration
}

// TestLine is one health test of a decision.
type TestLine struct {
	Group, Metric        string
	Statistic, Threshold float64
	Explanation          string
}

// Run runs the scenario and narrates it on w. Cancelling ctx stops
// everything cleanly at any point; the error is then ctx's. With
// Options.Keep, Run returns only once ctx ends after the scenario.
func Run(ctx context.Context, o Options, w io.Writer) (res Result, err error) {
	o.setDefaults()
	res.Devices, res.Seed = o.Devices, o.Seed
	realStart := clock.Real{}.Now()

	dir := o.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", "updraft-demo-"); err != nil {
			return res, fmt.Errorf("demo: temporary directory: %w", err)
		}
		defer func() {
			if !o.Keep {
				if rmErr := os.RemoveAll(dir); rmErr != nil && err == nil {
					err = fmt.Errorf("demo: remove %s: %w", dir, rmErr)
				}
			}
		}()
	}
	res.Dir = dir

	addr, err := pickAddr(o.Addr, o.AddrRequired, w)
	if err != nil {
		return res, err
	}
	start := realStart.UTC().Truncate(time.Minute)
	clk := sim.NewAccelerated(start, o.Factor)
	d := &demo{o: o, w: w, clock: clk, dir: dir, res: &res}
	lease := max(time.Hour, time.Duration(10*o.Factor)*time.Second)
	srv, err := server.New(ctx, server.Config{
		DataDir: filepath.Join(dir, "server"), Addr: addr, Clock: clk, Logger: o.Logger, Out: io.Discard,
		// The server's periodic work, stretched so that it runs every few
		// hundred real milliseconds at 1000×, and leases that outlast a
		// slow transaction by seconds of real time.
		Timing: server.Timing{
			PollInterval:        o.PollInterval,
			EngineInterval:      5 * time.Minute,
			EngineLeaseTTL:      lease,
			LastSeenFlush:       5 * time.Minute,
			MaintenanceInterval: time.Hour,
		},
		Signing: signing.Options{PublishInterval: 10 * time.Minute, LeaseTTL: lease},
	})
	if err != nil {
		return res, fmt.Errorf("demo: start the server: %w", err)
	}
	if err := srv.Listen(); err != nil {
		srv.Close()
		return res, fmt.Errorf("demo: %w", err)
	}
	serveCtx, stopServe := context.WithCancel(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- srv.Serve(serveCtx) }()
	defer func() {
		stopServe()
		if serr := <-served; serr != nil && err == nil {
			err = fmt.Errorf("demo: server: %w", serr)
		}
		srv.Close()
	}()
	// Registered after the server's, so the fleet stops first.
	defer func() {
		if d.stopFleet != nil {
			d.stopFleet()
		}
	}()
	d.srv, d.st = srv, srv.Store()
	res.URL = srv.PublicURL()
	res.Dashboard = res.URL + "/ui/"

	fmt.Fprintf(w, "Updraft demo: %d simulated devices, clock %g× faster than real time, seed %d\n", o.Devices, o.Factor, o.Seed)
	fmt.Fprintf(w, "  server   %s  (SQLite in %s)\n", res.URL, filepath.Join(dir, "server"))
	fmt.Fprintf(w, "  sim time starts %s; every device checks in once per simulated %s\n\n", start.Format(time.RFC3339), o.PollInterval)

	err = d.run(ctx)
	res.Real = clock.Real{}.Now().Sub(realStart)
	res.Simulated = clk.Now().Sub(start)
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintf(w, "\nInterrupted after %s (%s simulated); shutting down.\n", round(res.Real), fmtSim(res.Simulated))
			return res, ctx.Err()
		}
		return res, err
	}
	d.summary()
	if o.Keep {
		clk.SetFactor(1)
		fmt.Fprintf(w, "\n--keep: the server and the %d devices keep running, now on real time. Data directory: %s\n", o.Devices, dir)
		fmt.Fprintf(w, "Explore %s (user %s, password %s). Press Ctrl-C to stop.\n", res.Dashboard, res.AdminUser, res.AdminPassword)
		<-ctx.Done()
		fmt.Fprintf(w, "Stopping; the data directory %s stays.\n", dir)
	}
	return res, nil
}

// pickAddr checks that addr is free; when it is taken and the caller did
// not insist on it, it falls back to a free port and says so.
func pickAddr(addr string, required bool, w io.Writer) (string, error) {
	ln, err := net.Listen("tcp", addr)
	if err == nil {
		ln.Close()
		return addr, nil
	}
	if required || !errors.Is(err, syscall.EADDRINUSE) {
		return "", fmt.Errorf("demo: listen on %s: %w", addr, err)
	}
	host, _, herr := net.SplitHostPort(addr)
	if herr != nil || host == "" {
		host = "127.0.0.1"
	}
	fallback := net.JoinHostPort(host, "0")
	ln, err = net.Listen("tcp", fallback)
	if err != nil {
		return "", fmt.Errorf("demo: %s is taken and no free port is left on %s: %w", addr, host, err)
	}
	free := ln.Addr().String()
	ln.Close()
	fmt.Fprintf(w, "%s is in use (another Updraft?); the demo listens on %s instead (choose with --addr).\n", addr, free)
	return free, nil
}

func round(d time.Duration) time.Duration { return d.Round(100 * time.Millisecond) }

// fmtSim writes a simulated duration in days and hours.
func fmtSim(d time.Duration) string {
	d = d.Round(time.Minute)
	days := int(d / (24 * time.Hour))
	d -= time.Duration(days) * 24 * time.Hour
	h := int(d / time.Hour)
	m := int((d - time.Duration(h)*time.Hour) / time.Minute)
	switch {
	case days > 0:
		return fmt.Sprintf("%dd %02dh%02dm", days, h, m)
	case h > 0:
		return fmt.Sprintf("%dh%02dm", h, m)
	}
	return fmt.Sprintf("%dm", m)
}
