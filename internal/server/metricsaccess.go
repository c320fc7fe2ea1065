package server

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/updraft/updraft/internal/apierror"
)

// MinMetricsTokenLength is the shortest bearer token accepted for /metrics.
const MinMetricsTokenLength = 16

// metricsAccess decides who may read /metrics and the details of /readyz.
// Metrics reveal fleet size, campaign activity and traffic per route, so
// they are never served to anonymous clients on the internet:
//
//   - with a token (Config.MetricsTokenFile), /metrics needs it wherever it
//     is served, loopback clients included;
//   - with a separate listener (Config.MetricsAddr) and no token, the
//     listener serves anyone who can reach it (bind it to loopback or a
//     private interface);
//   - with neither, the main listener serves /metrics to loopback clients
//     only.
//
// The main listener never serves /metrics when a separate listener is
// configured.
type metricsAccess struct {
	// tokenHash is the SHA-256 of the token: comparing fixed-length
	// hashes in constant time hides the token's length too.
	tokenHash [sha256.Size]byte
	hasToken  bool
}

// readMetricsToken reads the bearer token for /metrics from path.
func readMetricsToken(path string) (metricsAccess, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return metricsAccess{}, fmt.Errorf("read the metrics token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	if tok == "" {
		return metricsAccess{}, fmt.Errorf("the metrics token file %s is empty", path)
	}
	if len(tok) < MinMetricsTokenLength {
		return metricsAccess{}, fmt.Errorf("the metrics token in %s is shorter than %d characters", path, MinMetricsTokenLength)
	}
	return metricsAccess{tokenHash: sha256.Sum256([]byte(tok)), hasToken: true}, nil
}

// tokenOK reports whether r carries the metrics token.
func (a metricsAccess) tokenOK(r *http.Request) bool {
	if !a.hasToken {
		return false
	}
	scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	h := sha256.Sum256([]byte(strings.TrimSpace(tok)))
	return subtle.ConstantTimeCompare(h[:], a.tokenHash[:]) == 1
}

// isLoopback reports whether r comes straight from this machine. A request
// carrying a header that proxies add came through a proxy, which may well
// sit on this machine, so it does not count. (A proxy that adds none of
// them cannot be told apart: deployments behind one set a metrics token or
// listener, and the server warns at start when neither is set.)
func isLoopback(r *http.Request) bool {
	for name := range r.Header {
		if proxyHeader(name) {
			return false
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return false
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// proxyHeader reports whether a (canonical) header name is one that
// reverse proxies, load balancers or service meshes add: Forwarded, Via,
// X-Real-Ip, X-Forwarded-*, and Envoy's and Linkerd's own.
func proxyHeader(name string) bool {
	switch name {
	case "Forwarded", "Via", "X-Real-Ip", "True-Client-Ip", "X-Client-Ip":
		return true
	}
	for _, prefix := range []string{"X-Forwarded-", "X-Envoy-", "L5d-"} {
		if strings.HasPrefix(name, prefix) {
			return true
		}
	}
	return false
}

// description says who may read /metrics on a listener, for the logs.
func (a metricsAccess) description(separate bool) string {
	switch {
	case a.hasToken:
		return "bearer token"
	case separate:
		return "anyone reaching the metrics listener"
	}
	return "loopback clients only"
}

// mainAllows decides a /metrics request on the main listener (without a
// separate metrics listener): nil or the refusal to send.
func (a metricsAccess) mainAllows(r *http.Request) *apierror.Error {
	if a.hasToken {
		return a.requireToken(r)
	}
	if isLoopback(r) {
		return nil
	}
	return apierror.Forbidden("metrics are served to loopback clients only")
}

// requireToken refuses requests without the right token.
func (a metricsAccess) requireToken(r *http.Request) *apierror.Error {
	if a.tokenOK(r) {
		return nil
	}
	return apierror.Unauthorized("a valid bearer token is required for metrics")
}

// guardMetrics is the metrics handler behind the check allow makes.
func (s *Server) guardMetrics(allow func(*http.Request) *apierror.Error) http.Handler {
	h := promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{Registry: s.reg})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if e := allow(r); e != nil {
			if e.Status == http.StatusUnauthorized {
				w.Header().Set("WWW-Authenticate", `Bearer realm="updraft-metrics"`)
			}
			apierror.Write(w, r, s.log, e)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// readyDetails reports whether a /readyz request on the main listener may
// see the checks and warnings, not just ready or not. They go where the
// metrics do: with a metrics token, to its holders only (loopback clients
// too must show it); with a separate metrics listener and no token, to
// that listener only; otherwise to loopback clients.
func (s *Server) readyDetails(r *http.Request) bool {
	switch {
	case s.metrics.hasToken:
		return s.metrics.tokenOK(r)
	case s.cfg.MetricsAddr != "":
		return false
	}
	return isLoopback(r)
}

// metricsRoutes is the handler of the separate metrics listener: /metrics
// and the health endpoints, whose readiness details go to whoever may read
// the metrics.
func (s *Server) metricsRoutes() http.Handler {
	allow := func(r *http.Request) *apierror.Error {
		if s.metrics.hasToken {
			return s.metrics.requireToken(r)
		}
		return nil
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", s.healthz)
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		s.readyz(w, r, allow(r) == nil || isLoopback(r))
	})
	mux.Handle("GET /metrics", s.guardMetrics(allow))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		apierror.Write(w, r, s.log, apierror.NotFound("no such endpoint: %s %s", r.Method, r.URL.Path))
	})
	return mux
}
