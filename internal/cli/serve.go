package cli

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
)

// serveSetting is one server setting: a flag, its environment variable and
// its key in the optional config file. Precedence: flag, environment, file,
// default.
type serveSetting struct {
	name, env, def, usage string
	value                 *string
}

type serveOptions struct {
	config                                                     string
	dataDir, addr, database, publicURL                         string
	tlsCert, tlsKey, maxArtifact                               string
	logLevel, logFormat                                        string
	rawRetention, hourlyRetention                              string
	ddiGatewayTokenFile, ddiAnonymous, ddiDeviceType, ddiHWRev string
	signingKeyFile                                             string
	timeScale, timeOrigin                                      string
	insecureCookies                                            string
	metricsListen, metricsTokenFile                            string
}

func (o *serveOptions) settings() []serveSetting {
	return []serveSetting{
		{"data-dir", "UPDRAFT_DATA_DIR", "updraft-data", "data `directory` (SQLite database, artifacts, first-start credentials)", &o.dataDir},
		{"addr", "UPDRAFT_ADDR", "127.0.0.1:8080", "listen `address`", &o.addr},
		{"database", "UPDRAFT_DATABASE", "", "PostgreSQL `URL` (postgres://…); empty: SQLite in the data directory", &o.database},
		{"public-url", "UPDRAFT_PUBLIC_URL", "", "absolute base `URL` handed out in links (default: from --addr)", &o.publicURL},
		{"tls-cert", "UPDRAFT_TLS_CERT", "", "TLS certificate `file` (PEM); reloaded on SIGHUP", &o.tlsCert},
		{"tls-key", "UPDRAFT_TLS_KEY", "", "TLS private key `file` (PEM)", &o.tlsKey},
		{"metrics-listen", "UPDRAFT_METRICS_LISTEN", "", "separate listen `address` for /metrics, /healthz and /readyz (e.g. 127.0.0.1:9090); the main listener then does not serve /metrics (default: the main listener serves /metrics to loopback clients only)", &o.metricsListen},
		{"metrics-token-file", "UPDRAFT_METRICS_TOKEN_FILE", "", "`file` holding a bearer token (at least 16 characters) that /metrics requires wherever it is served (default: no token)", &o.metricsTokenFile},
		{"max-artifact-size", "UPDRAFT_MAX_ARTIFACT_SIZE", "4GiB", "largest artifact upload (`size`, e.g. 512MiB, 4GiB)", &o.maxArtifact},
		{"telemetry-raw-retention", "UPDRAFT_TELEMETRY_RAW_RETENTION", "168h", "how long raw telemetry points are kept (`duration`)", &o.rawRetention},
		{"telemetry-hourly-retention", "UPDRAFT_TELEMETRY_HOURLY_RETENTION", "1440h", "how long hourly telemetry roll-ups are kept (`duration`, at least 1344h = 8 weeks)", &o.hourlyRetention},
		{"signing-key-file", "UPDRAFT_SIGNING_KEY_FILE", "", "`file` with the key that seals the online TUF keys in the database (default: data-dir/signing-kek, created 0600 at first start; keep it off the database host in production)", &o.signingKeyFile},
		{"ddi-gateway-token-file", "UPDRAFT_DDI_GATEWAY_TOKEN_FILE", "", "`file` holding the hawkBit DDI gateway token, which acts as any device (default: gateway tokens refused)", &o.ddiGatewayTokenFile},
		{"ddi-anonymous", "UPDRAFT_DDI_ANONYMOUS", "false", "accept hawkBit DDI requests without credentials (Zephyr's default build): `true` or false", &o.ddiAnonymous},
		{"ddi-device-type", "UPDRAFT_DDI_DEVICE_TYPE", "ddi", "device `type` recorded for auto-registered DDI controllers", &o.ddiDeviceType},
		{"ddi-hw-rev", "UPDRAFT_DDI_HW_REV", "", "hardware `revision` recorded for auto-registered DDI controllers", &o.ddiHWRev},
		{"time-scale", "UPDRAFT_TIME_SCALE", "", "FOR SIMULATIONS AND TESTS ONLY: run the server's clock `factor` times faster than real time (campaign soaks, timers, token lifetimes); empty: the real clock", &o.timeScale},
		{"time-origin", "UPDRAFT_TIME_ORIGIN", "", "FOR SIMULATIONS AND TESTS ONLY: RFC 3339 `time` where the scaled clock starts: simulated now = origin + (real now - origin) × scale, so a restart with the same origin continues the same timeline (default: the process start)", &o.timeOrigin},
		{"dashboard-insecure-cookies", "UPDRAFT_DASHBOARD_INSECURE_COOKIES", "false", "send the dashboard's cookies without the Secure flag (`true` or false): only for plain HTTP reached by a name other than localhost; prefer TLS", &o.insecureCookies},
		{"log-level", "UPDRAFT_LOG_LEVEL", "info", "log `level`: debug, info, warn or error", &o.logLevel},
		{"log-format", "UPDRAFT_LOG_FORMAT", "text", "log `format`: text or json", &o.logFormat},
	}
}

