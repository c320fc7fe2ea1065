// Package campaign is the model of a rollout campaign: what an operator
// asks for (Spec), how it is checked before anything starts (Validate and
// Check), how it becomes a concrete plan of steps (Resolve), and the terms
// a device's signed assignment carries (Terms).
//
// Everything here is a pure function of its arguments or reads the store
// without writing it; the rollout engine (internal/rollout) drives the
// campaign through its states. A Spec is immutable once the campaign starts:
// its JSON form is stored with the campaign and read back by the engine,
// the API and the director.
//
// Step numbering: the plan's staging waves come first (steps 0…S-1), then
// the production waves (S…S+W-1); the hold-back control group has step
// store.ControlStep and is updated in the final phase, step S+W.
package campaign

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Duration is a time.Duration written as a Go duration string ("36h").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"24h\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: want a Go duration such as \"24h\" or \"90m\"", s)
	}
	*d = Duration(v)
	return nil
}

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// Spec is a campaign as an operator writes it.
type Spec struct {
	Name string `json:"name"`
	// Release is the release to roll out: a version or a release id.
	Release string `json:"release"`
	// Selector is a filter expression choosing the target devices; empty
	// targets every accepted device.
	Selector string `json:"selector,omitempty"`
	// Strata are the device fields the fleet is stratified by (waves are
	// drawn within them and health is judged per stratum). Default
	// device_type and hw_rev.
	Strata   []string `json:"strata,omitempty"`
	Plan     Plan     `json:"plan"`
	Pacing   Pacing   `json:"pacing"`
	Schedule Schedule `json:"schedule"`
	Health   Health   `json:"health"`
	// OnFailure is what a halt does besides stopping new devices.
	OnFailure Failure `json:"on_failure"`
	// Gates are the install-gate settings carried in the signed assignment.
	Gates tufmeta.GateOverrides `json:"gates"`
	// DeviceTimeout is how long a device may go without progress (while
	// inside its maintenance window) before its assignment times out.
	// Default 24h.
	DeviceTimeout Duration `json:"device_timeout,omitempty"`
	// AllowBad rolls out a release marked bad: an audited override.
	AllowBad bool `json:"allow_bad,omitempty"`
	// RequireStagedRelease is the release rule: a campaign with no
	// staging waves of its own may roll the release out only if an
	// earlier campaign of the same release passed all its staging waves.
	// A campaign with staging waves stages the release itself.
	RequireStagedRelease bool `json:"require_staged_release,omitempty"`
	// OverrideStaging starts a campaign the release rule would refuse: an
	// audited override.
	OverrideStaging bool `json:"override_staging,omitempty"`
	// Seed fixes the random draw of waves (simulations and tests replay a
	// campaign with it); 0 draws a random seed.
	Seed int64 `json:"seed,omitempty"`
}

// Plan is the shape of the rollout.
type Plan struct {
	// Staging waves come first; each takes the devices its selector
	// matches (among the targets) and needs an operator's approval to pass.
	Staging []StagingWave `json:"staging,omitempty"`
	// Waves are the production waves as cumulative percentages of the
	// targets outside staging and control, e.g. [1, 5, 25, 100]. Empty:
	// sized from a power calculation (health.PlanWaves).
	Waves []float64 `json:"waves,omitempty"`
	// ControlPercent of the production targets is held back as the
	// concurrent control and updated last. Default 1; 0 is allowed only
	// with NoControl.
	ControlPercent float64 `json:"control_percent,omitempty"`
	NoControl      bool    `json:"no_control,omitempty"`
	// ApproveWaves makes every production wave after the first wait for an
	// operator's approval too.
	ApproveWaves bool `json:"approve_waves,omitempty"`
}

// StagingWave is a wave of lab or internal devices chosen by selector.
type StagingWave struct {
	Name     string `json:"name"`
	Selector string `json:"selector"`
}

// Pacing limits how fast devices are handed the release.
type Pacing struct {
	// PerMinute is the most devices notified per minute; 0: no limit.
	PerMinute float64 `json:"per_minute,omitempty"`
	// RampFactor multiplies PerMinute every RampEvery (an exponential
	// ramp, like AWS IoT Jobs' incrementFactor); 0 or 1: constant.
	RampFactor float64  `json:"ramp_factor,omitempty"`
	RampEvery  Duration `json:"ramp_every,omitempty"`
	// MaxInFlight caps devices with an unfinished assignment (concurrent
	// downloads); 0: no cap.
	MaxInFlight int `json:"max_in_flight,omitempty"`
}

