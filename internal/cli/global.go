package cli

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/updraft/updraft/internal/client"
)

// DefaultServer is the server the management commands talk to when neither
// --server nor UPDRAFT_SERVER says otherwise: where "updraft serve" listens
// by default.
const DefaultServer = "http://127.0.0.1:8080"

// maxTokenFileBytes bounds the token file read through UPDRAFT_TOKEN_FILE.
const maxTokenFileBytes = 4 << 10

// globalFlags are accepted before any command and after management commands.
type globalFlags struct {
	server string
	token  string
	output string
}

// register adds the global flags to fs. The flags write through to g
// without resetting it, so a value given before the command survives the
// command's own flag set.
func (g *globalFlags) register(fs *flag.FlagSet) {
	fs.Var(stringFlag{&g.server}, "server", "server `URL` (env UPDRAFT_SERVER; default "+DefaultServer+")")
	fs.Var(stringFlag{&g.token}, "token", "API `token` (env UPDRAFT_TOKEN, or a file named by UPDRAFT_TOKEN_FILE)")
	fs.Var(stringFlag{&g.output}, "output", "output `format`: table or json (default table)")
	fs.Var(stringFlag{&g.output}, "o", "output `format`: table or json")
}

func isGlobalFlag(name string) bool {
	switch name {
	case "server", "token", "output", "o":
		return true
	}
	return false
}

// check validates the global flags that need no environment.
func (g *globalFlags) check() error {
	switch g.output {
	case "", "table", "json":
		return nil
	}
	return usageErrorf("invalid value %q for flag -o: want table or json", g.output)
}

// stringFlag is a flag.Value that leaves its target alone until set; its
// String is empty so that help output never shows a token.
type stringFlag struct{ p *string }

func (s stringFlag) String() string     { return "" }
func (s stringFlag) Set(v string) error { *s.p = v; return nil }

// json reports whether the output format is JSON.
func (e *Env) json() bool { return e.global.output == "json" }

// client returns an API client for the configured server and token.
func (e *Env) client() (*client.Client, error) {
	server, from := e.global.server, "--server"
	if server == "" {
		server, from = e.Getenv("UPDRAFT_SERVER"), "UPDRAFT_SERVER"
	}
	if server == "" {
		server = DefaultServer
	}
	if _, err := client.ParseServerURL(server); err != nil {
		return nil, usageErrorf("%s: %v", from, err)
	}
	token, err := e.token()
	if err != nil {
		return nil, err
	}
	return client.New(server, client.Options{Token: token, HTTPClient: e.HTTPClient, UserAgent: "updraft-cli"})
}

// token finds the API token: --token, then UPDRAFT_TOKEN, then the file
// named by UPDRAFT_TOKEN_FILE.
func (e *Env) token() (string, error) {
	if t := strings.TrimSpace(e.global.token); t != "" {
		return t, nil
	}
	if t := strings.TrimSpace(e.Getenv("UPDRAFT_TOKEN")); t != "" {
		return t, nil
	}
	if path := e.Getenv("UPDRAFT_TOKEN_FILE"); path != "" {
		f, err := os.Open(path)
		if err != nil {
			return "", fmt.Errorf("read UPDRAFT_TOKEN_FILE: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxTokenFileBytes+1))
		if err != nil {
			return "", fmt.Errorf("read UPDRAFT_TOKEN_FILE: %w", err)
		}
		if len(b) > maxTokenFileBytes {
			return "", fmt.Errorf("UPDRAFT_TOKEN_FILE %s is larger than %d bytes; it should hold one token", path, maxTokenFileBytes)
		}
		if t := strings.TrimSpace(string(b)); t != "" {
			return t, nil
		}
		return "", fmt.Errorf("UPDRAFT_TOKEN_FILE %s is empty", path)
	}
	return "", fmt.Errorf("no API token: pass --token or set UPDRAFT_TOKEN or UPDRAFT_TOKEN_FILE")
}

// printJSON writes v as indented JSON: the API's object, unchanged.
func (e *Env) printJSON(v any) error {
	enc := json.NewEncoder(e.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table returns a tabwriter for aligned columns on Stdout; call Flush.
func (e *Env) table() *tabwriter.Writer {
	return tabwriter.NewWriter(e.Stdout, 0, 8, 2, ' ', 0)
}

// orDash shows an empty value as "-" so table columns stay aligned.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// splitList splits comma-separated flag values, dropping empty items.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// listFlag collects a repeatable flag whose values may also be
// comma-separated ("--cve A --cve B,C").
type listFlag struct{ p *[]string }

func (l listFlag) String() string {
	if l.p == nil {
		return ""
	}
	return strings.Join(*l.p, ",")
}

func (l listFlag) Set(v string) error {
	*l.p = append(*l.p, splitList(v)...)
	return nil
}
