package reliability

import (
	"fmt"
	"io"
	"text/tabwriter"
	"time"
)

// WriteTable prints reports as one table, a row per run.
func WriteTable(w io.Writer, reports ...*Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BACKEND\tDEVICES\tFAULTS\tBRICKED\tREPORTS LOST\tCAMPAIGNS OK\tTIME TO HALT\tEXPOSED (REV B)\tCANCELED\tGOOD CAMPAIGN\tKILLS\tPOWER CUTS\tWATCHDOG\tDROPS\tSIMULATED\tWALL")
	for _, r := range reports {
		ok := 0
		for _, c := range r.Campaigns {
			if c.State == c.Want {
				ok++
			}
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%d\t%d/%d\t%s\t%d (%d)\t%d\t%s\t%d\t%d\t%d\t%d\t%s\t%s\n",
			r.Backend, r.Devices, r.Faults, r.Bricked, r.ReportsLost, ok, len(r.Campaigns),
			simDuration(r.TimeToHalt), r.Exposed, r.ExposedBadRev, r.Canceled, simDuration(r.GoodDuration),
			r.Kills, r.PowerCuts, r.WatchdogResets, r.Dropped, simDuration(r.Simulated), r.Wall.Round(100*time.Millisecond))
	}
	return tw.Flush()
}

// String is the faults in a table cell.
func (f Faults) String() string {
	if f == (Faults{}) {
		return "none"
	}
	s := fmt.Sprintf("drop %.0f%% cut %.0f%%", f.DropRate*100, f.PowerCutRate*100)
	if f.KillServer {
		s += " kill"
	}
	return s
}

func simDuration(d time.Duration) string {
	if d == 0 {
		return "-"
	}
	return d.Round(time.Minute).String()
}

// Summary is one line about the run, for logs and failure messages.
func (r *Report) Summary() string {
	return fmt.Sprintf("%s seed %d, %d devices, faults %s: bricked %d, reports lost %d (%d devices), unsent %d, time to halt %s, exposed %d (rev %s %d), versions %s",
		r.Backend, r.Seed, r.Devices, r.Faults, r.Bricked, r.ReportsLost, r.DevicesWithGaps, r.Unsent, simDuration(r.TimeToHalt),
		r.Exposed, BadRev, r.ExposedBadRev, sortedVersions(r.Versions))
}