// resolve fills every setting that was not given as a flag from the
// environment, then the config file, then its default.
func (o *serveOptions) resolve(e *Env, setFlags map[string]bool) error {
	file := map[string]string{}
	cfgPath := o.config
	if cfgPath == "" {
		cfgPath = e.Getenv("UPDRAFT_CONFIG")
	}
	if cfgPath != "" {
		b, err := os.ReadFile(cfgPath)
		if err != nil {
			return fmt.Errorf("read config file: %w", err)
		}
		if file, err = parseServeConfig(b, o.settings()); err != nil {
			return fmt.Errorf("config file %s: %w", cfgPath, err)
		}
	}
	for _, s := range o.settings() {
		switch {
		case setFlags[s.name]:
		case e.Getenv(s.env) != "":
			*s.value = e.Getenv(s.env)
		case file[s.name] != "":
			*s.value = file[s.name]
		default:
			*s.value = s.def
		}
	}
	return nil
}

// ddiConfig reads the hawkBit DDI settings; the gateway token comes from a
// file so it never shows in a process listing.
func (o *serveOptions) ddiConfig() (server.DDIConfig, error) {
	c := server.DDIConfig{DeviceType: o.ddiDeviceType, HWRev: o.ddiHWRev}
	anon, err := strconv.ParseBool(o.ddiAnonymous)
	if err != nil {
		return c, usageErrorf("--ddi-anonymous %q: want true or false", o.ddiAnonymous)
	}
	c.Anonymous = anon
	if o.ddiGatewayTokenFile != "" {
		b, err := os.ReadFile(o.ddiGatewayTokenFile)
		if err != nil {
			return c, fmt.Errorf("read the DDI gateway token: %w", err)
		}
		c.GatewayToken = strings.TrimSpace(string(b))
		if len(c.GatewayToken) < 16 {
			return c, usageErrorf("the DDI gateway token in %s is shorter than 16 characters", o.ddiGatewayTokenFile)
		}
	}
	return c, nil
}

// clock returns base, or with --time-scale a clock that runs faster from
// --time-origin (simulations and tests only).
func (o *serveOptions) clock(base clock.Clock) (clock.Clock, error) {
	if o.timeScale == "" {
		if o.timeOrigin != "" {
			return nil, usageErrorf("--time-origin needs --time-scale")
		}
		return base, nil
	}
	f, err := strconv.ParseFloat(o.timeScale, 64)
	if err != nil || f <= 0 || f > clock.MaxScale {
		return nil, usageErrorf("--time-scale %q: want a factor greater than 0 and at most %d (simulations and tests only)", o.timeScale, clock.MaxScale)
	}
	origin := base.Now()
	if o.timeOrigin != "" {
		if origin, err = time.Parse(time.RFC3339, o.timeOrigin); err != nil {
			return nil, usageErrorf("--time-origin %q: want an RFC 3339 time such as 2026-03-02T09:00:00Z", o.timeOrigin)
		}
	}
	s, err := clock.NewScaled(base, origin, f)
	if err != nil {
		return nil, usageErrorf("--time-scale/--time-origin: %v", err)
	}
	return s, nil
}

