package cli

import (
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/client/clienttest"
	"github.com/updraft/updraft/internal/preflight"
)

// TestCampaignPreflight runs a pre-flight end to end: the same flags as
// create, a readable table naming the defaults the twin used, the same
// figures as JSON for the same seed, and usage errors for bad options.
func TestCampaignPreflight(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for i := range 24 {
		rev := "B"
		if i%3 == 0 {
			rev = "C"
		}
		f.srv.Enroll(clienttest.Device{Serial: fmt.Sprintf("PF-%02d", i), DeviceType: "gw-200", HWRev: rev, Accept: true})
	}
	publishRelease(t, f.srv, "1.5.0", "gw-200", "B", "C")
	args := []string{"campaign", "preflight", "--strata", "hw_rev", "--waves", "25,100", "--window", "01:00/4h", "--per-minute", "2", "--runs", "12", "--seed", "4", "pf", "1.5.0"}
	f.steps([]step{
		{args: args, stdout: []string{
			"pre-flight of pf (release 1.5.0)", "matches 24 devices: 16 hw_rev=B, 8 hw_rev=C",
			"12 runs per scenario, seed 4", "Plan in the twin:", "wave 1", "control",
			"Fleet twin:", "hw_rev=C", "install_failure: default", "No campaign history",
			"Scenarios", "good", "1.5× fleet-wide", "3× on hw_rev=C", "falsely", "multiplies the install-failure rate and the crash, reboot rates", "Model:", "updraft sim",
		}},
		{args: []string{"campaign", "preflight", "--regress", "install", "--runs", "2", "pf", "1.5.0"}, stdout: []string{"a regression multiplies only install"}},
		{args: []string{"campaign", "preflight", "--regress", "battery", "--runs", "2", "pf", "1.5.0"}, code: 1, stderr: []string{"regress must be all, install or one of the policy's rate tests (crash, reboot)"}},
		{args: []string{"campaign", "preflight", "--runs", "-1", "pf", "1.5.0"}, code: 2, stderr: []string{"--runs"}},
		{args: []string{"campaign", "preflight", "pf"}, code: 2, stderr: []string{"NAME and RELEASE"}},
		{args: []string{"campaign", "preflight", "pf", "9.9.9"}, code: 1, stderr: []string{"the campaign cannot start", "not found"}},
	})
	var a, b struct {
		Runs      int    `json:"runs"`
		Seed      uint64 `json:"seed"`
		Scenarios []struct {
			Scenario struct {
				Name string `json:"name"`
			} `json:"scenario"`
			HaltProbability float64 `json:"halt_probability"`
			Completed       int     `json:"completed_runs"`
		} `json:"scenarios"`
	}
	f.decode(&a, args...)
	f.decode(&b, args...)
	if a.Runs != 12 || a.Seed != 4 || len(a.Scenarios) != 7 || a.Scenarios[0].Scenario.Name != "good" {
		t.Fatalf("-o json: %+v", a)
	}
	if fmt.Sprint(a) != fmt.Sprint(b) {
		t.Errorf("seed 4 gave two answers:\n%+v\n%+v", a, b)
	}
}

// TestPreflightTableNamesRunsWaitingForTheOperator prints an answer in which
// some runs ended waiting for the operator's decision on a hold: the table
// counts them with when they asked, and a note says what that means.
func TestPreflightTableNamesRunsWaitingForTheOperator(t *testing.T) {
	var out strings.Builder
	e := &Env{Stdout: &out, Stderr: io.Discard}
	var a preflightAnswer
	a.Runs, a.MaxDurationHours = 200, 1440
	a.Scenarios = []preflight.ScenarioResult{
		{Scenario: preflight.Scenario{Name: "good", Factor: 1}, Completed: 200},
		{Scenario: preflight.Scenario{Name: "3× on hw_rev=C", Factor: 3, Stratum: "hw_rev=C"}, Halted: 200, HaltProbability: 1,
			Completed: 187, WaitingOperator: 13, AskedHours: preflight.Quantiles{P50: 26, P90: 52}},
	}
	printPreflight(e, campaign.Spec{Name: "pf"}, a)
	for _, want := range []string{"187/200; 13 still waiting for the operator (asked at 26 / 52 h)", "Runs still waiting for the operator (not counted as completed)"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the table lacks %q:\n%s", want, out.String())
		}
	}
	if strings.Contains(out.String(), "Unfinished") {
		t.Errorf("no run is unfinished, yet:\n%s", out.String())
	}
}
