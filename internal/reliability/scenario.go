package reliability

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/sim"
	"github.com/updraft/updraft/internal/store"
)

// The scenario's releases: every device ships Initial; Bad never boots on
// revision B; Good is good everywhere.
const (
	Initial = "1.0.0"
	Bad     = "2.0.0"
	Good    = "2.1.0"
	// BadRev is the hardware revision Bad bricks.
	BadRev = "B"
)

// Faults are the failures injected into a run.
type Faults struct {
	// DropRate is the share of connections dropped (half before the
	// request, half in the middle of the response body).
	DropRate float64
	// PowerCutRate is the chance of a power cut during each install.
	PowerCutRate float64
	// KillServer kills the server with SIGKILL mid-campaign (once in the
	// bad campaign, once in the good one) and restarts it.
	KillServer bool
}

// StandardFaults are the scenario's faults: 20 % of connections dropped,
// power cuts in 5 % of installs, the server killed twice.
func StandardFaults() Faults { return Faults{DropRate: 0.2, PowerCutRate: 0.05, KillServer: true} }

// Config configures a run.
type Config struct {
	// Binary is the updraft executable (Build).
	Binary string
	// Dir is a fresh directory for the server's data and log.
	Dir string
	// Database is a PostgreSQL URL of a fresh database; empty: SQLite.
	Database string
	// Devices is the fleet size [150].
	Devices int
	// Seed fixes the fleet, the releases' images and the campaigns' draws.
	Seed uint64
	// TimeScale is how much faster than real time the scenario runs [120].
	TimeScale float64
	Faults    Faults
	// MinSoak is the campaigns' minimum soak per wave [1h].
	MinSoak time.Duration
	// Budget bounds each phase in simulated time [24h].
	Budget time.Duration
	// Deadline bounds the whole run in real time, as a failure timeout
	// only [10m].
	Deadline time.Duration
	// Progress, when set, receives a line per phase and poll.
	Progress func(format string, args ...any)
}

// Report is what a run found. The goals: no device bricked, no status
// report lost, every campaign in its expected state.
type Report struct {
	Backend string
	Devices int
	Seed    uint64
	Faults  Faults
	Scale   float64

	// Bricked devices do not end on a bootable, committed slot: the agent
	// is not idle, the booted slot does not hold the running version, or
	// the running version is one that never boots on the hardware.
	Bricked        int
	BrickedDetails []string
	// ReportsLost counts the reports missing from the devices' report
	// sequences on the server (their gaps, and a tail the server lacks
	// against the device's own sequence), DevicesWithGaps the devices
	// with any; Unsent counts reports still in the devices' outboxes.
	ReportsLost     int64
	DevicesWithGaps int
	Unsent          int
	// Campaigns are the campaigns with the state each ended in.
	Campaigns []CampaignResult
	// TimeToHalt is the simulated time from the bad campaign's start to
	// its halt.
	TimeToHalt time.Duration
	// Exposed counts the devices that installed the bad release (their
	// assignment ended succeeded, failed, rolled back or timed out),
	// ExposedBadRev those of the revision it bricks; Canceled the devices
	// whose assignment of it the halt canceled before they installed it.
	Exposed, ExposedBadRev, Canceled int
	// GoodDuration is the simulated time the good campaign took from
	// start to completion.
	GoodDuration time.Duration
	// Versions counts the devices by running version at the end.
	Versions map[string]int
	// Faults observed.
	Kills, PowerCuts, WatchdogResets int
	Dropped                          int64
	// Wall is the real time the run took, Simulated its simulated time.
	Wall, Simulated time.Duration
}

// CampaignResult is one campaign's end state against the expected one.
type CampaignResult struct {
	Name, ID, Kind, Version string
	State, Want             store.CampaignState
}

