// Package agent is the device side of Updraft: it enrolls the device,
// checks in for work, downloads artifacts with resume while verifying them,
// installs them (A/B slot, file, archive or command), reboots into a new
// slot, checks health, and commits or rolls back — reporting every step to
// the server through a persisted outbox — and sends telemetry.
//
// The agent is a library so that the fleet simulator can run thousands of
// them in one process: no package-level state, no os.Exit, no signal
// handling, and no file, device, clock, network or command access except
// through what Config injects (devfs.FS, clock.Clock, *http.Client,
// boot.Backend, Runner, sensor functions, Reboot).
//
// Invariants:
//   - The update state machine (idle → downloading → installing →
//     rebooting → verifying → committed | rolled-back | failed) lives in one
//     state file written atomically (devfs.WriteFileAtomic) before the agent
//     acts on a new phase. The same write carries the phase's status report
//     in the outbox, with a per-device sequence number that is never
//     reused, so a power cut can neither lose a report nor act on a phase
//     that was not recorded.
//   - A report leaves the outbox only after the server acknowledged it
//     (stored durably on the server).
//   - Download progress (offset and verifier stream state) is checkpointed
//     only after the written bytes were synced, so a resumed download never
//     trusts bytes that did not reach storage.
//   - Install order for A/B: mark the target slot bad before writing it;
//     write, sync and read back; only then SetPrimary — the point of no
//     return, after which a cancel is answered "too late"; the slot is
//     marked good only after the health check passed in the new image.
//
// An Agent is driven by one goroutine (Run, or Step in a loop); Status is
// safe to call from others.
package agent

import (
	"context"
	"crypto"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/agent/install"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/verifier"
)

// Config is everything the agent touches. FS, Dir, Clock, HTTP, ServerURL,
// Identity and Version are required; Boot, Slots and Reboot are required
// for raw images.
type Config struct {
	// FS is all file and device I/O; Dir the agent's state directory in it.
	FS  devfs.FS
	Dir string
	// Clock is the only time source.
	Clock clock.Clock
	// HTTP talks to the server; its transport carries the CA bundle.
	HTTP *http.Client
	// ServerURL is the server's base URL, e.g. "https://updates.example.com".
	ServerURL string
	// Logger receives structured logs; nil discards them. The agent keeps
	// the tail of its own log for failure reports either way.
	Logger *slog.Logger

	// Identity is what the device enrolls with.
	Identity identity.Identity
	// Version is the version of the software the device shipped with; the
	// agent's own records take over once it installed something.
	Version string

	// Key is a provisioned device key (for example in a TPM or secure
	// element). nil: the agent loads KeyFile, generating an Ed25519 key
	// there from Entropy on first start.
	Key     crypto.Signer
	KeyFile string    // default Dir/device-key.pem
	Entropy io.Reader // default crypto/rand.Reader
	// Rand drives jitter; nil: seeded from Entropy. Used only by the
	// goroutine driving the agent.
	Rand *mrand.Rand

	// Boot is the bootloader; Slots the A/B slots it chooses between.
	Boot  boot.Backend
	Slots []Slot
	// Components say where file and archive artifacts go and which
	// command installs command-type artifacts, by component name.
	Components map[string]Component
	// Verifier checks assignments and artifact bytes against the signed
	// metadata. nil: unsigned mode, trusting the TLS-authenticated
	// check-in answer's size and SHA-256 (no TUF guarantees; for labs and
	// simulations).
	Verifier verifier.Verifier
	// NewVerifier opens the verifier once the device knows its id (after
	// the first enrollment); fetch reads TUF metadata from the server.
	// Used when Verifier is nil.
	NewVerifier func(ctx context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error)
	// MetadataPath is where the server serves TUF metadata by file name
	// ["/api/device/v1/tuf/"].
	MetadataPath string

	// Gates is the local gate policy; GateCommand an optional custom gate
	// (exit status 0 allows).
	Gates       gate.Policy
	GateCommand []string
	Sensors     Sensors
	Health      Health
	// Commands runs health checks, the custom gate and command installers.
	Commands Runner
	// Reboot restarts the device. After it returns nil the agent stops
	// (Run returns ErrRebooted) and expects to be started again on the
	// same FS after the boot.
	Reboot func(ctx context.Context) error
	// BootID identifies the current boot (Linux:
	// /proc/sys/kernel/random/boot_id). nil: every start of the agent
	// counts as a new boot.
	BootID func(ctx context.Context) (string, error)

	Timing   Timing
	Download DownloadOptions
	Archive  install.ArchiveLimits
}

