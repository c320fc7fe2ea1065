package clock_test

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

func TestScaledContinuesAcrossInstances(t *testing.T) {
	t.Parallel()
	origin := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	base := clock.NewFake(origin.Add(10 * time.Second))
	s, err := clock.NewScaled(base, origin, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Now(), origin.Add(10*time.Minute); !got.Equal(want) {
		t.Fatalf("now %v, want %v", got, want)
	}
	base.Advance(time.Second)
	before := s.Now()
	// A restarted process with the same origin and factor is on the same
	// timeline, not back at the origin.
	again, err := clock.NewScaled(base, origin, 60)
	if err != nil {
		t.Fatal(err)
	}
	if got := again.Now(); !got.Equal(before) || !got.Equal(origin.Add(11*time.Minute)) {
		t.Fatalf("restarted clock at %v, first at %v, want both %v", got, before, origin.Add(11*time.Minute))
	}
	if s.Origin() != origin || s.Factor() != 60 {
		t.Fatalf("origin %v factor %g", s.Origin(), s.Factor())
	}
}

func TestScaledTimerFiresAfterScaledDuration(t *testing.T) {
	t.Parallel()
	origin := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	base := clock.NewFake(origin)
	s, err := clock.NewScaled(base, origin, 120)
	if err != nil {
		t.Fatal(err)
	}
	tm := s.NewTimer(time.Hour) // 30 s of base time
	base.Advance(29 * time.Second)
	select {
	case <-tm.C():
		t.Fatal("fired before 30 s of base time")
	default:
	}
	base.Advance(time.Second)
	select {
	case <-tm.C():
	default:
		t.Fatal("did not fire after 30 s of base time")
	}
}

func TestScaledRefusesBadSettings(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	base := clock.NewFake(now)
	tests := []struct {
		name   string
		origin time.Time
		factor float64
		want   string
	}{
		{"zero factor", now, 0, "greater than 0"},
		{"negative factor", now, -2, "greater than 0"},
		{"NaN factor", now, math.NaN(), "greater than 0"},
		{"absurd factor", now, clock.MaxScale * 10, "at most"},
		{"origin in the future", now.Add(time.Hour), 10, "future"},
		{"no origin", time.Time{}, 10, "no time origin"},
		{"overflowing origin", now.AddDate(-200, 0, 0), 100, "too far in the past"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := clock.NewScaled(base, tt.origin, tt.factor)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("NewScaled(%v, %g) = %v, want an error with %q", tt.origin, tt.factor, err, tt.want)
			}
		})
	}
	if _, err := clock.NewScaled(base, now, 1); err != nil {
		t.Fatalf("factor 1: %v", err)
	}
}