// Problems lists where the run missed a goal; empty is a pass.
func (r Report) Problems() []string {
	var p []string
	if r.Bricked > 0 {
		p = append(p, fmt.Sprintf("%d devices bricked: %s", r.Bricked, strings.Join(r.BrickedDetails, "; ")))
	}
	if r.ReportsLost > 0 || r.DevicesWithGaps > 0 {
		p = append(p, fmt.Sprintf("%d status reports lost on %d devices", r.ReportsLost, r.DevicesWithGaps))
	}
	if r.Unsent > 0 {
		p = append(p, fmt.Sprintf("%d status reports never reached the server", r.Unsent))
	}
	for _, c := range r.Campaigns {
		if c.State != c.Want {
			p = append(p, fmt.Sprintf("campaign %s (%s, %s) ended %s, want %s", c.Name, c.Kind, c.Version, c.State, c.Want))
		}
	}
	if len(r.Campaigns) < 3 {
		p = append(p, fmt.Sprintf("only %d campaigns ran (bad, its rollback, good)", len(r.Campaigns)))
	}
	if r.Faults.KillServer && r.Kills < 2 {
		p = append(p, fmt.Sprintf("the server was killed %d times, want 2", r.Kills))
	}
	if r.Faults.PowerCutRate > 0 && r.Devices >= 100 && r.PowerCuts == 0 {
		p = append(p, "no power cut happened")
	}
	if r.Faults.DropRate > 0 && r.Dropped == 0 {
		p = append(p, "no connection was dropped")
	}
	if r.Exposed == 0 {
		p = append(p, "the bad release reached no device")
	}
	return p
}

// run is the state of one scenario run.
type run struct {
	cfg   Config
	clock *clock.Scaled
	srv   *Server
	api   *client.Client
	http  *http.Client
	fleet *sim.Fleet
	rep   *Report
	start time.Time
	real  time.Time
}

// Run plays the scenario and reports what happened. An error means the
// run could not be carried out (or a phase ran out of its budget); the
// goals are judged by Report.Problems.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Devices <= 0 {
		cfg.Devices = 150
	}
	if cfg.TimeScale <= 0 {
		cfg.TimeScale = 120
	}
	if cfg.MinSoak <= 0 {
		cfg.MinSoak = time.Hour
	}
	if cfg.Budget <= 0 {
		cfg.Budget = 24 * time.Hour
	}
	if cfg.Deadline <= 0 {
		cfg.Deadline = 10 * time.Minute
	}
	if cfg.Progress == nil {
		cfg.Progress = func(string, ...any) {}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Deadline)
	defer cancel()
	backend := "sqlite"
	if cfg.Database != "" {
		backend = "postgres"
	}
	r := &run{cfg: cfg, rep: &Report{Backend: backend, Devices: cfg.Devices, Seed: cfg.Seed, Faults: cfg.Faults, Scale: cfg.TimeScale},
		http: &http.Client{}, real: clock.Real{}.Now()}
	// The origin is whole seconds (RFC 3339 on the command line) and
	// already past, so both processes start on the same timeline.
	origin := r.real.Truncate(time.Second)
	var err error
	if r.clock, err = clock.NewScaled(clock.Real{}, origin, cfg.TimeScale); err != nil {
		return nil, err
	}
	r.start = r.clock.Now()
	logf, err := createLog(filepath.Join(cfg.Dir, "server.log"))
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	if r.srv, err = StartServer(ServerConfig{Binary: cfg.Binary, DataDir: filepath.Join(cfg.Dir, "data"), Database: cfg.Database,
		TimeScale: cfg.TimeScale, TimeOrigin: origin, Log: logf}); err != nil {
		return nil, err
	}
	defer r.srv.Stop()
	if r.api, err = client.New(r.srv.URL(), client.Options{Token: r.srv.Token}); err != nil {
		return nil, err
	}
	if err = r.changePassword(ctx); err == nil {
		err = r.play(ctx)
	}
	r.rep.Wall = clock.Since(clock.Real{}, r.real)
	r.rep.Simulated = r.clock.Now().Sub(r.start)
	r.rep.Kills = r.srv.Kills
	if err != nil {
		return r.rep, fmt.Errorf("seed %d, %s, %d devices: %w (server log: %s)", cfg.Seed, backend, cfg.Devices, err, filepath.Join(cfg.Dir, "server.log"))
	}
	return r.rep, nil
}

