package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
)

func campaignCommand() *command {
	cmds := []*command{campaignCreateCommand(), campaignPreflightCommand(), campaignListCommand(), campaignShowCommand(), campaignWatchCommand()}
	for _, c := range []struct{ name, short string }{
		{"start", "start a draft campaign (it is checked against the fleet again)"},
		{"pause", "stop handing the release to new devices"},
		{"resume", "resume a paused campaign, or override a halt"},
		{"abort", "abort a campaign and cancel its unfinished assignments"},
		{"retry", "queue a campaign's failed, timed-out and skipped devices again"},
		{"approve", "approve the current step (a staging wave, or a wave that needs approval)"},
		{"finalize", "declare the release proven; its devices' security floor may rise"},
		{"rollback", "halt, move every updated device back and mark the release bad"},
	} {
		cmds = append(cmds, campaignActionCommand(c.name, c.short))
	}
	return &command{
		name:  "campaign",
		short: "roll releases out in waves gated on device health",
		help: `A campaign rolls a release out to the devices a selector matches: optional
staging waves that need approval, production waves (explicit percentages or
sized from a power calculation), a hold-back control group, pacing, windows
and a health policy. See docs/campaigns.md.`,
		subs: cmds,
	}
}

// campaignAPI calls the campaign routes of the management API.
type campaignAPI struct {
	base  string
	token string
	hc    *http.Client
}

func (e *Env) campaignAPI() (*campaignAPI, error) {
	c, err := e.client()
	if err != nil {
		return nil, err
	}
	token, err := e.token()
	if err != nil {
		return nil, err
	}
	hc := e.HTTPClient
	if hc == nil {
		hc = &http.Client{Timeout: client.DefaultTimeout}
	}
	return &campaignAPI{base: strings.TrimSuffix(c.BaseURL(), "/"), token: token, hc: hc}, nil
}

