// Package cli implements the updraft command line: the server commands
// (serve, migrate) and the management commands that talk to a server over
// its API (device, release, token, user, audit).
//
// Every command is an entry of one table (commands, below); a command group
// lives in its own file and contributes a constructor to the table. To add a
// command, write a constructor returning a *command in a new file and list
// it once: in commands() for a top-level command or group (keys, campaign),
// or in its group's subs (release sign). Main parses and checks flags and
// positional arguments from the entry, so run only does the work. Commands
// write only to the Env they are given, never to os.Stdout or os.Stderr, so
// tests run them in-process. Main maps the outcome to an exit code: 0 for
// success, 1 for a failure (an API error, an unreachable server), 2 for a
// usage error (an unknown command or flag, a missing argument).
//
// The package holds no mutable global state; Main is safe to call
// concurrently with different Envs.
package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/updraft/updraft/internal/clock"
)

// Env is what a command may touch of the outside world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Getenv reads an environment variable; nil reads none.
	Getenv func(string) string
	// IsTerminal reports whether w (Stdout, Stderr, or Stdin when it is also
	// a writer, as an *os.File is) is an interactive terminal; nil means
	// IsTerminal from this package.
	IsTerminal func(io.Writer) bool
	// Clock times upload progress and judges token expiry; nil means the
	// real clock.
	Clock clock.Clock
	// HTTPClient, when set, carries the management commands' requests
	// (tests use it; nil means the client package's default).
	HTTPClient *http.Client

	global *globalFlags
	cmd    *command
	path   string        // e.g. "updraft device list"
	stdin  *bufio.Reader // Stdin, buffered on first use by readLine
}

// IsTerminal reports whether w is an *os.File (or anything with a file
// descriptor) connected to a terminal.
func IsTerminal(w io.Writer) bool {
	f, ok := w.(interface{ Fd() uintptr })
	return ok && term.IsTerminal(int(f.Fd()))
}

// command is one entry of the command table: either a group with
// subcommands (device, release, …) or a leaf that runs.
//
// For a leaf, Main builds a flag.FlagSet, lets flags register the command's
// flags (and, when api is set, the global --server, --token and -o flags,
// so they may follow the command too), parses flags and positional
// arguments in any order, checks the number of positional arguments
// against args, and calls run with the positional arguments only. run
// reports bad input with usageErrorf (exit 2) and anything else with an
// ordinary error (exit 1).
type command struct {
	name string
	// args is the positional argument synopsis, e.g. "ID RELEASE". A word in
	// brackets is optional; a word ending in "..." takes any number.
	args  string
	short string // one line for the command list
	help  string // paragraphs shown by "updraft help <command>"
	flags func(fs *flag.FlagSet)
	api   bool
	run   func(ctx context.Context, e *Env, args []string) error
	subs  []*command
}

// commands is the command table, in the order "updraft help" lists it.
// serveCommand and migrateCommand live in serve.go and migrate.go.
func commands() []*command {
	return []*command{
		serveCommand(),
		migrateCommand(),
		deviceCommand(),
		releaseCommand(),
		campaignCommand(),
		keysCommand(),
		tokenCommand(),
		userCommand(),
		auditCommand(),
		reportCommand(),
		simCommand(),
		demoCommand(),
		versionCommand(),
	}
}

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// Main runs the command line args (without the program name) and returns
// the process exit code.
func Main(ctx context.Context, args []string, env Env) int {
	e := &env
	if e.Stdin == nil {
		e.Stdin = strings.NewReader("")
	}
	if e.Stdout == nil {
		e.Stdout = io.Discard
	}
	if e.Stderr == nil {
		e.Stderr = io.Discard
	}
	if e.Getenv == nil {
		e.Getenv = func(string) string { return "" }
	}
	if e.IsTerminal == nil {
		e.IsTerminal = IsTerminal
	}
	if e.Clock == nil {
		e.Clock = clock.Real{}
	}
	e.global = &globalFlags{}
	e.path = "updraft"

	root := &command{name: "updraft", subs: commands()}
	err := e.dispatch(ctx, root, args)
	return e.report(err)
}

// dispatch parses the global flags, finds the command and runs it.
func (e *Env) dispatch(ctx context.Context, root *command, args []string) error {
	fs := newFlagSet("updraft")
	e.global.register(fs)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			e.printGroupHelp(e.Stdout, root, "updraft")
			return nil
		}
		e.cmd = root
		return flagError(fs, err)
	}
	args = fs.Args()
	cmd, path := root, "updraft"
	for len(cmd.subs) > 0 {
		if len(args) == 0 {
			e.cmd, e.path = cmd, path
			if cmd == root {
				return usageErrorf("no command given")
			}
			return usageErrorf("%s needs a subcommand", path)
		}
		name := args[0]
		if name == "help" || name == "-h" || name == "-help" || name == "--help" {
			return e.help(ctx, cmd, path, args[1:])
		}
		sub := cmd.find(name)
		if sub == nil {
			e.cmd, e.path = cmd, path
			if strings.HasPrefix(name, "-") {
				return usageErrorf("unknown flag %s (flags of %s go before the command)", name, path)
			}
			return usageErrorf("unknown command %q", strings.TrimPrefix(path+" "+name, "updraft "))
		}
		cmd, path, args = sub, path+" "+name, args[1:]
	}
	e.cmd, e.path = cmd, path
	pos, err := e.parse(cmd, args)
	if err != nil {
		return err
	}
	return cmd.run(ctx, e, pos)
}

