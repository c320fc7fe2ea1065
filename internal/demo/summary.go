package demo

import (
	"fmt"
	"io"
	"sort"
	"strings"
)

// summary prints what happened, from the result.
func (d *demo) summary() {
	r, w := d.res, d.w
	fmt.Fprintf(w, "\nSummary (seed %d, %d devices):\n", r.Seed, r.Devices)
	b := r.Bad
	if len(b.HaltedStrata) > 0 {
		where := fmt.Sprintf("wave %d of %d", b.Step+1, b.Waves)
		if b.Step >= b.Waves {
			where = "the control phase"
		}
		fmt.Fprintf(w, "  %s: the health gate halted %s in %s, when %d devices there had installed it (%d fleet-wide); %d were rolled back by the server",
			BadVersion, strings.Join(labels(b.HaltedStrata), ", "), where, b.ExposedHalted, b.Exposed, b.RolledBack)
		if b.SelfRolledBack > 0 {
			fmt.Fprintf(w, " and %d rolled back on their own", b.SelfRolledBack)
		}
		fmt.Fprintf(w, ". Campaign %s.\n", b.State)
		for _, t := range b.HaltTests {
			fmt.Fprintf(w, "    %s test, %s: statistic %.2f against its threshold %.2f\n", t.Metric, t.Group, t.Statistic, t.Threshold)
		}
		fmt.Fprintf(w, "    revision %s now runs: %s\n", r.BadRevision, fmtCounts(r.BadRevVersions, ""))
	} else {
		fmt.Fprintf(w, "  %s: the health gate did NOT halt it (campaign %s, %d devices installed it); the regression was too small for this fleet and seed to detect.\n",
			BadVersion, b.State, b.Exposed)
	}
	failures(w, BadVersion, b.Failures)
	g := r.Good
	fmt.Fprintf(w, "  %s: campaign %s through %d waves and the control group; %d of %d devices updated, in %s simulated.\n",
		GoodVersion, g.State, g.Waves, g.Updated, r.Devices, fmtSim(g.Simulated))
	failures(w, GoodVersion, g.Failures)
	fmt.Fprintf(w, "  fleet now runs: %s\n", fmtCounts(r.FinalVersions, ""))
	fmt.Fprintf(w, "  elapsed: %s real, %s simulated\n", round(r.Real), fmtSim(r.Simulated))
}

func labels(strata []string) []string {
	out := make([]string, len(strata))
	for i, s := range strata {
		if s == "*" {
			out[i] = "the whole campaign"
			continue
		}
		out[i] = "revision " + strings.TrimSuffix(strings.TrimPrefix(label(s), "rev "), ":")
	}
	return out
}

// failures lists why devices failed a campaign.
func failures(w io.Writer, version string, m map[string]int) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "    %s: %d × %s\n", version, m[k], k)
	}
}
