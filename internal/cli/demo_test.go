package cli

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// watchWriter collects output and closes reached once it contains want.
type watchWriter struct {
	mu      sync.Mutex
	b       bytes.Buffer
	want    string
	reached chan struct{}
	once    sync.Once
}

func (w *watchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n, err := w.b.Write(p)
	if strings.Contains(w.b.String(), w.want) {
		w.once.Do(func() { close(w.reached) })
	}
	return n, err
}

func (w *watchWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestDemoCtrlCStopsCleanly interrupts "updraft demo" once its fleet runs:
// the command exits 0, says it stopped, and removes its temporary
// directory. (internal/demo runs the whole scenario.)
func TestDemoCtrlCStopsCleanly(t *testing.T) {
	t.Parallel()
	out := &watchWriter{want: "Fleet:", reached: make(chan struct{})}
	var errb bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	code := make(chan int, 1)
	go func() {
		code <- Main(ctx, []string{"demo", "--addr", "127.0.0.1:0", "--devices", "20", "--factor", "100"}, Env{Stdout: out, Stderr: &errb})
	}()
	select {
	case <-out.reached:
	case c := <-code:
		cancel()
		t.Fatalf("demo exited %d before its fleet ran:\n%s\n%s", c, out.String(), errb.String())
	}
	cancel()
	if c := <-code; c != 0 {
		t.Fatalf("exit %d after Ctrl-C, want 0:\n%s\n%s", c, out.String(), errb.String())
	}
	got := out.String()
	if !strings.Contains(got, "Stopped; server and fleet shut down cleanly.") || !strings.Contains(got, "/ui/") || !strings.Contains(got, "password") {
		t.Fatalf("output:\n%s", got)
	}
	m := regexp.MustCompile(`SQLite in (\S+)/server`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no data directory in the output:\n%s", got)
	}
	if _, err := os.Stat(m[1]); !os.IsNotExist(err) {
		t.Fatalf("temporary directory %s still there after Ctrl-C: %v", m[1], err)
	}
}

func TestDemoRefusesBadFlags(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"demo", "--devices", "5"}, {"demo", "--factor", "0"}} {
		var errb bytes.Buffer
		if c := Main(context.Background(), args, Env{Stderr: &errb}); c != exitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, c, exitUsage, errb.String())
		}
	}
}
