package mgmtapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
)

// DefaultMaxArtifactSize is the upload limit when Config.MaxArtifactSize is 0.
const DefaultMaxArtifactSize int64 = 4 << 30

// Prefix is the path every management API route starts with.
const Prefix = "/api/v1"

// Request body limits for JSON requests.
const (
	maxBody        = 64 << 10  // most requests
	maxReleaseBody = 256 << 10 // release notes may be long
)

// Config configures the management API.
type Config struct {
	Store store.Store
	Blobs blob.Store
	Clock clock.Clock
	// Logger receives server-side failures; nil discards them.
	Logger *slog.Logger
	// Notifier is told about devices whose assignment changed; nil
	// notifies nobody.
	Notifier notify.Notifier
	// MaxArtifactSize bounds one artifact upload in bytes; 0 means
	// DefaultMaxArtifactSize.
	MaxArtifactSize int64
	// PasswordParams are the argon2id parameters for new and changed
	// passwords; the zero value means auth.DefaultArgon2Params.
	PasswordParams auth.Argon2Params
	// TokenUseFlush is how often API token last-use times are written to
	// the store (see Start); 0 means DefaultTokenUseFlush.
	TokenUseFlush time.Duration
	// Signing serves the signed-update routes (/tuf/…, release
	// finalize); nil answers them with 404 not_configured.
	Signing *signing.Service
	// PollInterval is the check-in interval the device API hands out
	// [DefaultPollInterval]; the fleet summary counts devices seen within
	// OnlineChecks of them as online.
	PollInterval time.Duration
}

// API serves the management API. Create it with New.
type API struct {
	store    store.Store
	blobs    blob.Store
	clock    clock.Clock
	log      *slog.Logger
	notifier notify.Notifier
	signing  *signing.Service
	maxSize  int64
	pwParams auth.Argon2Params
	poll     time.Duration
	routes   []Route
	mux      *http.ServeMux

	uses       *tokenUses
	flushEvery time.Duration

	bg       sync.Mutex // guards the background work's state below
	cancel   context.CancelFunc
	loopDone chan struct{}
	stopped  bool
}

// Action is what a route needs the caller's role to allow.
type Action string

// Actions. ActionSelf routes are open to every authenticated caller for
// their own account; the handler demands admin for anyone else's.
const (
	ActionRead  Action = "read"
	ActionWrite Action = "write"
	ActionAdmin Action = "admin"
	ActionSelf  Action = "self"
)

// Route is one entry of the route table.
type Route struct {
	Method string // GET, POST, PUT or DELETE
	// Pattern is the full path in http.ServeMux syntax, e.g.
	// /api/v1/devices/{id}; it is also the path in the OpenAPI document.
	Pattern string
	Action  Action

	query  []string // accepted query parameters; anything else is refused
	handle handlerFunc
}

// handlerFunc serves one authenticated, authorized request. A returned
// error is written with apierror.Write; a handler that returns nil has
// written the response.
type handlerFunc func(w http.ResponseWriter, r *http.Request, c *caller) error

