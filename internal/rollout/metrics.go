package rollout

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/store"
)

// metrics exports per-campaign figures: devices by state (from the
// tallies the last tick read), decisions by verdict, and canary and
// control exposure in device-hours. Counters count what this replica saw
// while it led.
type metrics struct {
	devices   *prometheus.Desc
	decisions *prometheus.Desc
	exposure  *prometheus.Desc
	leader    *prometheus.Desc

	mu        sync.Mutex
	isLeader  bool
	campaigns map[string]*campaignFigures
}

type campaignFigures struct {
	name      string
	devices   map[store.CampaignDeviceState]int
	decisions map[string]int
	canary    float64
	control   float64
}

func newMetrics() *metrics {
	return &metrics{
		devices:   prometheus.NewDesc("updraft_campaign_devices", "Devices of a campaign by campaign state.", []string{"campaign_id", "campaign", "state"}, nil),
		decisions: prometheus.NewDesc("updraft_campaign_decisions_total", "Health decisions stored for a campaign by verdict.", []string{"campaign_id", "campaign", "verdict"}, nil),
		exposure:  prometheus.NewDesc("updraft_campaign_exposure_device_hours_total", "Device-hours of telemetry judged, by arm.", []string{"campaign_id", "campaign", "arm"}, nil),
		leader:    prometheus.NewDesc("updraft_rollout_leader", "1 while this replica leads the rollout engine.", nil, nil),
		campaigns: map[string]*campaignFigures{},
	}
}

func (m *metrics) setLeader(b bool) {
	m.mu.Lock()
	m.isLeader = b
	m.mu.Unlock()
}

// observe records what one tick of a campaign saw.
func (m *metrics) observe(c store.Campaign, tallies []store.CampaignTally, d *store.CampaignDecision) {
	m.mu.Lock()
	defer m.mu.Unlock()
	f := m.campaigns[c.ID]
	if f == nil {
		f = &campaignFigures{decisions: map[string]int{}}
		m.campaigns[c.ID] = f
	}
	f.name = c.Name
	if tallies != nil {
		f.devices = map[store.CampaignDeviceState]int{}
		for _, t := range tallies {
			f.devices[t.State] += t.N
		}
	}
	if d != nil {
		f.decisions[d.Verdict]++
	}
}

func (m *metrics) addExposure(campaignID string, canary, control float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if f := m.campaigns[campaignID]; f != nil {
		f.canary += canary
		f.control += control
	}
}

// Describe implements prometheus.Collector.
func (m *metrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- m.devices
	ch <- m.decisions
	ch <- m.exposure
	ch <- m.leader
}

// Collect implements prometheus.Collector.
func (m *metrics) Collect(ch chan<- prometheus.Metric) {
	m.mu.Lock()
	defer m.mu.Unlock()
	leader := 0.0
	if m.isLeader {
		leader = 1
	}
	ch <- prometheus.MustNewConstMetric(m.leader, prometheus.GaugeValue, leader)
	for id, f := range m.campaigns {
		for st, n := range f.devices {
			ch <- prometheus.MustNewConstMetric(m.devices, prometheus.GaugeValue, float64(n), id, f.name, string(st))
		}
		for v, n := range f.decisions {
			ch <- prometheus.MustNewConstMetric(m.decisions, prometheus.CounterValue, float64(n), id, f.name, v)
		}
		ch <- prometheus.MustNewConstMetric(m.exposure, prometheus.CounterValue, f.canary, id, f.name, "canary")
		ch <- prometheus.MustNewConstMetric(m.exposure, prometheus.CounterValue, f.control, id, f.name, "control")
	}
}
