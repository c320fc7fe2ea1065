package deviceapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// AssignmentSigner produces the director-signed document for an assignment
// (see the signed-updates design in docs/device-api.md). The check-in
// response carries its output verbatim in assignment.signed. Without a
// signer the field is omitted.
type AssignmentSigner interface {
	SignAssignment(ctx context.Context, d store.Device, a store.Assignment, r store.Release, art store.Artifact) (json.RawMessage, error)
}

// Config wires the device API to the rest of the server. Store, Blobs,
// Tokens, URLs, Clock and PublicURL are required.
type Config struct {
	Store  store.Store
	Blobs  blob.Store
	Tokens *identity.Issuer
	URLs   *signedurl.Signer
	Clock  clock.Clock
	Logger *slog.Logger // nil: discard
	// PublicURL is the absolute base URL devices reach the server at, e.g.
	// "https://updates.example.com"; download links are built on it.
	PublicURL string
	// Hub wakes long-polls; the management API must be given the same hub
	// as its Notifier. nil: a private hub (long-polls then end only at
	// their deadline unless something calls API.Hub().Notify).
	Hub *notify.Hub
	// Metrics registers the API's collectors; nil: a private registry.
	Metrics prometheus.Registerer
	// Director signs assignments handed to devices; optional.
	Director AssignmentSigner
	// Metadata serves TUF metadata at /api/device/v1/tuf/{name} and
	// Finalizer adds finalize documents to check-ins; both optional.
	Metadata  MetadataSource
	Finalizer FinalizeSigner
	// Tenant the tenant-free /api/device/v1 paths act on; default
	// store.DefaultTenant.
	Tenant string
	Limits Limits
}

// Limits are the tunables; zero values take the defaults in brackets.
type Limits struct {
	// PollInterval is the check-in interval handed to devices [5m];
	// PollJitter the ± fraction randomly applied to it [0.1].
	PollInterval time.Duration
	PollJitter   float64
	// MaxLongPoll caps ?wait= on check-ins [60s]; negative disables long-poll.
	MaxLongPoll time.Duration
	// URLTTL is how long a signed download URL stays valid [1h].
	URLTTL time.Duration
	// MaxSkew is the replay window for signed requests
	// [identity.DefaultMaxSkew].
	MaxSkew time.Duration
	// EnrollPerMinute and EnrollBurst shape the per-source-address token
	// bucket on /enroll [6, 10]; RateLimitKeys bounds the addresses tracked
	// [100000].
	EnrollPerMinute float64
	EnrollBurst     int
	RateLimitKeys   int
	// PendingTTL is how long a pending enrollment lives [7 days];
	// MaxPending caps unexpired pending devices per tenant [10000];
	// PendingRetryAfter is what pending devices are told to wait [60s].
	PendingTTL        time.Duration
	MaxPending        int
	PendingRetryAfter time.Duration
	// MaxReplayNonces bounds the remembered request nonces [200000].
	MaxReplayNonces int
	// LastSeenFlush is how often last-seen times go to the store [30s].
	LastSeenFlush time.Duration
	// GroupCommitWindow is how long the report committer waits for more
	// requests after the first one before committing [2ms]; negative: do
	// not wait (requests that queue during a commit still share the next).
	// GroupCommitMaxReports ends a batch early [500].
	GroupCommitWindow     time.Duration
	GroupCommitMaxReports int
	// MaintenanceInterval is how often pending enrollments are expired and
	// telemetry is pruned [1m].
	MaintenanceInterval time.Duration
	// TelemetryRawRetention [7 days] and TelemetryHourlyRetention [60
	// days] are how long raw points and hourly roll-ups are kept.
	TelemetryRawRetention    time.Duration
	TelemetryHourlyRetention time.Duration
	// TelemetryMaxFuture drops points stamped further ahead of the server's
	// clock than this [1h].
	TelemetryMaxFuture time.Duration
}