// Slot is one A/B slot.
type Slot struct {
	// Name is the boot name the bootloader knows ("A", "B", "system0").
	Name string
	// Device is the block device or file the image is written to.
	Device string
	// HashOnly keeps no bytes: the agent records length and SHA-256 of
	// what it would have written (large simulated fleets).
	HashOnly bool
}

// Component configures where non-image artifacts of one component go.
type Component struct {
	// Path is the destination file (file artifacts) or directory
	// (archive artifacts).
	Path string
	// Command installs command-type artifacts (script, swu, rauc-bundle,
	// mender); "{file}" is replaced by the staged artifact's path. Scripts
	// without a command run as ["/bin/sh", "{file}"].
	Command []string
}

// Runner runs an external command and returns its combined output. A
// non-zero exit is an error. Implementations bound the output they keep.
type Runner interface {
	Run(ctx context.Context, argv []string) ([]byte, error)
}

// Sensors read the device's condition for gates and telemetry. A nil
// function means the device has no such sensor.
type Sensors struct {
	Battery     func(ctx context.Context) (gate.Battery, error)
	FreeBytes   func(ctx context.Context) (int64, error)
	Temperature func(ctx context.Context) (float64, error) // °C
	Metered     func(ctx context.Context) (bool, error)
	Signal      func(ctx context.Context) (float64, error) // dBm
	Uptime      func(ctx context.Context) (time.Duration, error)
	// Crashes returns a cumulative crash count (for example the number of
	// core dumps); the agent reports increases.
	Crashes func(ctx context.Context) (int64, error)
	// Custom returns named metrics, reported as "custom.<name>".
	Custom func(ctx context.Context) (map[string]float64, error)
}

// Health is the post-install health check: the command (and Check) must
// pass, and the new image must reach the server.
type Health struct {
	Command []string
	// Check is an in-process check (the simulator's scripted behaviour).
	Check func(ctx context.Context) error
	// Timeout bounds each run of the command or Check [2m].
	Timeout time.Duration
	// ServerWindow is how long the new image may take to reach the server
	// before it counts as unhealthy [10m].
	ServerWindow time.Duration
}

// Timing are the schedule knobs; zero values take the defaults in brackets.
type Timing struct {
	// PollInterval is used until the server says when to check in [5m].
	PollInterval time.Duration
	// Jitter is the ± fraction applied to every wait [0.1].
	Jitter float64
	// BackoffMin and BackoffMax bound the exponential backoff while the
	// server is unreachable [5s, 15m].
	BackoffMin, BackoffMax time.Duration
	// DisableLongPoll never holds check-ins open even if offered.
	DisableLongPoll bool
	// TelemetrySample is how often sensors are sampled [15m];
	// TelemetrySend how often the batch is sent [1h]; 0 with
	// DisableTelemetry: never.
	TelemetrySample, TelemetrySend time.Duration
	DisableTelemetry               bool
	// RequestTimeout bounds each API request, long-polls excluded [60s].
	RequestTimeout time.Duration
}

