package sim

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"path"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/verifier"
)

// device is one simulated device: its disk, bootloader and agent, and the
// behaviour its profile gives it. Only the goroutine stepping it touches it.
type device struct {
	id      identity.Identity
	key     ed25519.PrivateKey
	profile *Profile
	clock   clock.Clock
	rnd     *rand.Rand
	seed    uint64

	fs    *devfs.CrashFS
	boot  *boot.Sim
	cfg   agent.Config
	a     *agent.Agent
	bootN int

	// Decisions drawn once per release version the device meets.
	fates map[string]fate
	// Versions whose power cut was drawn.
	cutDone map[string]bool

	crashes   int64
	crashedAt time.Time

	stats deviceStats
}

// fate is what a release will do on this device, drawn when first needed.
type fate struct{ selfTestFails, neverBoots bool }

type deviceStats struct {
	powerCuts, watchdogResets, reboots, restarts int
	lastErr                                      error
}

// deviceOptions are what the fleet hands every device.
type deviceOptions struct {
	clock        clock.Clock
	http         *http.Client
	serverURL    string
	logger       *slog.Logger
	newVerifier  func(ctx context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error)
	trustedRoot  []byte
	serverWindow time.Duration
}

func newDevice(id identity.Identity, key ed25519.PrivateKey, p *Profile, seed uint64, o deviceOptions) (*device, error) {
	d := &device{id: id, key: key, profile: p, clock: o.clock, seed: seed,
		rnd: rand.New(rand.NewPCG(seed, 0xde71ce)), fs: devfs.NewCrashFS(), fates: map[string]fate{}, cutDone: map[string]bool{}}
	if err := d.fs.MkdirAll("boot", 0o755); err != nil {
		return nil, err
	}
	d.fs.SyncAll()
	sim, err := boot.NewSim(boot.SimConfig{FS: d.fs, Env: "boot/uboot.env"})
	if err != nil {
		return nil, fmt.Errorf("device %s: bootloader: %w", id.Serial, err)
	}
	d.boot = sim
	if _, err := sim.Boot(context.Background()); err != nil {
		return nil, fmt.Errorf("device %s: first boot: %w", id.Serial, err)
	}
	d.crashedAt = o.clock.Now()
	tel := time.Duration(p.TelemetryInterval)
	d.cfg = agent.Config{
		FS:        d.fs,
		Dir:       "var/lib/updraft",
		Clock:     o.clock,
		HTTP:      o.http,
		ServerURL: o.serverURL,
		Logger:    o.logger,
		Identity:  id,
		Version:   p.InitialVersion,
		Key:       key,
		Boot:      d.boot,
		Slots: []agent.Slot{
			{Name: "A", HashOnly: true},
			{Name: "B", HashOnly: true},
		},
		NewVerifier: o.newVerifier,
		Reboot:      func(context.Context) error { d.stats.reboots++; return nil },
		BootID:      func(context.Context) (string, error) { return fmt.Sprintf("boot-%d", d.bootN), nil },
		Health:      agent.Health{Check: d.selfTest, ServerWindow: o.serverWindow},
		Sensors:     agent.Sensors{Crashes: d.crashCount},
		Timing: agent.Timing{
			PollInterval:    time.Duration(p.PollInterval),
			DisableLongPoll: true,
			TelemetrySample: tel / 4,
			TelemetrySend:   tel,
		},
	}
	if o.newVerifier == nil && len(o.trustedRoot) > 0 {
		d.cfg.NewVerifier = func(_ context.Context, deviceID string, fetch verifier.Fetcher) (verifier.Verifier, error) {
			return verifier.New(verifier.Config{FS: d.fs, Dir: path.Join(d.cfg.Dir, "tuf"), Clock: o.clock, Fetcher: fetch,
				DeviceID: deviceID, DeviceType: id.DeviceType, HWRev: id.HWRev, TrustedRoot: o.trustedRoot, Logger: o.logger})
		}
	}
	if err := d.start(); err != nil {
		return nil, err
	}
	return d, nil
}

// start runs a new agent process on the device's disk, as init does.
func (d *device) start() error {
	cfg := d.cfg
	cfg.Rand = rand.New(rand.NewPCG(d.seed, uint64(d.bootN)<<32|uint64(d.stats.restarts)))
	a, err := agent.New(cfg)
	if err != nil {
		return fmt.Errorf("device %s: %w", d.id.Serial, err)
	}
	d.a = a
	return nil
}

// fateOf draws (once) what version does on this device.
func (d *device) fateOf(version string) fate {
	if f, ok := d.fates[version]; ok {
		return f
	}
	b := d.profile.behaviour(version, d.id.HWRev)
	f := fate{selfTestFails: d.rnd.Float64() < b.InstallFailRate, neverBoots: d.rnd.Float64() < b.BootFailRate}
	d.fates[version] = f
	return f
}

