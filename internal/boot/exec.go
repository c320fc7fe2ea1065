package boot

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"
	"time"
)

// Runner runs the external programs the U-Boot, GRUB and custom backends
// drive. Backends bound every call with their own timeout through ctx.
type Runner interface {
	// Run runs name with args, feeding it stdin, and returns what it wrote
	// to standard output. A program that cannot start, exits non-zero or
	// outlives ctx yields a *CommandError.
	Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error)
}

// DefaultTimeout bounds each external command when a backend's Timeout is
// zero. Environment writes on slow NAND take a few seconds at most.
const DefaultTimeout = 30 * time.Second

// ExecRunner runs programs with os/exec. On Unix the program gets its own
// process group, and the whole group is killed when ctx ends, so a custom
// backend script cannot leave children behind holding its pipes.
type ExecRunner struct {
	// Env is the programs' environment; nil inherits the agent's.
	Env []string
	// MaxOutput caps the standard output accepted; 0 means 1 MiB.
	MaxOutput int
}

const stderrKeep = 4 << 10

// Run implements Runner.
func (r ExecRunner) Run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	limit := r.MaxOutput
	if limit <= 0 {
		limit = 1 << 20
	}
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = r.Env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	stdout := &capped{max: limit}
	stderr := &capped{max: stderrKeep}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	ownProcessGroup(cmd)
	// If a grandchild escaped the group and still holds a pipe, stop
	// waiting for it shortly after the program itself is gone.
	cmd.WaitDelay = 2 * time.Second
	err := cmd.Run()
	if err == nil && stdout.over {
		err = fmt.Errorf("standard output larger than %d bytes", limit)
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = ctxErr
		}
		return nil, &CommandError{Command: append([]string{name}, args...), Err: err, Stderr: stderr.String()}
	}
	return stdout.buf.Bytes(), nil
}

// capped keeps the first max bytes written to it and drains the rest, so
// a chatty program never blocks on a full pipe.
type capped struct {
	buf  bytes.Buffer
	max  int
	over bool
}

func (c *capped) Write(p []byte) (int, error) {
	if room := c.max - c.buf.Len(); room < len(p) {
		c.over = true
		c.buf.Write(p[:max(room, 0)])
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (c *capped) String() string {
	s := strings.TrimSpace(c.buf.String())
	if c.over {
		s += " …"
	}
	return s
}

// CommandError reports an external command that failed.
type CommandError struct {
	Command []string // program and arguments
	Err     error    // exit status, start failure, or the context's error
	Stderr  string   // start of its standard error, trimmed
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("%s: %v", strings.Join(e.Command, " "), e.Err)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

func (e *CommandError) Unwrap() error { return e.Err }

// ExitCode returns the command's exit status, or -1 if it did not exit
// normally (not started, killed, timed out).
func (e *CommandError) ExitCode() int {
	var ee *exec.ExitError
	if errors.As(e.Err, &ee) {
		return ee.ExitCode()
	}
	return -1
}

// runner is what the command backends share: the injected Runner and a
// per-command timeout.
type runner struct {
	r       Runner
	timeout time.Duration
}

func newRunner(r Runner, timeout time.Duration) runner {
	if r == nil {
		r = ExecRunner{}
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return runner{r: r, timeout: timeout}
}

func (r runner) run(ctx context.Context, stdin []byte, name string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, r.timeout)
	defer cancel()
	return r.r.Run(ctx, stdin, name, args...)
}
