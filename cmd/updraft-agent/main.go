// Command updraft-agent is Updraft's device agent: a thin wrapper around
// internal/agent that reads a configuration file, builds the bootloader
// backend, sensors and hooks it names, and runs the agent until SIGINT or
// SIGTERM. docs/device-integration.md documents the configuration.
//
// Exit status: 0 after a clean stop or once a reboot was requested; 1 when
// the agent cannot go on (for example its state directory is unusable); 2
// for a bad command line or configuration.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	_ "time/tzdata" // maintenance windows need IANA zones on devices without a tz database

	"github.com/updraft/updraft/internal/agent"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("updraft-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", envOr("UPDRAFT_AGENT_CONFIG", "/etc/updraft/agent.yaml"), "configuration file (env UPDRAFT_AGENT_CONFIG)")
	check := fs.Bool("check", false, "check the configuration and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *showVersion {
		fmt.Fprintln(stdout, "updraft-agent", version)
		return 0
	}
	f, err := os.Open(*configPath)
	if err != nil {
		fmt.Fprintf(stderr, "updraft-agent: %v\n", err)
		return 2
	}
	fc, err := parseConfig(f)
	f.Close()
	if err != nil {
		fmt.Fprintf(stderr, "updraft-agent: %s: %v\n", *configPath, err)
		return 2
	}
	log := newLogger(fc.Log, stderr)
	cfg, err := build(fc, log)
	if err != nil {
		fmt.Fprintf(stderr, "updraft-agent: %s: %v\n", *configPath, err)
		return 2
	}
	log.Debug("effective configuration", "config", fc)
	a, err := agent.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "updraft-agent: %v\n", err)
		return 2
	}
	if *check {
		fmt.Fprintln(stdout, "configuration OK")
		return 0
	}
	log.Info("updraft-agent starting", "version", version, "server", fc.Server.URL)
	switch err := a.Run(ctx); {
	case err == nil:
		log.Info("updraft-agent stopped")
		return 0
	case errors.Is(err, agent.ErrRebooted):
		log.Info("reboot requested; exiting")
		return 0
	default:
		log.Error("updraft-agent failed", "err", err)
		return 1
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}

func newLogger(c logConfig, w io.Writer) *slog.Logger {
	var lv slog.Level
	switch c.Level {
	case "debug":
		lv = slog.LevelDebug
	case "warn":
		lv = slog.LevelWarn
	case "error":
		lv = slog.LevelError
	default:
		lv = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: lv}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