// Schedule bounds the campaign in time.
type Schedule struct {
	// Start is when dispatching may begin; nil: when started.
	Start *time.Time `json:"start,omitempty"`
	// End is when dispatching stops; nil: never.
	End *time.Time `json:"end,omitempty"`
	// Windows are recurring maintenance windows in each device's local
	// time zone; empty: always.
	Windows []tufmeta.Window `json:"windows,omitempty"`
	// Deadline after which a critical release is forced (soft gates and
	// windows no longer apply on the device; hard gates still do).
	Deadline *time.Time `json:"deadline,omitempty"`
}

// Health is the health policy: a preset and overrides.
type Health struct {
	// Preset is "standard" (default), "strict" or "relaxed".
	Preset string `json:"preset,omitempty"`
	// Overrides of the preset; zero keeps the preset's value.
	Alpha         float64  `json:"alpha,omitempty"`
	Regression    float64  `json:"regression,omitempty"`
	RateTolerance float64  `json:"rate_tolerance,omitempty"`
	MinSoak       Duration `json:"min_soak,omitempty"`
	GuardrailK    int      `json:"guardrail_k,omitempty"`
	EventCap      int      `json:"event_cap,omitempty"`
	// HoldLimit is how long the engine may hold the next wave because the
	// strata still running lean the way that halted another before it
	// asks the operator to decide; zero: twice the minimum soak (see
	// rollout.HoldLimit).
	HoldLimit Duration `json:"hold_limit,omitempty"`
	// BaselineSLO is the acceptable install-failure rate when the
	// previous release has no outcomes to compare with. Default 2%.
	BaselineSLO float64 `json:"baseline_slo,omitempty"`
	// RateMetrics map the health test names to telemetry metrics.
	// Default crash ← crashes and reboot ← unexpected_reboots.
	RateMetrics []RateMetric `json:"rate_metrics,omitempty"`
}

// RateMetric names a rate test and the telemetry counter behind it.
type RateMetric struct {
	Name      string `json:"name"`
	Telemetry string `json:"telemetry"`
}

// Failure actions.
const (
	FailHalt     = "halt"
	FailRollback = "rollback"
)

// Failure is what happens on a halt.
type Failure struct {
	// Action is "halt" (default: stop new devices) or "rollback" (also
	// move the affected devices back and mark the release bad).
	Action string `json:"action,omitempty"`
	// RollbackTo is the version to roll back to; empty: each device's
	// previous version.
	RollbackTo string `json:"rollback_to,omitempty"`
}

// Defaults.
const (
	DefaultDeviceTimeout  = 24 * time.Hour
	DefaultControlPercent = 1.0
	DefaultBaselineSLO    = 0.02
)

// DefaultStrata are the fields a fleet is stratified by when a spec names none.
func DefaultStrata() []string { return []string{store.CountByDeviceType, store.CountByHWRev} }

// DefaultRateMetrics are the rate tests when a spec names none.
func DefaultRateMetrics() []RateMetric {
	return []RateMetric{{Name: "crash", Telemetry: "crashes"}, {Name: "reboot", Telemetry: "unexpected_reboots"}}
}

// WithDefaults returns the spec with every default filled in.
func (s Spec) WithDefaults() Spec {
	if len(s.Strata) == 0 {
		s.Strata = DefaultStrata()
	}
	if s.Plan.ControlPercent == 0 && !s.Plan.NoControl {
		s.Plan.ControlPercent = DefaultControlPercent
	}
	if s.DeviceTimeout == 0 {
		s.DeviceTimeout = Duration(DefaultDeviceTimeout)
	}
	if s.Health.Preset == "" {
		s.Health.Preset = "standard"
	}
	if s.Health.BaselineSLO == 0 {
		s.Health.BaselineSLO = DefaultBaselineSLO
	}
	if len(s.Health.RateMetrics) == 0 {
		s.Health.RateMetrics = DefaultRateMetrics()
	}
	if s.OnFailure.Action == "" {
		s.OnFailure.Action = FailHalt
	}
	return s
}

// Policy returns the health policy the spec asks for.
func (h Health) Policy() (health.Policy, error) {
	var p health.Policy
	switch h.Preset {
	case "", "standard":
	case "strict":
		p.Alpha, p.Regression, p.RateTolerance, p.GuardrailK = 0.02, 1.5, 1.25, 1
		p.MinSoak = 48 * time.Hour
	case "relaxed":
		p.Alpha, p.Regression, p.RateTolerance, p.GuardrailK = 0.005, 3, 2, 5
		p.MinSoak = 6 * time.Hour
	default:
		return p, fmt.Errorf("health preset %q: want standard, strict or relaxed", h.Preset)
	}
	if h.Alpha != 0 {
		p.Alpha = h.Alpha
	}
	if h.Regression != 0 {
		p.Regression = h.Regression
	}
	if h.RateTolerance != 0 {
		p.RateTolerance = h.RateTolerance
	}
	if h.MinSoak != 0 {
		p.MinSoak = h.MinSoak.D()
	}
	if h.GuardrailK != 0 {
		p.GuardrailK = h.GuardrailK
	}
	if h.EventCap != 0 {
		p.EventCap = h.EventCap
	}
	metrics := h.RateMetrics
	if len(metrics) == 0 {
		metrics = DefaultRateMetrics()
	}
	p.RateMetrics = []string{}
	for _, m := range metrics {
		p.RateMetrics = append(p.RateMetrics, m.Name)
	}
	p = p.WithDefaults()
	if err := p.Validate(); err != nil {
		return p, err
	}
	return p, nil
}

