package server

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	"github.com/updraft/updraft/internal/blobgc"
	"github.com/updraft/updraft/internal/ddi"
	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/mgmtapi"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web"
	"github.com/updraft/updraft/internal/webhook"
)

// Names of the server secrets kept in the store, shared by every replica.
const (
	secretDeviceTokenKey = "device-token-key-1"
	secretDownloadURLKey = "download-url-key-1"
	secretDashboardCSRF  = "dashboard-csrf-key-1"
)

// apis holds the device and management APIs of one server.
type apis struct {
	signing    *signing.Service
	device     *deviceapi.API
	mgmt       *mgmtapi.API
	ddi        *ddi.API          // hawkBit DDI under /{tenant}/controller/v1/
	ui         *web.UI           // the dashboard under /ui/
	engine     *rollout.Engine   // campaigns; leads only while it holds the rollout lease
	blobGC     *blobgc.Collector // unreferenced blobs; nil if the store cannot collect
	deviceMux  *http.ServeMux
	mgmtMux    *http.ServeMux
	ddiMux     *http.ServeMux
	deviceBase string
	mgmtBase   string
}

func newAPIs(ctx context.Context, s *Server) (*apis, error) {
	gen := func() ([]byte, error) { return randomKey(32) }
	tokSecret, err := s.store.Secret(ctx, secretDeviceTokenKey, gen)
	if err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	urlSecret, err := s.store.Secret(ctx, secretDownloadURLKey, gen)
	if err != nil {
		return nil, fmt.Errorf("download URL key: %w", err)
	}
	tokens := &identity.Issuer{
		Keys:  identity.TokenKeys{Current: identity.TokenKey{ID: "k1", Secret: tokSecret}},
		Clock: s.cfg.Clock,
	}
	if err := tokens.Keys.Validate(); err != nil {
		return nil, fmt.Errorf("device token key: %w", err)
	}
	urls, err := signedurl.NewSigner(s.cfg.Clock, signedurl.Key{ID: "k1", Secret: urlSecret})
	if err != nil {
		return nil, fmt.Errorf("download URL signer: %w", err)
	}
	sign, err := newSigning(s)
	if err != nil {
		return nil, err
	}
	dev, err := deviceapi.New(deviceapi.Config{
		Store:     s.store,
		Blobs:     s.blobs,
		Tokens:    tokens,
		URLs:      urls,
		Clock:     s.cfg.Clock,
		Logger:    s.log.With("component", "deviceapi"),
		PublicURL: s.cfg.PublicURL,
		Metrics:   s.reg,
		Director:  sign,
		Metadata:  sign,
		Finalizer: sign,
		Limits: deviceapi.Limits{
			TelemetryRawRetention:    s.cfg.TelemetryRawRetention,
			TelemetryHourlyRetention: s.cfg.TelemetryHourlyRetention,
			PollInterval:             s.cfg.Timing.PollInterval,
			LastSeenFlush:            s.cfg.Timing.LastSeenFlush,
			MaintenanceInterval:      s.cfg.Timing.MaintenanceInterval,
		},
	})
	if err != nil {
		return nil, err
	}
	mgmt, err := mgmtapi.New(mgmtapi.Config{
		Store:           s.store,
		Blobs:           s.blobs,
		Clock:           s.cfg.Clock,
		Logger:          s.log.With("component", "mgmtapi"),
		Notifier:        dev.Hub(),
		MaxArtifactSize: s.cfg.MaxArtifactSize,
		Signing:         sign,
		PollInterval:    s.cfg.Timing.PollInterval,
	})
	if err != nil {
		return nil, err
	}
	hawkbit, err := ddi.New(ddi.Config{
		Store:      s.store,
		Blobs:      s.blobs,
		Clock:      s.cfg.Clock,
		Logger:     s.log.With("component", "ddi"),
		PublicURL:  s.cfg.PublicURL,
		URLs:       urls,
		Anonymous:  s.cfg.DDI.Anonymous,
		DeviceType: s.cfg.DDI.DeviceType,
		HWRev:      s.cfg.DDI.HWRev,
		GatewayTokens: func() map[string]string {
			if s.cfg.DDI.GatewayToken == "" {
				return nil
			}
			return map[string]string{store.DefaultTenant: s.cfg.DDI.GatewayToken}
		}(),
	})
	if err != nil {
		return nil, err
	}
	a := &apis{signing: sign, device: dev, mgmt: mgmt, ddi: hawkbit, deviceBase: "/api/device/v1/", mgmtBase: "/api/v1/"}
	if a.engine, err = newEngine(s, dev.Hub()); err != nil {
		return nil, err
	}
	if gcBlobs, ok := s.blobs.(blobgc.Blobs); ok {
		if a.blobGC, err = blobgc.New(blobgc.Config{
			Store: s.store, Blobs: gcBlobs, Clock: s.cfg.Clock,
			Logger: s.log.With("component", "blobgc"), Metrics: s.reg,
		}); err != nil {
			return nil, err
		}
	}
	csrfKey, err := s.store.Secret(ctx, secretDashboardCSRF, gen)
	if err != nil {
		return nil, fmt.Errorf("dashboard CSRF key: %w", err)
	}
	if a.ui, err = web.New(web.Config{
		Store: s.store, API: mgmt.Handler(), Clock: s.cfg.Clock,
		Logger: s.log.With("component", "web"), CSRFKey: csrfKey,
		InsecureCookies: s.cfg.InsecureCookies,
	}); err != nil {
		return nil, err
	}
	a.deviceMux, _ = dev.Handler().(*http.ServeMux)
	a.mgmtMux, _ = mgmt.Handler().(*http.ServeMux)
	a.ddiMux, _ = hawkbit.Handler().(*http.ServeMux)
	return a, nil
}

