package deviceapi

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Check-in results, the label values of updraft_device_checkins_total.
const (
	checkinNoWork     = "no_work"
	checkinAssignment = "assignment"
	checkinCancel     = "cancel"
	checkinRejected   = "rejected" // 4xx: bad token, bad body, device not allowed
	checkinError      = "error"    // 5xx
)

// Enrollment results, the label values of updraft_device_enrollments_total.
const (
	enrollAccepted    = "accepted"
	enrollPending     = "pending"
	enrollRefused     = "refused" // rejected or decommissioned device
	enrollRateLimited = "rate_limited"
	enrollInvalid     = "invalid" // bad body or signature
	enrollError       = "error"
)

type metrics struct {
	checkins      *prometheus.CounterVec
	enrollments   *prometheus.CounterVec
	reports       prometheus.Counter
	commits       prometheus.Counter
	batchSize     prometheus.Histogram
	telemetry     prometheus.Counter
	lastSeenFlush prometheus.Counter
	longPolls     prometheus.Gauge
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		checkins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "updraft_device_checkins_total",
			Help: "Device check-ins by result (no_work, assignment, cancel, rejected, error).",
		}, []string{"result"}),
		enrollments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "updraft_device_enrollments_total",
			Help: "Enrollment requests by result (accepted, pending, refused, rate_limited, invalid, error).",
		}, []string{"result"}),
		reports: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "updraft_device_reports_committed_total",
			Help: "Status reports durably committed (duplicates included).",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "updraft_device_report_commits_total",
			Help: "Group-commit transactions of status reports.",
		}),
		batchSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "updraft_device_report_batch_size",
			Help:    "Status reports per group-commit transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		telemetry: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "updraft_device_telemetry_points_total",
			Help: "Telemetry points stored.",
		}),
		longPolls: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "updraft_device_long_polls_active",
			Help: "Check-ins currently waiting for news (long-poll).",
		}),
		lastSeenFlush: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "updraft_device_last_seen_flush_failures_total",
			Help: "Last-seen flushes that failed (those times are lost, by design).",
		}),
	}
	for _, c := range []prometheus.Collector{m.checkins, m.enrollments, m.reports, m.commits, m.batchSize, m.telemetry, m.lastSeenFlush, m.longPolls} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}
