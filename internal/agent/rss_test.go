package agent_test

import (
	"bufio"
	"crypto/ed25519"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/clock"
)

// TestMeasureIdleRSS builds the stripped agent binary, runs it against a
// local device API on the real clock with a short poll interval, and
// reports its resident memory once it idles. It is a measurement, not a
// check of behaviour: it runs only with UPDRAFT_MEASURE_RSS=1 and sleeps in
// real time. docs/device-integration.md quotes its output.
func TestMeasureIdleRSS(t *testing.T) {
	if os.Getenv("UPDRAFT_MEASURE_RSS") != "1" {
		t.Skip("set UPDRAFT_MEASURE_RSS=1 to measure the agent's idle memory")
	}
	srv := newServer(t, serverOptions{clock: clock.Real{}, longPoll: true})
	dir := t.TempDir()
	bin := filepath.Join(dir, "updraft-agent")
	build := exec.Command("go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, "../../cmd/updraft-agent")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	state := filepath.Join(dir, "state")
	if err := os.MkdirAll(state, 0o700); err != nil {
		t.Fatal(err)
	}
	_, key, _ := ed25519.GenerateKey(nil)
	pemKey, err := agent.MarshalKeyPEM(key)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(state, "device-key.pem"), pemKey, 0o600)
	srv.preauthorize(key.Public().(ed25519.PublicKey))
	cfg := filepath.Join(dir, "agent.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`server: {url: %s}
state_dir: %s
device: {serial: SN-RSS, device_type: gw-200, hw_rev: B, region: eu-west, time_zone: Europe/Berlin, version: 1.0.0}
security: {allow_unsigned: true}
timing: {poll_interval: 5s, telemetry_sample: 5s, telemetry_send: 10s, long_poll: true}
sensors: {free_storage_path: %s}
log: {level: warn}
`, srv.url, state, dir)), 0o644)
	cmd := exec.Command(bin, "-config", cfg)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	}()
	var rss, hwm string
	for i := 0; i < 6; i++ {
		time.Sleep(10 * time.Second)
		rss, hwm = procStatus(t, cmd.Process.Pid)
		t.Logf("after %2ds: VmRSS %s, VmHWM %s", 10*(i+1), rss, hwm)
	}
	st, err := os.ReadFile(filepath.Join(state, "state.json"))
	if err != nil || !strings.Contains(string(st), `"device_id"`) {
		t.Fatalf("the agent did not enroll: %s %v", st, err)
	}
}

func procStatus(t *testing.T, pid int) (rss, hwm string) {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), ":")
		switch k {
		case "VmRSS":
			rss = strings.TrimSpace(v)
		case "VmHWM":
			hwm = strings.TrimSpace(v)
		}
	}
	return rss, hwm
}
