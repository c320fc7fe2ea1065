package agent

import (
	"context"

	"github.com/updraft/updraft/internal/deviceapi/wire"
)

// Telemetry metric names the agent reports. Counters of events (crashes,
// unexpected reboots) are sent as increments since the last accepted
// batch, so the server's hourly sums are event counts.
const (
	MetricUptime            = "uptime_s"
	MetricBootCount         = "boot_count"
	MetricUnexpectedReboots = "unexpected_reboots"
	MetricCrashes           = "crashes"
	MetricBattery           = "battery_pct"
	MetricCharging          = "charging"
	MetricSignal            = "signal_dbm"
	MetricFreeStorage       = "free_storage_bytes"
	MetricTemperature       = "temperature_c"
	MetricCustomPrefix      = "custom."
)

// maxSamples bounds the unsent telemetry kept in memory (one request).
const maxSamples = wire.MaxPoints - 10

// telemetry samples the sensors and sends the batch when due.
func (a *Agent) telemetry(ctx context.Context) {
	if a.cfg.Timing.DisableTelemetry {
		return
	}
	if a.due(a.nextSample) {
		a.sample(ctx)
		a.nextSample = a.clock.Now().Add(a.jitter(a.cfg.Timing.TelemetrySample))
	}
	if a.due(a.nextSend) && a.token != "" && a.due(a.retryAt) {
		a.sendTelemetry(ctx)
	}
}

func (a *Agent) sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, sensorTimeout)
	defer cancel()
	now := a.clock.Now().UTC()
	add := func(name string, v float64) {
		a.samples = append(a.samples, wire.Point{Name: name, At: now, Value: v})
	}
	s := a.cfg.Sensors
	if s.Uptime != nil {
		if up, err := s.Uptime(ctx); err == nil {
			add(MetricUptime, up.Seconds())
		}
	} else {
		add(MetricUptime, a.clock.Now().Sub(a.startedAt).Seconds())
	}
	add(MetricBootCount, float64(a.st.Boot.Count))
	if s.Battery != nil {
		if b, err := s.Battery(ctx); err == nil {
			add(MetricBattery, b.Percent)
			add(MetricCharging, boolFloat(b.Charging))
		}
	}
	if s.Signal != nil {
		if v, err := s.Signal(ctx); err == nil {
			add(MetricSignal, v)
		}
	}
	if s.FreeBytes != nil {
		if v, err := s.FreeBytes(ctx); err == nil {
			add(MetricFreeStorage, float64(v))
		}
	}
	if s.Temperature != nil {
		if v, err := s.Temperature(ctx); err == nil {
			add(MetricTemperature, v)
		}
	}
	if s.Crashes != nil {
		if v, err := s.Crashes(ctx); err == nil {
			c := &a.st.Counters
			delta := v - c.CrashSource
			if v < c.CrashSource {
				delta = v // the source was reset
			}
			c.Crashes += delta
			c.CrashSource = v
		} else {
			a.log.Warn("cannot read the crash count", "err", err)
		}
	}
	if s.Custom != nil {
		if m, err := s.Custom(ctx); err == nil {
			for k, v := range m {
				if len(MetricCustomPrefix+k) <= wire.MaxMetricNameLen && validMetricName(k) {
					add(MetricCustomPrefix+k, v)
				}
			}
		} else {
			a.log.Warn("custom metrics failed", "err", err)
		}
	}
	if over := len(a.samples) - maxSamples; over > 0 {
		a.samples = a.samples[over:]
	}
}

func (a *Agent) sendTelemetry(ctx context.Context) {
	c := a.st.Counters
	now := a.clock.Now().UTC()
	points := append([]wire.Point(nil), a.samples...)
	points = append(points,
		wire.Point{Name: MetricUnexpectedReboots, At: now, Value: float64(c.Unexpected - c.UnexpectedSent)},
		wire.Point{Name: MetricCrashes, At: now, Value: float64(c.Crashes - c.CrashesSent)})
	var resp wire.TelemetryResponse
	if err := a.authed(ctx, wire.PathTelemetry, wire.TelemetryRequest{Points: points}, &resp, 0); err != nil {
		a.serverFailed("telemetry", err)
		a.nextSend = maxTime(a.retryAt, now.Add(a.cfg.Timing.BackoffMin))
		return
	}
	a.reachable()
	a.samples = a.samples[:0]
	a.st.Counters.UnexpectedSent = c.Unexpected
	a.st.Counters.CrashesSent = c.Crashes
	if err := a.save(); err != nil {
		a.log.Error("cannot save telemetry counters", "err", err)
	}
	a.nextSend = a.clock.Now().Add(a.jitter(a.cfg.Timing.TelemetrySend))
}

func boolFloat(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func validMetricName(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