// call sends a JSON request and decodes the JSON answer into out.
func (a *campaignAPI) call(ctx context.Context, method, path string, q url.Values, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(b)
	}
	u := a.base + "/api/v1" + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "updraft-cli")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.hc.Do(req)
	if err != nil {
		return &client.NetError{Server: a.base, Err: err}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, client.MaxResponseBytes))
	if err != nil {
		return err
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		apiErr := &client.APIError{Status: resp.StatusCode, Message: strings.ToLower(http.StatusText(resp.StatusCode))}
		var eb struct {
			Error struct {
				Code     string             `json:"code"`
				Message  string             `json:"message"`
				Problems []campaign.Problem `json:"problems"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &eb) == nil && eb.Error.Code != "" {
			apiErr.Code, apiErr.Message = eb.Error.Code, eb.Error.Message
			if len(eb.Error.Problems) > 0 {
				var lines []string
				for _, p := range eb.Error.Problems {
					lines = append(lines, "  "+p.Field+": "+p.Message)
				}
				apiErr.Message = "the campaign cannot start:\n" + strings.Join(lines, "\n")
			}
		}
		return apiErr
	}
	if out == nil || len(b) == 0 {
		return nil
	}
	return json.Unmarshal(b, out)
}

// windowFlag collects maintenance windows written "HH:MM/DURATION" with an
// optional ",mon,tue…" list of days.
type windowFlag struct{ ws *[]tufmeta.Window }

func (w windowFlag) String() string { return "" }

func (w windowFlag) Set(v string) error {
	start, rest, ok := strings.Cut(v, "/")
	if !ok {
		return fmt.Errorf("want HH:MM/DURATION[,DAY…], e.g. 02:00/3h,sat,sun")
	}
	parts := strings.Split(rest, ",")
	d, err := time.ParseDuration(parts[0])
	if err != nil {
		return fmt.Errorf("window duration %q: %v", parts[0], err)
	}
	win := tufmeta.Window{Start: start, Duration: tufmeta.Duration(d)}
	days := map[string]time.Weekday{"sun": time.Sunday, "mon": time.Monday, "tue": time.Tuesday, "wed": time.Wednesday, "thu": time.Thursday, "fri": time.Friday, "sat": time.Saturday}
	for _, p := range parts[1:] {
		wd, ok := days[strings.ToLower(p)]
		if !ok {
			return fmt.Errorf("window day %q: want sun, mon, … sat", p)
		}
		win.Days = append(win.Days, wd)
	}
	*w.ws = append(*w.ws, win)
	return nil
}

// percentsFlag parses "1,5,25,100".
type percentsFlag struct{ p *[]float64 }

func (f percentsFlag) String() string { return "" }

func (f percentsFlag) Set(v string) error {
	for _, s := range splitList(v) {
		x, err := strconv.ParseFloat(strings.TrimSuffix(s, "%"), 64)
		if err != nil {
			return fmt.Errorf("wave %q is not a percentage", s)
		}
		*f.p = append(*f.p, x)
	}
	return nil
}

// stagingFlag collects staging waves written NAME=SELECTOR.
type stagingFlag struct{ ws *[]campaign.StagingWave }

func (f stagingFlag) String() string { return "" }

func (f stagingFlag) Set(v string) error {
	name, sel, ok := strings.Cut(v, "=")
	if !ok || name == "" || sel == "" {
		return fmt.Errorf("want NAME=SELECTOR, e.g. lab=tag:lab")
	}
	*f.ws = append(*f.ws, campaign.StagingWave{Name: name, Selector: sel})
	return nil
}

type timeFlag struct{ t **time.Time }

func (f timeFlag) String() string { return "" }

func (f timeFlag) Set(v string) error {
	t, err := time.Parse(time.RFC3339, v)
	if err != nil {
		return fmt.Errorf("want an RFC 3339 time such as 2026-04-01T02:00:00Z")
	}
	*f.t = &t
	return nil
}

// specFlags are the flags that build a campaign spec; create and
// preflight take the same ones.
type specFlags struct {
	s                campaign.Spec
	file             string
	minSoak, timeout time.Duration
}

func (f *specFlags) register(fs *flag.FlagSet) {
	s := &f.s
	fs.StringVar(&f.file, "file", "", "JSON campaign spec `file` (- for stdin)")
	fs.StringVar(&s.Selector, "selector", "", "device filter `expression` choosing the targets (default: all accepted devices)")
	fs.Var(listFlag{&s.Strata}, "strata", "device `fields` to stratify by (default device_type,hw_rev)")
	fs.Var(stagingFlag{&s.Plan.Staging}, "staging", "staging wave `NAME=SELECTOR` needing approval (repeatable)")
	fs.Var(percentsFlag{&s.Plan.Waves}, "waves", "production waves as cumulative `percentages`, e.g. 1,5,25,100 (default: from a power calculation)")
	fs.Float64Var(&s.Plan.ControlPercent, "control", 0, "hold-back control group in `percent` of the targets (default 1)")
	fs.BoolVar(&s.Plan.ApproveWaves, "approve-waves", false, "every production wave after the first needs approval")
	fs.Float64Var(&s.Pacing.PerMinute, "per-minute", 0, "most devices handed the release per `minute` (0: no limit)")
	fs.Float64Var(&s.Pacing.RampFactor, "ramp", 0, "multiply the rate by this `factor` every --ramp-every")
	fs.Var(durationFlag{(*time.Duration)(&s.Pacing.RampEvery)}, "ramp-every", "ramp `interval`")
	fs.IntVar(&s.Pacing.MaxInFlight, "max-in-flight", 0, "most devices updating at once (`count`; 0: no cap)")
	fs.Var(windowFlag{&s.Schedule.Windows}, "window", "maintenance window in device local time, `HH:MM/DURATION[,DAY…]` (repeatable)")
	fs.Var(timeFlag{&s.Schedule.Start}, "start-at", "start dispatching at this `time`")
	fs.Var(timeFlag{&s.Schedule.End}, "end-at", "stop dispatching at this `time`")
	fs.Var(timeFlag{&s.Schedule.Deadline}, "deadline", "after this `time` a critical release is forced")
	fs.StringVar(&s.Health.Preset, "preset", "", "health policy `preset`: standard, strict or relaxed")
	fs.DurationVar(&f.minSoak, "min-soak", 0, "soak `duration` of every wave before it may advance")
	fs.StringVar(&s.OnFailure.Action, "on-failure", "", "`action` on a halt: halt or rollback")
	fs.StringVar(&s.OnFailure.RollbackTo, "rollback-to", "", "`version` to roll back to (default: each device's previous one)")
	fs.DurationVar(&f.timeout, "device-timeout", 0, "a device making no progress this `long` times out (default 24h)")
	fs.BoolVar(&s.AllowBad, "allow-bad", false, "roll out a release marked bad (audited)")
	fs.BoolVar(&s.RequireStagedRelease, "require-staged-release", false, "refuse unless the release passed the staging waves of an earlier campaign (or this one has its own)")
	fs.BoolVar(&s.OverrideStaging, "override-staging", false, "start although the release rule would refuse (audited)")
}

// spec builds the spec from the file (if any), the flags and NAME RELEASE.
func (f *specFlags) spec(e *Env, args []string) (campaign.Spec, error) {
	spec := f.s
	if f.file != "" {
		var b []byte
		var err error
		if f.file == "-" {
			b, err = io.ReadAll(io.LimitReader(e.Stdin, 1<<20))
		} else {
			b, err = os.ReadFile(f.file)
		}
		if err != nil {
			return spec, fmt.Errorf("read spec: %w", err)
		}
		if spec, err = campaign.ParseSpec(b); err != nil {
			return spec, usageErrorf("%v", err)
		}
		mergeSpec(&spec, f.s)
	}
	switch len(args) {
	case 2:
		spec.Name, spec.Release = args[0], args[1]
	case 0:
		if spec.Name == "" || spec.Release == "" {
			return spec, usageErrorf("give NAME and RELEASE, or a --file with both")
		}
	default:
		return spec, usageErrorf("give both NAME and RELEASE")
	}
	if f.minSoak > 0 {
		spec.Health.MinSoak = campaign.Duration(f.minSoak)
	}
	if f.timeout > 0 {
		spec.DeviceTimeout = campaign.Duration(f.timeout)
	}
	return spec, nil
}

func campaignCreateCommand() *command {
	var (
		sf             specFlags
		preview, start bool
	)
	return &command{
		name:  "create",
		args:  "[NAME RELEASE]",
		short: "create a campaign (checked up front), or preview it",
		help: `Give the spec as flags, or as a JSON file with --file (flags then fill
in what the file leaves out). Everything that would stop the campaign from
ever completing is reported before it is created. --preview only shows
what it would target, per stratum, and its plan; "campaign preflight"
simulates it.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			sf.register(fs)
			fs.BoolVar(&preview, "preview", false, "only show what the campaign would do")
			fs.BoolVar(&start, "start", false, "start the campaign once created")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			spec, err := sf.spec(e, args)
			if err != nil {
				return err
			}
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			if preview {
				var pv campaign.Preview
				if err := api.call(ctx, "POST", "/campaigns/preview", nil, spec, &pv); err != nil {
					return err
				}
				if e.json() {
					return e.printJSON(pv)
				}
				printPreview(e, pv)
				return nil
			}
			var out struct {
				Campaign store.Campaign   `json:"campaign"`
				Preview  campaign.Preview `json:"preview"`
			}
			if err := api.call(ctx, "POST", "/campaigns", nil, spec, &out); err != nil {
				return err
			}
			c := out.Campaign
			if start {
				if err := api.call(ctx, "POST", "/campaigns/"+c.ID+"/start", nil, nil, &c); err != nil {
					return err
				}
			}
			if e.json() {
				return e.printJSON(c)
			}
			printPreview(e, out.Preview)
			fmt.Fprintf(e.Stdout, "created campaign %s (id %s), %s\n", c.Name, c.ID, c.State)
			return nil
		},
	}
}

