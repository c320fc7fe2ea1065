package ddi

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// Config wires the DDI API. Store, Blobs, Clock and PublicURL are required.
type Config struct {
	Store  store.Store
	Blobs  blob.Store
	Clock  clock.Clock
	Logger *slog.Logger // nil: discard
	// PublicURL is the absolute base URL devices reach the server at; every
	// href is built on it.
	PublicURL string
	// URLs, when set, signs the "download" links so that clients which do
	// not send their token with downloads can still fetch artifacts.
	URLs   *signedurl.Signer
	URLTTL time.Duration // validity of signed links [1h]
	// Tenants are the store tenants served; the path segment matches one
	// ignoring case [store.DefaultTenant].
	Tenants []string
	// GatewayTokens maps a store tenant to its gateway token, which acts as
	// any device of the tenant. Empty: gateway tokens are refused.
	GatewayTokens map[string]string
	// Anonymous lets requests without an Authorization header act as the
	// controller they name (Zephyr's default build). Off by default.
	Anonymous bool
	// PollInterval is handed out as config.polling.sleep [5m].
	PollInterval time.Duration
	// DeviceType and HWRev are recorded for auto-registered controllers,
	// which do not say; assignments match artifacts on them ["ddi", ""].
	DeviceType string
	HWRev      string
	// RegisterPerMinute and RegisterBurst bound auto-registrations per API
	// [6, 10]; PendingTTL [7 days] and MaxPending [10000] are as for
	// enrollments.
	RegisterPerMinute float64
	RegisterBurst     int
	PendingTTL        time.Duration
	MaxPending        int
	// GatewayAuditEvery is how often one controller's use of a gateway
	// token is written to the audit log [1h].
	GatewayAuditEvery time.Duration
}

// Body limits.
const (
	maxFeedbackBody   = 64 << 10
	maxConfigDataBody = 64 << 10
	maxDetails        = 256
)

// API is the DDI handler set.
type API struct {
	cfg   Config
	log   *slog.Logger
	mux   *http.ServeMux
	regMu sync.Mutex
	// registration token bucket
	regTokens float64
	regLast   time.Time
	gwMu      sync.Mutex
	gwAudited map[string]time.Time
	devLocks  [64]sync.Mutex
}

// New checks cfg and returns the API.
func New(cfg Config) (*API, error) {
	switch {
	case cfg.Store == nil:
		return nil, errors.New("ddi: store is required")
	case cfg.Blobs == nil:
		return nil, errors.New("ddi: blob store is required")
	case cfg.Clock == nil:
		return nil, errors.New("ddi: clock is required")
	}
	u, err := url.Parse(cfg.PublicURL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("ddi: public URL %q is not an absolute http(s) URL", cfg.PublicURL)
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if len(cfg.Tenants) == 0 {
		cfg.Tenants = []string{store.DefaultTenant}
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = 5 * time.Minute
	}
	if cfg.URLTTL <= 0 {
		cfg.URLTTL = time.Hour
	}
	if cfg.DeviceType == "" {
		cfg.DeviceType = "ddi"
	}
	if cfg.RegisterPerMinute <= 0 {
		cfg.RegisterPerMinute = 6
	}
	if cfg.RegisterBurst <= 0 {
		cfg.RegisterBurst = 10
	}
	if cfg.PendingTTL == 0 {
		cfg.PendingTTL = 7 * 24 * time.Hour
	}
	if cfg.MaxPending == 0 {
		cfg.MaxPending = 10000
	}
	if cfg.GatewayAuditEvery <= 0 {
		cfg.GatewayAuditEvery = time.Hour
	}
	for tenant, tok := range cfg.GatewayTokens {
		if len(tok) < identity.MinTargetTokenLen {
			return nil, fmt.Errorf("ddi: gateway token of tenant %q is shorter than %d characters", tenant, identity.MinTargetTokenLen)
		}
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	a := &API{cfg: cfg, log: log, regTokens: float64(cfg.RegisterBurst), gwAudited: map[string]time.Time{}}
	a.routes()
	return a, nil
}

// Handler serves every DDI path (full paths, /{tenant}/controller/v1/...).
func (a *API) Handler() http.Handler { return a.mux }

// Prefix is the pattern the server mounts the handler on; it cannot clash
// with /api/... because its second segment is "controller".
const Prefix = "/{tenant}/controller/v1/"

func (a *API) routes() {
	m := http.NewServeMux()
	const base = "/{tenant}/controller/v1/{controllerId}"
	m.HandleFunc("GET "+base, a.wrap(a.handlePoll))
	m.HandleFunc("PUT "+base+"/configData", a.wrap(a.handleConfigData))
	m.HandleFunc("GET "+base+"/deploymentBase/{actionId}", a.wrap(a.handleDeploymentBase))
	m.HandleFunc("POST "+base+"/deploymentBase/{actionId}/feedback", a.wrap(a.handleDeploymentFeedback))
	m.HandleFunc("GET "+base+"/cancelAction/{actionId}", a.wrap(a.handleCancelAction))
	m.HandleFunc("POST "+base+"/cancelAction/{actionId}/feedback", a.wrap(a.handleCancelFeedback))
	m.HandleFunc("GET "+base+"/installedBase/{actionId}", a.wrap(a.handleInstalledBase))
	m.HandleFunc("GET "+base+"/softwaremodules/{moduleId}/artifacts", a.wrap(a.handleListArtifacts))
	m.HandleFunc("GET "+base+"/softwaremodules/{moduleId}/artifacts/{file}", a.handleDownload)
	m.HandleFunc(Prefix, func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, r, a.log, apierror.NotFound("no such DDI resource: %s %s", r.Method, r.URL.Path))
	})
	a.mux = m
}

