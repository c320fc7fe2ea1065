package cli

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// lockedBuffer is a bytes.Buffer safe for a server writing its log while
// the test reads it.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestServeMetricsListenFromConfigFile runs `updraft serve` with the
// metrics settings in its config file: the startup log names the metrics
// listener, which serves /metrics with the token while the main listener
// does not serve it at all.
func TestServeMetricsListenFromConfigFile(t *testing.T) {
	dir := t.TempDir()
	tokenFile := filepath.Join(dir, "metrics-token")
	const token = "scrape-token-0123456789abcdef"
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "updraft.yaml")
	cfg := "addr: 127.0.0.1:0\nmetrics-listen: 127.0.0.1:0\nmetrics-token-file: " + tokenFile + "\n"
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	stdout, stderr := &lockedBuffer{}, &lockedBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, []string{"serve", "--config", cfgFile, "--data-dir", filepath.Join(dir, "data")}, Env{
			Stdout: stdout, Stderr: stderr, Getenv: func(string) string { return "" },
			Clock: clock.NewFake(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)),
		})
	}()
	defer func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited %d\nstderr:\n%s", code, stderr.String())
		}
	}()
	mainRe := regexp.MustCompile(`msg=serving addr=(\S+)`)
	metricsRe := regexp.MustCompile(`msg="serving metrics on a separate listener" metrics_addr=(\S+) path=/metrics access="bearer token"`)
	var mainAddr, metricsAddr string
	for i := 0; mainAddr == "" || metricsAddr == ""; i++ {
		if m := mainRe.FindStringSubmatch(stderr.String()); m != nil {
			mainAddr = m[1]
		}
		if m := metricsRe.FindStringSubmatch(stderr.String()); m != nil {
			metricsAddr = m[1]
		}
		if i == 500 {
			t.Fatalf("the startup log does not say where metrics are served:\n%s", stderr.String())
		}
		<-time.After(10 * time.Millisecond) // a real process coming up
	}
	scrape := func(url, auth string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", url, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := scrape("http://"+metricsAddr+"/metrics", token); code != 200 || !strings.Contains(body, "go_goroutines") {
		t.Errorf("/metrics on the metrics listener with the token = %d %.200s", code, body)
	}
	if code, _ := scrape("http://"+metricsAddr+"/metrics", ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics on the metrics listener without the token = %d, want 401", code)
	}
	if code, _ := scrape("http://"+mainAddr+"/metrics", token); code != http.StatusNotFound {
		t.Errorf("/metrics on the main listener = %d, want 404", code)
	}
}

func TestServeRefusesBadMetricsTokenFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cfgFile := filepath.Join(dir, "updraft.yaml")
	if err := os.WriteFile(cfgFile, []byte("metrics-token-file: "+empty+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(dir, "data")
	r := runCLI(t, runOpts{}, "serve", "--data-dir", data, "--addr", "127.0.0.1:0", "--metrics-token-file", filepath.Join(dir, "none"))
	r.check(t, 1, nil, []string{"read the metrics token", "no such file"})
	r = runCLI(t, runOpts{}, "serve", "--data-dir", data, "--addr", "127.0.0.1:0", "--config", cfgFile)
	r.check(t, 1, nil, []string{"metrics token file " + empty + " is empty"})
	r = runCLI(t, runOpts{env: map[string]string{"UPDRAFT_METRICS_TOKEN_FILE": empty}}, "serve", "--data-dir", data, "--addr", "127.0.0.1:0")
	r.check(t, 1, nil, []string{"is empty"})
}
