package web

import (
	"bytes"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/preflight"
)

// TestPreflightViewNamesRunsThatAskedTheOperator renders a pre-flight in
// which some runs ended waiting for the operator's decision on a hold: the
// Completed column counts them with when they asked, a note says what they
// wait for, and a report without such runs has no note.
func TestPreflightViewNamesRunsThatAskedTheOperator(t *testing.T) {
	u := &UI{cfg: Config{Clock: clock.Real{}}}
	pages, err := parseTemplates(u.funcs())
	if err != nil {
		t.Fatal(err)
	}
	render := func(rep preflight.Report) string {
		var b bytes.Buffer
		if err := pages["campaign_new.html"].ExecuteTemplate(&b, "campaign-preflight", map[string]any{"Report": newPreflightView(rep), "RunsNote": ""}); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	good := preflight.ScenarioResult{Scenario: preflight.Scenario{Name: "good", Factor: 1}, Completed: 200}
	held := preflight.ScenarioResult{Scenario: preflight.Scenario{Name: "3× on hw_rev=C", Factor: 3, Stratum: "hw_rev=C"},
		Halted: 200, HaltProbability: 1, Completed: 187, WaitingOperator: 13, AskedHours: preflight.Quantiles{P50: 26, P90: 52}}

	page := render(preflight.Report{Runs: 200, Scenarios: []preflight.ScenarioResult{good, held}})
	for _, want := range []string{"187 of 200; 13 still waiting for the operator (asked at 26 h / 52 h)", `id="preflight-asked"`, "200 of 200<"} {
		if !strings.Contains(page, want) {
			t.Errorf("the pre-flight lacks %q:\n%s", want, page)
		}
	}
	if page := render(preflight.Report{Runs: 200, Scenarios: []preflight.ScenarioResult{good}}); strings.Contains(page, "preflight-asked") {
		t.Errorf("no run waits for the operator, yet the note shows:\n%s", page)
	}
}
