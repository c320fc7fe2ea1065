package boot_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/testenv"
)

// grubEnv is a grubenv file in a temporary directory, read back with the
// real grub-editenv.
type grubEnv struct {
	t    *testing.T
	dir  string
	path string
	tool string
}

func newGRUBEnv(t *testing.T, create bool, initial ...string) *grubEnv {
	t.Helper()
	e := &grubEnv{t: t, dir: t.TempDir(), tool: testenv.Command(t, "grub-editenv", installHint)}
	e.path = filepath.Join(e.dir, "grubenv")
	if create {
		e.run("create")
		if len(initial) > 0 {
			e.run(append([]string{"set"}, initial...)...)
		}
	}
	return e
}

func (e *grubEnv) run(args ...string) string {
	e.t.Helper()
	out, err := exec.Command(e.tool, append([]string{e.path}, args...)...).CombinedOutput()
	if err != nil {
		e.t.Fatalf("grub-editenv %v: %v: %s", args, err, out)
	}
	return string(out)
}

func (e *grubEnv) want(step string, want map[string]string) {
	e.t.Helper()
	env := map[string]string{}
	for _, line := range strings.Split(e.run("list"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			env[k] = v
		}
	}
	for k, v := range want {
		if env[k] != v {
			e.t.Fatalf("%s: %s=%q, want %q (environment %v)", step, k, env[k], v, env)
		}
	}
}

func TestGRUBWithRealTool(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newGRUBEnv(t, true, "saved_entry=1")
	g, err := boot.NewGRUB(boot.GRUBConfig{Env: e.path, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	bootOnce := func(want string) {
		t.Helper()
		if got, err := boot.SimulateBoot(ctx, g); err != nil || got != want {
			t.Fatalf("boot = %q, %v; want %s", got, err, want)
		}
	}
	bootOnce("A")
	e.want("first boot", map[string]string{"A_TRY": "1"})
	if err := g.SetState(ctx, "A", boot.Good); err != nil {
		t.Fatal(err)
	}
	e.want("mark A good", map[string]string{"A_OK": "1", "A_TRY": "0"})
	if err := g.SetState(ctx, "B", boot.Bad); err != nil {
		t.Fatal(err)
	}
	e.want("mark B bad", map[string]string{"B_OK": "0", "B_TRY": "0"})
	if err := g.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	e.want("set primary B", map[string]string{"ORDER": "B A", "B_OK": "1", "B_TRY": "0"})
	if p, err := g.Primary(ctx); err != nil || p != "B" {
		t.Fatalf("Primary = %q, %v", p, err)
	}
	bootOnce("B") // one try, never marked good
	e.want("trying B", map[string]string{"B_TRY": "1"})
	if s, err := g.State(ctx, "B"); err != nil || s != boot.Bad {
		t.Fatalf("State(B) during its try = %q, %v", s, err)
	}
	bootOnce("A")
	e.want("fallback", map[string]string{"ORDER": "B A", "B_TRY": "1", "A_TRY": "1"})
	if err := g.SetState(ctx, "B", boot.Bad); err != nil {
		t.Fatal(err)
	}
	if err := g.SetState(ctx, "A", boot.Good); err != nil {
		t.Fatal(err)
	}
	bootOnce("A")
	e.want("unrelated variables", map[string]string{"saved_entry": "1"})

	// The environment is replaced by rename: no temporary file is left
	// and the block keeps GRUB's fixed size.
	entries, err := os.ReadDir(e.dir)
	if err != nil || len(entries) != 1 {
		t.Fatalf("directory holds %v, %v; want only grubenv", entries, err)
	}
	if fi, err := os.Stat(e.path); err != nil || fi.Size() != 1024 {
		t.Fatalf("grubenv: %v, %v; want 1024 bytes", fi, err)
	}
}

// TestGRUBCreatesMissingEnv: with no grubenv the script's defaults apply,
// and the first change creates the block.
func TestGRUBCreatesMissingEnv(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newGRUBEnv(t, false)
	g, err := boot.NewGRUB(boot.GRUBConfig{Env: e.path, FS: devfs.OS{}, Current: fixedCurrent("A")})
	if err != nil {
		t.Fatal(err)
	}
	if p, err := g.Primary(ctx); err != nil || p != "A" {
		t.Fatalf("Primary without grubenv = %q, %v", p, err)
	}
	if s, err := g.State(ctx, "B"); err != nil || s != boot.Good {
		t.Fatalf("State(B) without grubenv = %q, %v", s, err)
	}
	if err := g.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	e.want("created", map[string]string{"ORDER": "B A", "B_OK": "1", "B_TRY": "0"})
	if c, err := g.Current(ctx); err != nil || c != "A" {
		t.Fatalf("Current = %q, %v", c, err)
	}
}

func TestGRUBToolFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newGRUBEnv(t, false)
	// Not a GRUB environment block: grub-editenv refuses it, and the
	// backend reports that rather than inventing a state.
	if err := os.WriteFile(e.path, []byte("not an environment block"), 0o644); err != nil {
		t.Fatal(err)
	}
	g, err := boot.NewGRUB(boot.GRUBConfig{Env: e.path})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.Primary(ctx); err == nil {
		t.Fatal("Primary on a corrupt grubenv succeeded")
	}
	if err := g.SetPrimary(ctx, "B"); err == nil {
		t.Fatal("SetPrimary on a corrupt grubenv succeeded")
	}
	if b, _ := os.ReadFile(e.path); string(b) != "not an environment block" {
		t.Fatalf("a failed change altered grubenv: %q", b)
	}
	if _, err := boot.NewGRUB(boot.GRUBConfig{}); err == nil {
		t.Fatal("NewGRUB without Env succeeded")
	}
}
