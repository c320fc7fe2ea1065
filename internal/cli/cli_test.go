package cli

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// result is what one run of the command line produced.
type result struct {
	code           int
	stdout, stderr string
}

// runOpts configure one run.
type runOpts struct {
	env      map[string]string
	stdin    string
	terminal bool // Stderr counts as a terminal (progress bars)
	clock    clock.Clock
}

func runCLI(t *testing.T, o runOpts, args ...string) result {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := Env{
		Stdin:      strings.NewReader(o.stdin),
		Stdout:     &stdout,
		Stderr:     &stderr,
		Getenv:     func(k string) string { return o.env[k] },
		IsTerminal: func(w io.Writer) bool { return o.terminal && w == io.Writer(&stderr) },
		Clock:      o.clock,
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	code := Main(ctx, args, env)
	return result{code: code, stdout: stdout.String(), stderr: stderr.String()}
}

// check compares a result with expectations: an exit code and substrings
// that must appear on stdout and stderr ("" checks nothing; a want string
// of "^$" demands empty output).
func (r result) check(t *testing.T, code int, stdout, stderr []string) {
	t.Helper()
	if r.code != code {
		t.Errorf("exit code %d, want %d\nstdout:\n%s\nstderr:\n%s", r.code, code, r.stdout, r.stderr)
	}
	for _, w := range stdout {
		if w == "^$" {
			if r.stdout != "" {
				t.Errorf("stdout not empty:\n%s", r.stdout)
			}
			continue
		}
		if !strings.Contains(r.stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, r.stdout)
		}
	}
	for _, w := range stderr {
		if w == "^$" {
			if r.stderr != "" {
				t.Errorf("stderr not empty:\n%s", r.stderr)
			}
			continue
		}
		if !strings.Contains(r.stderr, w) {
			t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
		}
	}
}

