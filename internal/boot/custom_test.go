package boot_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/testenv"
)

// newCustom returns a custom backend driving testdata/custom-handler.sh
// over a state file holding initial.
func newCustom(t *testing.T, initial string, timeout time.Duration) (*boot.Custom, string) {
	t.Helper()
	sh := testenv.Command(t, "sh", "install a POSIX shell")
	handler, err := filepath.Abs("testdata/custom-handler.sh")
	if err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(t.TempDir(), "state")
	if err := os.WriteFile(state, []byte(initial), 0o644); err != nil {
		t.Fatal(err)
	}
	c, err := boot.NewCustom(boot.CustomConfig{
		Command: []string{sh, handler},
		Runner:  boot.ExecRunner{Env: []string{"PATH=" + os.Getenv("PATH"), "UPDRAFT_TEST_BOOT_STATE=" + state}},
		Timeout: timeout,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, state
}

func TestCustomProtocol(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	c, state := newCustom(t, "primary=A\ncurrent=A\nA=good\nB=good\n", 0)
	if p, err := c.Primary(ctx); err != nil || p != "A" {
		t.Fatalf("Primary = %q, %v", p, err)
	}
	if cur, err := c.Current(ctx); err != nil || cur != "A" {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	if err := c.SetState(ctx, "B", boot.Bad); err != nil {
		t.Fatal(err)
	}
	if s, err := c.State(ctx, "B"); err != nil || s != boot.Bad {
		t.Fatalf("State(B) = %q, %v", s, err)
	}
	if err := c.SetPrimary(ctx, "B"); err != nil {
		t.Fatal(err)
	}
	if p, err := c.Primary(ctx); err != nil || p != "B" {
		t.Fatalf("Primary = %q, %v", p, err)
	}
	if err := c.SetState(ctx, "B", boot.Good); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(state)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{"primary=B", "B=good", "A=good"} {
		if !strings.Contains(string(b), line+"\n") {
			t.Fatalf("state file %q lacks %q", b, line)
		}
	}
}

func TestCustomHandlerErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		initial string
		call    func(*boot.Custom) error
		want    string // in the error
	}{
		{"failure carries stderr", "primary=A\n",
			func(c *boot.Custom) error { _, err := c.State(ctx, "B"); return err }, "no state for slot B"},
		{"optional get-current missing", "primary=A\n",
			func(c *boot.Custom) error { _, err := c.Current(ctx); return err }, "get-current not supported"},
		{"unknown slot printed", "primary=C\n",
			func(c *boot.Custom) error { _, err := c.Primary(ctx); return err }, "unknown boot slot"},
		{"two words printed", "primary=A\nsay=A B\n",
			func(c *boot.Custom) error { _, err := c.Primary(ctx); return err }, "one word"},
		{"injection attempt printed", "primary=A\nsay=A;reboot\n",
			func(c *boot.Custom) error { _, err := c.Primary(ctx); return err }, "invalid boot slot name"},
		{"state not good or bad", "A=maybe\n",
			func(c *boot.Custom) error { _, err := c.State(ctx, "A"); return err }, "want good or bad"},
		{"unsafe slot never reaches the handler", "",
			func(c *boot.Custom) error { return c.SetPrimary(ctx, "A; rm -rf /") }, "invalid boot slot name"},
		{"unknown slot never reaches the handler", "",
			func(c *boot.Custom) error { return c.SetState(ctx, "C", boot.Good) }, "unknown boot slot"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, _ := newCustom(t, tt.initial, 0)
			err := tt.call(c)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

// TestCustomHandlerTimeout: a handler that hangs (with a child holding its
// output pipe) is killed at the timeout.
func TestCustomHandlerTimeout(t *testing.T) {
	t.Parallel()
	c, _ := newCustom(t, "primary=A\nhang=1\n", 300*time.Millisecond)
	_, err := c.Primary(context.Background())
	var ce *boot.CommandError
	if !errors.Is(err, context.DeadlineExceeded) || !errors.As(err, &ce) {
		t.Fatalf("Primary with a hung handler = %v", err)
	}
}

func TestCustomCurrentOverride(t *testing.T) {
	t.Parallel()
	c, err := boot.NewCustom(boot.CustomConfig{
		Command: []string{"/nonexistent/handler"},
		Current: fixedCurrent("B"),
	})
	if err != nil {
		t.Fatal(err)
	}
	if cur, err := c.Current(context.Background()); err != nil || cur != "B" {
		t.Fatalf("Current = %q, %v", cur, err)
	}
	if _, err := boot.NewCustom(boot.CustomConfig{}); err == nil {
		t.Fatal("NewCustom without a command succeeded")
	}
}
