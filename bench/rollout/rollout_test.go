package rolloutbench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/updraft/updraft/internal/health"
)

func scenarios() []scenario {
	const good, bad = 1000, 200
	out := []scenario{{name: "good", installFactor: 1, crashFactor: 1, campaigns: good}}
	for _, kind := range []string{"install", "crash"} {
		for _, where := range []string{"", "rev=C"} {
			for _, f := range []float64{1.5, 2, 3} {
				sc := scenario{installFactor: 1, crashFactor: 1, stratum: where, campaigns: bad}
				if kind == "install" {
					sc.installFactor = f
				} else {
					sc.crashFactor = f
				}
				scope := "fleet"
				if where != "" {
					scope = strings.TrimPrefix(where, "rev=") + "-only"
				}
				sc.name = fmt.Sprintf("%s-%gx-%s", kind, f, scope)
				out = append(out, sc)
			}
		}
	}
	// The same doubled crash rate under canary-stats.md's suggested
	// tolerance of 1.5, for comparison with the default 1.25.
	out = append(out, scenario{name: "crash-2x-fleet-r0=1.5", installFactor: 1, crashFactor: 2, campaigns: bad, tolerance: 1.5})
	return out
}

// seedBase makes every scenario's campaigns independent and reproducible:
// campaign i of scenario k uses PCG(seedBase+k, i).
const seedBase = 20260101

// summary aggregates one rule over a scenario's campaigns.
type summary struct {
	halts, early, exposedSum int
	byMetric                 map[string]int
}

func (s *summary) add(o outcome) {
	if !o.halted {
		return
	}
	s.halts++
	if o.early {
		s.early++
	}
	s.exposedSum += o.exposed
	if s.byMetric == nil {
		s.byMetric = map[string]int{}
	}
	s.byMetric[o.metric]++
}

func (s summary) rate(n int) float64 { return 100 * float64(s.halts) / float64(n) }

func (s summary) exposed() float64 {
	if s.halts == 0 {
		return 0
	}
	return float64(s.exposedSum) / float64(s.halts)
}

type result struct {
	sc            scenario
	seed          uint64
	policy, fixed summary
}

// run simulates a scenario's campaigns on all CPUs; results are stored by
// campaign index, so the aggregate does not depend on scheduling.
func run(cfg fleetConfig, sc scenario, seed uint64, plan health.WavePlan) result {
	ids := make([]string, cfg.devices)
	index := make(map[string]int, cfg.devices)
	for i := range ids {
		ids[i] = fmt.Sprintf("d%05d", i)
		index[ids[i]] = i
	}
	pol := make([]outcome, sc.campaigns)
	fix := make([]outcome, sc.campaigns)
	var wg sync.WaitGroup
	work := make(chan int)
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for i := range work {
				s := newSim(cfg, sc, plan, ids, index, [2]uint64{seed, uint64(i)})
				fix[i] = s.runFixed()
				pol[i] = s.runPolicy()
			}
		})
	}
	for i := range sc.campaigns {
		work <- i
	}
	close(work)
	wg.Wait()
	r := result{sc: sc, seed: seed}
	for i := range sc.campaigns {
		r.policy.add(pol[i])
		r.fixed.add(fix[i])
	}
	return r
}

// BenchmarkRollout runs every scenario and prints the comparison table.
func BenchmarkRollout(b *testing.B) {
	cfg := defaultFleet()
	plan, err := health.PlanWaves(health.DefaultPolicy(), cfg.devices, len(cfg.strata), cfg.installFail, health.PlanOptions{})
	if err != nil {
		b.Fatal(err)
	}
	var results []result
	for k, sc := range scenarios() {
		seed := uint64(seedBase + k)
		b.Run(sc.name, func(b *testing.B) {
			var r result
			for b.Loop() {
				r = run(cfg, sc, seed, plan)
			}
			b.ReportMetric(r.policy.rate(sc.campaigns), "policy-halt-%")
			b.ReportMetric(r.fixed.rate(sc.campaigns), "fixed-halt-%")
			b.ReportMetric(r.policy.exposed(), "policy-exposed")
			b.ReportMetric(r.fixed.exposed(), "fixed-exposed")
			results = append(results, r)
		})
	}
	printTable(os.Stdout, cfg, plan, results)
}

func printTable(w io.Writer, cfg fleetConfig, plan health.WavePlan, results []result) {
	fmt.Fprintf(w, "\nFleet %d devices, strata %v at %v; waves %v (cumulative) + control %d; canary sized for 2× at 90%% (fixed-sample size %d).\n",
		cfg.devices, cfg.strata, cfg.shares, plan.Waves, plan.Control, plan.FixedSampleSize)
	fmt.Fprintf(w, "Halt %% = false halts for the good release, detections otherwise; exposed = mean devices updated at the halt; early = halted before the last wave.\n")
	fmt.Fprintf(w, "%-22s %9s %6s | %8s %7s %9s %-22s | %8s %7s %9s\n",
		"scenario", "campaigns", "seed", "policy %", "early %", "exposed", "halted by", "fixed %", "early %", "exposed")
	for _, r := range results {
		n := r.sc.campaigns
		fmt.Fprintf(w, "%-22s %9d %6d | %8.1f %7.1f %9.0f %-22s | %8.1f %7.1f %9.0f\n",
			r.sc.name, n, r.seed-seedBase, r.policy.rate(n), pct(r.policy.early, n), r.policy.exposed(), metrics(r.policy.byMetric),
			r.fixed.rate(n), pct(r.fixed.early, n), r.fixed.exposed())
	}
	fmt.Fprintf(w, "Seeds: campaign i of the scenario with seed k uses PCG(%d+k, i).\n", seedBase)
}

func pct(a, n int) float64 { return 100 * float64(a) / float64(n) }

func metrics(m map[string]int) string {
	var parts []string
	for _, k := range []string{"install", "crash", "reboot", "guardrail"} {
		if m[k] > 0 {
			parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
		}
	}
	return strings.Join(parts, ", ")
}
