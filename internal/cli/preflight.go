package cli

import (
	"context"
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/preflight"
)

// preflightTimeout bounds the wait for a pre-flight: the server simulates
// every scenario before it answers.
const preflightTimeout = 10 * time.Minute

// preflightAnswer is what POST /campaigns/preflight returns.
type preflightAnswer struct {
	Preview campaign.Preview `json:"preview"`
	preflight.Report
}

func campaignPreflightCommand() *command {
	var (
		sf      specFlags
		runs    int
		seed    uint64
		regress string
	)
	return &command{
		name:  "preflight",
		args:  "[NAME RELEASE]",
		short: "simulate a campaign's plan against a twin of its fleet before it starts",
		help: `Takes the same flags (or --file) as "campaign create". The server checks the
spec like --preview, builds a statistical twin of the targeted fleet from the
registry and recent history (hardware strata, time zones, telemetry share,
install-failure, rollback and time-out rates, crash and reboot rates, report
delays; documented defaults where there is no history, and the output says
which), and plays the plan — waves, windows, pacing and the health policy,
through the same decision code the engine runs — over many seeded runs of a
good release and of 1.5×, 2× and 3× regressions fleet-wide and confined to
the smallest stratum (--regress: of everything, of install failures only, or
of one rate test). It prints the expected duration, the devices exposed
before a halt, the detection probability and the chance of a false halt.

The twin draws device counts, it does not run agents ("updraft sim" does).
Nothing is created and no device is touched. See docs/campaigns.md#pre-flight.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			sf.register(fs)
			fs.IntVar(&runs, "runs", 0, "seeded runs per `scenario` (default 200, fewer for a fleet in more than 32 strata; at most 1000)")
			fs.Uint64Var(&seed, "seed", preflight.DefaultSeed, "`seed` of the runs (run i of scenario k uses PCG(seed, k<<32 | i))")
			fs.StringVar(&regress, "regress", preflight.RegressAll, "what a regression multiplies: all, install, or a rate `test` such as crash")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			spec, err := sf.spec(e, args)
			if err != nil {
				return err
			}
			if runs < 0 || runs > 1000 {
				return usageErrorf("--runs must be from 1 to 1000")
			}
			if seed == 0 {
				return usageErrorf("--seed must be positive")
			}
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			if e.HTTPClient == nil {
				api.hc = &http.Client{Timeout: preflightTimeout}
			}
			q := url.Values{"seed": {strconv.FormatUint(seed, 10)}, "regress": {regress}}
			if runs > 0 {
				q.Set("runs", strconv.Itoa(runs))
			}
			var out preflightAnswer
			if err := api.call(ctx, "POST", "/campaigns/preflight", q, spec, &out); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(out)
			}
			printPreflight(e, spec, out)
			return nil
		},
	}
}

func printPreflight(e *Env, spec campaign.Spec, a preflightAnswer) {
	w := e.Stdout
	fmt.Fprintf(w, "pre-flight of %s (release %s), starting %s: %s\n", spec.Name, spec.Release, a.Start, a.Preview.Summary())
	fmt.Fprintf(w, "%d runs per scenario, seed %d (%s); simulated in %d ms\n\n", a.Runs, a.Seed, a.SeedRule, a.ElapsedMS)

	fmt.Fprintln(w, "Plan in the twin:")
	tw := e.table()
	for _, s := range a.Waves {
		keys := make([]string, 0, len(s.Strata))
		for k := range s.Strata {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %d", k, s.Strata[k])
		}
		fmt.Fprintf(tw, "  %s\t%d devices\t%s\n", s.Step, s.Devices, strings.Join(parts, ", "))
	}
	tw.Flush()

	fmt.Fprintln(w, "\nFleet twin:")
	tw = e.table()
	fmt.Fprintln(tw, "  STRATUM\tDEVICES\tZONES\tTELEMETRY\tINSTALL FAIL\tTIME-OUT\tRATES /1000 h")
	for _, s := range a.Fleet.Strata {
		rates := make([]string, 0, len(s.Rates))
		for _, m := range sortedKeys(s.Rates) {
			rates = append(rates, fmt.Sprintf("%s %.2g", m, 1000*s.Rates[m]))
		}
		fmt.Fprintf(tw, "  %s\t%d\t%d\t%.0f%%\t%.2f%%\t%.1f%%\t%s\n", s.Key, s.Devices, len(s.Zones), 100*s.Reporting, 100*s.InstallFailure, 100*s.Timeout, strings.Join(rates, ", "))
	}
	tw.Flush()
	var src []string
	for _, k := range sortedKeys(a.Fleet.Sources) {
		src = append(src, k+": "+a.Fleet.Sources[k])
	}
	fmt.Fprintf(w, "  sources: %s\n", strings.Join(src, ", "))
	for _, n := range a.Fleet.Notes {
		fmt.Fprintln(w, "  - "+n)
	}

	fmt.Fprintln(w, "\nScenarios (hours from the start; exposed = devices handed the release):")
	tw = e.table()
	fmt.Fprintln(tw, "  RELEASE\tHALTED\tWHOLE CAMPAIGN\tTO HALT p50/p90\tEXPOSED BEFORE HALT mean/p90\tOF THEM REGRESSED\tDURATION p50/p90\tCOMPLETED")
	for _, r := range a.Scenarios {
		halt, exposed, affected := "-", "-", "-"
		if r.Halted > 0 {
			halt = fmt.Sprintf("%.1f / %.1f h", r.HaltHours.P50, r.HaltHours.P90)
			exposed = fmt.Sprintf("%.0f / %.0f", r.ExposedAtHalt.Mean, r.ExposedAtHalt.P90)
			if !r.Scenario.Good() {
				affected = fmt.Sprintf("%.0f / %.0f", r.AffectedAtHalt.Mean, r.AffectedAtHalt.P90)
			}
		}
		dur := "-"
		if r.Completed > 0 {
			dur = fmt.Sprintf("%.1f / %.1f h", r.DurationHours.P50, r.DurationHours.P90)
		}
		done := fmt.Sprintf("%d/%d", r.Completed, a.Runs)
		if r.WaitingOperator > 0 {
			done += fmt.Sprintf("; %d still waiting for the operator (asked at %.0f / %.0f h)", r.WaitingOperator, r.AskedHours.P50, r.AskedHours.P90)
		}
		if r.Unfinished > 0 {
			done += fmt.Sprintf(" (%d unfinished)", r.Unfinished)
		}
		if r.ScheduleEnded > 0 {
			done += fmt.Sprintf(" (%d ended by schedule)", r.ScheduleEnded)
		}
		fmt.Fprintf(tw, "  %s\t%.1f%%\t%.1f%%\t%s\t%s\t%s\t%s\t%s\n", r.Scenario.Name, 100*r.HaltProbability, 100*r.CampaignHaltProbability, halt, exposed, affected, dur, done)
	}
	tw.Flush()
	if len(a.Scenarios) > 0 && a.Scenarios[0].Scenario.Good() {
		g := a.Scenarios[0]
		fmt.Fprintf(w, "  A good release is halted (falsely) in %.1f%% of runs", 100*g.HaltProbability)
		if g.Completed > 0 {
			fmt.Fprintf(w, "; it completes in %.1f h (median), %.1f h (p90)", g.DurationHours.P50, g.DurationHours.P90)
		}
		fmt.Fprintln(w, ".")
	}
	var asked, unfinished bool
	for _, r := range a.Scenarios {
		asked = asked || r.WaitingOperator > 0
		unfinished = unfinished || r.Unfinished > 0
	}
	if asked {
		fmt.Fprintln(w, "  Runs still waiting for the operator (not counted as completed) held the next wave because the strata still running lean the way that halted another, and the hold could not resolve by itself or reached the hold limit; the engine asked, and the campaign waits for approve, abort or rollback (when it asked: hours from the start, p50 / p90).")
	}
	if unfinished {
		fmt.Fprintf(w, "  Unfinished runs were still going after %.0f h.\n", a.MaxDurationHours)
	}
	fmt.Fprintf(w, "  HALTED is the detection probability of a regression (any stratum or the campaign); a regression multiplies %s.\n", regressed(a))
	fmt.Fprintln(w, "\nModel:")
	for _, n := range a.Model {
		fmt.Fprintln(w, "  - "+n)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// regressed says what the regression scenarios multiply.
func regressed(a preflightAnswer) string {
	for _, r := range a.Scenarios {
		if r.Scenario.Good() {
			continue
		}
		if len(r.Scenario.Metrics) > 0 {
			return "only " + strings.Join(r.Scenario.Metrics, ", ")
		}
		break
	}
	var rates []string
	if len(a.Fleet.Strata) > 0 {
		rates = sortedKeys(a.Fleet.Strata[0].Rates)
	}
	if len(rates) == 0 {
		return "the install-failure rate"
	}
	return "the install-failure rate and the " + strings.Join(rates, ", ") + " rates"
}
