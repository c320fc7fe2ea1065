package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"

	"github.com/updraft/updraft/internal/devfs"
)

// ErrNotBooted is returned by Sim.Current before the first Sim.Boot.
var ErrNotBooted = errors.New("simulated device has not booted")

// ErrNoBootableSlot is returned by Sim.Boot when the boot script would
// reset the board forever because its boot order names no slot it can
// boot.
var ErrNoBootableSlot = errors.New("no bootable slot: the bootloader resets forever")

// SimConfig configures a simulated bootloader.
type SimConfig struct {
	// FS holds the environment file; a devfs.CrashFS makes the
	// environment subject to power cuts like the rest of the device.
	FS devfs.FS
	// Env is the environment file's name in FS.
	Env string
	// Scheme is the variable scheme and boot script simulated;
	// SchemeRAUCUBoot when empty.
	Scheme Scheme
	// Slots are the boot names; A and B when empty.
	Slots []string
	// Attempts is the number of boots a primary or good slot gets;
	// DefaultAttempts when 0.
	Attempts int
	Logger   *slog.Logger
}

// Sim is a file-backed bootloader for tests and the fleet simulator. Its
// Backend methods edit the environment file as the real backends edit a
// U-Boot or GRUB environment, and Boot plays the bootloader at power-on:
// it runs the scheme's boot script (docs/bootloaders.md) on the file,
// saves what the script saves and records the slot it booted, which
// Current then reports. The booted slot lives in memory only, like a
// kernel command line: after a power cut the device must Boot again.
// A Sim is safe for concurrent use.
type Sim struct {
	env envBackend
	fs  fileStore

	mu     sync.Mutex
	booted string
}

// NewSim returns a simulated bootloader. A missing environment file is
// an empty environment, which every scheme reads as its defaults (for
// RAUC's U-Boot scheme: BOOT_ORDER="A B", three attempts each).
func NewSim(cfg SimConfig) (*Sim, error) {
	if cfg.FS == nil || cfg.Env == "" {
		return nil, errors.New("boot: simulated bootloader needs FS and Env")
	}
	slots, err := newSlotSet(cfg.Slots)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	attempts, err := attemptsOrDefault(cfg.Attempts)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	if cfg.Scheme == "" {
		cfg.Scheme = SchemeRAUCUBoot
	}
	sch, err := newScheme(cfg.Scheme, slots, attempts)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	s := &Sim{fs: fileStore{fsys: cfg.FS, name: cfg.Env}}
	s.env = envBackend{slots: slots, sch: sch, st: s.fs, log: logger(cfg.Logger), what: "simulated bootloader"}
	s.env.current = func(context.Context) (string, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.booted == "" {
			return "", ErrNotBooted
		}
		return s.booted, nil
	}
	return s, nil
}

// Boot simulates powering the device on: the boot script picks a slot,
// updates its counters and saves the environment; when it finds none it
// resets its counters and the board, and runs again. It returns the slot
// booted.
func (s *Sim) Boot(ctx context.Context) (string, error) {
	s.mu.Lock()
	s.booted = ""
	s.mu.Unlock()
	slot, err := s.env.simulateBoot(ctx)
	if err != nil {
		return "", err
	}
	s.mu.Lock()
	s.booted = slot
	s.mu.Unlock()
	return slot, nil
}

// Vars returns the environment's variables.
func (s *Sim) Vars(ctx context.Context) (map[string]string, error) {
	s.env.mu.Lock()
	defer s.env.mu.Unlock()
	v, err := s.fs.load(ctx, nil)
	return v, err
}

// Current implements Backend: the slot of the last Boot.
func (s *Sim) Current(ctx context.Context) (string, error) { return s.env.Current(ctx) }

// Primary implements Backend.
func (s *Sim) Primary(ctx context.Context) (string, error) { return s.env.Primary(ctx) }

// SetPrimary implements Backend.
func (s *Sim) SetPrimary(ctx context.Context, slot string) error {
	return s.env.SetPrimary(ctx, slot)
}

// State implements Backend.
func (s *Sim) State(ctx context.Context, slot string) (State, error) {
	return s.env.State(ctx, slot)
}

// SetState implements Backend.
func (s *Sim) SetState(ctx context.Context, slot string, st State) error {
	return s.env.SetState(ctx, slot, st)
}

// fileStore keeps an environment in a file replaced atomically.
type fileStore struct {
	fsys devfs.FS
	name string
}

func (f fileStore) load(context.Context, []string) (vars, error) {
	b, err := devfs.ReadFile(f.fsys, f.name, maxEnvFile)
	if errors.Is(err, fs.ErrNotExist) {
		return vars{}, nil
	}
	if err != nil {
		return nil, err
	}
	v, err := parseEnvFile(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", f.name, err)
	}
	return v, nil
}

func (f fileStore) store(ctx context.Context, ch []change) error {
	v, err := f.load(ctx, nil)
	if err != nil {
		return err
	}
	b, err := formatEnvFile(apply(v, ch))
	if err != nil {
		return err
	}
	return devfs.WriteFileAtomic(f.fsys, f.name, b, 0o644)
}