func (r *run) play(ctx context.Context) error {
	for i, v := range []string{Initial, Bad, Good} {
		if err := r.publish(ctx, v, int64(i+1)); err != nil {
			return err
		}
	}
	p := sim.DefaultProfile()
	p.PollInterval = sim.Duration(5 * time.Minute)
	p.Link.DropRate = r.cfg.Faults.DropRate
	p.PowerCutRate = r.cfg.Faults.PowerCutRate
	p.Releases = []sim.Behaviour{{Version: Bad, HWRevs: []string{BadRev}, BootFailRate: 1}}
	var err error
	r.fleet, err = sim.New(sim.Config{ServerURL: r.srv.URL(), Devices: r.cfg.Devices, Profile: p, Clock: r.clock, Seed: r.cfg.Seed,
		Preauthorize: r.preauthorize})
	if err != nil {
		return err
	}
	if err := r.fleet.Preauthorize(ctx); err != nil {
		return err
	}
	fctx, stop := context.WithCancel(ctx)
	ran := make(chan error, 1)
	go func() { ran <- r.fleet.Run(fctx) }()
	defer func() {
		stop()
		<-ran
	}()

	n := r.cfg.Devices
	if err := r.until(ctx, "every device enrolled and reporting "+Initial, func() (bool, error) {
		if r.fleet.Stats().Enrolled < n {
			return false, nil
		}
		c, err := r.api.CountDevices(ctx, fmt.Sprintf("version == %q", Initial))
		return c == n, err
	}); err != nil {
		return err
	}

	// The bad release: the health gate must halt it and roll back.
	bad, err := r.startCampaign(ctx, badSpec(r.cfg))
	if err != nil {
		return err
	}
	if r.cfg.Faults.KillServer {
		if err := r.until(ctx, "the bad campaign dispatched", func() (bool, error) {
			c, err := r.campaign(ctx, bad)
			return c.dispatched() > 0 || c.State != store.CampaignRunning, err
		}); err != nil {
			return err
		}
		if err := r.kill(ctx); err != nil {
			return err
		}
	}
	var halted campaignView
	if err := r.until(ctx, "the bad campaign halted", func() (bool, error) {
		var err error
		halted, err = r.campaign(ctx, bad)
		return halted.State != store.CampaignRunning && halted.State != store.CampaignWaitingApproval, err
	}); err != nil {
		return err
	}
	r.rep.Campaigns = append(r.rep.Campaigns, halted.result(store.CampaignHalted))
	// The rollback campaign is created by the engine as it halts (a page
	// of devices per tick), so wait for it to be named.
	if err := r.until(ctx, "the rollback campaign created", func() (bool, error) {
		var err error
		halted, err = r.campaign(ctx, bad)
		return len(halted.Rollbacks) > 0, err
	}); err != nil {
		return err
	}
	for _, id := range halted.Rollbacks {
		var rb campaignView
		if err := r.until(ctx, "rollback campaign "+id+" finished", func() (bool, error) {
			var err error
			rb, err = r.campaign(ctx, id)
			return rb.finished(), err
		}); err != nil {
			return err
		}
		r.rep.Campaigns = append(r.rep.Campaigns, rb.result(store.CampaignCompleted))
	}
	if err := r.quiesce(ctx, "the fleet settled after the rollback"); err != nil {
		return err
	}
	if err := r.haltFacts(ctx, halted); err != nil {
		return err
	}

	// The good release goes through every wave.
	good, err := r.startCampaign(ctx, goodSpec(r.cfg))
	if err != nil {
		return err
	}
	if r.cfg.Faults.KillServer {
		if err := r.until(ctx, "the good campaign's first wave installing", func() (bool, error) {
			c, err := r.campaign(ctx, good)
			return c.count(store.CDSucceeded) > 0 || c.finished(), err
		}); err != nil {
			return err
		}
		if err := r.kill(ctx); err != nil {
			return err
		}
	}
	var done campaignView
	if err := r.until(ctx, "the good campaign finished", func() (bool, error) {
		var err error
		done, err = r.campaign(ctx, good)
		return done.finished(), err
	}); err != nil {
		return err
	}
	r.rep.Campaigns = append(r.rep.Campaigns, done.result(store.CampaignCompleted))
	if _, err := r.decisions(ctx, done); err != nil {
		return err
	}
	if done.StartedAt != nil && done.FinishedAt != nil {
		r.rep.GoodDuration = done.FinishedAt.Sub(*done.StartedAt)
	}
	if err := r.quiesce(ctx, "the fleet settled after the good campaign"); err != nil {
		return err
	}
	r.outcomes()
	stop()
	<-ran
	ran <- nil // for the deferred receive
	return r.inspect(ctx)
}