// durationFlag is a time.Duration flag value.
type durationFlag struct{ d *time.Duration }

func (f durationFlag) String() string { return "" }

func (f durationFlag) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("want a duration such as 6h")
	}
	*f.d = d
	return nil
}

// mergeSpec fills what the file left empty from the flags.
func mergeSpec(dst *campaign.Spec, flags campaign.Spec) {
	if dst.Selector == "" {
		dst.Selector = flags.Selector
	}
	if len(dst.Strata) == 0 {
		dst.Strata = flags.Strata
	}
	if len(dst.Plan.Staging) == 0 {
		dst.Plan.Staging = flags.Plan.Staging
	}
	if len(dst.Plan.Waves) == 0 {
		dst.Plan.Waves = flags.Plan.Waves
	}
	if dst.Plan.ControlPercent == 0 {
		dst.Plan.ControlPercent = flags.Plan.ControlPercent
	}
	if dst.Pacing == (campaign.Pacing{}) {
		dst.Pacing = flags.Pacing
	}
	if len(dst.Schedule.Windows) == 0 {
		dst.Schedule.Windows = flags.Schedule.Windows
	}
	if dst.OnFailure == (campaign.Failure{}) {
		dst.OnFailure = flags.OnFailure
	}
	dst.AllowBad = dst.AllowBad || flags.AllowBad
}

