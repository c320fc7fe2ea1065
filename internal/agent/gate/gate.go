// Package gate decides whether the agent may download or install now. It
// is pure: the agent reads the sensors and passes the readings in, so the
// decision is table-tested without hardware.
//
// Rules:
//   - Hard gates (battery or charging, free storage, temperature) apply to
//     every assignment, forced or not, and a sensor that fails to read
//     blocks them (fail safe).
//   - Soft gates (maintenance window, metered link, custom command) are
//     skipped when the signed assignment is forced.
//   - The signed assignment's settings can only be narrowed by the local
//     policy: the higher battery minimum wins, metered links need both the
//     assignment's and the local permission, and a time must be inside the
//     assignment's windows and inside the local windows (when any are set).
package gate

import (
	"fmt"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/tufmeta"
)

// Policy is the device's local gate configuration.
type Policy struct {
	// MinBattery is the lowest battery percentage to work at unless
	// charging; 0 disables the battery gate.
	MinBattery int
	// MinFreeBytes is the free storage to keep beyond what the download
	// itself needs.
	MinFreeBytes int64
	// MinTemperatureC and MaxTemperatureC bound the device temperature;
	// nil: unbounded.
	MinTemperatureC, MaxTemperatureC *float64
	// ForbidMetered refuses metered links even when the assignment allows
	// them.
	ForbidMetered bool
	// Windows narrow the assignment's maintenance windows; Location is the
	// device's time zone for both.
	Windows  []tufmeta.Window
	Location *time.Location
}

// Reading is one sensor value; Known is false when no sensor is
// configured, and Err is set when it failed to read.
type Reading[T any] struct {
	Known bool
	Value T
	Err   error
}

// Battery is a battery reading.
type Battery struct {
	Percent  float64
	Charging bool
}

// Readings are the sensor values at decision time.
type Readings struct {
	Battery     Reading[Battery]
	FreeBytes   Reading[int64]
	Temperature Reading[float64]
	Metered     Reading[bool]
	// Custom is the custom gate command's verdict: Err non-nil blocks,
	// with the error text as the reason.
	Custom Reading[struct{}]
}

// Request is what is about to happen.
type Request struct {
	Now       time.Time
	Overrides tufmeta.GateOverrides
	Windows   []tufmeta.Window // from the signed assignment
	Forced    bool
	// NeedBytes is the storage the next step consumes (the artifact size
	// when staging it; 0 when streaming into a slot).
	NeedBytes int64
	// Download is true before a download (the metered-link gate applies
	// only to downloading).
	Download bool
}

// Block is one gate that said no.
type Block struct {
	Gate   string // "battery", "storage", "temperature", "window", "metered", "custom"
	Hard   bool
	Reason string
}

// Result is the decision.
type Result struct {
	Blocks []Block
}

// OK reports whether every gate allows.
func (r Result) OK() bool { return len(r.Blocks) == 0 }

// Message says which gates block and why, for the status report.
func (r Result) Message() string {
	var parts []string
	for _, b := range r.Blocks {
		parts = append(parts, b.Gate+": "+b.Reason)
	}
	return strings.Join(parts, "; ")
}