// until polls cond on the scenario's clock every simulated 15 s until it
// holds, failing after the simulated budget or the real deadline.
func (r *run) until(ctx context.Context, what string, cond func() (bool, error)) error {
	r.cfg.Progress("waiting: %s", what)
	end := r.clock.Now().Add(r.cfg.Budget)
	var last error
	for {
		ok, err := cond()
		if ok && err == nil {
			return nil
		}
		if err != nil {
			last = err
		}
		if ctx.Err() != nil || r.clock.Now().After(end) {
			s := r.fleet.Stats()
			return fmt.Errorf("%s: not reached within %v simulated (%v real; last error: %v; fleet: enrolled %d, versions %v, results %v, outbox %d, last agent error %q)",
				what, r.cfg.Budget, clock.Since(clock.Real{}, r.real).Round(time.Second), last, s.Enrolled, s.Versions, s.Results, s.Outbox, s.LastError)
		}
		clock.Sleep(r.clock, 15*time.Second, ctx.Done())
	}
}

// quiesce waits until every agent is idle with an empty outbox.
func (r *run) quiesce(ctx context.Context, what string) error {
	return r.until(ctx, what, func() (bool, error) {
		for _, d := range r.fleet.Devices() {
			if d.Status.Phase != agent.PhaseIdle || d.Status.Outbox != 0 {
				return false, nil
			}
		}
		return true, nil
	})
}

// outcomes logs how the devices' last assignments ended, with a reason
// of each kind of failure.
func (r *run) outcomes() {
	tally := map[string]int{}
	reasons := map[string]string{}
	for _, d := range r.fleet.Devices() {
		if res := d.Status.Result; res != nil {
			k := res.State + " " + res.ErrorCode
			tally[k]++
			if res.State != "succeeded" {
				reasons[k] = res.Reason
			}
		}
	}
	r.cfg.Progress("last outcomes on the devices: %s", sortedVersions(tally))
	for k, why := range reasons {
		r.cfg.Progress("  %s, e.g.: %s", k, why)
	}
}

// kill sends SIGKILL to the server and starts it again on the same data.
func (r *run) kill(ctx context.Context) error {
	r.cfg.Progress("SIGKILL to the server at %s simulated", r.clock.Now().Sub(r.start).Round(time.Second))
	r.srv.Kill()
	if err := r.srv.Restart(); err != nil {
		return fmt.Errorf("restart after SIGKILL: %w", err)
	}
	_, err := r.api.CountDevices(ctx, "")
	return err
}

