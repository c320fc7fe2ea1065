package agent

import (
	"context"
	"time"

	"github.com/updraft/updraft/internal/deviceapi/wire"
)

// Telemetry metric names the agent reports. Counters of events (crashes,
// unexpected reboots) are sent as increments since the last accepted
// batch, so the server's hourly sums are event counts. An increment is
// stamped with the send time only when it was read while the agent sampled
// without a gap in the same boot; one read after a gap in sampling (the
// device was off, busy or starved for longer than two sampling intervals)
// is stamped with the gap's start, and one left from an earlier boot with
// that boot's last sample, so the events of an update's download, install
// and reboot land in the hours before it, not in the first hours of the
// new release.
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

// maxHeld bounds the held counter increments; beyond it the oldest is
// sent with the send time.
const maxHeld = 32

// maxSamples bounds the unsent telemetry kept in memory (one request
// with the held increments and the two counters).
const maxSamples = wire.MaxPoints - 10 - maxHeld

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
	c := &a.st.Counters
	// A reading more than two sampling intervals after the last one
	// covers a gap: its increments happened at unknown times within it.
	gapStart := c.ReadAt
	gap := !gapStart.IsZero() && now.Sub(gapStart) > 2*a.cfg.Timing.TelemetrySample
	c.ReadAt = now
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
			delta := v - c.CrashSource
			if v < c.CrashSource {
				delta = v // the source was reset
			}
			c.Crashes += delta
			c.CrashSource = v
			if gap && delta > 0 {
				c.hold(MetricCrashes, gapStart, delta)
			}
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
	// Held increments are stamped after every send time, sent or tried
	// (the server may have stored a batch whose answer was lost).
	a.st.Counters.SentAt = now
	points := append([]wire.Point(nil), a.samples...)
	points = append(points, c.Held...)
	points = append(points,
		wire.Point{Name: MetricUnexpectedReboots, At: now, Value: float64(max(0, c.Unexpected-c.UnexpectedSent-c.held(MetricUnexpectedReboots)))},
		wire.Point{Name: MetricCrashes, At: now, Value: float64(max(0, c.Crashes-c.CrashesSent-c.held(MetricCrashes)))})
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
	a.st.Counters.Held = nil
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

// hold keeps an unsent increment of a counter stamped at. The server
// stores a point once per metric and time stamp (so that a retried batch
// is not counted twice), so a held point is never changed once made, and
// its stamp is moved just past every stamp already sent or held: a gap
// that starts at the sample taken with the last send gets the next
// microsecond.
func (c *counters) hold(name string, at time.Time, n int64) {
	at = at.UTC().Truncate(time.Microsecond)
	if !c.SentAt.IsZero() && !at.After(c.SentAt) {
		at = c.SentAt.UTC().Truncate(time.Microsecond).Add(time.Microsecond)
	}
	if k := len(c.Held); k > 0 && !at.After(c.Held[k-1].At) {
		at = c.Held[k-1].At.Add(time.Microsecond)
	}
	c.Held = append(c.Held, wire.Point{Name: name, At: at, Value: float64(n)})
	if over := len(c.Held) - maxHeld; over > 0 {
		// The dropped increments stay in the unsent totals and go out
		// with the send time.
		c.Held = append(c.Held[:0:0], c.Held[over:]...)
	}
}

// held is the sum of the held increments of a counter.
func (c *counters) held(name string) int64 {
	var n float64
	for _, p := range c.Held {
		if p.Name == name {
			n += p.Value
		}
	}
	return int64(n)
}

// holdUnsent stamps at the counters' unsent increments that are not held
// yet: at a new boot, what the previous boot read belongs to it.
func (c *counters) holdUnsent(at time.Time) {
	if n := c.Unexpected - c.UnexpectedSent - c.held(MetricUnexpectedReboots); n > 0 {
		c.hold(MetricUnexpectedReboots, at, n)
	}
	if n := c.Crashes - c.CrashesSent - c.held(MetricCrashes); n > 0 {
		c.hold(MetricCrashes, at, n)
	}
}
