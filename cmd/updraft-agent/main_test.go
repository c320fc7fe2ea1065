package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestExampleConfigParses(t *testing.T) {
	t.Parallel()
	f, err := os.Open("testdata/agent.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c, err := parseConfig(f)
	if err != nil {
		t.Fatal(err)
	}
	if c.Boot.Backend != "uboot" || len(c.Slots) != 2 || c.Gates.MinBattery != 30 || time.Duration(c.Gates.Windows[0].Duration) != 3*time.Hour ||
		c.Components["bundle"].Command[2] != "{file}" || *c.Timing.LongPoll != true {
		t.Fatalf("parsed %+v", c)
	}
}

func TestConfigRefusals(t *testing.T) {
	t.Parallel()
	base := "server: {url: http://x}\ndevice: {serial: s, version: 1.0.0}\nsecurity: {allow_unsigned: true}\n"
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", base + "colour: blue\n", "field colour not found"},
		{"unknown nested key", base + "gates: {min_batery: 3}\n", "min_batery"},
		{"no url", "device: {serial: s, version: 1.0.0}\nsecurity: {allow_unsigned: true}\n", "server.url is required"},
		{"unsigned not allowed", "server: {url: http://x}\ndevice: {serial: s, version: 1.0.0}\n", "security.tuf_root is required"},
		{"slots without backend", base + "slots: [{name: A, device: /dev/a}, {name: B, device: /dev/b}]\n", "need a boot.backend"},
		{"one slot", base + "boot: {backend: uboot}\nslots: [{name: A, device: /dev/a}]\nreboot_command: [reboot]\n", "exactly two slots"},
		{"bad duration", base + "timing: {poll_interval: soon}\n", "not a non-negative duration"},
		{"bad window", base + "gates: {windows: [{start: '25:00', duration: 1h}]}\n", "HH:MM"},
		{"two documents", base + "---\nserver: {url: http://y}\n", "more than one YAML document"},
		{"empty", "", "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := parseConfig(strings.NewReader(tt.yaml))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
		})
	}
}

func TestRunCheckAndExitCodes(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte("server: {url: http://127.0.0.1:1}\nstate_dir: "+dir+"/state\ndevice: {serial: SN-1, device_type: gw-200, hw_rev: B, region: eu, version: 1.0.0}\nsecurity: {allow_unsigned: true}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"-config", cfg, "-check"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "configuration OK") {
		t.Fatalf("check: %d %s %s", code, out.String(), errb.String())
	}
	if code := run(context.Background(), []string{"-config", filepath.Join(dir, "missing.yaml")}, &out, &errb); code != 2 {
		t.Fatalf("missing config: exit %d", code)
	}
	if code := run(context.Background(), []string{"-bogus"}, &out, &errb); code != 2 {
		t.Fatalf("bad flag: exit %d", code)
	}
	// A canceled context stops the agent cleanly (exit 0).
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if code := run(ctx, []string{"-config", cfg}, &out, &errb); code != 0 {
		t.Fatalf("stop: exit %d: %s", code, errb.String())
	}
}

// TestImportGraph keeps server code, SQL drivers, metrics and the web UI
// out of the agent binary.
func TestImportGraph(t *testing.T) {
	t.Parallel()
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go command not found")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/updraft/updraft/cmd/updraft-agent").CombinedOutput()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/updraft/updraft/internal/store",
		"github.com/updraft/updraft/internal/server",
		"github.com/updraft/updraft/internal/mgmtapi",
		"github.com/updraft/updraft/internal/web",
		"github.com/updraft/updraft/internal/ui",
		"github.com/updraft/updraft/internal/tufrepo",
		"database/sql",
		"modernc.org/sqlite",
		"github.com/jackc/pgx",
		"github.com/prometheus",
		"github.com/chromedp",
	}
	deps := strings.Fields(string(out))
	for _, dep := range deps {
		if strings.HasPrefix(dep, "github.com/updraft/updraft/internal/deviceapi") && dep != "github.com/updraft/updraft/internal/deviceapi/wire" {
			t.Errorf("agent imports %s (only internal/deviceapi/wire is allowed)", dep)
		}
		for _, f := range forbidden {
			if dep == f || strings.HasPrefix(dep, f+"/") {
				t.Errorf("agent imports %s", dep)
			}
		}
	}
	if len(deps) < 20 {
		t.Fatalf("go list returned only %d packages", len(deps))
	}
}

// FuzzParseConfig: any file is refused or parsed without panicking.
func FuzzParseConfig(f *testing.F) {
	if b, err := os.ReadFile("testdata/agent.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("server: {url: http://x}\ndevice: {serial: s, version: 1.0.0}\nsecurity: {allow_unsigned: true}\n"))
	f.Add([]byte("gates: {windows: [{start: '02:00', duration: 1h, days: [9]}]}"))
	f.Add([]byte("a: &a [*a, *a]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = parseConfig(bytes.NewReader(b))
	})
}