// inspect judges every device: its boot state on the device and its
// report sequence on the server.
func (r *run) inspect(ctx context.Context) error {
	rep := r.rep
	s := r.fleet.Stats()
	rep.PowerCuts, rep.WatchdogResets, rep.Dropped, rep.Versions = s.PowerCuts, s.WatchdogResets, s.DroppedConnections, s.Versions
	for _, d := range r.fleet.Devices() {
		st := d.Status
		rep.Unsent += st.Outbox
		if why := bricked(d); why != "" {
			rep.Bricked++
			if len(rep.BrickedDetails) < 10 {
				rep.BrickedDetails = append(rep.BrickedDetails, d.Identity.Serial+" rev "+d.Identity.HWRev+": "+why)
			}
		}
		if st.DeviceID == "" {
			continue
		}
		gaps, err := r.api.ReportGaps(ctx, st.DeviceID)
		if err != nil {
			return fmt.Errorf("report gaps of %s: %w", d.Identity.Serial, err)
		}
		if len(gaps.Items) > 0 {
			rep.DevicesWithGaps++
		}
		for _, g := range gaps.Items {
			rep.ReportsLost += g.ToSeq - g.FromSeq + 1
		}
		// A lost tail shows no gap: compare the last report the server
		// has with the last one the device sent.
		dev, err := r.api.Device(ctx, st.DeviceID)
		if err != nil {
			return fmt.Errorf("device %s: %w", d.Identity.Serial, err)
		}
		if sent := st.NextSeq - 1 - int64(st.Outbox); dev.LastReportSeq < sent {
			rep.ReportsLost += sent - dev.LastReportSeq
			if len(gaps.Items) == 0 {
				rep.DevicesWithGaps++
			}
		}
	}
	return nil
}

// bricked says why a device does not end on a bootable, committed slot
// ("" when it does).
func bricked(d sim.Device) string {
	st := d.Status
	switch {
	case st.DeviceID == "":
		return "never enrolled"
	case st.Phase != agent.PhaseIdle:
		return fmt.Sprintf("agent still in phase %s", st.Phase)
	case st.Version == "":
		return "runs no known version"
	case st.Slots[st.Slot].Version != st.Version:
		return fmt.Sprintf("booted slot %s holds %q, not the running %s (uncommitted)", st.Slot, st.Slots[st.Slot].Version, st.Version)
	case st.Version == Bad && d.Identity.HWRev == BadRev:
		return "runs the release that never boots on its revision"
	}
	return ""
}

func (r *run) preauthorize(ctx context.Context, pub ed25519.PublicKey, serial string) error {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return err
	}
	_, err = r.api.PreauthorizeKey(ctx, string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})), serial)
	return err
}

// changePassword replaces the admin's first-start password, which the
// server requires before any other call; the refusal names the user.
func (r *run) changePassword(ctx context.Context) error {
	_, err := r.api.CountDevices(ctx, "")
	var ae *client.APIError
	if !errors.As(err, &ae) || ae.Code != "password_change_required" {
		return fmt.Errorf("expected the first-start password change to be required: %v", err)
	}
	_, rest, _ := strings.Cut(ae.Message, "/users/")
	id, _, ok := strings.Cut(rest, "/password")
	if !ok || id == "" {
		return fmt.Errorf("no user id in %q", ae.Message)
	}
	return r.api.SetPassword(ctx, id, client.SetPasswordRequest{CurrentPassword: r.srv.Password, Password: "reliability-" + r.srv.Token[len(r.srv.Token)-12:]})
}

// publish creates a release with one raw image for every revision.
func (r *run) publish(ctx context.Context, version string, security int64) error {
	rel, err := r.api.CreateRelease(ctx, client.NewRelease{Version: version, SecurityVersion: security})
	if err != nil {
		return fmt.Errorf("create release %s: %w", version, err)
	}
	img := make([]byte, 96<<10)
	rnd := rand.NewChaCha8([32]byte{byte(r.cfg.Seed), byte(r.cfg.Seed >> 8), byte(security)})
	_, _ = rnd.Read(img)
	if _, err := r.api.UploadArtifact(ctx, rel.ID, client.Upload{DeviceType: "gw-200", HWRevs: []string{"A", "B", "C"},
		Type: string(store.ArtifactRawImage), Component: "rootfs", Name: "gw-200-" + version + ".img",
		Size: int64(len(img)), Body: bytes.NewReader(img)}); err != nil {
		return fmt.Errorf("upload the image of %s: %w", version, err)
	}
	if _, err := r.api.PublishRelease(ctx, rel.ID); err != nil {
		return fmt.Errorf("publish %s: %w", version, err)
	}
	return nil
}

