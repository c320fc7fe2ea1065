package gate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/tufmeta"
)

func mustLoc(t *testing.T, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func win(start string, d time.Duration, days ...time.Weekday) tufmeta.Window {
	return tufmeta.Window{Start: start, Duration: tufmeta.Duration(d), Days: days}
}

// TestInsideAcrossDST checks windows in Europe/Berlin on the nights the
// clocks change (2025-03-30 02:00 CET → 03:00 CEST, 2025-10-26 03:00 CEST
// → 02:00 CET) and on ordinary days in summer and winter.
func TestInsideAcrossDST(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	nightly := []tufmeta.Window{win("01:00", 3*time.Hour)}
	tests := []struct {
		name string
		ws   []tufmeta.Window
		at   string
		want bool
	}{
		{"winter: 01:00 CET is 00:00 UTC", nightly, "2025-01-15T00:00:00Z", true},
		{"winter: just before", nightly, "2025-01-14T23:59:59Z", false},
		{"winter: 03:59 CET", nightly, "2025-01-15T02:59:00Z", true},
		{"winter: 04:00 CET ends", nightly, "2025-01-15T03:00:00Z", false},
		{"summer: 01:00 CEST is 23:00 UTC", nightly, "2025-07-14T23:00:00Z", true},
		{"summer: 04:00 CEST ends", nightly, "2025-07-15T02:00:00Z", false},
		{"spring forward: 01:00 CET", nightly, "2025-03-30T00:00:00Z", true},
		{"spring forward: 03:30 CEST", nightly, "2025-03-30T01:30:00Z", true},
		{"spring forward: 04:00 CEST ends (2 real hours)", nightly, "2025-03-30T02:00:00Z", false},
		{"fall back: 01:00 CEST", nightly, "2025-10-25T23:00:00Z", true},
		{"fall back: second 02:30 (CET)", nightly, "2025-10-26T01:30:00Z", true},
		{"fall back: 03:59 CET still open (4 real hours)", nightly, "2025-10-26T02:59:00Z", true},
		{"fall back: 04:00 CET ends", nightly, "2025-10-26T03:00:00Z", false},
		{"start inside the gap: closed before the jump", []tufmeta.Window{win("02:30", time.Hour)}, "2025-03-30T00:59:00Z", false},
		{"start inside the gap begins at 03:00 CEST", []tufmeta.Window{win("02:30", time.Hour)}, "2025-03-30T01:00:00Z", true},
		{"start inside the gap: ends at 03:30 CEST", []tufmeta.Window{win("02:30", time.Hour)}, "2025-03-30T01:30:00Z", false},
		{"overnight window from the previous day", []tufmeta.Window{win("22:00", 8*time.Hour)}, "2025-03-30T03:30:00Z", true},
		{"overnight window ends at 06:00 CEST", []tufmeta.Window{win("22:00", 8*time.Hour)}, "2025-03-30T04:00:00Z", false},
		{"weekday filter: Sunday listed", []tufmeta.Window{win("01:00", 3*time.Hour, time.Sunday)}, "2025-03-30T00:30:00Z", true},
		{"weekday filter: Sunday only, Monday refused", []tufmeta.Window{win("01:00", 3*time.Hour, time.Sunday)}, "2025-03-31T00:30:00Z", false},
		{"window begun Saturday still open on Sunday", []tufmeta.Window{win("23:00", 4*time.Hour, time.Saturday)}, "2025-03-30T00:30:00Z", true},
		{"no windows: always", nil, "2025-03-30T12:00:00Z", true},
		{"second window matches", []tufmeta.Window{win("01:00", time.Hour), win("12:00", time.Hour)}, "2025-07-15T10:30:00Z", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Inside(utc(tt.at), berlin, tt.ws)
			if err != nil || got != tt.want {
				t.Fatalf("Inside(%s) = %v, %v; want %v", tt.at, got, err, tt.want)
			}
		})
	}
}