// Problem is one reason a campaign cannot start as specified.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// Problems is a list of problems; it is an error when not empty.
type Problems []Problem

func (ps Problems) Error() string {
	msgs := make([]string, len(ps))
	for i, p := range ps {
		msgs[i] = p.Field + ": " + p.Message
	}
	return "campaign is not valid: " + strings.Join(msgs, "; ")
}

// Is makes errors.Is(err, store.ErrInvalidRequest) true for problems.
func (ps Problems) Is(target error) bool { return target == store.ErrInvalidRequest }

func (ps *Problems) add(field, format string, args ...any) {
	*ps = append(*ps, Problem{Field: field, Message: fmt.Sprintf(format, args...)})
}

func (ps Problems) err() error {
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// Validate checks the spec on its own (no store): syntax of selectors,
// ranges, a plan that can promote, a schedule that can run. It returns
// Problems listing everything wrong at once.
func (s Spec) Validate() error {
	s = s.WithDefaults()
	var ps Problems
	if strings.TrimSpace(s.Name) == "" || len(s.Name) > 200 {
		ps.add("name", "a name of 1 to 200 bytes is required")
	}
	if s.Release == "" {
		ps.add("release", "a release version or id is required")
	}
	if s.Selector != "" {
		if _, err := filter.Parse(s.Selector); err != nil {
			ps.add("selector", "%v", err)
		}
	}
	for _, f := range s.Strata {
		if !store.IsCountByField(f) || f == store.CountByState {
			ps.add("strata", "%q is not a device field to stratify by (device_type, hw_rev, region, version)", f)
		}
	}
	seen := map[string]bool{}
	for i, w := range s.Plan.Staging {
		field := fmt.Sprintf("plan.staging[%d]", i)
		if w.Name == "" {
			ps.add(field, "a staging wave needs a name")
		}
		if seen[w.Name] {
			ps.add(field, "staging wave name %q repeated", w.Name)
		}
		seen[w.Name] = true
		if strings.TrimSpace(w.Selector) == "" {
			ps.add(field, "a staging wave needs a selector such as tag:lab")
		} else if _, err := filter.Parse(w.Selector); err != nil {
			ps.add(field, "%v", err)
		}
	}
	prev := 0.0
	for i, w := range s.Plan.Waves {
		if !(w > prev && w <= 100) || math.IsNaN(w) {
			ps.add(fmt.Sprintf("plan.waves[%d]", i), "%g: wave percentages must grow strictly and end at most at 100", w)
		}
		prev = w
	}
	if len(s.Plan.Waves) > 0 && s.Plan.Waves[len(s.Plan.Waves)-1] != 100 {
		ps.add("plan.waves", "the last wave must be 100%% or the campaign can never finish")
	}
	if len(s.Plan.Waves) > 50 {
		ps.add("plan.waves", "at most 50 waves")
	}
	if s.Plan.NoControl && s.Plan.ControlPercent != 0 {
		ps.add("plan.control_percent", "no_control and a control percentage contradict each other")
	}
	if !(s.Plan.ControlPercent >= 0 && s.Plan.ControlPercent < 50) {
		ps.add("plan.control_percent", "%g is not in [0, 50)", s.Plan.ControlPercent)
	}
	if s.Pacing.PerMinute < 0 || math.IsNaN(s.Pacing.PerMinute) || math.IsInf(s.Pacing.PerMinute, 0) {
		ps.add("pacing.per_minute", "must be a non-negative number")
	}
	if s.Pacing.RampFactor != 0 && (s.Pacing.RampFactor < 1 || s.Pacing.RampFactor > 10) {
		ps.add("pacing.ramp_factor", "%g is not in [1, 10]", s.Pacing.RampFactor)
	}
	if s.Pacing.RampFactor > 1 && s.Pacing.RampEvery <= 0 {
		ps.add("pacing.ramp_every", "a ramp needs a positive interval")
	}
	if s.Pacing.RampFactor > 1 && s.Pacing.PerMinute == 0 {
		ps.add("pacing.ramp_factor", "a ramp needs a base rate (per_minute)")
	}
	if s.Pacing.MaxInFlight < 0 {
		ps.add("pacing.max_in_flight", "must not be negative")
	}
	if s.DeviceTimeout.D() < time.Minute {
		ps.add("device_timeout", "%v is shorter than a minute", s.DeviceTimeout.D())
	}
	for i, w := range s.Schedule.Windows {
		if err := gate.ValidateWindow(w); err != nil {
			ps.add(fmt.Sprintf("schedule.windows[%d]", i), "%v", err)
		}
	}
	sch := s.Schedule
	if sch.Start != nil && sch.End != nil && !sch.End.After(*sch.Start) {
		ps.add("schedule.end", "ends before it starts")
	}
	if sch.Deadline != nil && sch.Start != nil && sch.Deadline.Before(*sch.Start) {
		ps.add("schedule.deadline", "the deadline is before the start")
	}
	pol, err := s.Health.Policy()
	if err != nil {
		ps.add("health", "%v", err)
	}
	if !(s.Health.BaselineSLO > 0 && s.Health.BaselineSLO < 0.5) {
		ps.add("health.baseline_slo", "%g is not in (0, 0.5)", s.Health.BaselineSLO)
	}
	if s.Health.HoldLimit < 0 {
		ps.add("health.hold_limit", "%v is negative", s.Health.HoldLimit.D())
	}
	names := map[string]bool{}
	for i, m := range s.Health.RateMetrics {
		if m.Name == "" || m.Telemetry == "" || names[m.Name] {
			ps.add(fmt.Sprintf("health.rate_metrics[%d]", i), "needs a unique name and a telemetry metric")
		}
		names[m.Name] = true
	}
	if err == nil && sch.Start != nil && sch.End != nil {
		// Every wave soaks at least MinSoak before the next starts.
		steps := len(s.Plan.Staging) + max(len(s.Plan.Waves), 1)
		need := time.Duration(steps-1) * pol.MinSoak
		if sch.End.Sub(*sch.Start) < need {
			ps.add("schedule.end", "the plan's %d steps need at least %v of soaking but the schedule allows %v: it can never finish",
				steps, need, sch.End.Sub(*sch.Start))
		}
	}
	switch s.OnFailure.Action {
	case FailHalt, FailRollback:
	default:
		ps.add("on_failure.action", "%q: want halt or rollback", s.OnFailure.Action)
	}
	if s.OnFailure.RollbackTo != "" && s.OnFailure.Action != FailRollback {
		ps.add("on_failure.rollback_to", "only meaningful with action rollback")
	}
	if s.Gates.MinBattery < 0 || s.Gates.MinBattery > 100 {
		ps.add("gates.min_battery", "%d is not a percentage", s.Gates.MinBattery)
	}
	return ps.err()
}

// ParseSpec decodes a spec strictly (unknown fields are errors).
func ParseSpec(b []byte) (Spec, error) {
	var s Spec
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("campaign spec: %w", err)
	}
	if dec.More() {
		return s, errors.New("campaign spec: trailing data after the JSON object")
	}
	return s, nil
}

