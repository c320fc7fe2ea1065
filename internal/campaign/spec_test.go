package campaign

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

func TestValidate(t *testing.T) {
	t.Parallel()
	at := func(h int) *time.Time { v := time.Date(2026, 3, 2, h, 0, 0, 0, time.UTC); return &v }
	ok := Spec{Name: "spring", Release: "2.0.0"}
	cases := []struct {
		name  string
		edit  func(s *Spec)
		field string // "" means valid
	}{
		{"minimal", func(*Spec) {}, ""},
		{"no name", func(s *Spec) { s.Name = " " }, "name"},
		{"bad selector", func(s *Spec) { s.Selector = "hw_rev ==" }, "selector"},
		{"bad stratum", func(s *Spec) { s.Strata = []string{"state"} }, "strata"},
		{"staging without selector", func(s *Spec) { s.Plan.Staging = []StagingWave{{Name: "lab"}} }, "plan.staging[0]"},
		{"shrinking waves", func(s *Spec) { s.Plan.Waves = []float64{5, 1, 100} }, "plan.waves[1]"},
		{"waves not ending at 100", func(s *Spec) { s.Plan.Waves = []float64{1, 50} }, "plan.waves"},
		{"no control with a percentage", func(s *Spec) { s.Plan.NoControl, s.Plan.ControlPercent = true, 5 }, "plan.control_percent"},
		{"ramp without rate", func(s *Spec) { s.Pacing.RampFactor, s.Pacing.RampEvery = 2, Duration(time.Hour) }, "pacing.ramp_factor"},
		{"bad window", func(s *Spec) {
			s.Schedule.Windows = []tufmeta.Window{{Start: "25:00", Duration: tufmeta.Duration(time.Hour)}}
		}, "schedule.windows[0]"},
		{"schedule shorter than the soaks", func(s *Spec) {
			s.Plan.Waves = []float64{1, 5, 25, 100}
			s.Schedule.Start, s.Schedule.End = at(0), at(12)
		}, "schedule.end"},
		{"unknown preset", func(s *Spec) { s.Health.Preset = "yolo" }, "health"},
		{"unknown failure action", func(s *Spec) { s.OnFailure.Action = "panic" }, "on_failure.action"},
		{"rollback_to without rollback", func(s *Spec) { s.OnFailure.RollbackTo = "1.0.0" }, "on_failure.rollback_to"},
		{"short device timeout", func(s *Spec) { s.DeviceTimeout = Duration(time.Second) }, "device_timeout"},
		{"negative hold limit", func(s *Spec) { s.Health.HoldLimit = Duration(-time.Hour) }, "health.hold_limit"},
		{"hold limit", func(s *Spec) { s.Health.HoldLimit = Duration(72 * time.Hour) }, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := ok
			c.edit(&s)
			err := s.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("valid spec refused: %v", err)
				}
				return
			}
			var ps Problems
			if !errors.As(err, &ps) || !errors.Is(err, store.ErrInvalidRequest) {
				t.Fatalf("err = %v, want Problems", err)
			}
			for _, p := range ps {
				if p.Field == c.field {
					return
				}
			}
			t.Fatalf("problems %v do not name %s", ps, c.field)
		})
	}
}

func TestAssignmentTermsForcedAfterDeadlineForCriticalOnly(t *testing.T) {
	t.Parallel()
	deadline := time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)
	win := tufmeta.Window{Start: "02:00", Duration: tufmeta.Duration(3 * time.Hour)}
	c := store.Campaign{ID: "c1", Spec: []byte(`{"name":"x","release":"2.0.0","schedule":{"windows":[{"start":"02:00","duration":"3h0m0s"}],"deadline":"2026-04-01T00:00:00Z"},"gates":{"min_battery":40}}`)}
	for _, tc := range []struct {
		sev    store.Severity
		at     time.Time
		forced bool
	}{
		{store.SeverityCritical, deadline.Add(-time.Minute), false},
		{store.SeverityCritical, deadline, true},
		{store.SeverityHigh, deadline.Add(time.Hour), false},
	} {
		terms, err := AssignmentTerms(c, store.Release{Severity: tc.sev}, tc.at)
		if err != nil {
			t.Fatal(err)
		}
		if terms.Forced != tc.forced || len(terms.Windows) != 1 || terms.Windows[0].Start != win.Start || terms.Gates.MinBattery != 40 {
			t.Errorf("%s at %v: %+v, want forced=%v with the window and gates", tc.sev, tc.at, terms, tc.forced)
		}
	}
}

func TestPreviewSummary(t *testing.T) {
	t.Parallel()
	pv := Preview{Targets: 12408, Strata: map[string]int{"hw_rev=C": 3308, "hw_rev=B": 9100}}
	if got, want := pv.Summary(), "matches 12408 devices: 9100 hw_rev=B, 3308 hw_rev=C"; got != want {
		t.Fatalf("summary %q, want %q", got, want)
	}
	if !strings.HasPrefix(Problems{{Field: "release", Message: "m"}}.Error(), "campaign is not valid: release: m") {
		t.Fatal("problems error text")
	}
}
