package cli

import (
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

func TestServeTimeScale(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)
	base := clock.NewFake(now)
	tests := []struct {
		scale, origin string
		want          string // error text; empty: ok
	}{
		{"", "", ""},
		{"60", "2026-03-02T09:00:00Z", ""},
		{"60", "", ""},
		{"0", "", "greater than 0"},
		{"-5", "", "greater than 0"},
		{"1e9", "", "at most"},
		{"fast", "", "greater than 0"},
		{"", "2026-03-02T09:00:00Z", "needs --time-scale"},
		{"60", "yesterday", "RFC 3339"},
		{"60", "2026-03-02T11:00:00Z", "future"},
	}
	for _, tt := range tests {
		o := &serveOptions{timeScale: tt.scale, timeOrigin: tt.origin}
		c, err := o.clock(base)
		if tt.want != "" {
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("scale %q origin %q: err %v, want %q", tt.scale, tt.origin, err, tt.want)
			}
			continue
		}
		if err != nil {
			t.Errorf("scale %q origin %q: %v", tt.scale, tt.origin, err)
			continue
		}
		switch {
		case tt.scale == "":
			if c != clock.Clock(base) {
				t.Errorf("no scale: got %T, want the base clock", c)
			}
		case tt.origin != "":
			// An hour of real time since the origin is 60 simulated hours.
			if got, want := c.Now(), now.Add(59*time.Hour); !got.Equal(want) {
				t.Errorf("scaled now %v, want %v", got, want)
			}
		default:
			if got := c.Now(); !got.Equal(now) {
				t.Errorf("scaled clock without origin starts at %v, want the process start %v", got, now)
			}
		}
	}
}
