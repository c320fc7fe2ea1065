package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/health"
	"github.com/updraft/updraft/internal/store"
)

// watcher reads a campaign's progress back from the store and prints the
// engine's decisions as they are stored.
type watcher struct {
	d        *demo
	id       string
	seq      int64
	verdict  string // of the last decision printed
	rollback map[string]bool
}

// poll returns the campaign, its runtime and a one-line progress report,
// after printing the decisions stored since the last poll.
func (w *watcher) poll(ctx context.Context) (store.Campaign, campaign.Runtime, string, error) {
	d := w.d
	c, err := d.st.Campaign(ctx, store.DefaultTenant, w.id)
	if err != nil {
		return c, campaign.Runtime{}, "", err
	}
	rt, err := campaign.RuntimeOf(c)
	if err != nil {
		return c, rt, "", err
	}
	plan, err := campaign.PlanOf(c)
	if err != nil {
		return c, rt, "", err
	}
	ds, err := d.decisions(ctx, w.id, w.seq)
	if err != nil {
		return c, rt, "", err
	}
	for _, dec := range ds {
		w.seq = dec.Seq
		w.print(dec, plan)
	}
	if w.rollback == nil {
		w.rollback = map[string]bool{}
	}
	for _, id := range rt.Rollbacks {
		if !w.rollback[id] {
			w.rollback[id] = true
			fmt.Fprintf(d.w, "  [%s] rollback campaign %s moves the halted devices back to their previous release\n", d.stamp(), id)
		}
	}
	tallies, err := d.st.CampaignTallies(ctx, store.DefaultTenant, w.id)
	if err != nil {
		return c, rt, "", err
	}
	var b strings.Builder
	step := c.Step - plan.Staging + 1
	switch {
	case c.Step >= plan.ControlPhase():
		fmt.Fprintf(&b, "%s control group", c.Version)
	default:
		fmt.Fprintf(&b, "%s wave %d/%d", c.Version, step, plan.Production())
	}
	fmt.Fprintf(&b, " %s |", c.State)
	b.WriteString(strata(tallies, rt.HaltedStrata))
	for _, id := range rt.Rollbacks {
		ts, err := d.st.CampaignTallies(ctx, store.DefaultTenant, id)
		if err == nil {
			n := count(ts)
			fmt.Fprintf(&b, " | rollback %d/%d back", n[store.CDSucceeded], total(n))
		}
	}
	fmt.Fprintf(&b, " | fleet %s", fmtCounts(d.versions(nil), ""))
	if rt.LastVerdict != "" {
		fmt.Fprintf(&b, " | %s", rt.LastVerdict)
		if rt.LastVerdict == string(health.Hold) && rt.SoakStartedAt != nil {
			fmt.Fprintf(&b, " (soaked %s)", fmtSim(d.clock.Now().Sub(*rt.SoakStartedAt)))
		}
	}
	return c, rt, b.String(), nil
}

// print writes a stored decision: advances and halts in full with the
// tests that rejected, holds only when the verdict changes.
func (w *watcher) print(dec store.CampaignDecision, plan campaign.Resolved) {
	d := w.d
	if dec.Verdict == string(health.Hold) && w.verdict == dec.Verdict {
		return
	}
	w.verdict = dec.Verdict
	where := fmt.Sprintf("wave %d", dec.Step-plan.Staging+1)
	if dec.Step >= plan.ControlPhase() {
		where = "control phase"
	}
	fmt.Fprintf(d.w, "  [sim +%s] decision in %s: %s — %s\n", fmtSim(dec.At.Sub(d.clock.Start())), where, strings.ToUpper(dec.Verdict), dec.Action)
	fmt.Fprintf(d.w, "      %s\n", wrap(dec.Summary, 100, "      "))
	for _, t := range rejected(dec) {
		fmt.Fprintf(d.w, "      rejected: %s, %s: statistic %.2f ≥ threshold %.2f\n", t.Metric, t.Group, t.Statistic, t.Threshold)
	}
}

// strata writes per-stratum device counts: updated, in progress, failed
// and waiting.
func strata(tallies []store.CampaignTally, halted []string) string {
	by := map[string]map[store.CampaignDeviceState]int{}
	for _, t := range tallies {
		if by[t.Stratum] == nil {
			by[t.Stratum] = map[store.CampaignDeviceState]int{}
		}
		by[t.Stratum][t.State] += t.N
	}
	keys := make([]string, 0, len(by))
	for k := range by {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		n := by[k]
		fmt.Fprintf(&b, " %s %d ok", label(k), n[store.CDSucceeded])
		if v := n[store.CDAssigned]; v > 0 {
			fmt.Fprintf(&b, " %d updating", v)
		}
		if v := n[store.CDFailed] + n[store.CDRolledBack] + n[store.CDTimedOut]; v > 0 {
			fmt.Fprintf(&b, " %d failed", v)
		}
		if v := n[store.CDQueued]; v > 0 {
			fmt.Fprintf(&b, " %d queued", v)
		}
		if v := n[store.CDCanceled] + n[store.CDSkipped] + n[store.CDSuperseded] + n[store.CDExcluded]; v > 0 {
			fmt.Fprintf(&b, " %d stopped", v)
		}
		if contains(halted, k) || contains(halted, "*") {
			b.WriteString(" HALTED")
		}
		b.WriteString(";")
	}
	return strings.TrimSuffix(b.String(), ";")
}

// label shortens a stratum key ("device_type=gw-200,hw_rev=B") to the
// hardware revision when it has one.
func label(key string) string {
	for _, part := range strings.Split(key, ",") {
		if v, ok := strings.CutPrefix(part, store.CountByHWRev+"="); ok {
			return "rev " + v + ":"
		}
	}
	return key + ":"
}

func count(ts []store.CampaignTally) map[store.CampaignDeviceState]int {
	out := map[store.CampaignDeviceState]int{}
	for _, t := range ts {
		out[t.State] += t.N
	}
	return out
}

func total(m map[store.CampaignDeviceState]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// wrap breaks s into lines of at most width characters, indenting the
// continuation lines.
func wrap(s string, width int, indent string) string {
	var b strings.Builder
	n := 0
	for i, word := range strings.Fields(s) {
		if i > 0 {
			if n+1+len(word) > width {
				b.WriteString("\n" + indent)
				n = 0
			} else {
				b.WriteByte(' ')
				n++
			}
		}
		b.WriteString(word)
		n += len(word)
	}
	return b.String()
}