func printPreview(e *Env, pv campaign.Preview) {
	fmt.Fprintln(e.Stdout, pv.Summary())
	for _, h := range pv.Hardware {
		mark := "ok"
		if !h.Covered {
			mark = "NO ARTIFACT"
		}
		fmt.Fprintf(e.Stdout, "  %s rev %s: %d devices, %s\n", h.DeviceType, h.HWRev, h.Devices, mark)
	}
	for _, s := range pv.Plan.Steps {
		line := fmt.Sprintf("  %s (%s): %d devices", s.Name, s.Kind, s.Planned)
		if s.Approval {
			line += ", needs approval"
		}
		if s.Detectable != nil {
			line += fmt.Sprintf(", detects a %.1f× install-failure regression", *s.Detectable)
		}
		fmt.Fprintln(e.Stdout, line)
	}
	if pv.Plan.Note != "" {
		fmt.Fprintln(e.Stdout, "  note: "+pv.Plan.Note)
	}
	for _, w := range pv.Warnings {
		fmt.Fprintln(e.Stdout, "  warning: "+w)
	}
	for _, p := range pv.Problems {
		fmt.Fprintf(e.Stdout, "  problem: %s: %s\n", p.Field, p.Message)
	}
}

func campaignListCommand() *command {
	var state string
	return &command{
		name:  "list",
		short: "list campaigns, newest first",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&state, "state", "", "only campaigns in these `states` (comma-separated)")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			q := url.Values{"limit": {"1000"}}
			if state != "" {
				q.Set("state", state)
			}
			var l client.List[store.Campaign]
			if err := api.call(ctx, "GET", "/campaigns", q, nil, &l); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			tw := e.table()
			fmt.Fprintln(tw, "NAME\tID\tKIND\tVERSION\tSTATE\tSTEP\tCREATED")
			for _, c := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\n", c.Name, c.ID, c.Kind, c.Version, c.State, c.Step, fmtTime(c.CreatedAt))
			}
			return tw.Flush()
		},
	}
}