// pending reads the update in flight from the agent's state file on the
// device's disk: the version being installed and the slot it goes to.
// Hash-only slots hold no image to look at, so this is how the simulated
// image knows what it is before the agent commits it.
func (d *device) pending() (version, slot string) {
	b, err := devfs.ReadFile(d.fs, path.Join(d.cfg.Dir, "state.json"), 1<<20)
	if err != nil {
		return "", ""
	}
	var st struct {
		Job *struct {
			Target struct {
				Custom struct {
					Version string `json:"version"`
				}
			} `json:"target"`
			ToSlot string `json:"to_slot"`
		} `json:"job"`
	}
	if json.Unmarshal(b, &st) != nil || st.Job == nil {
		return "", ""
	}
	return st.Job.Target.Custom.Version, st.Job.ToSlot
}

// runningVersion is the version of the image in the booted slot,
// including one the agent has not committed yet.
func (d *device) runningVersion() string {
	if v, slot := d.pending(); v != "" && slot != "" {
		if cur, err := d.boot.Current(context.Background()); err == nil && cur == slot {
			return v
		}
	}
	return d.a.Status().Version
}

// selfTest is the agent's health check in the new image. It is also where
// power fails, at most once per release: in the first boot of the new
// image, before it is committed, when a failure must not brick the device
// or lose a report.
func (d *device) selfTest(context.Context) error {
	v := d.runningVersion()
	if !d.cutDone[v] && d.profile.PowerCutRate > 0 {
		d.cutDone[v] = true
		if d.rnd.Float64() < d.profile.PowerCutRate {
			d.fs.Cut()
			return errors.New("power lost")
		}
	}
	if d.fateOf(v).selfTestFails {
		return fmt.Errorf("post-install self-test of %s failed on %s rev %s", v, d.id.DeviceType, d.id.HWRev)
	}
	return nil
}

// crashCount is the crash sensor: crashes arrive as a Poisson process at
// the rate of the running release on this hardware.
func (d *device) crashCount(context.Context) (int64, error) {
	d.accrueCrashes()
	return d.crashes, nil
}

// accrueCrashes draws the crashes since the last draw at the rate of the
// image running now. powerCycle calls it before the image changes, so the
// time before an update's reboot is charged at the old release's rate
// however late the agent next reads the sensor.
func (d *device) accrueCrashes() {
	now := d.clock.Now()
	dt := now.Sub(d.crashedAt)
	d.crashedAt = now
	if dt <= 0 || d.profile.CrashesPerDay <= 0 {
		return
	}
	mult := d.profile.behaviour(d.runningVersion(), d.id.HWRev).CrashMultiplier
	if mult == 0 {
		mult = 1
	}
	lambda := d.profile.CrashesPerDay * mult * dt.Hours() / 24
	d.crashes += poisson(d.rnd, lambda)
}

// poisson draws from a Poisson distribution (Knuth's method; λ is small
// between two samples, and large λ falls back to a normal approximation).
func poisson(r *rand.Rand, lambda float64) int64 {
	if lambda > 30 {
		return max(0, int64(math.Round(lambda+math.Sqrt(lambda)*r.NormFloat64())))
	}
	l, k, p := math.Exp(-lambda), int64(0), 1.0
	for {
		p *= r.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

// step runs one agent step and plays what happens to the device after it:
// a reboot, a power cut, or a crashed agent process restarted by init.
func (d *device) step(ctx context.Context) time.Duration {
	wait, err := d.a.Step(ctx)
	switch {
	case d.fs.PowerCut():
		d.stats.powerCuts++
		d.powerCycle(devfs.DropUnsynced)
		return 0
	case errors.Is(err, agent.ErrRebooted):
		d.powerCycle(devfs.KeepData)
		return 0
	case err != nil:
		if ctx.Err() != nil {
			return time.Second
		}
		d.stats.lastErr = err
		d.stats.restarts++
		if serr := d.start(); serr != nil {
			d.stats.lastErr = serr
		}
		return time.Minute
	}
	return wait
}

// powerCycle drops what the disk did not keep, boots (again and again
// while the chosen image never comes up, as a watchdog would) and starts a
// new agent.
func (d *device) powerCycle(mode devfs.CrashMode) {
	d.accrueCrashes()
	slots := d.a.Status().Slots
	newVersion, newSlot := d.pending()
	d.fs.CrashWith(mode)
	for i := 0; ; i++ {
		d.bootN++
		slot, err := d.boot.Boot(context.Background())
		if err != nil {
			d.stats.lastErr = fmt.Errorf("boot: %w", err)
			break
		}
		v := slots[slot].Version
		if slot == newSlot {
			v = newVersion
		}
		if i >= 10 || v == "" || v == d.profile.InitialVersion || !d.fateOf(v).neverBoots {
			break
		}
		d.stats.watchdogResets++
		d.fs.Crash()
	}
	if err := d.start(); err != nil {
		d.stats.lastErr = err
	}
}