// unreachableServer returns the URL of a port nothing listens on.
func unreachableServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// TestOffline covers what the command line decides without a server: help,
// usage errors, flag validation and connection failures.
func TestOffline(t *testing.T) {
	t.Parallel()
	dead := unreachableServer(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("updraft_x_y\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(emptyFile, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	withToken := map[string]string{"UPDRAFT_TOKEN": "updraft_x_y", "UPDRAFT_SERVER": dead}

	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout []string
		stderr []string
	}{
		{"no args", nil, nil, 2, []string{"^$"}, []string{"updraft: no command given", "Run 'updraft help'"}},
		{"help", []string{"help"}, nil, 0, []string{"Commands:", "device", "release", "token", "user", "serve", "migrate", "--server URL"}, []string{"^$"}},
		{"--help", []string{"--help"}, nil, 0, []string{"Commands:"}, []string{"^$"}},
		{"help group", []string{"help", "release"}, nil, 0, []string{"Usage: updraft release <command>", "mark-affected"}, nil},
		{"help leaf", []string{"help", "device", "list"}, nil, 0, []string{"Usage: updraft device list [flags]", "--filter expression", "--state state", "Global flags:", "-o, --output format"}, nil},
		{"leaf -h", []string{"release", "upload", "-h"}, nil, 0, []string{"Usage: updraft release upload [flags] RELEASE FILE", "--device-type type", "--hw-rev revisions"}, nil},
		{"group help word", []string{"token", "help", "create"}, nil, 0, []string{"Usage: updraft token create [flags] NAME", "--expires duration"}, nil},
		{"help unknown", []string{"help", "nope"}, nil, 2, nil, []string{`unknown command "nope"`}},
		{"unknown command", []string{"frobnicate"}, nil, 2, nil, []string{`updraft: unknown command "frobnicate"`}},
		{"unknown subcommand", []string{"device", "explode"}, nil, 2, nil, []string{`unknown command "device explode"`, "usage: updraft device <command>"}},
		{"group without subcommand", []string{"release"}, nil, 2, nil, []string{"updraft release needs a subcommand"}},
		{"unknown global flag", []string{"--bogus", "device", "list"}, nil, 2, nil, []string{"updraft: unknown flag --bogus"}},
		{"unknown leaf flag", []string{"device", "list", "--bogus"}, withToken, 2, nil, []string{"unknown flag --bogus", "usage: updraft device list [flags]"}},
		{"flag needs value", []string{"device", "list", "--state"}, withToken, 2, nil, []string{"flag --state needs a value"}},
		{"bad int", []string{"device", "list", "--limit", "many"}, withToken, 2, nil, []string{`invalid value "many" for flag --limit: want an integer`}},
		{"limit too large", []string{"device", "list", "--limit", "5000"}, withToken, 2, nil, []string{"invalid value 5000 for flag --limit: want 1 to 1000"}},
		{"bad output", []string{"-o", "yaml", "device", "list"}, withToken, 2, nil, []string{`invalid value "yaml" for flag -o: want table or json`}},
		{"bad state", []string{"device", "list", "--state", "sleepy"}, withToken, 2, nil, []string{`invalid value "sleepy" for flag --state`}},
		{"missing arg", []string{"device", "show"}, withToken, 2, nil, []string{"updraft: missing ID", "usage: updraft device show ID"}},
		{"extra arg", []string{"device", "show", "a", "b"}, withToken, 2, nil, []string{`unexpected argument "b"`}},
		{"missing second arg", []string{"device", "assign", "dev1"}, withToken, 2, nil, []string{"missing RELEASE"}},
		{"tag without change", []string{"device", "tag", "dev1"}, withToken, 2, nil, []string{"nothing to do: give --add or --remove"}},
		{"bad filter column", []string{"device", "list", "--filter", `device_type == and tag:lab`}, withToken, 2, nil,
			[]string{"bad --filter: column 16:", "\n  device_type == and tag:lab\n                 ^\n"}},
		{"bad version", []string{"release", "create", "v1.2"}, withToken, 2, nil, []string{`VERSION "v1.2" is not a semantic version`}},
		{"bad severity", []string{"release", "create", "1.2.0", "--severity", "dire"}, withToken, 2, nil, []string{`invalid value "dire" for flag --severity`}},
		{"mark-bad needs reason", []string{"release", "mark-bad", "1.2.0"}, withToken, 2, nil, []string{"--reason is required"}},
		{"mark-affected needs cve", []string{"release", "mark-affected", "1.2.0"}, withToken, 2, nil, []string{"--cve is required"}},
		{"upload needs device type", []string{"release", "upload", "1.2.0", "f.img", "--hw-rev", "B", "--type", "raw-image"}, withToken, 2, nil, []string{"--device-type is required"}},
		{"upload bad type", []string{"release", "upload", "1.2.0", "f.img", "--device-type", "gw", "--hw-rev", "B", "--type", "tarball"}, withToken, 2, nil, []string{`invalid value "tarball" for flag --type`}},
		{"upload from-version without delta", []string{"release", "upload", "1.2.0", "f.img", "--device-type", "gw", "--hw-rev", "B", "--type", "file", "--from-version", "1.0.0"}, withToken, 2, nil, []string{"--from-version goes with --type delta"}},
		{"upload missing file", []string{"release", "upload", "1.2.0", filepath.Join(t.TempDir(), "none.img"), "--device-type", "gw", "--hw-rev", "B", "--type", "raw-image"}, withToken, 1, nil, []string{"no such file"}},
		{"token role required", []string{"token", "create", "ci"}, withToken, 2, nil, []string{"--role is required"}},
		{"token bad role", []string{"token", "create", "ci", "--role", "god"}, withToken, 2, nil, []string{`invalid value "god" for flag --role`}},
		{"token bad duration", []string{"token", "create", "ci", "--role", "viewer", "--expires", "soon"}, withToken, 2, nil, []string{`invalid value "soon" for flag --expires: want a duration such as 90m or 720h`}},
		{"token short duration", []string{"token", "create", "ci", "--role", "viewer", "--expires", "10s"}, withToken, 2, nil, []string{"at least 1m"}},
		{"user bad role", []string{"user", "create", "bob", "--role", "root"}, withToken, 2, nil, []string{`invalid value "root" for flag --role`}},
		{"no token", []string{"device", "list"}, map[string]string{"UPDRAFT_SERVER": dead}, 1, nil, []string{"updraft: no API token: pass --token or set UPDRAFT_TOKEN or UPDRAFT_TOKEN_FILE"}},
		{"empty token file", []string{"device", "list"}, map[string]string{"UPDRAFT_SERVER": dead, "UPDRAFT_TOKEN_FILE": emptyFile}, 1, nil, []string{"is empty"}},
		{"token file read", []string{"device", "list"}, map[string]string{"UPDRAFT_SERVER": dead, "UPDRAFT_TOKEN_FILE": tokenFile}, 1, nil, []string{"updraft: cannot reach server " + dead + ": connection refused"}},
		{"unreachable", []string{"--server", dead, "--token", "updraft_x_y", "device", "list"}, nil, 1, []string{"^$"}, []string{"updraft: cannot reach server " + dead + ": connection refused\n"}},
		{"global flags after command", []string{"release", "list", "--server", dead, "--token", "t", "-o", "json"}, nil, 1, nil, []string{"cannot reach server " + dead}},
		{"bad server flag", []string{"--server", "ftp://example.com", "release", "list"}, withToken, 2, nil, []string{"--server: invalid server URL", "scheme must be http or https"}},
		{"bad server env", []string{"release", "list"}, map[string]string{"UPDRAFT_SERVER": "http://user:pw@example.com", "UPDRAFT_TOKEN": "t"}, 2, nil, []string{"UPDRAFT_SERVER: invalid server URL", "credentials belong in the token"}},
		{"version", []string{"version"}, nil, 0, []string{"updraft "}, []string{"^$"}},
		{"version extra arg", []string{"version", "now"}, nil, 2, nil, []string{`unexpected argument "now"`}},
		{"double dash", []string{"device", "show", "--", "-odd-id", "extra"}, withToken, 2, nil, []string{`unexpected argument "extra"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := runCLI(t, runOpts{env: tt.env}, tt.args...)
			r.check(t, tt.code, tt.stdout, tt.stderr)
		})
	}
}

func TestArgCount(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args     string
		min, max int
	}{
		{"", 0, 0},
		{"ID", 1, 1},
		{"ID RELEASE", 2, 2},
		{"[NAME]", 0, 1},
		{"ID [NAME]", 1, 2},
		{"FILE...", 1, -1},
		{"[FILE...]", 0, -1},
		{"ID [FILE...]", 1, -1},
	}
	for _, tt := range tests {
		min, max := (&command{args: tt.args}).argCount()
		if min != tt.min || max != tt.max {
			t.Errorf("argCount(%q) = %d, %d; want %d, %d", tt.args, min, max, tt.min, tt.max)
		}
	}
}

func TestRenderProgress(t *testing.T) {
	t.Parallel()
	tests := []struct {
		n, total int64
		elapsed  time.Duration
		want     string
	}{
		{0, 10_000_000, 0, "upload   0% [........................] 0 B / 10.0 MB  --/s  ETA --"},
		{5_000_000, 10_000_000, 2 * time.Second, "upload  50% [############............] 5.0 MB / 10.0 MB  2.5 MB/s  ETA 2s"},
		{2_500_000, 10_000_000, time.Second, "upload  25% [######..................] 2.5 MB / 10.0 MB  2.5 MB/s  ETA 3s"},
		{10_000_000, 10_000_000, 4 * time.Second, "upload 100% [########################] 10.0 MB / 10.0 MB  2.5 MB/s  ETA 0s"},
		{300_000, 10_000_000, 2 * time.Second, "upload   3% [........................] 300.0 kB / 10.0 MB  150.0 kB/s  ETA 1m5s"},
		{0, 0, 0, "upload 100% [########################] 0 B / 0 B  --/s  ETA 0s"},
	}
	for _, tt := range tests {
		if got := renderProgress("upload", tt.n, tt.total, tt.elapsed); got != tt.want {
			t.Errorf("renderProgress(%d, %d, %s)\n got %q\nwant %q", tt.n, tt.total, tt.elapsed, got, tt.want)
		}
	}
}

func TestReadLine(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("x", maxPasswordBytes)
	tests := []struct {
		name  string
		stdin string
		want  []string
		err   string
	}{
		{"two lines", "old secret\nnew secret\n", []string{"old secret", "new secret"}, ""},
		{"crlf", "pw one\r\n", []string{"pw one"}, ""},
		{"no newline", "last", []string{"last"}, ""},
		{"max length", long + "\n", []string{long}, ""},
		{"too long", long + "y\n", nil, "longer than"},
		{"eof", "", []string{""}, ""},
	}
	for _, tt := range tests {
		e := &Env{Stdin: strings.NewReader(tt.stdin)}
		var got []string
		var err error
		for range max(len(tt.want), 1) {
			var l string
			if l, err = e.readLine(maxPasswordBytes); err != nil {
				break
			}
			got = append(got, l)
		}
		if tt.err != "" {
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("%s: err %v, want %q", tt.name, err, tt.err)
			}
			continue
		}
		if err != nil || strings.Join(got, "|") != strings.Join(tt.want, "|") {
			t.Errorf("%s: got %q, %v; want %q", tt.name, got, err, tt.want)
		}
	}
}