func (c *command) find(name string) *command {
	for _, s := range c.subs {
		if s.name == name {
			return s
		}
	}
	return nil
}

// flagSet builds the flag set of a leaf command.
func (e *Env) flagSet(cmd *command) *flag.FlagSet {
	fs := newFlagSet(e.path)
	if cmd.api {
		e.global.register(fs)
	}
	if cmd.flags != nil {
		cmd.flags(fs)
	}
	return fs
}

func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses a leaf command's flags, which may come before, between or
// after its positional arguments ("--" ends flags), and checks the number
// of positional arguments.
func (e *Env) parse(cmd *command, args []string) ([]string, error) {
	fs := e.flagSet(cmd)
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, errHelp
			}
			return nil, flagError(fs, err)
		}
		rest := fs.Args()
		consumed := len(args) - len(rest)
		if consumed > 0 && args[consumed-1] == "--" {
			pos = append(pos, rest...)
			break
		}
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	min, max := cmd.argCount()
	switch {
	case len(pos) < min:
		words := strings.Fields(cmd.args)
		return nil, usageErrorf("missing %s", strings.Trim(words[len(pos)], "[]."))
	case max >= 0 && len(pos) > max:
		return nil, usageErrorf("unexpected argument %q", pos[max])
	}
	if err := e.global.check(); err != nil {
		return nil, err
	}
	return pos, nil
}

// argCount derives the accepted number of positional arguments from the
// synopsis; max is -1 for "any number".
func (c *command) argCount() (min, max int) {
	for _, w := range strings.Fields(c.args) {
		if strings.HasSuffix(w, "...") || strings.HasSuffix(w, "...]") {
			max = -1
			if !strings.HasPrefix(w, "[") {
				min++
			}
			continue
		}
		if !strings.HasPrefix(w, "[") {
			min++
		}
		if max >= 0 {
			max++
		}
	}
	return min, max
}

// usageError is bad command-line input; Main prints it with the command's
// usage line and exits 2.
type usageError struct{ msg string }

func (u *usageError) Error() string { return u.msg }

func usageErrorf(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// flagError rewords the flag package's messages: flags are named as users
// type them (--name, -o) and a bad value says what was expected.
func flagError(fs *flag.FlagSet, err error) error {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: "); ok {
		return usageErrorf("unknown flag %s", dashed(name))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: "); ok {
		return usageErrorf("flag %s needs a value", dashed(name))
	}
	// invalid value "x" for flag -limit: parse error
	if rest, ok := strings.CutPrefix(msg, "invalid value "); ok {
		if val, tail, ok := strings.Cut(rest, " for flag "); ok {
			name, _, _ := strings.Cut(tail, ": ")
			return usageErrorf("invalid value %s for flag %s: %s", val, dashed(name), expected(fs.Lookup(strings.TrimLeft(name, "-"))))
		}
	}
	return &usageError{msg: msg}
}

// dashed writes a flag name as it is usually typed: -o, --server.
func dashed(name string) string {
	name = strings.TrimLeft(name, "-")
	if len(name) == 1 {
		return "-" + name
	}
	return "--" + name
}

// expected describes the values a flag accepts.
func expected(f *flag.Flag) string {
	if f == nil {
		return "not a valid value"
	}
	g, ok := f.Value.(flag.Getter)
	if !ok {
		return "not a valid value"
	}
	switch g.Get().(type) {
	case int, int64, uint, uint64:
		return "want an integer"
	case time.Duration:
		return "want a duration such as 90m or 720h"
	case bool:
		return "want true or false"
	}
	return "not a valid value"
}

var errHelp = errors.New("help requested")

// report prints err and returns the exit code.
func (e *Env) report(err error) int {
	if err == nil {
		return exitOK
	}
	if errors.Is(err, errHelp) {
		e.printHelp(e.Stdout, e.cmd, e.path)
		return exitOK
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(e.Stderr, "updraft: %s\n", ue.msg)
		if e.cmd != nil {
			if len(e.cmd.subs) > 0 {
				fmt.Fprintf(e.Stderr, "usage: %s <command> [arguments]\n", e.path)
			} else {
				fmt.Fprintf(e.Stderr, "usage: %s\n", e.synopsis(e.cmd, e.path))
			}
		}
		fmt.Fprintf(e.Stderr, "Run '%s' for details.\n", helpCommandFor(e.path))
		return exitUsage
	}
	if errors.Is(err, context.Canceled) {
		fmt.Fprintln(e.Stderr, "updraft: interrupted")
		return exitError
	}
	fmt.Fprintf(e.Stderr, "updraft: %s\n", err)
	return exitError
}

// helpCommandFor turns "updraft device list" into "updraft help device list".
func helpCommandFor(path string) string {
	rest, _ := strings.CutPrefix(path, "updraft")
	return "updraft help" + rest
}

// stdinIsTerminal reports whether Stdin is an interactive terminal.
func (e *Env) stdinIsTerminal() (fd int, ok bool) {
	w, isW := e.Stdin.(io.Writer)
	f, hasFd := e.Stdin.(interface{ Fd() uintptr })
	if !isW || !hasFd || !e.IsTerminal(w) {
		return 0, false
	}
	return int(f.Fd()), true
}
