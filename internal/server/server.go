// Package server assembles one Updraft server process: it opens the store
// (SQLite in the data directory by default, PostgreSQL when given a URL),
// applies migrations, opens the blob store, creates the first admin on first
// start, and serves the device API, the management API and health
// endpoints on one listener, over HTTPS when given a certificate.
// Prometheus metrics are served on that listener to loopback clients or
// holders of a bearer token, or on a separate listener (metricsaccess.go).
//
// A Server owns everything it opens; Close releases it. The server never
// reads the wall clock itself: Config.Clock drives tokens, URLs and loops.
package server

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/web"
)

// Config configures a server. The zero value plus a DataDir is a working
// single-machine installation.
type Config struct {
	// DataDir holds the SQLite database, the artifacts and the first-start
	// credentials. Default ./updraft-data.
	DataDir string
	// Addr is the listen address. Default 127.0.0.1:8080.
	Addr string
	// MetricsAddr, when set, is a second listen address that serves
	// /metrics, /healthz and /readyz (over HTTPS when the main listener
	// is); the main listener then answers 404 for /metrics. Empty: the
	// main listener serves /metrics.
	MetricsAddr string
	// MetricsTokenFile names a file holding a bearer token (at least
	// MinMetricsTokenLength characters) that /metrics requires wherever it
	// is served. Empty: no token; the main listener then serves /metrics
	// to loopback clients only.
	MetricsTokenFile string
	// Database is empty for SQLite in DataDir, or a postgres:// URL.
	Database string
	// TLSCert and TLSKey enable HTTPS; both or neither.
	TLSCert, TLSKey string
	// PublicURL is the absolute base URL devices and clients reach the
	// server at; default derived from Addr and TLS.
	PublicURL string
	// MaxArtifactSize caps one artifact upload. Default 4 GiB.
	MaxArtifactSize int64
	// TelemetryRawRetention and TelemetryHourlyRetention bound how long
	// raw telemetry points and hourly roll-ups are kept; 0 takes the
	// defaults (7 days, 60 days). Roll-ups are kept at least
	// MinHourlyRetention.
	TelemetryRawRetention    time.Duration
	TelemetryHourlyRetention time.Duration
	// DDI configures the hawkBit DDI API for the default tenant.
	DDI    DDIConfig
	Clock  clock.Clock
	Logger *slog.Logger
	// Out receives the one-time first-start credentials. Default os.Stdout.
	Out io.Writer

	// SigningKeyFile holds the key-encryption key that seals the online
	// TUF keys in the database (64 hex digits); default a file created in
	// DataDir. Replicas sharing a database need the same one.
	SigningKeyFile string
	// InsecureCookies drops the Secure flag from the dashboard's cookies,
	// for plain-HTTP deployments reached by a name other than localhost.
	InsecureCookies bool

	// Signing tunes the signing service (metadata lifetimes, publish
	// interval, expiry warnings); zero values take its defaults.
	Signing signing.Options

	// Timing stretches the server's periodic work for a clock that runs
	// faster than real time (the demo, simulations); zero values keep the
	// defaults.
	Timing Timing
}

// Timing holds the intervals a server on an accelerated clock needs to
// stretch: at 1000× a 30-second engine lease lasts 30 ms of real time,
// shorter than one tick, and a 5-minute check-in interval turns 1,000
// devices into 3,300 requests a second.
type Timing struct {
	// PollInterval is the check-in interval handed to devices [5m].
	PollInterval time.Duration
	// EngineInterval is the rollout engine's tick and EngineLeaseTTL its
	// lease [5s, 30s]; the lease must outlast a tick.
	EngineInterval, EngineLeaseTTL time.Duration
	// LastSeenFlush is how often devices' last-seen times are written and
	// MaintenanceInterval how often pending enrollments expire and old
	// telemetry is pruned [30s, 1m]: each is a write transaction.
	LastSeenFlush, MaintenanceInterval time.Duration
}

// DefaultMaxArtifactSize is the default upload limit.
const DefaultMaxArtifactSize = 4 << 30

// DDIConfig configures the hawkBit DDI device API.
type DDIConfig struct {
	// GatewayToken, when set, lets a gateway act as any device of the
	// default tenant (Authorization: GatewayToken …); every use is audited.
	GatewayToken string
	// Anonymous accepts requests without credentials (Zephyr's default
	// build); off unless asked for.
	Anonymous bool
	// DeviceType and HWRev are recorded for auto-registered controllers,
	// which do not report them.
	DeviceType, HWRev string
}

