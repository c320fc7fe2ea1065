package web

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"
)

// TestCampaignFormSpec checks how the form's fields become a spec: the
// same syntax as the CLI's flags, problems named as the API names them.
func TestCampaignFormSpec(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		form     url.Values
		want     []string // substrings of the spec's JSON
		problems []string // "field: message" substrings, in order
	}{
		{
			name: "everything",
			form: url.Values{"name": {" n "}, "release": {"2.4.0"}, "selector": {`tag:x`}, "strata": {"region"},
				"staging": {"lab = tag:lab\n\n  beta=serial == \"a=b\"  \n"}, "waves": {"1%, 5 25,100"}, "control": {"2.5"},
				"approve_waves": {"on"}, "per_minute": {"200"}, "ramp_factor": {"2"}, "ramp_every": {"1h"}, "max_in_flight": {"50"},
				"start_at": {"2026-04-01T02:00"}, "end_at": {"2026-05-01T02:00:30"}, "windows": {"01:00/4h\n02:00/90m,Sat,sun"},
				"preset": {"strict"}, "on_failure": {"rollback"}, "rollback_to": {"2.3.0"}, "require_staged_release": {"on"}},
			want: []string{`"name":"n"`, `"release":"2.4.0"`, `"strata":["region"]`,
				`"staging":[{"name":"lab","selector":"tag:lab"},{"name":"beta","selector":"serial == \"a=b\""}]`,
				`"waves":[1,5,25,100]`, `"control_percent":2.5`, `"approve_waves":true`,
				`"pacing":{"per_minute":200,"ramp_factor":2,"ramp_every":"1h0m0s","max_in_flight":50}`,
				`"start":"2026-04-01T02:00:00Z"`, `"end":"2026-05-01T02:00:30Z"`,
				`"windows":[{"start":"01:00","duration":"4h0m0s"},{"days":[6,0],"start":"02:00","duration":"1h30m0s"}]`,
				`"preset":"strict"`, `"on_failure":{"action":"rollback","rollback_to":"2.3.0"}`, `"require_staged_release":true`},
		},
		{
			name: "defaults",
			form: url.Values{"name": {"n"}, "release": {"r"}},
			want: []string{`"plan":{}`, `"preset":"standard"`, `"on_failure":{"action":"halt"}`},
		},
		{
			name: "zero control means none; rollback_to only with rollback",
			form: url.Values{"name": {"n"}, "release": {"r"}, "control": {"0"}, "rollback_to": {"1.0.0"}},
			want: []string{`"no_control":true`, `"on_failure":{"action":"halt"}`},
		},
		{
			name: "unreadable fields",
			form: url.Values{"name": {"n"}, "release": {"r"}, "staging": {"lab"}, "waves": {"5, x"}, "control": {"one"},
				"per_minute": {"fast"}, "ramp_every": {"daily"}, "max_in_flight": {"1.5"}, "start_at": {"tomorrow"},
				"windows": {"02:00 for 3h\n02:00/3h,funday"}},
			problems: []string{"plan.staging[0]: line 1: write NAME=SELECTOR", `plan.waves: "x" is not a percentage`,
				`plan.control_percent: "one"`, `pacing.per_minute: "fast"`, `pacing.ramp_every: "daily"`, `pacing.max_in_flight: "1.5"`,
				`schedule.start: "tomorrow"`, "schedule.windows[0]: line 1: write HH:MM/DURATION", `schedule.windows[1]: line 2: day "funday"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			spec, ps := formOf(tt.form).spec()
			if len(ps) != len(tt.problems) {
				t.Fatalf("problems %v, want %d", ps, len(tt.problems))
			}
			for i, want := range tt.problems {
				if got := ps[i].Field + ": " + ps[i].Message; !strings.Contains(got, want) {
					t.Errorf("problem %d: %q, want %q", i, got, want)
				}
				if f := fieldOf(ps[i].Field); f == "" {
					t.Errorf("problem %d (%s) is shown at no field", i, ps[i].Field)
				}
			}
			b, err := json.Marshal(spec)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tt.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("spec lacks %s:\n%s", w, b)
				}
			}
		})
	}
}

// TestFitRuns checks that the pre-flight asks the API for no more runs
// than the previewed fleet allows, and says when it ran fewer than asked.
func TestFitRuns(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		asked          string
		most, strata   int
		runs, problem  string
		noteContaining string
	}{
		{"50", 825, 7, "50", "", ""},
		{"825", 825, 7, "825", "", ""},
		{"1000", 825, 7, "825", "", "1,000 runs per scenario were asked for; a fleet in 7 strata allows at most 825, so 825 ran."},
		{"1000", 1000, 1, "1000", "", ""},
		{"5000", 0, 0, "5000", "", ""}, // no preview: the API judges
		{"0", 825, 7, "0", "want a whole number of at least 1", ""},
		{"many", 825, 7, "many", "want a whole number of at least 1", ""},
	} {
		runs, note, problem := fitRuns(c.asked, c.most, c.strata)
		if runs != c.runs || !strings.Contains(problem, c.problem) || (c.problem == "") != (problem == "") ||
			!strings.Contains(note, c.noteContaining) || (c.noteContaining == "") != (note == "") {
			t.Errorf("fitRuns(%q, %d, %d) = %q, %q, %q; want %q, a note with %q, a problem with %q",
				c.asked, c.most, c.strata, runs, note, problem, c.runs, c.noteContaining, c.problem)
		}
	}
}

// TestRunChoices checks that the form offers no pre-flight size the fleet
// does not allow, and none twice; each choice is shown as value:runs, the
// API's default with an empty value.
func TestRunChoices(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		most int
		want string
	}{
		{1000, "50:50 :200 1000:1,000"},
		{825, "50:50 :200 825:825"},
		{200, "50:50 :200"},
		{120, "50:50 :120"},
		{43, ":43"},
		{0, "50:50 :200"}, // no preview: the quick size and the API's default
	} {
		var got []string
		for _, ch := range runChoices(c.most) {
			got = append(got, ch.Value+":"+strings.Fields(ch.Label)[0])
		}
		if g := strings.Join(got, " "); g != c.want {
			t.Errorf("most %d: offered %q, want %q", c.most, g, c.want)
		}
	}
}
