package boot

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/devfs"
)

// GRUBConfig configures the GRUB backend.
type GRUBConfig struct {
	// Env is the grubenv file, e.g. /boot/grub/grubenv (required).
	Env string
	// FS is the filesystem Env is named in, which must be the one
	// grub-editenv sees; devfs.OS by default.
	FS devfs.FS
	// Slots are the boot names; A and B when empty.
	Slots []string
	// Current reports the running slot; by default the rauc.slot= kernel
	// parameter in /proc/cmdline.
	Current CurrentFunc
	// Runner runs grub-editenv; ExecRunner by default.
	Runner Runner
	// Timeout bounds each grub-editenv run; DefaultTimeout when 0.
	Timeout time.Duration
	// EditEnv is the tool; grub-editenv by default.
	EditEnv string
	Logger  *slog.Logger
}

// GRUB drives a GRUB environment block with grub-editenv, using RAUC's
// ORDER, <slot>_OK and <slot>_TRY variables. grub-editenv rewrites the
// file in place (truncate, write, fsync), which a power cut can leave
// empty, so changes are made on a copy beside it, which is then synced
// and renamed over the original and the directory synced.
type GRUB struct {
	env envBackend
}

// NewGRUB returns a GRUB backend; it runs nothing until called.
func NewGRUB(cfg GRUBConfig) (*GRUB, error) {
	if cfg.Env == "" {
		return nil, errors.New("boot: GRUB backend needs the grubenv path")
	}
	slots, err := newSlotSet(cfg.Slots)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	sch, err := newScheme(SchemeRAUCGRUB, slots, 1)
	if err != nil {
		return nil, fmt.Errorf("boot: %w", err)
	}
	st := grubStore{fsys: cfg.FS, env: cfg.Env, tool: cfg.EditEnv, run: newRunner(cfg.Runner, cfg.Timeout)}
	if st.fsys == nil {
		st.fsys = devfs.OS{}
	}
	if st.tool == "" {
		st.tool = "grub-editenv"
	}
	if cfg.Current == nil {
		cfg.Current = KernelCmdline(devfs.OS{}, "/proc/cmdline", "")
	}
	return &GRUB{env: envBackend{slots: slots, sch: sch, st: st, current: cfg.Current, log: logger(cfg.Logger), what: "grub"}}, nil
}

// Current implements Backend.
func (g *GRUB) Current(ctx context.Context) (string, error) { return g.env.Current(ctx) }

// Primary implements Backend: the slot the GRUB script will boot next.
func (g *GRUB) Primary(ctx context.Context) (string, error) { return g.env.Primary(ctx) }

// SetPrimary implements Backend.
func (g *GRUB) SetPrimary(ctx context.Context, slot string) error {
	return g.env.SetPrimary(ctx, slot)
}

// State implements Backend.
func (g *GRUB) State(ctx context.Context, slot string) (State, error) {
	return g.env.State(ctx, slot)
}

// SetState implements Backend.
func (g *GRUB) SetState(ctx context.Context, slot string, s State) error {
	return g.env.SetState(ctx, slot, s)
}

type grubStore struct {
	fsys devfs.FS
	env  string
	tool string
	run  runner
}

// maxGRUBEnv bounds the grubenv copy; GRUB's block is 1 KiB.
const maxGRUBEnv = 64 << 10

func (s grubStore) load(ctx context.Context, names []string) (vars, error) {
	if _, err := s.fsys.Stat(s.env); errors.Is(err, fs.ErrNotExist) {
		return vars{}, nil // GRUB's load_env fails and the script's defaults apply
	}
	out, err := s.run.run(ctx, nil, s.tool, s.env, "list")
	if err != nil {
		return nil, err
	}
	return parseEditenvList(out, names), nil
}

// parseEditenvList reads "grub-editenv list": name=value lines. Only the
// named variables are kept; anything else in the block is not ours.
func parseEditenvList(out []byte, names []string) vars {
	v := vars{}
	for _, line := range strings.Split(string(out), "\n") {
		name, value, ok := strings.Cut(line, "=")
		if ok && slices.Contains(names, name) {
			v[name] = value
		}
	}
	return v
}

func (s grubStore) store(ctx context.Context, ch []change) error {
	var set, unset []string
	for _, c := range ch {
		if !validVarName(c.name) || strings.ContainsAny(c.value, "\n\r\x00") {
			return fmt.Errorf("refusing to write an unsafe variable %q", c.name)
		}
		if c.value == "" {
			unset = append(unset, c.name)
		} else {
			set = append(set, c.name+"="+c.value)
		}
	}
	tmp := path.Join(path.Dir(s.env), "."+path.Base(s.env)+".new")
	old, err := devfs.ReadFile(s.fsys, s.env, maxGRUBEnv)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	perm := fs.FileMode(0o644)
	if fi, err := s.fsys.Stat(s.env); err == nil {
		perm = fi.Mode().Perm()
	}
	if err := s.copyTo(tmp, old, exists, perm); err != nil {
		return err
	}
	if !exists {
		if _, err := s.run.run(ctx, nil, s.tool, tmp, "create"); err != nil {
			return err
		}
	}
	if len(set) > 0 {
		if _, err := s.run.run(ctx, nil, s.tool, append([]string{tmp, "set"}, set...)...); err != nil {
			return err
		}
	}
	if len(unset) > 0 {
		if _, err := s.run.run(ctx, nil, s.tool, append([]string{tmp, "unset"}, unset...)...); err != nil {
			return err
		}
	}
	f, err := s.fsys.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := s.fsys.Rename(tmp, s.env); err != nil {
		return err
	}
	if err := s.fsys.SyncDir(path.Dir(s.env)); err != nil {
		return fmt.Errorf("sync %s: %w", path.Dir(s.env), err)
	}
	return nil
}

// copyTo writes the current block (if any) to the temporary file that
// grub-editenv then edits; without one the file is left absent so that
// "grub-editenv create" makes a fresh block.
func (s grubStore) copyTo(tmp string, data []byte, exists bool, perm fs.FileMode) error {
	if err := s.fsys.Remove(tmp); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	if !exists {
		return nil
	}
	f, err := s.fsys.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
