package mgmtapi

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/preflight"
	"github.com/updraft/updraft/internal/store"
)

// Bounds on the work one pre-flight request may ask for.
const (
	// maxPreflightRuns caps ?runs whatever the fleet (preflightMaxRuns
	// lowers it for fleets in many strata).
	maxPreflightRuns = 1000
	// maxPreflightDevices caps the targeted fleet.
	maxPreflightDevices = 2_000_000
)

// preflightMaxRuns is the most runs per scenario a pre-flight of a fleet
// in the given number of strata may ask for: the API's cap, lowered to
// preflight.Run's bound on runs × strata. Previews expose it
// (preflight_max_runs) so that clients offer only sizes that run.
func preflightMaxRuns(strata int) int {
	return min(maxPreflightRuns, preflight.MaxRunsFor(strata))
}

// preflightSlot lets one pre-flight simulate at a time per process: the
// simulation keeps every core busy for its duration, and a second request
// waits (or gives up with its context) rather than halving both.
var preflightSlot = make(chan struct{}, 1)

// preflightAnswer is POST /campaigns/preflight: the preview the
// simulation ran against and its report.
type preflightAnswer struct {
	Preview previewAnswer `json:"preview"`
	preflight.Report
}

// preflightCampaign checks a spec like the preview, builds the twin of the
// fleet it targets and simulates its plan under the default scenarios.
func (a *API) preflightCampaign(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	runs := 0 // the default, capped by the fleet's strata below
	if v := q.Get("runs"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxPreflightRuns {
			return apierror.New(http.StatusBadRequest, "bad_parameter", "runs must be a whole number from 1 to %d", maxPreflightRuns)
		}
		runs = n
	}
	seed := uint64(preflight.DefaultSeed)
	if v := q.Get("seed"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			return apierror.New(http.StatusBadRequest, "bad_parameter", "seed must be a positive whole number")
		}
		seed = n
	}
	regress := q.Get("regress")
	s, err := a.decodeSpec(w, r)
	if err != nil {
		return err
	}
	var metrics []string // nil: everything regresses
	switch regress {
	case "", preflight.RegressAll:
	case preflight.RegressInstall:
		metrics = []string{preflight.RegressInstall}
	default:
		if s.Health.TelemetryOf(regress) == "" {
			return apierror.New(http.StatusBadRequest, "bad_parameter", "regress must be all, install or one of the policy's rate tests (%s)", rateTestNames(s))
		}
		metrics = []string{regress}
	}
	ctx := r.Context()
	pv, err := campaign.Check(ctx, a.store, c.tenant(), s)
	if err != nil {
		return problemsError(err)
	}
	answer := answerPreview(pv)
	pv = answer.Preview
	if pv.Targets > maxPreflightDevices {
		return apierror.New(http.StatusBadRequest, "too_many_devices", "the campaign targets %d devices; a pre-flight simulates at most %d", pv.Targets, maxPreflightDevices)
	}
	most := answer.PreflightMaxRuns
	switch {
	case runs == 0:
		runs = min(preflight.DefaultRuns, most)
	case runs > most:
		return apierror.New(http.StatusBadRequest, "bad_parameter", "a fleet in %d strata allows at most %d runs per scenario (the work grows with strata × runs); ask for fewer runs or stratify by fewer fields", len(pv.Strata), most)
	}
	now := a.now()
	fleet, err := preflight.Gather(ctx, a.store, c.tenant(), s, pv, now)
	if err != nil {
		return err
	}
	start := now
	if st := s.Schedule.Start; st != nil && st.After(now) {
		start = st.UTC()
	}
	select {
	case preflightSlot <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-preflightSlot }()
	began := a.clock.Now()
	rep, err := preflight.Run(ctx, preflight.Input{Spec: s, Plan: pv.Plan, Fleet: fleet, Start: start, Critical: pv.Release.Severity == store.SeverityCritical, Runs: runs, Seed: seed,
		Scenarios: preflight.Scenarios(fleet, metrics)})
	switch {
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return err
	case err != nil:
		return apierror.New(http.StatusBadRequest, "invalid_preflight", "%v", err)
	}
	rep.ElapsedMS = a.clock.Now().Sub(began).Milliseconds()
	return ok(w, preflightAnswer{Preview: answer, Report: rep})
}

func rateTestNames(s campaign.Spec) string {
	ms := s.Health.RateMetrics
	if len(ms) == 0 {
		ms = campaign.DefaultRateMetrics()
	}
	names := make([]string, len(ms))
	for i, m := range ms {
		names[i] = m.Name
	}
	return strings.Join(names, ", ")
}
