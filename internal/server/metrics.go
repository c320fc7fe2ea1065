package server

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
)

// httpMetrics counts requests and observes latencies per route pattern
// (never per raw path, which would explode the label space).
type httpMetrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	clock    clock.Clock
}

func newHTTPMetrics(reg prometheus.Registerer, c clock.Clock) *httpMetrics {
	m := &httpMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "updraft_http_requests_total",
			Help: "HTTP requests by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "updraft_http_request_duration_seconds",
			Help:    "HTTP request latency by route pattern.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10, 60},
		}, []string{"route", "method"}),
		clock: c,
	}
	reg.MustRegister(m.requests, m.latency)
	return m
}

type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach Flush and deadlines on the
// underlying writer.
func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// ReadFrom passes io.Copy from a file straight to the connection's
// ReaderFrom, which uses sendfile(2): without it, http.ServeContent would
// copy every artifact byte through user space.
func (s *statusRecorder) ReadFrom(r io.Reader) (int64, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return io.Copy(s.ResponseWriter, r)
}

// wrap instruments h; route names the request's route pattern.
func (m *httpMetrics) wrap(h http.Handler, route func(*http.Request) string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := m.clock.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h.ServeHTTP(rec, r)
		if rec.status == 0 {
			rec.status = http.StatusOK
		}
		rt := route(r)
		m.requests.WithLabelValues(rt, r.Method, strconv.Itoa(rec.status)).Inc()
		m.latency.WithLabelValues(rt, r.Method).Observe(m.clock.Now().Sub(start).Seconds())
	})
}

// deviceStateCollector reports devices by tenant and state, read from the
// store at scrape time and cached briefly so scrapes stay cheap.
type deviceStateCollector struct {
	st    store.Store
	clock clock.Clock
	desc  *prometheus.Desc

	mu      sync.Mutex
	at      time.Time
	counts  map[string]map[store.DeviceState]int
	timeout time.Duration
}

func newDeviceStateCollector(st store.Store, c clock.Clock) *deviceStateCollector {
	return &deviceStateCollector{
		st: st, clock: c, timeout: 5 * time.Second,
		desc: prometheus.NewDesc("updraft_devices", "Registered devices by tenant and state.", []string{"tenant", "state"}, nil),
	}
}

func (c *deviceStateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *deviceStateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	if c.counts == nil || now.Sub(c.at) > 15*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
		counts, err := c.st.CountDevicesByState(ctx)
		cancel()
		if err == nil {
			c.counts, c.at = counts, now
		}
	}
	for tenant, byState := range c.counts {
		for state, n := range byState {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), tenant, string(state))
		}
	}
}