// Routes lists the patterns served, for tests and metrics.
func (a *API) Routes() []string {
	const base = "/{tenant}/controller/v1/{controllerId}"
	return []string{
		"GET " + base, "PUT " + base + "/configData",
		"GET " + base + "/deploymentBase/{actionId}", "POST " + base + "/deploymentBase/{actionId}/feedback",
		"GET " + base + "/cancelAction/{actionId}", "POST " + base + "/cancelAction/{actionId}/feedback",
		"GET " + base + "/installedBase/{actionId}",
		"GET " + base + "/softwaremodules/{moduleId}/artifacts",
		"GET " + base + "/softwaremodules/{moduleId}/artifacts/{file}",
	}
}

// wrap turns an error-returning handler into an http.HandlerFunc.
func (a *API) wrap(h func(w http.ResponseWriter, r *http.Request) error) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if err := h(w, r); err != nil {
			apierror.Write(w, r, a.log, err)
		}
	}
}

// caller is who a request acts as.
type caller struct {
	tenant     string // store tenant
	pathTenant string // as the client spelled it
	controller string
	gateway    bool
	device     *store.Device // set when the credential already named the device
}

// tenantOf maps the path segment onto a store tenant, ignoring case.
func (a *API) tenantOf(seg string) (string, bool) {
	for _, t := range a.cfg.Tenants {
		if strings.EqualFold(t, seg) {
			return t, true
		}
	}
	return "", false
}

// authenticate checks the Authorization header against the controller the
// path names.
func (a *API) authenticate(r *http.Request) (caller, error) {
	seg, cid := r.PathValue("tenant"), r.PathValue("controllerId")
	tenant, ok := a.tenantOf(seg)
	if !ok {
		return caller{}, apierror.NotFound("unknown tenant %q", seg)
	}
	if cid == "" || len(cid) > 128 {
		return caller{}, apierror.BadRequest("controller id must be 1 to 128 bytes")
	}
	c := caller{tenant: tenant, pathTenant: seg, controller: cid}
	scheme, cred, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	cred = strings.TrimSpace(cred)
	switch {
	case scheme == "" && a.cfg.Anonymous:
		return c, nil
	case scheme == "":
		return caller{}, unauthorized("this server needs an Authorization: TargetToken or GatewayToken header")
	case strings.EqualFold(scheme, "TargetToken"):
		if cred == "" || len(cred) > identity.MaxTargetTokenLen {
			return caller{}, unauthorized("target token not accepted")
		}
		d, _, err := a.cfg.Store.DeviceByCredential(r.Context(), tenant, store.CredToken, identity.HashTargetToken(cred))
		if errors.Is(err, store.ErrNotFound) {
			return caller{}, unauthorized("target token not accepted")
		} else if err != nil {
			return caller{}, err
		}
		if d.Serial != cid {
			return caller{}, unauthorized("target token not accepted")
		}
		c.device = &d
		return c, nil
	case strings.EqualFold(scheme, "GatewayToken"):
		want, ok := a.cfg.GatewayTokens[tenant]
		if !ok || subtle.ConstantTimeCompare([]byte(want), []byte(cred)) != 1 {
			return caller{}, unauthorized("gateway token not accepted")
		}
		c.gateway = true
		a.auditGateway(r, c)
		return c, nil
	}
	return caller{}, unauthorized("unsupported authorization scheme %q", scheme)
}