// campaignView is GET /campaigns/{id} as the CLI reads it.
type campaignView struct {
	store.Campaign
	Steps []struct {
		Index   int            `json:"index"`
		Name    string         `json:"name"`
		Kind    string         `json:"kind"`
		Planned int            `json:"planned"`
		Devices map[string]int `json:"devices"`
	} `json:"steps"`
	HaltedStrata []string                `json:"halted_strata"`
	Rollbacks    []string                `json:"rollbacks"`
	LastDecision *store.CampaignDecision `json:"last_decision"`
}

// decisionTests is the part of a decision's detail the CLI shows.
type decisionTests struct {
	Tests []struct {
		Metric, Label, Outcome string
		Statistic, Threshold   float64
		Devices, Failures      int
		CanaryEvents           int
		ControlEvents          int
		CanaryHours            float64
		ControlHours           float64
	} `json:"tests"`
}

func printCampaign(e *Env, c campaignView) {
	fmt.Fprintf(e.Stdout, "%s (%s) — release %s — %s", c.Name, c.ID, c.Version, c.State)
	if c.StateReason != "" {
		fmt.Fprintf(e.Stdout, ": %s", c.StateReason)
	}
	fmt.Fprintln(e.Stdout)
	tw := e.table()
	fmt.Fprintln(tw, "STEP\tKIND\tPLANNED\tQUEUED\tUPDATING\tSUCCEEDED\tFAILED\tOTHER")
	for _, s := range c.Steps {
		cur := " "
		if s.Index == c.Step {
			cur = "*"
		}
		other := 0
		for st, n := range s.Devices {
			switch store.CampaignDeviceState(st) {
			case store.CDQueued, store.CDAssigned, store.CDSucceeded, store.CDFailed, store.CDRolledBack, store.CDTimedOut:
			default:
				other += n
			}
		}
		failed := s.Devices[string(store.CDFailed)] + s.Devices[string(store.CDRolledBack)] + s.Devices[string(store.CDTimedOut)]
		fmt.Fprintf(tw, "%s %s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\n", cur, s.Name, s.Kind, s.Planned, s.Devices[string(store.CDQueued)],
			s.Devices[string(store.CDAssigned)], s.Devices[string(store.CDSucceeded)], failed, other)
	}
	_ = tw.Flush()
	if len(c.HaltedStrata) > 0 {
		fmt.Fprintf(e.Stdout, "halted strata: %s\n", strings.Join(c.HaltedStrata, "; "))
	}
	if len(c.Rollbacks) > 0 {
		fmt.Fprintf(e.Stdout, "rollback campaigns: %s\n", strings.Join(c.Rollbacks, ", "))
	}
	if d := c.LastDecision; d != nil {
		fmt.Fprintf(e.Stdout, "latest decision (%s): %s\n", fmtTime(d.At), d.Summary)
		printTests(e, d.Detail)
	}
}

// printTests shows the gate statistics of a decision.
func printTests(e *Env, detail json.RawMessage) {
	var dt decisionTests
	if json.Unmarshal(detail, &dt) != nil || len(dt.Tests) == 0 {
		return
	}
	tw := e.table()
	fmt.Fprintln(tw, "  TEST\tGROUP\tOUTCOME\tSTATISTIC\tTHRESHOLD\tEVIDENCE")
	for _, t := range dt.Tests {
		ev := ""
		switch {
		case t.Metric == "install":
			ev = fmt.Sprintf("%d failed of %d", t.Failures, t.Devices)
		case t.CanaryHours > 0 || t.ControlHours > 0:
			ev = fmt.Sprintf("%d in %.0f h vs %d in %.0f h", t.CanaryEvents, t.CanaryHours, t.ControlEvents, t.ControlHours)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%.2f\t%.2f\t%s\n", t.Metric, t.Label, t.Outcome, t.Statistic, t.Threshold, orDash(ev))
	}
	_ = tw.Flush()
}

func campaignShowCommand() *command {
	var limit int
	return &command{
		name:  "show",
		args:  "ID",
		short: "show a campaign's progress per step and its decisions with explanations",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.IntVar(&limit, "decisions", 20, "how many recent `decisions` to list")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			var c campaignView
			if err := api.call(ctx, "GET", "/campaigns/"+url.PathEscape(args[0]), nil, nil, &c); err != nil {
				return err
			}
			var ds client.List[store.CampaignDecision]
			if err := api.call(ctx, "GET", "/campaigns/"+url.PathEscape(args[0])+"/decisions", url.Values{"limit": {strconv.Itoa(max(1, min(limit, 1000)))}}, nil, &ds); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]any{"campaign": c, "decisions": ds.Items})
			}
			printCampaign(e, c)
			if len(ds.Items) > 0 {
				fmt.Fprintln(e.Stdout, "decisions, newest first:")
			}
			for _, d := range ds.Items {
				fmt.Fprintf(e.Stdout, "  %s  %-7s %s\n      %s\n", fmtTime(d.At), d.Verdict, d.Action, d.Summary)
			}
			return nil
		},
	}
}