// FromCampaign decodes the spec stored with a campaign, defaults filled in.
func FromCampaign(c store.Campaign) (Spec, error) {
	var s Spec
	if err := json.Unmarshal(c.Spec, &s); err != nil {
		return s, fmt.Errorf("campaign %s spec: %w", c.ID, err)
	}
	return s.WithDefaults(), nil
}

// Selector parses the spec's selector; nil means every device.
func (s Spec) SelectorExpr() (*filter.Expr, error) {
	if strings.TrimSpace(s.Selector) == "" {
		return nil, nil
	}
	return filter.Parse(s.Selector)
}

// TelemetryOf returns the telemetry metric behind a rate test name.
func (h Health) TelemetryOf(name string) string {
	metrics := h.RateMetrics
	if len(metrics) == 0 {
		metrics = DefaultRateMetrics()
	}
	for _, m := range metrics {
		if m.Name == name {
			return m.Telemetry
		}
	}
	return ""
}

// StratumOf is a device's stratum key, "field=value" per field joined by
// commas: the same keys store.Campaigns.CountTargets reports.
func StratumOf(fields []string, d store.Device) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		v := ""
		switch f {
		case store.CountByDeviceType:
			v = d.DeviceType
		case store.CountByHWRev:
			v = d.HWRev
		case store.CountByRegion:
			v = d.Region
		case store.CountByVersion:
			v = d.Version
		}
		parts[i] = f + "=" + v
	}
	return strings.Join(parts, ",")
}