// DownloadOptions tune the resumable download.
type DownloadOptions struct {
	// CheckpointBytes is how often progress is made durable [4 MiB].
	CheckpointBytes int64
	// MaxRestarts is how often a download that failed verification is
	// started again from zero before the assignment fails [1].
	MaxRestarts int
	// BufferBytes is the copy buffer [256 KiB].
	BufferBytes int
}

func (c *Config) setDefaults() {
	t := &c.Timing
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&t.PollInterval, 5*time.Minute)
	if t.Jitter <= 0 || t.Jitter >= 1 {
		t.Jitter = 0.1
	}
	def(&t.BackoffMin, 5*time.Second)
	def(&t.BackoffMax, 15*time.Minute)
	if t.BackoffMax < t.BackoffMin {
		t.BackoffMax = t.BackoffMin
	}
	def(&t.TelemetrySample, 15*time.Minute)
	def(&t.TelemetrySend, time.Hour)
	def(&t.RequestTimeout, 60*time.Second)
	def(&c.Health.Timeout, 2*time.Minute)
	def(&c.Health.ServerWindow, 10*time.Minute)
	if c.Download.CheckpointBytes <= 0 {
		c.Download.CheckpointBytes = 4 << 20
	}
	if c.Download.MaxRestarts <= 0 {
		c.Download.MaxRestarts = 1
	}
	if c.Download.BufferBytes <= 0 {
		c.Download.BufferBytes = 256 << 10
	}
	if c.Entropy == nil {
		c.Entropy = rand.Reader
	}
	if c.MetadataPath == "" {
		c.MetadataPath = wire.Prefix + "/tuf/"
	}
	if c.KeyFile == "" {
		c.KeyFile = path.Join(c.Dir, "device-key.pem")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.FS == nil:
		return errors.New("no filesystem")
	case c.Dir == "":
		return errors.New("no state directory")
	case c.Clock == nil:
		return errors.New("no clock")
	case c.HTTP == nil:
		return errors.New("no HTTP client")
	}
	u, err := url.Parse(c.ServerURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("server URL %q is not an absolute http(s) URL", c.ServerURL)
	}
	if err := c.Identity.Validate(); err != nil {
		return err
	}
	if _, err := semver.Parse(c.Version); err != nil {
		return fmt.Errorf("version: %w", err)
	}
	if c.Gates.Location == nil && c.Identity.TimeZone != "" {
		loc, err := time.LoadLocation(c.Identity.TimeZone)
		if err != nil {
			return fmt.Errorf("time zone: %w", err)
		}
		c.Gates.Location = loc
	}
	for _, w := range c.Gates.Windows {
		if err := gate.ValidateWindow(w); err != nil {
			return fmt.Errorf("local maintenance window: %w", err)
		}
	}
	if c.Commands == nil && (len(c.Health.Command) > 0 || len(c.GateCommand) > 0) {
		return errors.New("a health or gate command needs a command runner")
	}
	if len(c.Slots) > 0 {
		if c.Boot == nil {
			return errors.New("slots need a boot backend")
		}
		if c.Reboot == nil {
			return errors.New("slots need a Reboot function")
		}
		if len(c.Slots) != 2 {
			return fmt.Errorf("%d slots configured; A/B updates need exactly 2", len(c.Slots))
		}
		if c.Slots[0].Name == "" || c.Slots[0].Name == c.Slots[1].Name {
			return errors.New("slots need two distinct boot names")
		}
		for _, s := range c.Slots {
			if !s.HashOnly && s.Device == "" {
				return fmt.Errorf("slot %s has no device", s.Name)
			}
		}
	}
	return nil
}

// ErrRebooted is returned by Run and Step after the agent asked the device
// to reboot: start a new agent on the same FS once the device is up.
var ErrRebooted = errors.New("agent: device reboot requested")