func campaignWatchCommand() *command {
	var interval time.Duration
	var count int
	return &command{
		name:  "watch",
		args:  "ID",
		short: "follow a campaign live: per-wave progress and gate statistics",
		help:  "Redraws every --interval until the campaign completes, halts or is aborted (or --count times).",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.DurationVar(&interval, "interval", 5*time.Second, "refresh `interval`")
			fs.IntVar(&count, "count", 0, "stop after this many `refreshes` (0: until the campaign ends)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if interval < 100*time.Millisecond {
				return usageErrorf("invalid value %v for flag --interval: at least 100ms", interval)
			}
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			tty := e.IsTerminal(e.Stdout)
			for i := 1; ; i++ {
				var c campaignView
				if err := api.call(ctx, "GET", "/campaigns/"+url.PathEscape(args[0]), nil, nil, &c); err != nil {
					return err
				}
				if tty {
					fmt.Fprint(e.Stdout, "\x1b[H\x1b[2J")
				} else if i > 1 {
					fmt.Fprintln(e.Stdout, "---")
				}
				fmt.Fprintf(e.Stdout, "%s\n", fmtTime(e.Clock.Now()))
				printCampaign(e, c)
				switch c.State {
				case store.CampaignCompleted, store.CampaignHalted, store.CampaignAborted:
					return nil
				}
				if count > 0 && i >= count {
					return nil
				}
				if !clock.Sleep(e.Clock, interval, ctx.Done()) {
					return ctx.Err()
				}
			}
		},
	}
}

func campaignActionCommand(name, short string) *command {
	var reason string
	return &command{
		name:  name,
		args:  "ID",
		short: short,
		api:   true,
		flags: func(fs *flag.FlagSet) {
			if name == "abort" || name == "rollback" {
				fs.StringVar(&reason, "reason", "", "`reason`, recorded in the audit log")
			}
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			api, err := e.campaignAPI()
			if err != nil {
				return err
			}
			var body any
			if reason != "" {
				body = map[string]string{"reason": reason}
			}
			var c store.Campaign
			if err := api.call(ctx, "POST", "/campaigns/"+url.PathEscape(args[0])+"/"+name, nil, body, &c); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(c)
			}
			fmt.Fprintf(e.Stdout, "campaign %s: %s\n", c.Name, describeState(c))
			return nil
		},
	}
}

func describeState(c store.Campaign) string {
	s := string(c.State)
	if c.StateReason != "" {
		s += " (" + c.StateReason + ")"
	}
	if c.FinalizedAt != nil {
		s += ", finalized"
	}
	keys := []string{}
	if c.ApprovedStep >= 0 {
		keys = append(keys, fmt.Sprintf("approved through step %d", c.ApprovedStep))
	}
	sort.Strings(keys)
	if len(keys) > 0 {
		s += ", " + strings.Join(keys, ", ")
	}
	return s
}
