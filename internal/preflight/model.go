package preflight

import (
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/rollout"
)

// Tick is the simulator's time step: dispatch, reports and windows move
// in steps of five minutes.
const Tick = 5 * time.Minute

// evalEvery is how many ticks apart the policy is evaluated when the
// evidence changed (the engine evaluates every 5-second tick; halts here
// may come up to this much later, so exposure figures err high).
const evalEvery = 6

// cell is a group of exchangeable devices: one stratum, one time zone,
// sending telemetry or not.
type cell struct {
	stratum int
	zone    int
	reports bool
	devices int
}

// model is everything the runs share, computed once from the input.
type model struct {
	in       Input
	pol      health.Policy
	strata   []Stratum
	index    map[string]int // stratum key -> index in strata
	cells    []cell
	zones    []string
	open     [][]bool // [zone][tick] inside a maintenance window
	always   []bool   // [zone] no windows apply
	steps    int      // production and staging steps; the control group is step index steps
	staging  int
	queued   [][]int // [step][cell] devices queued at the start
	delays   []float64
	timeout  int // ticks until a silent device times out
	horizon  int // ticks
	base     health.Baseline
	batch    int // most devices the engine dispatches per simulated tick
	ramp     int // ticks per ramp step (0: none)
	deadline int // tick after which a critical release ignores windows (-1: none)
	endTick  int // tick when dispatching stops (-1: never)
	// holdLimit is how long the engine holds a wave on leaning evidence
	// before it asks the operator (rollout.HoldLimit).
	holdLimit time.Duration
}

func newModel(in Input) (*model, error) {
	m := &model{in: in}
	var err error
	if m.pol, err = in.Spec.Health.Policy(); err != nil {
		return nil, err
	}
	fleet := in.Fleet.sorted()
	m.strata = fleet.Strata
	m.index = map[string]int{}
	for i, st := range m.strata {
		m.index[st.Key] = i
	}
	m.holdLimit = rollout.HoldLimit(in.Spec, m.pol)
	m.steps = len(in.Plan.Steps)
	m.staging = in.Plan.Staging
	m.horizon = int(in.MaxDuration / Tick)
	m.timeout = max(1, int(math.Ceil(float64(in.Spec.DeviceTimeout.D())/float64(Tick))))
	m.base = health.Baseline{Devices: in.Plan.BaselineDevices, Failures: in.Plan.BaselineFailures, SLO: in.Spec.Health.BaselineSLO}
	m.batch = int(float64(rollout.DefaultBatch) * float64(Tick) / float64(rollout.DefaultInterval))
	if p := in.Spec.Pacing; p.RampFactor > 1 && p.RampEvery > 0 {
		m.ramp = max(1, int(p.RampEvery.D()/Tick))
	}
	m.deadline, m.endTick = -1, -1
	if d := in.Spec.Schedule.Deadline; d != nil && in.Critical {
		m.deadline = max(0, int(d.Sub(in.Start)/Tick))
	}
	if e := in.Spec.Schedule.End; e != nil {
		m.endTick = max(0, int(math.Ceil(float64(e.Sub(in.Start))/float64(Tick))))
	}
	m.delays = delayBins(fleet.ReportDelays, m.timeout)

	// Cells: each stratum split over its zones, and within a zone over
	// devices that send telemetry and those that do not.
	zoneIndex := map[string]int{}
	for si, s := range m.strata {
		names := zoneNames(s.Zones)
		if len(names) == 0 {
			names = []string{""}
		}
		sizes := make([]int, len(names))
		for i, z := range names {
			sizes[i] = s.Zones[z]
			if len(s.Zones) == 0 {
				sizes[i] = s.Devices
			}
		}
		reporting := health.Allocate(int(math.Round(s.Reporting*float64(s.Devices))), sizes)
		for i, z := range names {
			zi, ok := zoneIndex[z]
			if !ok {
				zi = len(m.zones)
				zoneIndex[z] = zi
				m.zones = append(m.zones, z)
			}
			if reporting[i] > 0 {
				m.cells = append(m.cells, cell{stratum: si, zone: zi, reports: true, devices: reporting[i]})
			}
			if n := sizes[i] - reporting[i]; n > 0 {
				m.cells = append(m.cells, cell{stratum: si, zone: zi, devices: n})
			}
		}
	}
	if err := m.windows(); err != nil {
		return nil, err
	}
	m.draw()
	return m, nil
}