// MinHourlyRetention is the shortest time hourly telemetry roll-ups may be
// kept: eight weeks, so health analysis always has two months of history.
const MinHourlyRetention = 8 * 7 * 24 * time.Hour

func (c *Config) setDefaults() error {
	if c.DataDir == "" {
		c.DataDir = "updraft-data"
	}
	if c.Addr == "" {
		c.Addr = "127.0.0.1:8080"
	}
	if c.MaxArtifactSize <= 0 {
		c.MaxArtifactSize = DefaultMaxArtifactSize
	}
	if c.Clock == nil {
		c.Clock = clock.Real{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Out == nil {
		c.Out = os.Stdout
	}
	if c.TelemetryRawRetention < 0 || c.TelemetryHourlyRetention < 0 ||
		(c.TelemetryHourlyRetention > 0 && c.TelemetryHourlyRetention < MinHourlyRetention) {
		return fmt.Errorf("telemetry roll-ups must be kept at least %s", MinHourlyRetention)
	}
	if (c.TLSCert == "") != (c.TLSKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	if c.Database != "" && !strings.HasPrefix(c.Database, "postgres://") && !strings.HasPrefix(c.Database, "postgresql://") {
		return fmt.Errorf("--database %q: want a postgres:// URL (leave it empty for SQLite in the data directory)", redactURL(c.Database))
	}
	if c.PublicURL == "" {
		c.PublicURL = derivedPublicURL(*c)
	}
	c.PublicURL = strings.TrimRight(c.PublicURL, "/")
	if !strings.HasPrefix(c.PublicURL, "http://") && !strings.HasPrefix(c.PublicURL, "https://") {
		return fmt.Errorf("--public-url %q: want an absolute http:// or https:// URL", c.PublicURL)
	}
	return nil
}

// Server is one running Updraft server.
type Server struct {
	cfg     Config
	log     *slog.Logger
	store   *sqlstore.Store
	blobs   blob.Store
	reg     *prometheus.Registry
	certs   *certReloader
	handler http.Handler
	apis    *apis
	initial *InitialAdmin
	metrics metricsAccess

	ready    atomic.Bool
	listener net.Listener
	http     *http.Server
	// metricsListener and metricsHTTP serve Config.MetricsAddr.
	metricsListener net.Listener
	metricsHTTP     *http.Server
}

// OpenStore opens the configured database without migrating it.
func OpenStore(ctx context.Context, cfg Config) (*sqlstore.Store, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	if cfg.Database != "" {
		return postgres.Open(ctx, cfg.Database, cfg.Logger)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	return sqlite.Open(filepath.Join(cfg.DataDir, "updraft.db"), cfg.Logger)
}

// New opens and migrates the store, prepares every component and creates
// the first admin on a fresh database. It does not listen yet.
func New(ctx context.Context, cfg Config) (*Server, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cfg.Logger, reg: prometheus.NewRegistry()}
	if cfg.MetricsTokenFile != "" {
		var err error
		if s.metrics, err = readMetricsToken(cfg.MetricsTokenFile); err != nil {
			return nil, err
		}
	}
	st, err := OpenStore(ctx, cfg)
	if err != nil {
		return nil, err
	}
	s.store = st
	ok := false
	defer func() {
		if !ok {
			s.Close()
		}
	}()
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: cfg.Clock.Now()}); err != nil {
		return nil, fmt.Errorf("migrate database: %w", err)
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data directory: %w", err)
	}
	s.blobs, err = blob.NewDisk(filepath.Join(cfg.DataDir, "artifacts"), cfg.Clock)
	if err != nil {
		return nil, fmt.Errorf("open artifact store: %w", err)
	}
	if cfg.TLSCert != "" {
		if s.certs, err = newCertReloader(cfg.TLSCert, cfg.TLSKey); err != nil {
			return nil, err
		}
	}
	// With an ephemeral port and no explicit public URL, bind now so the
	// links handed to devices carry the real port.
	if _, port, err := net.SplitHostPort(cfg.Addr); err == nil && port == "0" && s.cfg.PublicURL == derivedPublicURL(cfg) {
		if err := s.Listen(); err != nil {
			return nil, err
		}
		scheme, _, _ := strings.Cut(s.cfg.PublicURL, "://")
		s.cfg.PublicURL = scheme + "://" + s.listener.Addr().String()
	}
	if err := s.bootstrap(ctx); err != nil {
		return nil, err
	}
	s.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.reg.MustRegister(newDeviceStateCollector(st, cfg.Clock))
	if s.apis, err = newAPIs(ctx, s); err != nil {
		return nil, err
	}
	s.handler = s.routes()
	ok = true
	return s, nil
}

// Store returns the server's store (for in-process tools and tests).
func (s *Server) Store() store.Store { return s.store }

// Signing returns the server's signing service (for in-process tools and
// tests).
func (s *Server) Signing() *signing.Service { return s.apis.signing }

// Handler returns the server's complete HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// PublicURL returns the base URL the server hands out in links.
func (s *Server) PublicURL() string { return s.cfg.PublicURL }

func (s *Server) routes() http.Handler {
	m := newHTTPMetrics(s.reg, s.cfg.Clock)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.readyz(w, r, s.readyDetails(r))
	})
	if s.cfg.MetricsAddr == "" {
		mux.Handle("GET /metrics", s.guardMetrics(s.metrics.mainAllows))
	}
	s.apis.mount(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, r, s.log, apierror.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return m.wrap(s.apis.withDashboard(mux), func(r *http.Request) string {
		if p := s.apis.pattern(r); p != "" {
			return p
		}
		if strings.HasPrefix(r.URL.Path, web.Prefix) {
			return web.Prefix
		}
		_, p := mux.Handler(r)
		if p == "" || p == "/" {
			return "other"
		}
		return p
	})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	apierror.WriteJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyz answers 200 or 503; with details it also names the checks and
// warnings, which are for operators, not for anyone on the internet.
func (s *Server) readyz(w http.ResponseWriter, r *http.Request, details bool) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	checks := map[string]string{}
	status := http.StatusOK
	if !s.ready.Load() {
		checks["server"] = "starting or shutting down"
		status = http.StatusServiceUnavailable
	}
	if err := s.store.Ping(ctx); err != nil {
		s.log.Warn("readiness: database unreachable", "err", err)
		checks["database"] = "unreachable"
		status = http.StatusServiceUnavailable
	} else {
		checks["database"] = "ok"
	}
	// Signing problems degrade readiness without failing it: taking every
	// replica out of the load balancer would also cut off the management
	// API that fixes them (uploading re-signed metadata).
	sh := s.apis.signing.Health()
	checks["signing"] = "ok"
	if sh.Degraded {
		checks["signing"] = "degraded"
	} else if !sh.Initialized {
		checks["signing"] = "not set up"
	}
	if !details {
		apierror.WriteJSON(w, status, map[string]any{"ready": status == http.StatusOK})
		return
	}
	body := map[string]any{"ready": status == http.StatusOK, "degraded": sh.Degraded, "checks": checks}
	if len(sh.Warnings) > 0 {
		body["warnings"] = sh.Warnings
	}
	apierror.WriteJSON(w, status, body)
}