// parseServeConfig reads a YAML mapping of setting names to scalar values,
// refusing unknown keys.
func parseServeConfig(b []byte, settings []serveSetting) (map[string]string, error) {
	known := map[string]bool{}
	for _, s := range settings {
		known[s.name] = true
	}
	raw := map[string]any{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range raw {
		if !known[k] {
			return nil, fmt.Errorf("unknown key %q", k)
		}
		switch v := v.(type) {
		case string:
			out[k] = v
		case int, int64, float64, bool:
			out[k] = fmt.Sprint(v)
		default:
			return nil, fmt.Errorf("key %q: want a plain value", k)
		}
	}
	return out, nil
}

// parseSize reads sizes such as 4GiB, 512MiB, 100MB or a byte count.
func parseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	mult := int64(1)
	for _, u := range []struct {
		suffix string
		m      int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"TiB", 1 << 40}, {"KB", 1e3}, {"MB", 1e6}, {"GB", 1e9}, {"TB", 1e12}, {"B", 1}} {
		if strings.HasSuffix(t, u.suffix) {
			t, mult = strings.TrimSpace(strings.TrimSuffix(t, u.suffix)), u.m
			break
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n <= 0 || n > (1<<62)/mult {
		return 0, fmt.Errorf("size %q: want a positive number with an optional unit (KiB, MiB, GiB, …)", s)
	}
	return n * mult, nil
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, usageErrorf("invalid log level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, usageErrorf("invalid log format %q: want text or json", format)
}

func serveCommand() *command {
	o := &serveOptions{}
	var fset *flag.FlagSet
	return &command{
		name:  "serve",
		short: "run the Updraft server",
		help: `Runs the server with embedded defaults: an SQLite database and the artifacts
in the data directory, HTTP on 127.0.0.1:8080. --database postgres://… switches
to PostgreSQL; --tls-cert and --tls-key switch to HTTPS (send SIGHUP to reload
them). Settings come from flags, then UPDRAFT_* environment variables, then the
YAML file named by --config (keys are the flag names), then defaults.

On first start the server creates the admin user and an admin API token,
prints both once and writes them to initial-admin.txt (mode 0600) in the data
directory. SIGINT or SIGTERM shut the server down gracefully.

Prometheus metrics (/metrics) reveal fleet size and activity, so they are not
public: by default the main listener serves them to loopback clients only.
--metrics-listen moves them to a separate listener; --metrics-token-file
requires a bearer token wherever they are served.

--time-scale and --time-origin are for simulations and tests only: they run
every timer of the server (soaks, windows, token lifetimes) on an accelerated
clock. Never set them on a server that manages real devices.`,
		flags: func(fs *flag.FlagSet) {
			fset = fs
			fs.StringVar(&o.config, "config", "", "optional YAML config `file` (env UPDRAFT_CONFIG)")
			for _, s := range o.settings() {
				fs.StringVar(s.value, s.name, "", s.usage+" (env "+s.env+")")
			}
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			set := map[string]bool{}
			fset.Visit(func(f *flag.Flag) { set[f.Name] = true })
			if err := o.resolve(e, set); err != nil {
				return err
			}
			maxSize, err := parseSize(o.maxArtifact)
			if err != nil {
				return usageErrorf("--max-artifact-size: %v", err)
			}
			rawRet, err := time.ParseDuration(o.rawRetention)
			if err != nil || rawRet < time.Hour {
				return usageErrorf("--telemetry-raw-retention %q: want a duration of at least 1h, e.g. 168h", o.rawRetention)
			}
			hourlyRet, err := time.ParseDuration(o.hourlyRetention)
			if err != nil || hourlyRet < server.MinHourlyRetention || hourlyRet < rawRet {
				return usageErrorf("--telemetry-hourly-retention %q: want a duration of at least %s (8 weeks) and no shorter than the raw retention", o.hourlyRetention, server.MinHourlyRetention)
			}
			ddiCfg, err := o.ddiConfig()
			if err != nil {
				return err
			}
			log, err := newLogger(e.Stderr, o.logLevel, o.logFormat)
			if err != nil {
				return err
			}
			clk, err := o.clock(e.Clock)
			if err != nil {
				return err
			}
			insecureCookies, err := strconv.ParseBool(o.insecureCookies)
			if err != nil {
				return usageErrorf("--dashboard-insecure-cookies %q: want true or false", o.insecureCookies)
			}
			if s, ok := clk.(*clock.Scaled); ok {
				log.Warn("the server runs on a scaled clock, for simulations and tests only", "time_scale", s.Factor(), "time_origin", s.Origin().Format(time.RFC3339))
			}
			attrs := []any{}
			for _, s := range o.settings() {
				v := *s.value
				if s.name == "database" && v != "" {
					v = "(set)"
				}
				attrs = append(attrs, strings.ReplaceAll(s.name, "-", "_"), v)
			}
			log.Debug("effective configuration", attrs...)
			srv, err := server.New(ctx, server.Config{
				DataDir: o.dataDir, Addr: o.addr, Database: o.database,
				TLSCert: o.tlsCert, TLSKey: o.tlsKey, PublicURL: o.publicURL,
				MaxArtifactSize: maxSize, Clock: clk, Logger: log, Out: e.Stdout,
				TelemetryRawRetention: rawRet, TelemetryHourlyRetention: hourlyRet,
				DDI: ddiCfg, SigningKeyFile: o.signingKeyFile, InsecureCookies: insecureCookies,
				MetricsAddr: o.metricsListen, MetricsTokenFile: o.metricsTokenFile,
			})
			if err != nil {
				return err
			}
			defer srv.Close()
			if err := srv.Listen(); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "Updraft is serving on %s (public URL %s). Press Ctrl-C to stop.\n", srv.Addr(), srv.PublicURL())
			if o.tlsCert != "" {
				hup := make(chan os.Signal, 1)
				signal.Notify(hup, syscall.SIGHUP)
				done := make(chan struct{})
				defer func() {
					signal.Stop(hup)
					close(done)
				}()
				go func() {
					for {
						select {
						case <-hup:
							if err := srv.ReloadTLS(); err != nil {
								log.Error("reload TLS certificate; keeping the previous one", "err", err)
							} else {
								log.Info("reloaded TLS certificate")
							}
						case <-done:
							return
						}
					}
				}()
			}
			return srv.Serve(ctx)
		},
	}
}