// badSpec is the campaign of the bad release: one stratum per device
// type, so the revision B failures halt the whole campaign, which rolls
// back every device that installed it.
func badSpec(cfg Config) campaign.Spec {
	return campaign.Spec{
		Name: "bad-" + Bad, Release: Bad, Strata: []string{store.CountByDeviceType},
		Plan:      campaign.Plan{Waves: waves(cfg.Devices)},
		Health:    campaign.Health{MinSoak: campaign.Duration(cfg.MinSoak)},
		OnFailure: campaign.Failure{Action: campaign.FailRollback},
		Seed:      int64(cfg.Seed),
	}
}

// firstWave is the first wave's percentage: about a dozen devices in a
// small fleet, 1 % of a large one.
func firstWave(devices int) float64 {
	return min(10, max(1, math.Round(1200/float64(devices))))
}

// waves is the bad campaign's plan: a first wave of about a dozen
// devices, then growing fivefold.
func waves(devices int) []float64 {
	f := firstWave(devices)
	if f < 5 {
		return []float64{f, 5, 25, 100}
	}
	return []float64{f, 50, 100}
}

// goodSpec is the campaign of the good release. Power cuts before commit
// make some devices roll back by design, so the guardrail and the
// install-failure baseline allow for the profile's power-cut rate.
func goodSpec(cfg Config) campaign.Spec {
	k := 3
	slo := campaign.DefaultBaselineSLO
	if cfg.Faults.PowerCutRate > 0 {
		k = max(k, int(float64(cfg.Devices)*cfg.Faults.PowerCutRate*2)+3)
		slo = max(slo, 2*cfg.Faults.PowerCutRate)
	}
	h := campaign.Health{MinSoak: campaign.Duration(cfg.MinSoak), GuardrailK: k, BaselineSLO: slo}
	if cfg.Faults.PowerCutRate > 0 {
		// The simulated power fails only during installs, so the control
		// group, which installs nothing, has none of the unexpected
		// reboots the updated devices report: the reboot-rate test would
		// rightly tell the two apart and halt a good release for what the
		// simulation injects. Judge crashes only.
		h.RateMetrics = []campaign.RateMetric{{Name: "crash", Telemetry: "crashes"}}
	}
	return campaign.Spec{
		Name: "good-" + Good, Release: Good,
		Plan:      campaign.Plan{Waves: []float64{20, 100}},
		Health:    h,
		OnFailure: campaign.Failure{Action: campaign.FailRollback},
		Seed:      int64(cfg.Seed),
	}
}

// campaignView is GET /api/v1/campaigns/{id}.
type campaignView struct {
	store.Campaign
	Steps []struct {
		Devices map[string]int `json:"devices"`
	} `json:"steps"`
	HaltedStrata []string `json:"halted_strata"`
	Rollbacks    []string `json:"rollbacks"`
}

func (c campaignView) count(states ...store.CampaignDeviceState) int {
	n := 0
	for _, s := range c.Steps {
		for _, st := range states {
			n += s.Devices[string(st)]
		}
	}
	return n
}

// dispatched counts the devices the campaign assigned its release to.
func (c campaignView) dispatched() int {
	return c.count(store.CDAssigned, store.CDSucceeded, store.CDFailed, store.CDRolledBack, store.CDTimedOut, store.CDCanceled, store.CDSuperseded)
}

func (c campaignView) finished() bool {
	switch c.State {
	case store.CampaignCompleted, store.CampaignHalted, store.CampaignAborted:
		return true
	}
	return false
}

func (c campaignView) result(want store.CampaignState) CampaignResult {
	return CampaignResult{Name: c.Name, ID: c.ID, Kind: c.Kind, Version: c.Version, State: c.State, Want: want}
}

func (r *run) campaign(ctx context.Context, id string) (campaignView, error) {
	var c campaignView
	err := r.call(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(id), nil, &c)
	return c, err
}