func (a *apis) mount(mux *http.ServeMux) {
	mux.Handle(a.deviceBase, a.device.Handler())
	mux.Handle(a.mgmtBase, a.mgmt.Handler())
	mux.Handle(ddi.Prefix, a.ddi.Handler())
	mux.Handle("GET /{$}", http.RedirectHandler(web.Prefix, http.StatusFound))
}

// withDashboard sends /ui/… to the dashboard and everything else to next.
// The dashboard is dispatched before the mux because its prefix overlaps
// the DDI pattern /{tenant}/controller/v1/ (a DDI tenant cannot be "ui").
func (a *apis) withDashboard(next http.Handler) http.Handler {
	ui := a.ui.Handler()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasPrefix(r.URL.Path, web.Prefix) {
			ui.ServeHTTP(w, r)
			return
		}
		if r.URL.Path == strings.TrimSuffix(web.Prefix, "/") {
			http.Redirect(w, r, web.Prefix, http.StatusFound)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// pattern names the API route a request matches, for metrics labels.
func (a *apis) pattern(r *http.Request) string {
	var m *http.ServeMux
	switch {
	case strings.HasPrefix(r.URL.Path, a.deviceBase):
		m = a.deviceMux
	case strings.HasPrefix(r.URL.Path, a.mgmtBase):
		m = a.mgmtMux
	case strings.Contains(r.URL.Path, "/controller/v1/"):
		m = a.ddiMux
	}
	if m == nil {
		return ""
	}
	_, p := m.Handler(r)
	return p
}

func (a *apis) start(ctx context.Context) error {
	if err := a.signing.Start(ctx); err != nil {
		return err
	}
	if err := a.device.Start(ctx); err != nil {
		return err
	}
	if err := a.mgmt.Start(ctx); err != nil {
		return err
	}
	if err := a.engine.Start(ctx); err != nil {
		return err
	}
	if a.blobGC != nil {
		return a.blobGC.Start(ctx)
	}
	return nil
}

// stop ends the background work; the device API commits queued reports and
// flushes last-seen times, the management API writes token uses.
func (a *apis) stop() {
	if a.blobGC != nil {
		a.blobGC.Stop()
	}
	a.engine.Stop()
	a.mgmt.Stop()
	a.device.Stop()
	a.signing.Stop()
}

// newEngine builds the rollout engine; its leader also sends the webhook
// deliveries after each tick.
func newEngine(s *Server, hub notify.Notifier) (*rollout.Engine, error) {
	sender := &webhook.Sender{Store: s.store, Clock: s.cfg.Clock, Logger: s.log.With("component", "webhook")}
	log := s.log.With("component", "rollout")
	return rollout.New(rollout.Config{
		Store: s.store, Clock: s.cfg.Clock, Logger: log, Notifier: hub, Metrics: s.reg,
		Interval: s.cfg.Timing.EngineInterval, LeaseTTL: s.cfg.Timing.EngineLeaseTTL,
		AfterTick: func(ctx context.Context) {
			if _, err := sender.Run(ctx); err != nil {
				log.Error("send webhooks", "err", err)
			}
		},
	})
}
