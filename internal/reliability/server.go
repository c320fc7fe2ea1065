package reliability

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// Build compiles ./cmd/updraft of the module that contains this package
// into dir and returns the binary's path. UPDRAFT_RELIABILITY_BINARY
// names a binary to use instead (one built elsewhere, or a release).
func Build(ctx context.Context, dir string) (string, error) {
	if bin := os.Getenv("UPDRAFT_RELIABILITY_BINARY"); bin != "" {
		return bin, nil
	}
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("find the module: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	bin := filepath.Join(dir, "updraft")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/updraft")
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/updraft: %w\n%s", err, b)
	}
	return bin, nil
}

// ServerConfig says how to run `updraft serve`.
type ServerConfig struct {
	// Binary is the updraft executable (see Build).
	Binary string
	// DataDir is the server's data directory; it survives restarts.
	DataDir string
	// Database is a PostgreSQL URL; empty: SQLite in DataDir.
	Database string
	// TimeScale and TimeOrigin are --time-scale and --time-origin.
	TimeScale  float64
	TimeOrigin time.Time
	// Log receives the server's log output, across restarts.
	Log io.Writer
	// StartTimeout bounds, in real time, how long a start may take.
	StartTimeout time.Duration
}

// Server is an `updraft serve` process that can be killed and restarted
// on the same data directory, database and address.
type Server struct {
	cfg  ServerConfig
	addr string
	// Token is the first-start admin API token, Password the admin's
	// first-start password.
	Token, Password string

	cmd    *exec.Cmd
	exited chan struct{}
	// Starts counts the processes started, Kills the SIGKILLs sent.
	Starts, Kills int
}

// StartServer picks a free loopback port and starts the server.
func StartServer(cfg ServerConfig) (*Server, error) {
	if cfg.StartTimeout == 0 {
		cfg.StartTimeout = time.Minute
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	cfg.Log = &lockedWriter{w: cfg.Log}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, addr: ln.Addr().String()}
	ln.Close()
	if err := s.start(); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(cfg.DataDir, "initial-admin.txt"))
	if err != nil {
		s.Stop()
		return nil, fmt.Errorf("read the first-start credentials: %w", err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "api_token="); ok {
			s.Token = v
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "password="); ok {
			s.Password = v
		}
	}
	if s.Token == "" {
		s.Stop()
		return nil, errors.New("no api_token in initial-admin.txt")
	}
	return s, nil
}

// URL is the server's base URL.
func (s *Server) URL() string { return "http://" + s.addr }

// start runs a new process and waits until it says it is serving.
func (s *Server) start() error {
	args := []string{"serve", "--data-dir", s.cfg.DataDir, "--addr", s.addr, "--public-url", s.URL(), "--log-level", "warn"}
	if s.cfg.Database != "" {
		args = append(args, "--database", s.cfg.Database)
	}
	if s.cfg.TimeScale > 0 {
		args = append(args, "--time-scale", strconv.FormatFloat(s.cfg.TimeScale, 'g', -1, 64),
			"--time-origin", s.cfg.TimeOrigin.UTC().Format(time.RFC3339))
	}
	cmd := exec.Command(s.cfg.Binary, args...)
	// Nothing from the test's environment configures the server.
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}
	cmd.Stderr = s.cfg.Log
	cmd.SysProcAttr = procAttr()
	// Our own pipe rather than StdoutPipe: Wait must not close it under
	// the reader.
	out, w, err := os.Pipe()
	if err != nil {
		return err
	}
	cmd.Stdout = w
	err = cmd.Start()
	w.Close()
	if err != nil {
		out.Close()
		return fmt.Errorf("start updraft serve: %w", err)
	}
	s.Starts++
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			if strings.Contains(line, "Updraft is serving on") {
				once.Do(func() { close(ready) })
			}
			if !strings.Contains(line, "password") && !strings.Contains(line, "token") {
				fmt.Fprintln(s.cfg.Log, line)
			}
		}
		_, _ = io.Copy(io.Discard, out)
		out.Close()
	}()
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.StartTimeout)
	defer cancel()
	select {
	case <-ready:
		return nil
	case <-exited:
		return fmt.Errorf("updraft serve exited before serving: %v", cmd.ProcessState)
	case <-ctx.Done():
		s.Kill()
		return fmt.Errorf("updraft serve did not start within %v", s.cfg.StartTimeout)
	}
}

// Kill sends SIGKILL and waits for the process to be gone.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.exited
	s.cmd = nil
	s.Kills++
}

// Restart starts a new process on the same data, database and address.
func (s *Server) Restart() error {
	if s.cmd != nil {
		return errors.New("restart: the server is still running")
	}
	return s.start()
}

// Stop shuts the server down gracefully (SIGTERM), killing it if it
// does not stop within 30 s of real time.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	t := clock.Real{}.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case <-s.exited:
		s.cmd = nil
	case <-t.C():
		s.Kill()
		s.Kills--
	}
}

// lockedWriter serialises the server's stdout and stderr into one log.
type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// createLog creates the server's log file.
func createLog(name string) (*os.File, error) {
	if err := os.MkdirAll(filepath.Dir(name), 0o755); err != nil {
		return nil, err
	}
	return os.Create(name)
}