func TestInsideBadStart(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"1:00", "24:00", "12:60", "ab:cd", ""} {
		if _, err := Inside(time.Unix(0, 0), time.UTC, []tufmeta.Window{win(s, time.Hour)}); err == nil {
			t.Errorf("start %q accepted", s)
		}
		if err := ValidateWindow(win(s, time.Hour)); err == nil {
			t.Errorf("ValidateWindow accepted %q", s)
		}
	}
	if err := ValidateWindow(win("10:00", 0)); err == nil {
		t.Error("zero duration accepted")
	}
	if err := ValidateWindow(win("10:00", time.Hour, 7)); err == nil {
		t.Error("weekday 7 accepted")
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 6, 2, 12, 0, 0, 0, time.UTC)
	f := func(v float64) *float64 { return &v }
	battery := func(p float64, charging bool) Reading[Battery] {
		return Reading[Battery]{Known: true, Value: Battery{Percent: p, Charging: charging}}
	}
	outside := []tufmeta.Window{win("01:00", time.Hour)}
	tests := []struct {
		name   string
		p      Policy
		req    Request
		rd     Readings
		blocks []string // gate names in order
	}{
		{"nothing configured", Policy{}, Request{Now: now, Download: true}, Readings{}, nil},
		{"battery low", Policy{MinBattery: 30}, Request{Now: now}, Readings{Battery: battery(12, false)}, []string{"battery"}},
		{"battery low but charging", Policy{MinBattery: 30}, Request{Now: now}, Readings{Battery: battery(12, true)}, nil},
		{"assignment raises the minimum", Policy{MinBattery: 10}, Request{Now: now, Overrides: tufmeta.GateOverrides{MinBattery: 50}}, Readings{Battery: battery(40, false)}, []string{"battery"}},
		{"assignment cannot lower the local minimum", Policy{MinBattery: 50}, Request{Now: now, Overrides: tufmeta.GateOverrides{MinBattery: 10}}, Readings{Battery: battery(40, false)}, []string{"battery"}},
		{"battery sensor broken blocks", Policy{MinBattery: 30}, Request{Now: now}, Readings{Battery: Reading[Battery]{Known: true, Err: errors.New("no such file")}}, []string{"battery"}},
		{"forced does not skip battery", Policy{MinBattery: 30}, Request{Now: now, Forced: true}, Readings{Battery: battery(5, false)}, []string{"battery"}},
		{"storage short for staging", Policy{MinFreeBytes: 100}, Request{Now: now, NeedBytes: 1000}, Readings{FreeBytes: Reading[int64]{Known: true, Value: 1050}}, []string{"storage"}},
		{"storage enough", Policy{MinFreeBytes: 100}, Request{Now: now, NeedBytes: 1000}, Readings{FreeBytes: Reading[int64]{Known: true, Value: 1100}}, nil},
		{"too hot", Policy{MaxTemperatureC: f(70)}, Request{Now: now, Forced: true}, Readings{Temperature: Reading[float64]{Known: true, Value: 85}}, []string{"temperature"}},
		{"too cold", Policy{MinTemperatureC: f(-20)}, Request{Now: now}, Readings{Temperature: Reading[float64]{Known: true, Value: -30}}, []string{"temperature"}},
		{"outside the assignment's window", Policy{}, Request{Now: now, Windows: outside}, Readings{}, []string{"window"}},
		{"forced skips the window", Policy{}, Request{Now: now, Windows: outside, Forced: true}, Readings{}, nil},
		{"local window narrows", Policy{Windows: outside}, Request{Now: now, Windows: []tufmeta.Window{win("11:00", 2*time.Hour)}}, Readings{}, []string{"window"}},
		{"metered refused by default", Policy{}, Request{Now: now, Download: true}, Readings{Metered: Reading[bool]{Known: true, Value: true}}, []string{"metered"}},
		{"metered allowed by the assignment", Policy{}, Request{Now: now, Download: true, Overrides: tufmeta.GateOverrides{AllowMetered: true}}, Readings{Metered: Reading[bool]{Known: true, Value: true}}, nil},
		{"metered forbidden locally", Policy{ForbidMetered: true}, Request{Now: now, Download: true, Overrides: tufmeta.GateOverrides{AllowMetered: true}}, Readings{Metered: Reading[bool]{Known: true, Value: true}}, []string{"metered"}},
		{"metered does not matter for installing", Policy{}, Request{Now: now}, Readings{Metered: Reading[bool]{Known: true, Value: true}}, nil},
		{"custom gate", Policy{}, Request{Now: now}, Readings{Custom: Reading[struct{}]{Known: true, Err: errors.New("user is driving")}}, []string{"custom"}},
		{"forced skips the custom gate", Policy{}, Request{Now: now, Forced: true}, Readings{Custom: Reading[struct{}]{Known: true, Err: errors.New("user is driving")}}, nil},
		{"several", Policy{MinBattery: 30}, Request{Now: now, Windows: outside}, Readings{Battery: battery(1, false)}, []string{"battery", "window"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := Check(tt.p, tt.req, tt.rd)
			var got []string
			for _, b := range res.Blocks {
				got = append(got, b.Gate)
			}
			if strings.Join(got, ",") != strings.Join(tt.blocks, ",") {
				t.Fatalf("blocks %v (%s), want %v", got, res.Message(), tt.blocks)
			}
			if res.OK() != (len(tt.blocks) == 0) {
				t.Fatalf("OK() = %v", res.OK())
			}
			if !res.OK() && res.Message() == "" {
				t.Fatal("blocked without a message")
			}
		})
	}
}
