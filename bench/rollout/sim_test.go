package rolloutbench

import (
	"cmp"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/updraft/updraft/internal/health"
)

// fleetConfig describes the synthetic fleet.
type fleetConfig struct {
	devices     int
	strata      []string  // stratum keys
	shares      []float64 // fraction of devices per stratum
	installFail float64   // base install-failure rate
	crashRate   float64   // base crashes per device-hour
	rebootRate  float64   // base unexpected reboots per device-hour
	looperShare float64   // share of crash-looping devices
	looperRate  float64   // their crashes per hour before capping
	diurnal     float64   // amplitude of the fleet-wide daily cycle
	installHrs  float64   // a wave's devices install over this window
}

func defaultFleet() fleetConfig {
	return fleetConfig{
		devices:     10_000,
		strata:      []string{"rev=A", "rev=B", "rev=C"},
		shares:      []float64{0.5, 0.3, 0.2},
		installFail: 0.01,
		crashRate:   0.002,
		rebootRate:  0.001,
		looperShare: 0.005,
		looperRate:  0.5,
		diurnal:     0.5,
		installHrs:  6,
	}
}

// scenario is a release: how it changes install failures and crashes, and
// where (stratum "" = the whole fleet).
type scenario struct {
	name          string
	installFactor float64
	crashFactor   float64
	stratum       string
	campaigns     int
	// tolerance overrides the policy's RateTolerance when not 0.
	tolerance float64
}

func (s scenario) factors(stratum string) (install, crash float64) {
	if s.stratum != "" && s.stratum != stratum {
		return 1, 1
	}
	return s.installFactor, s.crashFactor
}

// outcome is what one rule did in one campaign.
type outcome struct {
	halted  bool
	early   bool // halted before the last wave started
	exposed int  // devices that had tried to install when the campaign stopped
	metric  string
}

type device struct {
	stratum   int
	looper    bool
	wave      int     // index into the plan's waves; −1 for the control group
	offset    float64 // install time within its wave's window, hours
	installU  float64 // uniform draw deciding the install outcome
	installAt float64 // hours since campaign start; +Inf until its wave starts
}

// sim is one campaign's state. Everything random comes from rng, seeded per
// campaign, so a campaign is reproducible from its seed alone.
type sim struct {
	cfg      fleetConfig
	sc       scenario
	rng      *rand.Rand
	policy   health.Policy
	devices  []device
	waves    [][]int // device indices per wave, in install order
	loopDay  map[int][2]int
	periods  [][2][]health.RatePeriod // [stratum][metric]
	installs []int
	failures []int
}

const (
	crashMetric  = 0
	rebootMetric = 1
)

// newSim builds the fleet, plans and draws the waves.
func newSim(cfg fleetConfig, sc scenario, plan health.WavePlan, ids []string, index map[string]int, seed [2]uint64) *sim {
	s := &sim{cfg: cfg, sc: sc, rng: rand.New(rand.NewPCG(seed[0], seed[1])), policy: health.DefaultPolicy(), loopDay: map[int][2]int{}}
	if sc.tolerance != 0 {
		s.policy.RateTolerance = sc.tolerance
	}
	s.devices = make([]device, cfg.devices)
	targets := make([]health.Target, cfg.devices)
	next := 0
	for st, share := range cfg.shares {
		n := int(math.Round(share * float64(cfg.devices)))
		if st == len(cfg.shares)-1 {
			n = cfg.devices - next
		}
		for range n {
			s.devices[next] = device{stratum: st, looper: s.rng.Float64() < cfg.looperShare, installAt: math.Inf(1),
				offset: s.rng.Float64() * cfg.installHrs, installU: s.rng.Float64(), wave: -1}
			targets[next] = health.Target{ID: ids[next], Stratum: cfg.strata[st]}
			next++
		}
	}
	sizes := make([]health.WaveSize, len(plan.Waves))
	for i, n := range plan.Waves {
		sizes[i] = health.WaveSize{Count: n}
	}
	draw, err := health.DrawWaves(targets, sizes, float64(plan.Control)/float64(cfg.devices), s.rng)
	if err != nil {
		panic(fmt.Sprintf("draw waves: %v", err))
	}
	for w, wave := range draw.Waves {
		idx := make([]int, len(wave))
		for i, id := range wave {
			idx[i] = index[id]
			s.devices[idx[i]].wave = w
		}
		slices.SortFunc(idx, func(a, b int) int { return cmp.Compare(s.devices[a].offset, s.devices[b].offset) })
		s.waves = append(s.waves, idx)
	}
	s.periods = make([][2][]health.RatePeriod, len(cfg.strata))
	s.installs = make([]int, len(cfg.strata))
	s.failures = make([]int, len(cfg.strata))
	return s
}

func (s *sim) fails(d device) bool {
	f, _ := s.sc.factors(s.cfg.strata[d.stratum])
	return d.installU < s.cfg.installFail*f
}

// poisson draws from Poisson(mu) exactly: Knuth's product method on chunks
// of at most 20 (a sum of Poissons is Poisson).
func poisson(rng *rand.Rand, mu float64) int {
	n := 0
	for mu > 0 {
		chunk := math.Min(mu, 20)
		mu -= chunk
		limit, prod := math.Exp(-chunk), rng.Float64()
		for prod > limit {
			n++
			prod *= rng.Float64()
		}
	}
	return n
}