// derivedPublicURL is the public URL used when none is configured.
func derivedPublicURL(c Config) string {
	scheme := "http"
	if c.TLSCert != "" {
		scheme = "https"
	}
	return scheme + "://" + c.Addr
}

// Listen binds the listen address and the metrics listen address if any
// (once; later calls do nothing); Addr and MetricsAddr report the bound
// addresses (useful with port 0).
func (s *Server) Listen() error {
	if s.listener == nil {
		ln, err := net.Listen("tcp", s.cfg.Addr)
		if err != nil {
			return fmt.Errorf("listen on %s: %w", s.cfg.Addr, err)
		}
		s.listener = ln
	}
	if s.cfg.MetricsAddr != "" && s.metricsListener == nil {
		ln, err := net.Listen("tcp", s.cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen for metrics on %s: %w", s.cfg.MetricsAddr, err)
		}
		s.metricsListener = ln
	}
	return nil
}

// MetricsAddr is the bound metrics listen address, the configured one
// before Listen, or "" when metrics share the main listener.
func (s *Server) MetricsAddr() string {
	if s.metricsListener != nil {
		return s.metricsListener.Addr().String()
	}
	return s.cfg.MetricsAddr
}

// Addr is the bound listen address, or the configured one before Listen.
func (s *Server) Addr() string {
	if s.listener != nil {
		return s.listener.Addr().String()
	}
	return s.cfg.Addr
}