// Check evaluates every gate.
func Check(p Policy, req Request, rd Readings) Result {
	var res Result
	block := func(gate string, hard bool, format string, args ...any) {
		res.Blocks = append(res.Blocks, Block{Gate: gate, Hard: hard, Reason: fmt.Sprintf(format, args...)})
	}

	minBattery := max(p.MinBattery, req.Overrides.MinBattery)
	if minBattery > 0 && rd.Battery.Known {
		switch b := rd.Battery; {
		case b.Err != nil:
			block("battery", true, "cannot read the battery: %v", b.Err)
		case !b.Value.Charging && b.Value.Percent < float64(minBattery):
			block("battery", true, "%.0f%% is below %d%% and not charging", b.Value.Percent, minBattery)
		}
	}
	if need := p.MinFreeBytes + req.NeedBytes; need > 0 && rd.FreeBytes.Known {
		switch s := rd.FreeBytes; {
		case s.Err != nil:
			block("storage", true, "cannot read free storage: %v", s.Err)
		case s.Value < need:
			block("storage", true, "%d bytes free, %d needed", s.Value, need)
		}
	}
	if (p.MinTemperatureC != nil || p.MaxTemperatureC != nil) && rd.Temperature.Known {
		switch t := rd.Temperature; {
		case t.Err != nil:
			block("temperature", true, "cannot read the temperature: %v", t.Err)
		case p.MaxTemperatureC != nil && t.Value > *p.MaxTemperatureC:
			block("temperature", true, "%.1f °C is above %.1f °C", t.Value, *p.MaxTemperatureC)
		case p.MinTemperatureC != nil && t.Value < *p.MinTemperatureC:
			block("temperature", true, "%.1f °C is below %.1f °C", t.Value, *p.MinTemperatureC)
		}
	}
	if req.Forced {
		return res
	}
	loc := p.Location
	if loc == nil {
		loc = time.UTC
	}
	if in, err := Inside(req.Now, loc, req.Windows); err != nil {
		block("window", false, "assignment window: %v", err)
	} else if !in {
		block("window", false, "outside the assignment's maintenance windows (%s in %s)", req.Now.In(loc).Format("Mon 15:04"), loc)
	}
	if in, err := Inside(req.Now, loc, p.Windows); err != nil {
		block("window", false, "local window: %v", err)
	} else if !in {
		block("window", false, "outside the local maintenance windows (%s in %s)", req.Now.In(loc).Format("Mon 15:04"), loc)
	}
	if req.Download && rd.Metered.Known {
		allowed := req.Overrides.AllowMetered && !p.ForbidMetered
		switch m := rd.Metered; {
		case m.Err != nil:
			block("metered", false, "cannot tell whether the link is metered: %v", m.Err)
		case m.Value && !allowed:
			block("metered", false, "the link is metered")
		}
	}
	if rd.Custom.Known && rd.Custom.Err != nil {
		block("custom", false, "%v", rd.Custom.Err)
	}
	return res
}

// Inside reports whether t falls in any of the windows, evaluated in loc.
// No windows means always. A window runs from its local wall-clock start
// on each listed weekday to the wall-clock time Duration later, so
// "01:00 for 3h" is 01:00–04:00 local time on every day, including the
// nights the clocks change (when it holds one hour of real time less or
// more). A start that does not exist on a spring-forward day begins once
// the clocks have moved on; an ambiguous one on a fall-back day is taken
// at its later occurrence.
func Inside(t time.Time, loc *time.Location, ws []tufmeta.Window) (bool, error) {
	if len(ws) == 0 {
		return true, nil
	}
	for _, w := range ws {
		hh, mm, err := parseHHMM(w.Start)
		if err != nil {
			return false, err
		}
		d := time.Duration(w.Duration)
		if d <= 0 {
			continue
		}
		local := t.In(loc)
		// A window that started on an earlier day may still be open.
		back := int(d/(24*time.Hour)) + 1
		for i := 0; i <= back; i++ {
			day := time.Date(local.Year(), local.Month(), local.Day()-i, 0, 0, 0, 0, loc)
			if len(w.Days) > 0 && !containsDay(w.Days, day.Weekday()) {
				continue
			}
			start := time.Date(day.Year(), day.Month(), day.Day(), hh, mm, 0, 0, loc)
			if start.Hour() != hh || start.Minute() != mm {
				// The start falls in a spring-forward gap: open when
				// the new offset takes effect.
				start, _ = start.ZoneBounds()
			}
			end := time.Date(day.Year(), day.Month(), day.Day(), hh, mm, int(d/time.Second), 0, loc)
			if !t.Before(start) && t.Before(end) {
				return true, nil
			}
		}
	}
	return false, nil
}

// ValidateWindow checks a window's form.
func ValidateWindow(w tufmeta.Window) error {
	if _, _, err := parseHHMM(w.Start); err != nil {
		return err
	}
	if w.Duration <= 0 || time.Duration(w.Duration) > 7*24*time.Hour {
		return fmt.Errorf("window duration %s must be positive and at most a week", time.Duration(w.Duration))
	}
	for _, d := range w.Days {
		if d < time.Sunday || d > time.Saturday {
			return fmt.Errorf("window day %d is not 0 (Sunday) to 6 (Saturday)", d)
		}
	}
	return nil
}

func containsDay(days []time.Weekday, d time.Weekday) bool {
	for _, x := range days {
		if x == d {
			return true
		}
	}
	return false
}

func parseHHMM(s string) (int, int, error) {
	var hh, mm int
	if len(s) != 5 || s[2] != ':' {
		return 0, 0, fmt.Errorf("window start %q is not HH:MM", s)
	}
	if _, err := fmt.Sscanf(s, "%02d:%02d", &hh, &mm); err != nil || hh > 23 || mm > 59 || hh < 0 || mm < 0 {
		return 0, 0, fmt.Errorf("window start %q is not HH:MM", s)
	}
	return hh, mm, nil
}