// advance simulates the interval [t0, t1): rate events with the arms as
// they stood at t0 (devices that install during the interval belong to
// neither arm for it), then the install outcomes reported in it.
func (s *sim) advance(t0, t1 float64) {
	dt := t1 - t0
	mid := (t0 + t1) / 2
	cycle := 1 + s.cfg.diurnal*math.Sin(2*math.Pi*mid/24)
	nStrata := len(s.cfg.strata)
	canaryNormal := make([]int, nStrata)
	controlNormal := make([]int, nStrata)
	var canaryLoopers, controlLoopers []int
	for i, d := range s.devices {
		switch {
		case d.installAt < t0 && !s.fails(d):
			if d.looper {
				canaryLoopers = append(canaryLoopers, i)
			} else {
				canaryNormal[d.stratum]++
			}
		case d.installAt >= t1:
			if d.looper {
				controlLoopers = append(controlLoopers, i)
			} else {
				controlNormal[d.stratum]++
			}
		}
	}
	day := int(t0 / 24)
	for st := range nStrata {
		_, crashF := s.sc.factors(s.cfg.strata[st])
		for m, base := range []float64{s.cfg.crashRate, s.cfg.rebootRate} {
			factor := 1.0
			if m == crashMetric {
				factor = crashF
			}
			nc, nb := canaryNormal[st], controlNormal[st]
			p := health.RatePeriod{
				CanaryEvents:  poisson(s.rng, base*factor*cycle*float64(nc)*dt),
				ControlEvents: poisson(s.rng, base*cycle*float64(nb)*dt),
			}
			if m == crashMetric {
				p.CanaryEvents += s.looperEvents(canaryLoopers, st, day, dt, &nc)
				p.ControlEvents += s.looperEvents(controlLoopers, st, day, dt, &nb)
			} else {
				nc += countStratum(s.devices, canaryLoopers, st)
				nb += countStratum(s.devices, controlLoopers, st)
			}
			p.CanaryHours, p.ControlHours = float64(nc)*dt, float64(nb)*dt
			if p.CanaryHours > 0 && p.ControlHours > 0 {
				s.periods[st][m] = append(s.periods[st][m], p)
			}
		}
	}
	for _, wave := range s.waves {
		for _, i := range wave {
			d := s.devices[i]
			if d.installAt >= t0 && d.installAt < t1 {
				s.installs[d.stratum]++
				if s.fails(d) {
					s.failures[d.stratum]++
				}
			}
		}
	}
}

func countStratum(devices []device, idx []int, st int) int {
	n := 0
	for _, i := range idx {
		if devices[i].stratum == st {
			n++
		}
	}
	return n
}

// looperEvents draws the crash-looping devices' crashes in stratum st,
// keeping at most EventCap per device-day, and adds them to the exposure
// count.
func (s *sim) looperEvents(loopers []int, st, day int, dt float64, exposed *int) int {
	total := 0
	for _, i := range loopers {
		if s.devices[i].stratum != st {
			continue
		}
		*exposed++
		state := s.loopDay[i]
		if state[0] != day {
			state = [2]int{day, 0}
		}
		n := min(poisson(s.rng, s.cfg.looperRate*dt), s.policy.EventCap-state[1])
		state[1] += n
		s.loopDay[i] = state
		total += n
	}
	return total
}

func (s *sim) evidence(soak float64) health.Evidence {
	e := health.Evidence{SoakElapsed: hoursDuration(math.Max(soak, 0))}
	for st, key := range s.cfg.strata {
		e.Strata = append(e.Strata, health.Stratum{
			Key: key, Installs: s.installs[st], Failures: s.failures[st],
			Baseline: health.Baseline{SLO: s.cfg.installFail},
			Rates: []health.RateSeries{
				{Metric: "crash", Periods: s.periods[st][crashMetric]},
				{Metric: "reboot", Periods: s.periods[st][rebootMetric]},
			},
		})
	}
	return e
}

// runPolicy plays the campaign under health.Evaluate.
func (s *sim) runPolicy() outcome {
	const installStep, soakStep = 0.5, 2.0
	t := 0.0
	for w := range s.waves {
		for _, i := range s.waves[w] {
			s.devices[i].installAt = t + s.devices[i].offset
		}
		soakStart := t + s.cfg.installHrs
		for {
			step := soakStep
			if t < soakStart {
				step = math.Min(installStep, soakStart-t)
			}
			s.advance(t, t+step)
			t += step
			d := health.Evaluate(s.policy, s.evidence(t-soakStart))
			if d.Verdict == health.Halt {
				return outcome{halted: true, early: w < len(s.waves)-1, exposed: s.tried(t), metric: haltMetric(d)}
			}
			if d.Verdict == health.Advance {
				break
			}
			if t > 2000 {
				panic("campaign never advanced")
			}
		}
	}
	return outcome{exposed: s.tried(math.Inf(1))}
}

func (s *sim) tried(t float64) int {
	n := 0
	for _, d := range s.devices {
		if d.installAt < t {
			n++
		}
	}
	return n
}

func haltMetric(d health.Decision) string {
	for _, r := range d.Tests {
		if r.Outcome == health.Rejected {
			return r.Metric
		}
	}
	return ""
}

// runFixed plays the same campaign under the fixed-threshold rule, checked
// after every install in install order.
func (s *sim) runFixed() outcome {
	n, f := 0, 0
	for w, wave := range s.waves {
		for _, i := range wave {
			n++
			if s.fails(s.devices[i]) {
				f++
			}
			if n >= 50 && float64(f) > 0.05*float64(n) {
				return outcome{halted: true, early: w < len(s.waves)-1, exposed: n, metric: "install"}
			}
		}
	}
	return outcome{exposed: n}
}

func hoursDuration(h float64) time.Duration { return time.Duration(h * float64(time.Hour)) }
