package boot_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/testenv"
)

const installHint = "run scripts/install-boot-tools.sh"

// envLayout is where a test environment lives.
type envLayout int

const (
	redundantTwoFiles envLayout = iota // two copies, one per file
	redundantOneFile                   // two copies at different offsets of one file
	singleCopy                         // no redundancy
)

const envSize = 0x4000

// ubootEnv is a U-Boot environment built with mkenvimage for one test.
type ubootEnv struct {
	t      *testing.T
	dir    string
	config string   // fw_env.config
	images []string // files holding the copies
	print  string   // path of fw_printenv
}

// newUBootEnv writes an environment holding initial (name=value lines) in
// the given layout, and the fw_env.config describing it.
func newUBootEnv(t *testing.T, layout envLayout, initial string) *ubootEnv {
	t.Helper()
	mkenv := testenv.Command(t, "mkenvimage", installHint)
	e := &ubootEnv{
		t:     t,
		dir:   t.TempDir(),
		print: testenv.Command(t, "fw_printenv", installHint),
	}
	testenv.Command(t, "fw_setenv", installHint)
	src := filepath.Join(e.dir, "env.txt")
	if err := os.WriteFile(src, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	img := filepath.Join(e.dir, "copy.img")
	args := []string{"-s", fmt.Sprint(envSize), "-o", img, src}
	if layout != singleCopy {
		args = append([]string{"-r"}, args...)
	}
	if out, err := exec.Command(mkenv, args...).CombinedOutput(); err != nil {
		t.Fatalf("mkenvimage: %v: %s", err, out)
	}
	one, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	var config string
	switch layout {
	case redundantTwoFiles:
		e.images = []string{filepath.Join(e.dir, "env0.img"), filepath.Join(e.dir, "env1.img")}
		for _, p := range e.images {
			if err := os.WriteFile(p, one, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		config = fmt.Sprintf("%s 0x0 %#x\n%s 0x0 %#x\n", e.images[0], envSize, e.images[1], envSize)
	case redundantOneFile:
		e.images = []string{filepath.Join(e.dir, "env.img")}
		if err := os.WriteFile(e.images[0], append(slices.Clone(one), one...), 0o644); err != nil {
			t.Fatal(err)
		}
		config = fmt.Sprintf("%s 0x0 %#x\n%s %#x %#x\n", e.images[0], envSize, e.images[0], envSize, envSize)
	case singleCopy:
		e.images = []string{filepath.Join(e.dir, "env.img")}
		if err := os.WriteFile(e.images[0], one, 0o644); err != nil {
			t.Fatal(err)
		}
		config = fmt.Sprintf("%s 0x0 %#x\n", e.images[0], envSize)
	}
	e.config = filepath.Join(e.dir, "fw_env.config")
	if err := os.WriteFile(e.config, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	return e
}

// printenv reads the whole environment with the real fw_printenv,
// independently of the backend.
func (e *ubootEnv) printenv() map[string]string {
	e.t.Helper()
	out, err := exec.Command(e.print, "-c", e.config).Output()
	if err != nil {
		e.t.Fatalf("fw_printenv: %v", err)
	}
	env := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	return env
}

// want checks the named variables ("" for unset) with fw_printenv.
func (e *ubootEnv) want(step string, want map[string]string) {
	e.t.Helper()
	env := e.printenv()
	for k, v := range want {
		if env[k] != v {
			e.t.Fatalf("%s: %s=%q, want %q (environment %v)", step, k, env[k], v, env)
		}
	}
}

func fixedCurrent(slot string) boot.CurrentFunc {
	return func(context.Context) (string, error) { return slot, nil }
}

func TestUBootRAUCSchemeWithRealTools(t *testing.T) {
	t.Parallel()
	for name, layout := range map[string]envLayout{
		"redundant in two files": redundantTwoFiles,
		"redundant in one file":  redundantOneFile,
		"single copy":            singleCopy,
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := newUBootEnv(t, layout, "bootcmd=run distro_bootcmd\nbootdelay=2\n")
			u, err := boot.NewUBoot(boot.UBootConfig{Config: e.config, Current: fixedCurrent("A")})
			if err != nil {
				t.Fatal(err)
			}
			// A fresh environment reads as the boot script's defaults.
			if p, err := u.Primary(ctx); err != nil || p != "A" {
				t.Fatalf("Primary of a fresh environment = %q, %v", p, err)
			}
			if got, err := boot.SimulateBoot(ctx, u); err != nil || got != "A" {
				t.Fatalf("first boot = %q, %v", got, err)
			}
			e.want("first boot", map[string]string{"BOOT_ORDER": "A B", "BOOT_A_LEFT": "2", "BOOT_B_LEFT": "3"})
			if err := u.SetState(ctx, "A", boot.Good); err != nil {
				t.Fatal(err)
			}
			e.want("mark A good", map[string]string{"BOOT_A_LEFT": "3"})

			if err := u.SetState(ctx, "B", boot.Bad); err != nil {
				t.Fatal(err)
			}
			e.want("mark B bad", map[string]string{"BOOT_ORDER": "A", "BOOT_B_LEFT": "0"})
			if s, err := u.State(ctx, "B"); err != nil || s != boot.Bad {
				t.Fatalf("State(B) = %q, %v", s, err)
			}
			if err := u.SetPrimary(ctx, "B"); err != nil {
				t.Fatal(err)
			}
			e.want("set primary B", map[string]string{"BOOT_ORDER": "B A", "BOOT_B_LEFT": "3", "BOOT_A_LEFT": "3"})
			if p, err := u.Primary(ctx); err != nil || p != "B" {
				t.Fatalf("Primary = %q, %v", p, err)
			}
			// B never passes its health check: three tries, then A.
			for i, want := range []string{"B", "B", "B", "A"} {
				if got, err := boot.SimulateBoot(ctx, u); err != nil || got != want {
					t.Fatalf("boot %d = %q, %v; want %s (environment %v)", i, got, err, want, e.printenv())
				}
			}
			e.want("after fallback", map[string]string{"BOOT_ORDER": "B A", "BOOT_B_LEFT": "0", "BOOT_A_LEFT": "2"})
			if s, err := u.State(ctx, "B"); err != nil || s != boot.Bad {
				t.Fatalf("State(B) after fallback = %q, %v", s, err)
			}
			// Variables that are not ours are left alone.
			e.want("unrelated variables", map[string]string{"bootcmd": "run distro_bootcmd", "bootdelay": "2"})
			if c, err := u.Current(ctx); err != nil || c != "A" {
				t.Fatalf("Current = %q, %v", c, err)
			}
		})
	}
}

// TestUBootRedundantEnvSurvivesTornWrite corrupts the copy fw_setenv just
// wrote, as a power cut in the middle of the write would, and requires
// the tools to fall back to the previous copy: the reason the backend
// needs a redundant environment.
func TestUBootRedundantEnvSurvivesTornWrite(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUBootEnv(t, redundantTwoFiles, "BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=3\n")
	u, err := boot.NewUBoot(boot.UBootConfig{Config: e.config, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetState(ctx, "B", boot.Bad); err != nil {
		t.Fatal(err)
	}
	before := [][]byte{readFile(t, e.images[0]), readFile(t, e.images[1])}
	if err := u.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	written := -1
	for i, p := range e.images {
		if !bytes.Equal(before[i], readFile(t, p)) {
			written = i
		}
	}
	if written < 0 {
		t.Fatal("SetPrimary changed neither copy")
	}
	e.want("switched", map[string]string{"BOOT_ORDER": "B A"})
	torn := readFile(t, e.images[written])
	torn[100] ^= 0xff // a half-written copy fails its CRC
	if err := os.WriteFile(e.images[written], torn, 0o644); err != nil {
		t.Fatal(err)
	}
	e.want("torn write", map[string]string{"BOOT_ORDER": "A", "BOOT_B_LEFT": "0"})
	if p, err := u.Primary(ctx); err != nil || p != "A" {
		t.Fatalf("Primary after a torn write = %q, %v", p, err)
	}
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestUBootBootcountSchemeWithRealTools(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newUBootEnv(t, redundantTwoFiles, "bootcmd=run boot_slot_cmd\naltbootcmd=run alt_slot_cmd\n")
	u, err := boot.NewUBoot(boot.UBootConfig{Config: e.config, Scheme: boot.SchemeBootcount, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	bootOnce := func(want string) {
		t.Helper()
		if got, err := boot.SimulateBoot(ctx, u); err != nil || got != want {
			t.Fatalf("boot = %q, %v; want %s (environment %v)", got, err, want, e.printenv())
		}
	}
	bootOnce("A")
	e.want("first boot", map[string]string{"boot_slot": "A", "upgrade_available": ""})

	// An update to B that never comes up healthy.
	if err := u.SetState(ctx, "B", boot.Bad); err != nil {
		t.Fatal(err)
	}
	e.want("mark B bad", map[string]string{"boot_B_ok": "0", "boot_slot": "A"})
	if err := u.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	e.want("set primary B", map[string]string{
		"boot_slot": "B", "boot_slot_alt": "A", "upgrade_available": "1",
		"bootcount": "0", "bootlimit": "3", "boot_B_ok": "1",
	})
	for i := range 3 {
		bootOnce("B")
		e.want("trial boot", map[string]string{"bootcount": fmt.Sprint(i + 1)})
	}
	if p, err := u.Primary(ctx); err != nil || p != "A" {
		t.Fatalf("Primary with the boot limit reached = %q, %v", p, err)
	}
	bootOnce("A") // bootcount exceeds bootlimit: altbootcmd
	e.want("altbootcmd", map[string]string{
		"boot_slot": "A", "boot_slot_alt": "", "upgrade_available": "0", "bootcount": "0", "boot_B_ok": "0",
	})
	if s, err := u.State(ctx, "B"); err != nil || s != boot.Bad {
		t.Fatalf("State(B) = %q, %v", s, err)
	}

	// A good update to B: committed by marking it good.
	if err := u.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	bootOnce("B")
	if err := u.SetState(ctx, "B", boot.Good); err != nil {
		t.Fatal(err)
	}
	e.want("committed", map[string]string{
		"boot_slot": "B", "boot_slot_alt": "", "upgrade_available": "0", "bootcount": "0", "boot_B_ok": "1",
	})
	for range 5 {
		bootOnce("B") // no counting once committed
	}
	e.want("unrelated variables", map[string]string{"bootcmd": "run boot_slot_cmd", "altbootcmd": "run alt_slot_cmd"})
}

func TestUBootToolErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	testenv.Command(t, "fw_printenv", installHint)
	dir := t.TempDir()
	blank := bytes.Repeat([]byte{0xff}, envSize)
	img := filepath.Join(dir, "blank.img")
	config := filepath.Join(dir, "fw_env.config")
	if err := os.WriteFile(img, blank, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(config, fmt.Appendf(nil, "%s 0x0 %#x\n", img, envSize), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err := boot.NewUBoot(boot.UBootConfig{Config: config, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	// No valid environment and no default: an error that carries what the
	// tool said.
	_, err = u.Primary(ctx)
	var ce *boot.CommandError
	if !errors.As(err, &ce) || ce.ExitCode() <= 0 || !strings.Contains(err.Error(), "environment") {
		t.Fatalf("Primary on a blank environment = %v", err)
	}
	// With a default environment the tools start from it.
	def := filepath.Join(dir, "default.env")
	if err := os.WriteFile(def, []byte("BOOT_ORDER=B A\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	u, err = boot.NewUBoot(boot.UBootConfig{Config: config, DefaultEnv: def, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := u.Primary(ctx); err != nil || p != "B" {
		t.Fatalf("Primary from the default environment = %q, %v", p, err)
	}
	if err := u.SetState(ctx, "A", boot.Bad); err != nil {
		t.Fatal(err)
	}
	if s, err := u.State(ctx, "A"); err != nil || s != boot.Bad {
		t.Fatalf("State(A) = %q, %v", s, err)
	}
	// A tool that does not exist.
	u, err = boot.NewUBoot(boot.UBootConfig{Config: config, PrintEnv: filepath.Join(dir, "no-such-tool")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Primary(ctx); !errors.As(err, &ce) || ce.ExitCode() != -1 {
		t.Fatalf("Primary with a missing tool = %v", err)
	}
}

// recorder is a Runner that records calls and answers from a script.
type recorder struct {
	calls  []string
	stdins []string
	answer func(name string, args []string) ([]byte, error)
}

func (r *recorder) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	r.calls = append(r.calls, strings.Join(append([]string{name}, args...), " "))
	r.stdins = append(r.stdins, string(stdin))
	return r.answer(name, args)
}

// TestUBootCommandLines pins the exact tool invocations, which RAUC-style
// boot scripts and fw_env setups depend on.
func TestUBootCommandLines(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	r := &recorder{answer: func(name string, args []string) ([]byte, error) {
		if name == "fw_printenv" {
			return []byte("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=\n"), nil
		}
		return nil, nil
	}}
	u, err := boot.NewUBoot(boot.UBootConfig{Config: "/etc/fw_env.config", Runner: r, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	if err := u.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	want := []string{
		"fw_printenv -c /etc/fw_env.config BOOT_ORDER BOOT_A_LEFT BOOT_B_LEFT",
		"fw_setenv -c /etc/fw_env.config -s /dev/stdin",
	}
	if !slices.Equal(r.calls, want) {
		t.Fatalf("calls = %q, want %q", r.calls, want)
	}
	if r.stdins[1] != "BOOT_B_LEFT=3\nBOOT_ORDER=B A\n" {
		t.Fatalf("fw_setenv script = %q", r.stdins[1])
	}
	// Marking A good when it already is writes nothing.
	r.calls = nil
	if err := u.SetState(ctx, "A", boot.Good); err != nil {
		t.Fatal(err)
	}
	if len(r.calls) != 1 {
		t.Fatalf("a no-op change ran %q", r.calls)
	}
	// Output that is not what was asked for is refused.
	r.answer = func(string, []string) ([]byte, error) { return []byte("BOOT_ORDER=A\nevil=1\n"), nil }
	if _, err := u.Primary(ctx); err == nil {
		t.Fatal("Primary accepted unexpected fw_printenv output")
	}
}

func TestBackendTimeout(t *testing.T) {
	t.Parallel()
	blocked := &recorder{answer: nil}
	r := runnerFunc(func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
		blocked.calls = append(blocked.calls, name)
		<-ctx.Done() // a hung tool: only the backend's timeout ends it
		return nil, &boot.CommandError{Command: []string{name}, Err: ctx.Err()}
	})
	u, err := boot.NewUBoot(boot.UBootConfig{Runner: r, Timeout: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := u.Primary(context.Background()); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Primary with a hung tool = %v", err)
	}
}

type runnerFunc func(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)

func (f runnerFunc) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	return f(ctx, stdin, name, args...)
}

func TestNewUBootRejectsBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []boot.UBootConfig{
		{Scheme: boot.SchemeRAUCGRUB},
		{Slots: []string{"A", "B;reboot"}},
		{Attempts: 10},
	} {
		if _, err := boot.NewUBoot(cfg); err == nil {
			t.Errorf("NewUBoot(%+v) succeeded", cfg)
		}
	}
}
