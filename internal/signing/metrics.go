package signing

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

type metrics struct {
	publishes *prometheus.CounterVec
	documents *prometheus.CounterVec
	unsigned  prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, s *Service) (*metrics, error) {
	m := &metrics{
		publishes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "updraft_tuf_publish_total",
			Help: "Publisher rounds by outcome: published (new snapshot/timestamp stored), conflict (lost a race, retried), lease_lost, error.",
		}, []string{"result"}),
		documents: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "updraft_tuf_director_documents_signed_total",
			Help: "Director documents signed, by kind (assignment, finalize).",
		}, []string{"kind"}),
		unsigned: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "updraft_tuf_unsigned_assignments_total",
			Help: "Assignments handed to devices without a director document (no matching offline-signed target, or no director key).",
		}),
	}
	for _, c := range []prometheus.Collector{m.publishes, m.documents, m.unsigned, &expiryCollector{s: s}} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	return m, nil
}

var (
	expiryDesc = prometheus.NewDesc("updraft_tuf_metadata_expiry_seconds",
		"Seconds until the current metadata of a role expires (negative: expired). An offline role (root, targets, a release role) needs a person with keys before it reaches 0.",
		[]string{"role", "offline"}, nil)
	versionDesc = prometheus.NewDesc("updraft_tuf_metadata_version",
		"Version of the current metadata of a role.", []string{"role"}, nil)
	leaderDesc = prometheus.NewDesc("updraft_tuf_publisher_leader",
		"1 while this replica holds the publisher lease.", nil, nil)
)

// expiryCollector reports expiries at scrape time from the cached
// repository, so the values are as fresh as the clock.
type expiryCollector struct{ s *Service }

func (c *expiryCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- expiryDesc
	ch <- versionDesc
	ch <- leaderDesc
}

func (c *expiryCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	s.mu.RLock()
	st, leader := s.st, s.leader
	s.mu.RUnlock()
	l := 0.0
	if leader {
		l = 1
	}
	ch <- prometheus.MustNewConstMetric(leaderDesc, prometheus.GaugeValue, l)
	if st == nil {
		return
	}
	now := s.clock.Now()
	for _, e := range st.expiries {
		ch <- prometheus.MustNewConstMetric(expiryDesc, prometheus.GaugeValue, e.Expires.Sub(now).Seconds(), e.Role, strconv.FormatBool(e.Offline))
		ch <- prometheus.MustNewConstMetric(versionDesc, prometheus.GaugeValue, float64(e.Version), e.Role)
	}
}

// Health is the signing service's part of readiness.
type Health struct {
	Initialized bool `json:"initialized"`
	Leader      bool `json:"publisher_leader"`
	// Degraded is true when something needs an operator soon: offline
	// metadata about to expire or expired, online metadata not being
	// re-signed, online keys missing or undecryptable.
	Degraded bool     `json:"degraded"`
	Warnings []string `json:"warnings,omitempty"`
}

// Health reports what needs attention. It reads only the cache.
func (s *Service) Health() Health {
	s.mu.RLock()
	st, leader, pubErr := s.st, s.leader, s.pubErr
	problems := len(s.keyErrs)
	s.mu.RUnlock()
	h := Health{Leader: leader}
	if st == nil || st.repo == nil {
		h.Warnings = append(h.Warnings, "signed updates are not set up: no TUF repository yet (updraft keys init --online-to-server)")
		return h
	}
	h.Initialized = true
	now := s.clock.Now()
	warn := func(format string, args ...any) {
		h.Degraded = true
		h.Warnings = append(h.Warnings, fmt.Sprintf(format, args...))
	}
	for _, e := range st.expiries {
		left := e.Expires.Sub(now)
		switch {
		case left <= 0:
			warn("%s version %d expired at %s: devices refuse it until it is re-signed", e.Role, e.Version, e.Expires.Format(time.RFC3339))
		case e.Offline && left < s.opts.ExpiryWarning:
			warn("%s version %d expires in %s (%s): re-sign it with the offline keys", e.Role, e.Version, roundDuration(left), e.Expires.Format(time.RFC3339))
		case !e.Offline && left < s.onlineLifetime(e.Role)/4:
			warn("%s version %d expires in %s and has not been re-signed: is any replica publishing?", e.Role, e.Version, roundDuration(left))
		}
	}
	root := st.repo.Root()
	for _, role := range OnlineRoles {
		if err := st.repo.CheckSigners(role, s.heldSigners(root, role)...); err != nil {
			warn("this server cannot sign %s: %v", role, err)
		}
	}
	if problems > 0 {
		warn("%d stored online key(s) cannot be decrypted with this replica's key-encryption key", problems)
	}
	if pubErr != "" {
		warn("publishing failed: %s", pubErr)
	}
	slices.Sort(h.Warnings)
	return h
}

func (s *Service) onlineLifetime(role string) time.Duration {
	if role == metadata.SNAPSHOT {
		return s.opts.SnapshotLifetime
	}
	return s.opts.TimestampLifetime
}

func roundDuration(d time.Duration) string {
	if d >= 48*time.Hour {
		return strconv.Itoa(int(d/(24*time.Hour))) + " days"
	}
	return d.Round(time.Minute).String()
}

// RoleStatus is one role's current metadata.
type RoleStatus struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Offline bool      `json:"offline"`
}

// Status is the repository as the management API shows it.
type Status struct {
	Initialized bool         `json:"initialized"`
	Generation  int64        `json:"generation"`
	Roles       []RoleStatus `json:"roles"`
	OnlineKeys  []OnlineKey  `json:"online_keys"`
	Health      Health       `json:"health"`
}

// Status describes the current repository, the online keys and health.
func (s *Service) Status(ctx context.Context) (Status, error) {
	st, err := s.refresh(ctx)
	if err != nil {
		return Status{}, err
	}
	keys, err := s.OnlineKeys(ctx)
	if err != nil {
		return Status{}, err
	}
	out := Status{Initialized: st.repo != nil, Generation: st.gen, Roles: []RoleStatus{}, OnlineKeys: keys, Health: s.Health()}
	if out.OnlineKeys == nil {
		out.OnlineKeys = []OnlineKey{}
	}
	for _, e := range st.expiries {
		out.Roles = append(out.Roles, RoleStatus{Role: e.Role, Version: e.Version, Expires: e.Expires, Offline: e.Offline})
	}
	return out, nil
}