// Serve serves until ctx is done, then shuts down gracefully: it stops
// accepting, lets in-flight requests finish (up to 30 s), flushes background
// work and closes the store.
func (s *Server) Serve(ctx context.Context) error {
	if err := s.Listen(); err != nil {
		return err
	}
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	if err := s.apis.start(bg); err != nil {
		return err
	}
	s.http = s.newHTTPServer(ctx, s.handler)
	if s.metricsListener != nil {
		s.metricsHTTP = s.newHTTPServer(ctx, s.metricsRoutes())
	}
	errc := make(chan error, 2)
	s.serveOn(s.http, s.listener, errc)
	if s.metricsHTTP != nil {
		s.serveOn(s.metricsHTTP, s.metricsListener, errc)
	}
	s.ready.Store(true)
	s.log.Info("serving", "addr", s.listener.Addr().String(), "public_url", s.cfg.PublicURL, "tls", s.certs != nil, "data_dir", s.cfg.DataDir, "database", s.databaseName())
	if s.metricsListener != nil {
		s.log.Info("serving metrics on a separate listener", "metrics_addr", s.metricsListener.Addr().String(), "path", "/metrics", "access", s.metrics.description(true))
	} else {
		s.log.Info("serving metrics on the main listener", "addr", s.listener.Addr().String(), "path", "/metrics", "access", s.metrics.description(false))
		if !s.metrics.hasToken {
			s.log.Warn("metrics and readiness details go to any client connecting from this machine; behind a reverse proxy on this machine that adds no forwarding header, every client does: set --metrics-token-file or --metrics-listen")
		}
	}
	var serveErr error
	select {
	case err := <-errc:
		serveErr = fmt.Errorf("serve: %w", err)
		s.log.Error("a listener failed; shutting down", "err", err)
	case <-ctx.Done():
		s.log.Info("shutting down")
	}
	s.ready.Store(false)
	// Parked long-polls would otherwise hold Shutdown until their deadline.
	s.apis.device.EndLongPolls()
	shutCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// The metrics listener first: its scrapes are short, and the main
	// listener may use all of the time left draining downloads, after
	// which the store closes.
	var err error
	if s.metricsHTTP != nil {
		err = s.metricsHTTP.Shutdown(shutCtx)
	}
	if herr := s.http.Shutdown(shutCtx); herr != nil {
		err = herr
	}
	s.apis.stop()
	if serveErr != nil {
		return serveErr
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

func (s *Server) newHTTPServer(ctx context.Context, h http.Handler) *http.Server {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
		BaseContext:       func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	if s.certs != nil {
		hs.TLSConfig = s.certs.tlsConfig()
	}
	return hs
}

// serveOn serves hs on ln in the background; an error other than the one
// Shutdown causes goes to errc.
func (s *Server) serveOn(hs *http.Server, ln net.Listener, errc chan<- error) {
	go func() {
		var err error
		if s.certs != nil {
			err = hs.ServeTLS(ln, "", "")
		} else {
			err = hs.Serve(ln)
		}
		if !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
}

// ReloadTLS re-reads the certificate and key (on SIGHUP).
func (s *Server) ReloadTLS() error {
	if s.certs == nil {
		return errors.New("TLS is not enabled")
	}
	return s.certs.Reload()
}

// Close releases the store (and a listener that was never served).
func (s *Server) Close() error {
	if s.listener != nil && s.http == nil {
		s.listener.Close() // bound but never served
	}
	if s.metricsListener != nil && s.metricsHTTP == nil {
		s.metricsListener.Close()
	}
	if s.store != nil {
		return s.store.Close()
	}
	return nil
}

func (s *Server) databaseName() string {
	if s.cfg.Database != "" {
		return redactURL(s.cfg.Database)
	}
	return "sqlite:" + filepath.Join(s.cfg.DataDir, "updraft.db")
}

func redactURL(u string) string {
	if i := strings.Index(u, "@"); i > 0 {
		if j := strings.Index(u, "://"); j > 0 && j < i {
			return u[:j+3] + "…@" + u[i+1:]
		}
	}
	return u
}

func randomKey(n int) ([]byte, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return nil, err
	}
	return b, nil
}