func unauthorized(format string, args ...any) error {
	return &apierror.Error{Status: http.StatusUnauthorized, Code: "unauthorized", Message: fmt.Sprintf(format, args...)}
}

// auditGateway records that a gateway token acted as a controller, at most
// once per controller per GatewayAuditEvery (every poll would flood the log).
func (a *API) auditGateway(r *http.Request, c caller) {
	now := a.cfg.Clock.Now()
	key := c.tenant + "\x00" + c.controller
	a.gwMu.Lock()
	last, seen := a.gwAudited[key]
	due := !seen || now.Sub(last) >= a.cfg.GatewayAuditEvery
	if due {
		if len(a.gwAudited) >= 100000 {
			clear(a.gwAudited)
		}
		a.gwAudited[key] = now
	}
	a.gwMu.Unlock()
	if !due {
		return
	}
	by := store.Actor{Kind: store.ActorToken, ID: "ddi-gateway-token", Name: "DDI gateway token"}
	details := map[string]any{"controller_id": c.controller, "method": r.Method, "path": r.URL.Path}
	if err := a.cfg.Store.AppendAudit(r.Context(), c.tenant, by, "ddi.gateway_token_used", "ddi_controller", c.controller, details, now); err != nil {
		a.log.ErrorContext(r.Context(), "audit gateway token use", "tenant", c.tenant, "controller_id", c.controller, "err", err)
	}
}

// device returns the caller's device, or ErrNotFound.
func (a *API) device(r *http.Request, c caller) (store.Device, error) {
	if c.device != nil {
		return *c.device, nil
	}
	return a.cfg.Store.DDIDevice(r.Context(), c.tenant, c.controller)
}

// acceptedDevice is device, refusing devices an operator has not accepted.
func (a *API) acceptedDevice(r *http.Request, c caller) (store.Device, error) {
	d, err := a.device(r, c)
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, apierror.NotFound("controller %q is not registered", c.controller)
	} else if err != nil {
		return store.Device{}, err
	}
	if d.State != store.DeviceAccepted {
		return store.Device{}, apierror.Forbidden("controller %q is %s", c.controller, d.State)
	}
	return d, nil
}

// allowRegistration takes a token from the registration bucket.
func (a *API) allowRegistration(now time.Time) bool {
	a.regMu.Lock()
	defer a.regMu.Unlock()
	if !a.regLast.IsZero() && now.After(a.regLast) {
		a.regTokens += now.Sub(a.regLast).Minutes() * a.cfg.RegisterPerMinute
		if max := float64(a.cfg.RegisterBurst); a.regTokens > max {
			a.regTokens = max
		}
	}
	if a.regLast.IsZero() || now.After(a.regLast) {
		a.regLast = now
	}
	if a.regTokens < 1 {
		return false
	}
	a.regTokens--
	return true
}

// lockDevice serializes feedback of one device in this process, so that
// server-assigned sequence numbers do not collide.
func (a *API) lockDevice(id string) func() {
	h := fnv.New32a()
	_, _ = h.Write([]byte(id))
	m := &a.devLocks[h.Sum32()%uint32(len(a.devLocks))]
	m.Lock()
	return m.Unlock
}

// base is the absolute URL of the controller's resources.
func (a *API) base(c caller) string {
	return a.cfg.PublicURL + "/" + url.PathEscape(c.pathTenant) + "/controller/v1/" + url.PathEscape(c.controller)
}
