package cli

import (
	"context"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/sim"
)

func simCommand() *command {
	var (
		devices  int
		profile  string
		seed     uint64
		prefix   string
		progress time.Duration
		noAccept bool
	)
	return &command{
		name:  "sim",
		short: "run simulated devices (the real agent) against a server",
		help: "Runs --devices simulated devices, each the real update agent on an in-memory disk with\n" +
			"hash-only A/B slots and a simulated bootloader, against --server until interrupted.\n" +
			"The fleet's hardware mix, regions, time zones, link quality, power cuts and per-release\n" +
			"behaviour come from --profile (JSON; see docs/simulator.md), or the default profile.\n" +
			"With an API token that may preauthorize devices, every device's key is registered first,\n" +
			"so the devices are accepted when they enroll; otherwise they wait as pending.",
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&devices, "devices", 100, "number of simulated `devices`")
			fs.StringVar(&profile, "profile", "", "fleet profile `file` (JSON); default: the built-in profile")
			fs.Uint64Var(&seed, "seed", 1, "random `seed`: the same seed gives the same fleet and device keys")
			fs.StringVar(&prefix, "serial-prefix", "SIM-", "`prefix` of the devices' serial numbers")
			fs.DurationVar(&progress, "progress", 5*time.Second, "progress line `interval`")
			fs.BoolVar(&noAccept, "no-accept", false, "do not preauthorize the devices; they enroll as pending")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if devices <= 0 {
				return usageErrorf("--devices must be positive")
			}
			if progress <= 0 {
				return usageErrorf("--progress must be positive")
			}
			p := sim.DefaultProfile()
			if profile != "" {
				var err error
				if p, err = sim.LoadProfile(profile); err != nil {
					return err
				}
			}
			cfg := sim.Config{Devices: devices, Profile: p, Clock: e.Clock, Seed: seed, SerialPrefix: prefix,
				Logger: slog.New(slog.DiscardHandler)}
			c, cerr := e.client()
			if cerr != nil && !noAccept {
				return fmt.Errorf("%w (or pass --no-accept to let the devices enroll as pending)", cerr)
			}
			if c == nil {
				server := e.global.server
				if server == "" {
					server = e.Getenv("UPDRAFT_SERVER")
				}
				if server == "" {
					server = DefaultServer
				}
				cfg.ServerURL = server
			} else {
				cfg.ServerURL = c.BaseURL()
			}
			if !noAccept {
				cfg.Preauthorize = preauthorizer(c)
			}
			f, err := sim.New(cfg)
			if err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "simulating %d devices against %s (Ctrl-C stops)\n", devices, cfg.ServerURL)
			if err := f.Preauthorize(ctx); err != nil {
				return err
			}
			done := make(chan error, 1)
			go func() { done <- f.Run(ctx) }()
			for {
				f.Stats().Summary(e.Stdout)
				t := e.Clock.NewTimer(progress)
				select {
				case <-t.C():
					continue
				case <-ctx.Done():
				case err := <-done:
					t.Stop()
					return err
				}
				t.Stop()
				err := <-done
				f.Stats().Summary(e.Stdout)
				fmt.Fprintln(e.Stdout, "stopped")
				return err
			}
		},
	}
}

// preauthorizer registers a device's key through the management API.
func preauthorizer(c *client.Client) func(ctx context.Context, pub ed25519.PublicKey, serial string) error {
	return func(ctx context.Context, pub ed25519.PublicKey, serial string) error {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			return err
		}
		pemKey := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		_, err = c.PreauthorizeKey(ctx, string(pemKey), serial)
		var ae *client.APIError
		if errors.As(err, &ae) && ae.Status == http.StatusConflict {
			// Registered by an earlier run with the same seed.
			return nil
		}
		return err
	}
}