func (l *Limits) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&l.PollInterval, 5*time.Minute)
	if l.PollJitter == 0 {
		l.PollJitter = 0.1
	}
	def(&l.MaxLongPoll, 60*time.Second)
	def(&l.URLTTL, time.Hour)
	def(&l.MaxSkew, identity.DefaultMaxSkew)
	if l.EnrollPerMinute == 0 {
		l.EnrollPerMinute = 6
	}
	if l.EnrollBurst == 0 {
		l.EnrollBurst = 10
	}
	if l.RateLimitKeys == 0 {
		l.RateLimitKeys = 100000
	}
	def(&l.PendingTTL, 7*24*time.Hour)
	if l.MaxPending == 0 {
		l.MaxPending = 10000
	}
	def(&l.PendingRetryAfter, 60*time.Second)
	if l.MaxReplayNonces == 0 {
		l.MaxReplayNonces = 200000
	}
	def(&l.LastSeenFlush, 30*time.Second)
	def(&l.GroupCommitWindow, 2*time.Millisecond)
	if l.GroupCommitMaxReports == 0 {
		l.GroupCommitMaxReports = 500
	}
	def(&l.MaintenanceInterval, time.Minute)
	def(&l.TelemetryRawRetention, 7*24*time.Hour)
	def(&l.TelemetryHourlyRetention, 60*24*time.Hour)
	def(&l.TelemetryMaxFuture, time.Hour)
}

func (l Limits) validate() error {
	switch {
	case l.PollInterval < time.Second:
		return fmt.Errorf("poll interval %s is shorter than a second", l.PollInterval)
	case l.PollJitter < 0 || l.PollJitter >= 1:
		return fmt.Errorf("poll jitter %g must be in [0, 1)", l.PollJitter)
	case l.URLTTL < time.Minute:
		return fmt.Errorf("download URL lifetime %s is shorter than a minute", l.URLTTL)
	case l.EnrollPerMinute < 0 || l.EnrollBurst < 1:
		return errors.New("enrollment rate and burst must be positive")
	case l.GroupCommitMaxReports < wire.MaxReports:
		return fmt.Errorf("group commit batch of %d reports is smaller than one request (%d)", l.GroupCommitMaxReports, wire.MaxReports)
	case l.LastSeenFlush <= 0 || l.MaintenanceInterval <= 0:
		return errors.New("flush and maintenance intervals must be positive")
	case l.TelemetryRawRetention <= 0 || l.TelemetryHourlyRetention < l.TelemetryRawRetention:
		return errors.New("telemetry retention: raw must be positive and hourly at least as long")
	}
	return nil
}

// API is the native device API. Create it with New, serve Handler, and run
// Start/Stop around serving for the background work.
type API struct {
	store     store.Store
	blobs     blob.Store
	tokens    *identity.Issuer
	urls      *signedurl.Signer
	clock     clock.Clock
	log       *slog.Logger
	publicURL string
	hub       *notify.Hub
	director  AssignmentSigner
	metadata  MetadataSource
	finalizer FinalizeSigner
	tenant    string
	limits    Limits
	metrics   *metrics

	enrollLimit *rateLimiter
	nonces      *nonceCache
	seen        *lastSeen
	committer   *committer

	mu       sync.Mutex
	started  bool
	stopping chan struct{} // closed by Stop; ends long-polls
	// draining is closed by EndLongPolls at the start of a graceful
	// shutdown, so parked check-ins answer at once instead of holding the
	// HTTP server's shutdown until their deadline.
	draining  chan struct{}
	drainOnce sync.Once
	cancel    context.CancelFunc
	wg        sync.WaitGroup

	handler http.Handler
}

// New checks cfg and builds the API. Nothing runs until Start.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("device api: no store")
	case cfg.Blobs == nil:
		return nil, errors.New("device api: no blob store")
	case cfg.Tokens == nil:
		return nil, errors.New("device api: no token issuer")
	case cfg.URLs == nil:
		return nil, errors.New("device api: no download URL signer")
	case cfg.Clock == nil:
		return nil, errors.New("device api: no clock")
	}
	base, err := checkPublicURL(cfg.PublicURL)
	if err != nil {
		return nil, fmt.Errorf("device api: %w", err)
	}
	cfg.Limits.setDefaults()
	if err := cfg.Limits.validate(); err != nil {
		return nil, fmt.Errorf("device api: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Hub == nil {
		cfg.Hub = notify.NewHub()
	}
	if cfg.Metrics == nil {
		cfg.Metrics = prometheus.NewRegistry()
	}
	if cfg.Tenant == "" {
		cfg.Tenant = store.DefaultTenant
	}
	a := &API{
		store:     cfg.Store,
		blobs:     cfg.Blobs,
		tokens:    cfg.Tokens,
		urls:      cfg.URLs,
		clock:     cfg.Clock,
		log:       cfg.Logger,
		publicURL: base,
		hub:       cfg.Hub,
		director:  cfg.Director,
		metadata:  cfg.Metadata,
		finalizer: cfg.Finalizer,
		tenant:    cfg.Tenant,
		limits:    cfg.Limits,
		stopping:  make(chan struct{}),
		draining:  make(chan struct{}),
	}
	a.metrics, err = newMetrics(cfg.Metrics)
	if err != nil {
		return nil, fmt.Errorf("device api: %w", err)
	}
	a.enrollLimit = newRateLimiter(cfg.Limits.EnrollPerMinute/60, cfg.Limits.EnrollBurst, cfg.Limits.RateLimitKeys)
	a.nonces = newNonceCache(cfg.Limits.MaxReplayNonces)
	a.seen = newLastSeen()
	a.committer = newCommitter(a)
	a.handler = a.routes()
	return a, nil
}