// Agent is one device's update agent.
type Agent struct {
	cfg   Config
	clock clock.Clock
	log   *slog.Logger
	logs  *logTail
	rnd   *mrand.Rand
	key   crypto.Signer
	// verifier is cfg.Verifier, or the one cfg.NewVerifier opened.
	verifier verifier.Verifier

	st       persisted
	started  bool
	bootID   string
	current  string // booted slot
	newBoot  bool   // this start is the first in its boot
	snapshot struct {
		sync.Mutex
		status Status
	}

	// Server session, in memory only.
	token        string
	tokenRenewAt time.Time
	enrollAt     time.Time // earliest next enrollment attempt while pending or refused
	failures     int       // consecutive failed server calls, for backoff
	retryAt      time.Time // no server call before this (backoff)
	nextCheckIn  time.Time
	checkedIn    bool      // a check-in succeeded since this start
	healthPassed bool      // the health check passed since this start
	localAt      time.Time // next attempt at local work that had to wait
	longPoll     wire.LongPoll
	offered      *wire.Assignment // the server's current assignment
	cancel       *wire.Cancel
	nextSample   time.Time
	nextSend     time.Time
	samples      []wire.Point
	startedAt    time.Time
	lastGate     time.Time
}

// New checks cfg and builds an agent. It does no I/O; Run (or the first
// Step) loads the state.
func New(cfg Config) (*Agent, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	cfg.ServerURL = strings.TrimSuffix(cfg.ServerURL, "/")
	logs := newLogTail(8 << 10)
	a := &Agent{
		cfg:   cfg,
		clock: cfg.Clock,
		logs:  logs,
		log:   slog.New(logs.handler(cfg.Logger.Handler())),
		rnd:   cfg.Rand,
	}
	a.verifier = cfg.Verifier
	if a.rnd == nil {
		var seed [16]byte
		if _, err := io.ReadFull(cfg.Entropy, seed[:]); err != nil {
			return nil, fmt.Errorf("agent: seed jitter: %w", err)
		}
		a.rnd = mrand.New(mrand.NewPCG(leUint64(seed[:8]), leUint64(seed[8:])))
	}
	return a, nil
}

func leUint64(b []byte) uint64 {
	var v uint64
	for i := 7; i >= 0; i-- {
		v = v<<8 | uint64(b[i])
	}
	return v
}

// Run drives the agent until ctx ends (it then returns nil after recording
// a clean shutdown) or the device must reboot (ErrRebooted). Errors that
// make progress impossible (a corrupt state file, an unusable key) are
// returned; everything else is logged and retried with backoff.
func (a *Agent) Run(ctx context.Context) error {
	for {
		wait, err := a.Step(ctx)
		if ctx.Err() != nil {
			return a.shutdown()
		}
		if err != nil {
			return err
		}
		if !clock.Sleep(a.clock, wait, ctx.Done()) {
			return a.shutdown()
		}
	}
}

// shutdown records a clean stop, so the next boot is not counted as an
// unexpected reboot.
func (a *Agent) shutdown() error {
	if !a.started {
		return nil
	}
	a.st.Boot.Shutdown = true
	if err := a.save(); err != nil {
		return err
	}
	return nil
}

// Step does all work that is due now — local recovery after a reboot,
// enrollment, sending reports, checking in, downloading, installing,
// telemetry — and returns how long to wait before the next Step. A
// simulator can drive many agents by calling Step on a fake clock. Step
// returns ErrRebooted after asking the device to reboot.
func (a *Agent) Step(ctx context.Context) (time.Duration, error) {
	if !a.started {
		if err := a.start(ctx); err != nil {
			return 0, err
		}
	}
	// Local work first: it needs no server (a rollback after a failed
	// boot must not wait for the network).
	if err := a.advance(ctx); err != nil {
		return 0, err
	}
	if a.session(ctx) {
		a.flushOutbox(ctx)
		if a.due(a.nextCheckIn) || a.st.Phase == PhaseVerifying && !a.checkedIn {
			var wait time.Duration
			if a.longPollNow() {
				// Hold the check-in open; the server answers early with news.
				wait = time.Duration(a.longPoll.MaxWaitSeconds) * time.Second
			}
			a.checkIn(ctx, wait)
		}
		if err := a.handleNews(ctx); err != nil {
			return 0, err
		}
		if err := a.advance(ctx); err != nil {
			return 0, err
		}
		a.flushOutbox(ctx)
	}
	a.telemetry(ctx)
	return a.nextWake(), nil
}

