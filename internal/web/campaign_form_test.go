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