func checkPublicURL(s string) (string, error) {
	if s == "" {
		return "", errors.New("no public URL (download links must be absolute)")
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("public URL %q must be an absolute http(s) URL without query", s)
	}
	return strings.TrimSuffix(u.String(), "/"), nil
}

// Hub returns the hub long-polls wait on; pass it to whatever assigns or
// cancels work as its notify.Notifier.
func (a *API) Hub() *notify.Hub { return a.hub }

// Handler serves the full /api/device/v1/ paths.
func (a *API) Handler() http.Handler { return a.handler }

func (a *API) routes() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+wire.PathEnroll, a.handleEnroll)
	mux.HandleFunc("POST "+wire.PathToken, a.handleToken)
	mux.HandleFunc("POST "+wire.PathCheckIn, a.handleCheckIn)
	mux.HandleFunc("POST "+wire.PathReports, a.handleReports)
	mux.HandleFunc("POST "+wire.PathTelemetry, a.handleTelemetry)
	mux.HandleFunc("GET "+wire.PathDownload, a.handleDownload)
	mux.HandleFunc("GET "+wire.PathMetadata, a.handleTUF)
	// Everything else under the prefix: a known path with the wrong
	// method (the method-specific patterns above did not match) or no
	// endpoint at all. Both answer in the API's JSON error format.
	mux.HandleFunc(wire.Prefix+"/", func(w http.ResponseWriter, r *http.Request) {
		if allowed := methodsFor(r.URL.Path); allowed != "" {
			w.Header().Set("Allow", allowed)
			apierror.Write(w, r, a.log, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed here; use %s", r.Method, allowed))
			return
		}
		apierror.Write(w, r, a.log, apierror.NotFound("no device API endpoint at %s", r.URL.Path))
	})
	return mux
}

// methodsFor names the methods a known path accepts, for 405 answers.
func methodsFor(path string) string {
	switch path {
	case wire.PathEnroll, wire.PathToken, wire.PathCheckIn, wire.PathReports, wire.PathTelemetry:
		return http.MethodPost
	}
	if name, ok := strings.CutPrefix(path, wire.MetadataPrefix); ok && name != "" && !strings.Contains(name, "/") {
		return "GET, HEAD"
	}
	if rest, ok := strings.CutPrefix(path, wire.Prefix+"/artifacts/"); ok {
		if id, ok := strings.CutSuffix(rest, "/download"); ok && id != "" && !strings.Contains(id, "/") {
			return "GET, HEAD"
		}
	}
	return ""
}

// Start runs the background work: the report committer, the last-seen
// flusher, and expiry of pending enrollments and old telemetry. Stop ends
// it. Start may be called once.
func (a *API) Start(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.started {
		return errors.New("device api: already started")
	}
	a.started = true
	ctx, a.cancel = context.WithCancel(ctx)
	a.committer.start()
	a.wg.Add(2)
	go func() {
		defer a.wg.Done()
		a.flushLoop(ctx)
	}()
	go func() {
		defer a.wg.Done()
		a.maintenanceLoop(ctx)
	}()
	return nil
}

// EndLongPolls answers every parked long-poll now, and every later one at
// once. Call it before shutting the HTTP server down; the rest of the API
// keeps working until Stop.
func (a *API) EndLongPolls() { a.drainOnce.Do(func() { close(a.draining) }) }

// Stop ends long-polls, commits the status reports already queued, flushes
// last-seen times and waits for the background work to end. Requests that
// arrive afterwards and need the committer get 503.
func (a *API) Stop() {
	a.mu.Lock()
	select {
	case <-a.stopping:
		a.mu.Unlock()
		return
	default:
	}
	close(a.stopping)
	a.EndLongPolls()
	started := a.started
	a.mu.Unlock()
	if !started {
		return
	}
	a.committer.stop()
	a.cancel()
	a.wg.Wait()
	// The loops are gone; write what they would have written next.
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	a.flushLastSeen(ctx)
}