// windows tabulates, per zone and tick, whether a device there is inside
// one of the campaign's maintenance windows, by the rule the engine and
// the agent apply (agent/gate.Inside).
func (m *model) windows() error {
	ws := m.in.Spec.Schedule.Windows
	m.always = make([]bool, len(m.zones))
	m.open = make([][]bool, len(m.zones))
	for zi, z := range m.zones {
		if len(ws) == 0 {
			m.always[zi] = true
			continue
		}
		loc := time.UTC
		if z != "" {
			l, err := time.LoadLocation(z)
			if err == nil {
				loc = l
			}
		}
		open := make([]bool, m.horizon+1)
		for t := range open {
			in, err := gate.Inside(m.in.Start.Add(time.Duration(t)*Tick), loc, ws)
			if err != nil {
				return fmt.Errorf("maintenance window: %w", err)
			}
			open[t] = in
		}
		m.open[zi] = open
	}
	return nil
}

// inside reports whether devices in zone z may be dispatched at tick t.
func (m *model) inside(z, t int) bool {
	if m.always[z] || m.deadline >= 0 && t >= m.deadline {
		return true
	}
	return t < len(m.open[z]) && m.open[z][t]
}

// draw splits the targets over the steps and the control group as the
// engine's stratified draw does (health.DrawWaves apportions every wave
// and the control group by health.Allocate over what each stratum has
// left). Staging waves, whose selectors the twin cannot evaluate per
// device, take their planned counts in proportion to the strata. Within a
// stratum a step's devices are spread over the cells in proportion to
// what each has left: the expectation of the engine's random draw.
func (m *model) draw() {
	left := make([]int, len(m.strata))
	for i, s := range m.strata {
		left[i] = s.Devices
	}
	cellLeft := make([]int, len(m.cells))
	for i, c := range m.cells {
		cellLeft[i] = c.devices
	}
	m.queued = make([][]int, m.steps+1)
	take := func(step int, perStratum []int) {
		m.queued[step] = make([]int, len(m.cells))
		for si, n := range perStratum {
			var idx, sizes []int
			for ci, c := range m.cells {
				if c.stratum == si {
					idx = append(idx, ci)
					sizes = append(sizes, cellLeft[ci])
				}
			}
			for k, a := range health.Allocate(n, sizes) {
				m.queued[step][idx[k]] += a
				cellLeft[idx[k]] -= a
			}
			left[si] -= n
		}
	}
	for i := 0; i < m.staging; i++ {
		take(i, health.Allocate(m.in.Plan.Steps[i].Planned, left))
	}
	production := 0
	for _, n := range left {
		production += n
	}
	control := 0
	if cf := m.in.Plan.ControlFraction; cf > 0 {
		control = int(math.Ceil(cf*float64(production) - 1e-9))
	}
	take(m.steps, health.Allocate(control, left))
	eligible := production - control
	done := 0
	for i := m.staging; i < m.steps; i++ {
		f := math.Min(1, math.Max(m.in.Plan.Steps[i].Fraction, 1e-9))
		cum := int(math.Ceil(f*float64(eligible) - 1e-9))
		if i == m.steps-1 {
			cum = eligible // the rest joins the last wave
		}
		take(i, health.Allocate(max(cum-done, 0), left))
		done = max(done, cum)
	}
}

// delayBins turns observed report delays into probabilities per tick
// offset (at least one tick, at most the device timeout).
func delayBins(delays []time.Duration, maxTicks int) []float64 {
	if len(delays) == 0 {
		lo := max(1, int(math.Ceil(float64(DefaultDelayMin)/float64(Tick))))
		hi := min(maxTicks, int(math.Ceil(float64(DefaultDelayMax)/float64(Tick))))
		hi = max(hi, lo)
		bins := make([]float64, hi+1)
		for t := lo; t <= hi; t++ {
			bins[t] = 1 / float64(hi-lo+1)
		}
		return bins
	}
	sorted := append([]time.Duration(nil), delays...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	hi := min(maxTicks, max(1, int(math.Ceil(float64(sorted[len(sorted)-1])/float64(Tick)))))
	bins := make([]float64, hi+1)
	for _, d := range sorted {
		t := min(hi, max(1, int(math.Ceil(float64(d)/float64(Tick)))))
		bins[t] += 1 / float64(len(sorted))
	}
	return bins
}

// rateAt is the dispatch rate in devices per minute at tick t (0: none),
// with the ramp applied since the start, as the engine computes it.
func (m *model) rateAt(t int) float64 {
	p := m.in.Spec.Pacing
	if p.PerMinute <= 0 {
		return 0
	}
	rate := p.PerMinute
	if m.ramp > 0 {
		rate *= math.Pow(p.RampFactor, math.Min(float64(t/m.ramp), 64))
	}
	return rate
}

// stepName names a step for the output.
func stepName(r campaign.Resolved, i int) string {
	if i < len(r.Steps) {
		return r.Steps[i].Name
	}
	return "control"
}