func (r *run) startCampaign(ctx context.Context, spec campaign.Spec) (string, error) {
	var created struct {
		Campaign store.Campaign `json:"campaign"`
	}
	if err := r.call(ctx, http.MethodPost, "/campaigns", spec, &created); err != nil {
		return "", fmt.Errorf("create campaign %s: %w", spec.Name, err)
	}
	c := created.Campaign
	if err := r.call(ctx, http.MethodPost, "/campaigns/"+url.PathEscape(c.ID)+"/start", nil, &c); err != nil {
		return "", fmt.Errorf("start campaign %s: %w", spec.Name, err)
	}
	r.cfg.Progress("campaign %s (%s) started at %s simulated", spec.Name, c.ID, r.clock.Now().Sub(r.start).Round(time.Second))
	return c.ID, nil
}

// haltFacts records the time to halt and the devices the bad release
// reached, once its rollback has finished.
func (r *run) haltFacts(ctx context.Context, c campaignView) error {
	halt, err := r.decisions(ctx, c)
	if err != nil {
		return err
	}
	if !halt.IsZero() && c.StartedAt != nil {
		r.rep.TimeToHalt = halt.Sub(*c.StartedAt)
	}
	// Which of them are of the revision it bricks: the devices that
	// the bad campaign assigned, by serial.
	rev := map[string]string{}
	for _, d := range r.fleet.Devices() {
		rev[d.Status.DeviceID] = d.Identity.HWRev
	}
	cursor := ""
	tally := map[string]int{}
	var unknown []string
	for {
		var page client.List[struct {
			DeviceID string                    `json:"device_id"`
			Step     int                       `json:"step"`
			State    store.CampaignDeviceState `json:"state"`
		}]
		q := "/campaigns/" + url.PathEscape(c.ID) + "/devices?limit=1000"
		if cursor != "" {
			q += "&after=" + url.QueryEscape(cursor)
		}
		if err := r.call(ctx, http.MethodGet, q, nil, &page); err != nil {
			return err
		}
		for _, d := range page.Items {
			switch d.State {
			case store.CDSucceeded, store.CDFailed, store.CDRolledBack, store.CDTimedOut:
				r.rep.Exposed++
				if rev[d.DeviceID] == BadRev {
					r.rep.ExposedBadRev++
				}
			case store.CDCanceled, store.CDSuperseded:
				r.rep.Canceled++
			}
			tally[fmt.Sprintf("step %d rev %s %s", d.Step, rev[d.DeviceID], d.State)]++
		}
		for _, d := range page.Items {
			if _, ok := rev[d.DeviceID]; !ok && len(unknown) < 5 {
				unknown = append(unknown, d.DeviceID)
			}
		}
		if page.Next == "" {
			r.cfg.Progress("bad campaign devices after its rollback: %s", sortedVersions(tally))
			for _, id := range unknown {
				dev, err := r.api.Device(ctx, id)
				r.cfg.Progress("  a device the fleet does not know: %+v %v", dev, err)
			}
			return nil
		}
		cursor = page.Next
	}
}

// decisions logs the campaign's decisions other than holds and returns
// the time of its first halt (zero: none).
func (r *run) decisions(ctx context.Context, c campaignView) (time.Time, error) {
	var ds client.List[store.CampaignDecision]
	if err := r.call(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(c.ID)+"/decisions?limit=1000", nil, &ds); err != nil {
		return time.Time{}, err
	}
	var halt time.Time
	for i := len(ds.Items) - 1; i >= 0; i-- {
		d := ds.Items[i]
		if d.Verdict != "hold" && c.StartedAt != nil {
			r.cfg.Progress("campaign %s decision at %s (step %d): %s: %s", c.Name, d.At.Sub(*c.StartedAt).Round(time.Second), d.Step, d.Action, d.Summary)
		}
		if d.Verdict == "halt" && (halt.IsZero() || d.At.Before(halt)) {
			halt = d.At
		}
	}
	return halt, nil
}

// call is a management API call the client package has no method for.
func (r *run) call(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, r.srv.URL()+"/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+r.srv.Token)
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := r.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	return json.Unmarshal(b, out)
}

// sortedVersions lists a version count as "v:n v:n".
func sortedVersions(m map[string]int) string {
	vs := make([]string, 0, len(m))
	for v := range m {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	var b strings.Builder
	for i, v := range vs {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v + ":" + strconv.Itoa(m[v]))
	}
	return b.String()
}