// New checks cfg and builds the API.
func New(cfg Config) (*API, error) {
	if cfg.Store == nil {
		return nil, errors.New("mgmtapi: config has no Store")
	}
	if cfg.Blobs == nil {
		return nil, errors.New("mgmtapi: config has no Blobs")
	}
	if cfg.Clock == nil {
		return nil, errors.New("mgmtapi: config has no Clock")
	}
	if cfg.MaxArtifactSize < 0 {
		return nil, fmt.Errorf("mgmtapi: MaxArtifactSize %d is negative", cfg.MaxArtifactSize)
	}
	if cfg.TokenUseFlush < 0 {
		return nil, fmt.Errorf("mgmtapi: TokenUseFlush %s is negative", cfg.TokenUseFlush)
	}
	a := &API{
		store:    cfg.Store,
		blobs:    cfg.Blobs,
		clock:    cfg.Clock,
		log:      cfg.Logger,
		notifier: cfg.Notifier,
		signing:  cfg.Signing,
		maxSize:  cfg.MaxArtifactSize,
		pwParams: cfg.PasswordParams,
		poll:     cfg.PollInterval,

		uses:       newTokenUses(),
		flushEvery: cfg.TokenUseFlush,
	}
	if a.flushEvery == 0 {
		a.flushEvery = DefaultTokenUseFlush
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.notifier == nil {
		a.notifier = notify.NotifierFunc(func(string, string) {})
	}
	if a.pwParams == (auth.Argon2Params{}) {
		a.pwParams = auth.DefaultArgon2Params()
	}
	if err := a.pwParams.Validate(); err != nil {
		return nil, fmt.Errorf("mgmtapi: password parameters: %w", err)
	}
	if a.maxSize == 0 {
		a.maxSize = DefaultMaxArtifactSize
	}
	a.routes = append(append(a.routeTable(), a.tufRoutes()...), a.campaignRoutes()...)
	a.routes = append(a.routes, a.reportRoutes()...)
	a.mux = http.NewServeMux()
	for _, rt := range a.routes {
		a.mux.Handle(rt.Method+" "+rt.Pattern, a.serveRoute(rt))
	}
	a.mux.HandleFunc(Prefix+"/", a.noRoute)
	return a, nil
}

// Handler returns the handler for every path under /api/v1/ (full paths;
// mount it at "/api/v1/").
func (a *API) Handler() http.Handler { return a.mux }

// Routes returns a copy of the route table.
func (a *API) Routes() []Route { return slices.Clone(a.routes) }

func (a *API) routeTable() []Route {
	p := func(s string) string { return Prefix + s }
	page := []string{"limit", "after"}
	return []Route{
		{"GET", p("/openapi.yaml"), ActionRead, nil, a.openAPI},

		{"GET", p("/devices"), ActionRead, append([]string{"q", "state"}, page...), a.listDevices},
		{"GET", p("/devices/count"), ActionRead, []string{"q", "by"}, a.countDevices},
		{"GET", p("/fleet/summary"), ActionRead, []string{"since"}, a.fleetSummary},
		{"POST", p("/devices/preauthorize"), ActionWrite, nil, a.preauthorize},
		{"GET", p("/devices/{id}"), ActionRead, nil, a.getDevice},
		{"POST", p("/devices/{id}/accept"), ActionWrite, nil, a.acceptDevice},
		{"POST", p("/devices/{id}/reject"), ActionWrite, nil, a.rejectDevice},
		{"POST", p("/devices/{id}/decommission"), ActionWrite, nil, a.decommissionDevice},
		{"POST", p("/devices/{id}/tags"), ActionWrite, nil, a.setTags},
		{"POST", p("/devices/{id}/groups"), ActionWrite, nil, a.setGroups},
		{"POST", p("/devices/{id}/target-token"), ActionWrite, nil, a.createTargetToken},
		{"DELETE", p("/devices/{id}/credentials/{cid}"), ActionWrite, nil, a.revokeCredential},
		{"GET", p("/devices/{id}/assignments"), ActionRead, page, a.listAssignments},
		{"POST", p("/devices/{id}/assignments"), ActionWrite, nil, a.assign},
		{"GET", p("/devices/{id}/telemetry"), ActionRead, []string{"metric", "from", "to", "resolution"}, a.telemetry},
		{"GET", p("/devices/{id}/report-gaps"), ActionRead, nil, a.reportGaps},

		{"GET", p("/assignments/{id}"), ActionRead, nil, a.getAssignment},
		{"POST", p("/assignments/{id}/cancel"), ActionWrite, nil, a.cancelAssignment},

		{"POST", p("/releases"), ActionWrite, nil, a.createRelease},
		{"GET", p("/releases"), ActionRead, page, a.listReleases},
		{"GET", p("/releases/{id}"), ActionRead, nil, a.getRelease},
		{"DELETE", p("/releases/{id}"), ActionWrite, nil, a.deleteRelease},
		{"PUT", p("/releases/{id}/artifacts"), ActionWrite, artifactParams, a.uploadArtifact},
		{"POST", p("/releases/{id}/publish"), ActionWrite, nil, a.publishRelease},
		{"POST", p("/releases/{id}/mark-bad"), ActionWrite, nil, a.markBad},
		{"POST", p("/releases/{id}/mark-affected"), ActionWrite, nil, a.markAffected},

		{"POST", p("/users"), ActionAdmin, nil, a.createUser},
		{"GET", p("/users"), ActionAdmin, page, a.listUsers},
		{"POST", p("/users/{id}/password"), ActionSelf, nil, a.setPassword},

		{"POST", p("/tokens"), ActionAdmin, nil, a.createToken},
		{"GET", p("/tokens"), ActionAdmin, page, a.listTokens},
		{"DELETE", p("/tokens/{id}"), ActionAdmin, nil, a.revokeToken},

		{"GET", p("/audit"), ActionRead, append([]string{"action", "object_type", "object_id", "actor", "since", "until"}, page...), a.listAudit},
		{"GET", p("/audit/verify"), ActionRead, nil, a.verifyAudit},
	}
}

// serveRoute authenticates, authorizes and checks the query parameters
// before calling the route's handler.
func (a *API) serveRoute(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		if err := a.serve(w, r, rt); err != nil {
			apierror.Write(w, r, a.log, err)
		}
	})
}

func (a *API) serve(w http.ResponseWriter, r *http.Request, rt Route) error {
	c, err := a.authenticate(r)
	if err != nil {
		if e := apierror.From(err); e.Status == http.StatusUnauthorized {
			w.Header().Set("WWW-Authenticate", `Bearer realm="updraft"`)
		}
		return err
	}
	if err := c.authorize(rt.Action); err != nil {
		return err
	}
	if err := checkQuery(r.URL.Query(), rt.query); err != nil {
		return err
	}
	return rt.handle(w, r, c)
}

func checkQuery(q url.Values, allowed []string) error {
	for k, vs := range q {
		if !slices.Contains(allowed, k) {
			if len(allowed) == 0 {
				return apierror.New(http.StatusBadRequest, "bad_parameter", "unknown query parameter %q: this route takes none", k)
			}
			return apierror.New(http.StatusBadRequest, "bad_parameter", "unknown query parameter %q (accepted: %s)", k, strings.Join(allowed, ", "))
		}
		if len(vs) > 1 {
			return apierror.New(http.StatusBadRequest, "bad_parameter", "query parameter %q given %d times", k, len(vs))
		}
	}
	return nil
}

// noRoute answers paths under /api/v1/ that no route matches: 405 when the
// path exists with another method, 404 otherwise.
func (a *API) noRoute(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "DELETE"} {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := a.mux.Handler(probe); pattern != "" && pattern != Prefix+"/" {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		apierror.Write(w, r, a.log, apierror.New(http.StatusMethodNotAllowed, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	apierror.Write(w, r, a.log, apierror.NotFound("no such API route: %s %s", r.Method, r.URL.Path))
}