// due reports whether t has come.
func (a *Agent) due(t time.Time) bool { return !a.clock.Now().Before(t) }

// start loads (or creates) the state, the key and the boot record.
func (a *Agent) start(ctx context.Context) error {
	now := a.clock.Now()
	a.startedAt = now
	if err := install.MkdirAllDurable(a.cfg.FS, a.cfg.Dir, 0o700); err != nil {
		return fmt.Errorf("agent: create %s: %w", a.cfg.Dir, err)
	}
	if err := a.loadState(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	key, err := a.loadKey()
	if err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.key = key
	if a.cfg.BootID != nil {
		if a.bootID, err = a.cfg.BootID(ctx); err != nil {
			return fmt.Errorf("agent: read boot id: %w", err)
		}
	} else {
		a.bootID = a.randomID()
	}
	if a.cfg.Boot != nil {
		if a.current, err = a.cfg.Boot.Current(ctx); err != nil {
			return fmt.Errorf("agent: read the booted slot: %w", err)
		}
		if _, ok := a.st.Slots[a.current]; !ok {
			if a.st.Slots == nil {
				a.st.Slots = map[string]Record{}
			}
			a.st.Slots[a.current] = Record{Version: a.st.Version, Slot: a.current}
		}
	}
	if a.st.Boot.ID != a.bootID {
		a.newBoot = true
		// Unsent increments read in the previous boot, and its
		// unexpected end, belong to that boot's last sample, not to the
		// hour this boot sends them in (an install's reboot must not move
		// them into the new release's first hours).
		c := &a.st.Counters
		last := c.ReadAt
		if last.IsZero() {
			last = now
		}
		c.holdUnsent(last)
		if a.st.Boot.ID != "" && !a.st.Boot.Planned && !a.st.Boot.Shutdown {
			c.Unexpected++
			c.hold(MetricUnexpectedReboots, last, 1)
			a.log.Warn("the previous boot ended without a planned reboot or clean shutdown", "boot_count", a.st.Boot.Count+1)
		}
		a.st.Boot = bootRecord{ID: a.bootID, Count: a.st.Boot.Count + 1}
	} else {
		a.st.Boot.Shutdown = false
	}
	if err := a.save(); err != nil {
		return fmt.Errorf("agent: %w", err)
	}
	a.started = true
	a.nextCheckIn = now
	a.nextSample = now
	a.nextSend = now.Add(a.cfg.Timing.TelemetrySend)
	a.log.Info("agent started", "phase", a.st.Phase, "version", a.runningVersion(), "slot", a.current, "boot_count", a.st.Boot.Count)
	return nil
}

func (a *Agent) randomID() string {
	const hex = "0123456789abcdef"
	b := make([]byte, 32)
	for i := range b {
		b[i] = hex[a.rnd.IntN(16)]
	}
	return string(b)
}

// runningVersion is what the device runs: the record of the booted slot,
// else the last installed version.
func (a *Agent) runningVersion() string {
	if a.cfg.Boot != nil {
		if r, ok := a.st.Slots[a.current]; ok && r.Version != "" {
			return r.Version
		}
	}
	return a.st.Version
}

// jitter spreads d by ± the configured fraction.
func (a *Agent) jitter(d time.Duration) time.Duration {
	j := a.cfg.Timing.Jitter * (2*a.rnd.Float64() - 1)
	return time.Duration(float64(d) * (1 + j))
}

// backoff records a failed server call and schedules the next attempt.
func (a *Agent) backoff() {
	a.failures++
	d := a.cfg.Timing.BackoffMin << min(a.failures-1, 30)
	if d <= 0 || d > a.cfg.Timing.BackoffMax {
		d = a.cfg.Timing.BackoffMax
	}
	// Full jitter within the upper half keeps a fleet that lost the
	// server together from coming back together.
	d = d/2 + time.Duration(a.rnd.Int64N(int64(d/2)+1))
	a.retryAt = a.clock.Now().Add(d)
}

// reachable records a successful server call.
func (a *Agent) reachable() {
	a.failures = 0
	a.retryAt = time.Time{}
}

// longPollNow reports whether the next check-in may be held open: the
// server offers it, the agent is idle with nothing to send, and no
// assignment is waiting (the server would answer at once).
func (a *Agent) longPollNow() bool {
	return !a.cfg.Timing.DisableLongPoll && a.longPoll.Supported && a.longPoll.MaxWaitSeconds > 0 &&
		a.checkedIn && a.failures == 0 && a.st.Phase == PhaseIdle && len(a.st.Outbox) == 0 &&
		a.offered == nil && a.cancel == nil
}

// nextWake is the wait until the earliest scheduled work.
func (a *Agent) nextWake() time.Duration {
	now := a.clock.Now()
	next := now.Add(a.cfg.Timing.BackoffMax)
	consider := func(t time.Time) {
		if t.Before(next) {
			next = t
		}
	}
	if a.token == "" {
		consider(maxTime(a.enrollAt, a.retryAt))
	} else {
		consider(maxTime(a.nextCheckIn, a.retryAt))
		consider(a.tokenRenewAt)
		if len(a.st.Outbox) > 0 {
			consider(a.retryAt)
		}
		if !a.cfg.Timing.DisableTelemetry {
			consider(maxTime(a.nextSend, a.retryAt))
		}
	}
	if !a.cfg.Timing.DisableTelemetry {
		consider(a.nextSample)
	}
	switch {
	case a.st.Phase == PhaseIdle:
	case a.st.Phase == PhaseDownloading && a.st.Job.Downloaded:
		consider(a.lastGate.Add(gateRecheck))
	case a.st.Phase == PhaseDownloading:
		consider(maxTime(a.retryAt, a.localAt))
	default:
		consider(a.localAt)
	}
	if d := next.Sub(now); d > 0 {
		return d
	}
	return 0
}

// gateRecheck is how often a blocked install gate is evaluated again.
const gateRecheck = time.Minute

// Status is a snapshot of the agent for tests, simulators and logs.
type Status struct {
	DeviceID     string
	Phase        Phase
	AssignmentID string
	Version      string
	Slot         string // booted slot
	Installed    *Record
	Slots        map[string]Record
	Outbox       int
	NextSeq      int64
	BootCount    int64
	// Result is how the last finished assignment ended.
	Result *Outcome
}

// Status returns the state as of the last save.
func (a *Agent) Status() Status {
	a.snapshot.Lock()
	defer a.snapshot.Unlock()
	return a.snapshot.status
}

func (a *Agent) publish() {
	s := Status{
		DeviceID:  a.st.DeviceID,
		Phase:     a.st.Phase,
		Version:   a.runningVersion(),
		Slot:      a.current,
		Outbox:    len(a.st.Outbox),
		NextSeq:   a.st.NextSeq,
		BootCount: a.st.Boot.Count,
		Slots:     map[string]Record{},
	}
	for k, v := range a.st.Slots {
		s.Slots[k] = v
	}
	if a.st.Job != nil {
		s.AssignmentID = a.st.Job.AssignmentID
	}
	if a.st.Result != nil {
		r := *a.st.Result
		s.Result = &r
	}
	if a.st.Last != nil {
		r := *a.st.Last
		s.Installed = &r
	}
	a.snapshot.Lock()
	a.snapshot.status = s
	a.snapshot.Unlock()
}
