package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/devfs"
)

// UBootConfig configures the U-Boot backend.
type UBootConfig struct {
	// Config is the fw_env.config describing where the environment lives
	// (two lines for a redundant environment); empty means the tools'
	// default, /etc/fw_env.config.
	Config string
	// DefaultEnv is the environment the tools start from when the storage
	// holds no valid one (their -f option); empty means their default.
	DefaultEnv string
	// Scheme is SchemeRAUCUBoot (the default) or SchemeBootcount.
	Scheme Scheme
	// Slots are the boot names; A and B when empty.
	Slots []string
	// Attempts is the number of boots a primary or good slot gets;
	// DefaultAttempts when 0.
	Attempts int
	// Current reports the running slot; by default the rauc.slot= kernel
	// parameter in /proc/cmdline.
	Current CurrentFunc
	// Runner runs the tools; ExecRunner by default.
	Runner Runner
	// Timeout bounds each tool run; DefaultTimeout when 0.
	Timeout time.Duration
	// PrintEnv and SetEnv are the tools; fw_printenv and fw_setenv (from
	// libubootenv) by default.
	PrintEnv, SetEnv string
	Logger           *slog.Logger
}

// UBoot drives a U-Boot environment through fw_printenv and fw_setenv.
// Each change is one fw_setenv run, so with a redundant environment it is
// atomic: the tools write the inactive copy and then mark it current, and a
// torn write leaves the previous copy in force. A single-copy environment
// is rewritten in place and is not power-safe.
type UBoot struct {
	env envBackend
}

// NewUBoot returns a U-Boot backend; it runs nothing until called.
func NewUBoot(cfg UBootConfig) (*UBoot, error) {
	slots, err := newSlotSet(cfg.Slots)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	attempts, err := attemptsOrDefault(cfg.Attempts)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	switch cfg.Scheme {
	case "":
		cfg.Scheme = SchemeRAUCUBoot
	case SchemeRAUCUBoot, SchemeBootcount:
	default:
		return nil, fmt.Errorf("boot: scheme %q is not a U-Boot scheme", cfg.Scheme)
	}
	sch, err := newScheme(cfg.Scheme, slots, attempts)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	st := ubootStore{run: newRunner(cfg.Runner, cfg.Timeout), printenv: cfg.PrintEnv, setenv: cfg.SetEnv}
	if st.printenv == "" {
		st.printenv = "fw_printenv"
	}
	if st.setenv == "" {
		st.setenv = "fw_setenv"
	}
	if cfg.Config != "" {
		st.opts = append(st.opts, "-c", cfg.Config)
	}
	if cfg.DefaultEnv != "" {
		st.opts = append(st.opts, "-f", cfg.DefaultEnv)
	}
	if cfg.Current == nil {
		cfg.Current = KernelCmdline(devfs.OS{}, "/proc/cmdline", "")
	}
	return &UBoot{env: envBackend{slots: slots, sch: sch, st: st, current: cfg.Current, log: logger(cfg.Logger), what: "u-boot"}}, nil
}

// Current implements Backend.
func (u *UBoot) Current(ctx context.Context) (string, error) { return u.env.Current(ctx) }

// Primary implements Backend: the slot U-Boot's script will boot next.
func (u *UBoot) Primary(ctx context.Context) (string, error) { return u.env.Primary(ctx) }

// SetPrimary implements Backend.
func (u *UBoot) SetPrimary(ctx context.Context, slot string) error {
	return u.env.SetPrimary(ctx, slot)
}

// State implements Backend.
func (u *UBoot) State(ctx context.Context, slot string) (State, error) {
	return u.env.State(ctx, slot)
}

// SetState implements Backend.
func (u *UBoot) SetState(ctx context.Context, slot string, s State) error {
	return u.env.SetState(ctx, slot, s)
}

type ubootStore struct {
	run              runner
	printenv, setenv string
	opts             []string // -c config, -f default environment
}

func (s ubootStore) load(ctx context.Context, names []string) (vars, error) {
	args := append(slices.Clone(s.opts), names...)
	out, err := s.run.run(ctx, nil, s.printenv, args...)
	if err != nil {
		return nil, err
	}
	return parsePrintenv(out, names)
}

// parsePrintenv reads fw_printenv's answer for the named variables: one
// name=value line each, in any order ("name=" for an unset one).
func parsePrintenv(out []byte, names []string) (vars, error) {
	v := vars{}
	for _, line := range strings.Split(strings.TrimSuffix(string(out), "\n"), "\n") {
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, "=")
		if !ok || !slices.Contains(names, name) {
			return nil, fmt.Errorf("unexpected fw_printenv output line %.80q", line)
		}
		if _, dup := v[name]; dup {
			return nil, fmt.Errorf("fw_printenv printed %s twice", name)
		}
		v[name] = value
	}
	return v, nil
}

// store writes all changes with one fw_setenv run reading a script of
// name=value lines from standard input (an empty value removes the
// variable), so they land in one environment write.
func (s ubootStore) store(ctx context.Context, ch []change) error {
	script, err := setenvScript(ch)
	if err != nil {
		return err
	}
	args := append(slices.Clone(s.opts), "-s", "/dev/stdin")
	_, err = s.run.run(ctx, script, s.setenv, args...)
	return err
}

func setenvScript(ch []change) ([]byte, error) {
	var b bytes.Buffer
	for _, c := range ch {
		if !validVarName(c.name) || strings.ContainsAny(c.value, "\n\r\x00") {
			return nil, errors.New("refusing to write an unsafe variable " + fmt.Sprintf("%q", c.name))
		}
		fmt.Fprintf(&b, "%s=%s\n", c.name, c.value)
	}
	return b.Bytes(), nil
}
