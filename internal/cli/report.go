package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

func reportCommand() *command {
	return &command{
		name:  "report",
		short: "compliance reports: who runs what, who put it there, who is exposed",
		help: `Reports read the server's history; docs/compliance.md says what they can
and cannot tell.`,
		subs: []*command{reportComplianceCommand()},
	}
}

func reportComplianceCommand() *command {
	var (
		at, release, cve, format, file string
		severities                     []string
		exposed                        string
	)
	return &command{
		name:  "compliance",
		short: "which device ran which version, since when, put there by whom; and which are exposed",
		help: `For a point in time (--at, default now) lists every accepted or
decommissioned device with the version it ran, since when, where that is
known from (the assignment that installed it, or the device's own report),
the campaign and the audited approvals behind it, and its exposure to
vulnerable releases: its release was marked affected by a CVE at that time
(markings as of --at, from the audit log), or it misses a newer fix release
of severity high or critical (--severity) built for its hardware. --release
keeps the devices running one release; --severity or --cve lists only the
exposed devices (--exposed=false lists all).

--format table (default; -o json means --format json), csv (streamed by the
server) or json (every page in one document). -f writes to a file, replaced
only when the whole report has arrived.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&at, "at", "", "point in `time`: RFC 3339, or a date YYYY-MM-DD meaning the end of that day, UTC (default now)")
			fs.StringVar(&release, "release", "", "only devices running this `release` (version or id)")
			fs.Var(listFlag{&severities}, "severity", "`severities` whose newer releases count as missed fixes (comma-separated; default high,critical)")
			fs.StringVar(&cve, "cve", "", "only exposure through this `CVE` id")
			fs.StringVar(&exposed, "exposed", "", "`true`: only exposed devices; false: every device (default: true with --severity or --cve)")
			fs.StringVar(&format, "format", "", "output `format`: table, csv or json")
			fs.StringVar(&file, "f", "", "write to `file` instead of standard output")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if format == "" {
				format = "table"
				if e.json() {
					format = "json"
				}
			}
			if format != "table" && format != "csv" && format != "json" {
				return usageErrorf("invalid value %q for flag --format: want table, csv or json", format)
			}
			o := client.ComplianceOptions{At: at, Release: release, Severities: severities, CVE: cve}
			switch exposed {
			case "":
			case "true", "false":
				b := exposed == "true"
				o.Exposed = &b
			default:
				return usageErrorf("invalid value %q for flag --exposed: want true or false", exposed)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.writeOutput(file, func(w io.Writer) error {
				switch format {
				case "csv":
					body, err := c.ComplianceCSV(ctx, o)
					if err != nil {
						return err
					}
					defer body.Close()
					if _, err := io.Copy(w, body); err != nil {
						return fmt.Errorf("read the report: %w", err)
					}
					return nil
				case "json":
					return complianceJSON(ctx, c, o, w)
				}
				return complianceTable(ctx, c, o, w)
			})
		},
	}
}

// compliancePages calls fn with every page of the report.
func compliancePages(ctx context.Context, c *client.Client, o client.ComplianceOptions, fn func(client.ComplianceReport) error) error {
	o.Limit = store.MaxPageLimit
	for {
		page, err := c.Compliance(ctx, o)
		if err != nil {
			return err
		}
		if err := fn(page); err != nil {
			return err
		}
		if page.Next == "" {
			return nil
		}
		if page.Next == o.After {
			return fmt.Errorf("server returned the same page cursor %q twice", page.Next)
		}
		o.After = page.Next
	}
}

// complianceJSON writes every page as one JSON document: the first
// page's header fields and all the items, written as they arrive.
func complianceJSON(ctx context.Context, c *client.Client, o client.ComplianceOptions, w io.Writer) error {
	out := client.NewPagedJSON(w)
	err := compliancePages(ctx, c, o, func(p client.ComplianceReport) error {
		if !out.Started() {
			head := p
			head.Items, head.Next = nil, ""
			if err := out.Head(head); err != nil {
				return err
			}
		}
		for _, it := range p.Items {
			if err := out.Item(it); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	return out.Close()
}

// complianceTable prints the report as a table with a summary line.
func complianceTable(ctx context.Context, c *client.Client, o client.ComplianceOptions, w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 8, 2, ' ', 0)
	fmt.Fprintln(tw, "DEVICE\tSERIAL\tHARDWARE\tVERSION\tSINCE\tSOURCE\tCAMPAIGN\tAPPROVALS\tEXPOSURE")
	var at time.Time
	devices, exposedN := 0, 0
	byVersion := map[string]int{}
	err := compliancePages(ctx, c, o, func(p client.ComplianceReport) error {
		at = p.At
		for _, d := range p.Items {
			devices++
			if d.Exposed() {
				exposedN++
			}
			v := d.Version
			if v == "" {
				v = "unknown"
			}
			byVersion[v]++
			since := "-"
			if d.Since != nil {
				since = fmtTime(*d.Since)
			}
			campaign := d.CampaignName
			if campaign == "" {
				campaign = d.CampaignID
			}
			hw := d.DeviceType + " rev " + d.HWRev
			if d.State != store.DeviceAccepted {
				hw += " (" + string(d.State) + ")"
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.DeviceID, d.Serial, hw, orDash(d.Version), since, d.Source,
				orDash(campaign), orDash(approvalsText(d.Approvals)), orDash(exposuresText(d.Exposures)))
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	versions := make([]string, 0, len(byVersion))
	for v := range byVersion {
		versions = append(versions, v)
	}
	slices.Sort(versions)
	for i, v := range versions {
		versions[i] = fmt.Sprintf("%s: %d", v, byVersion[v])
	}
	_, err = fmt.Fprintf(w, "\n%d devices at %s, %d exposed; by version: %s\n", devices, at.UTC().Format(time.RFC3339), exposedN, orDash(strings.Join(versions, ", ")))
	return err
}

// approvalsText shows approvals as "action by actor, …" without the
// object-type prefix of the action.
func approvalsText(aps []store.Approval) string {
	var out []string
	for _, a := range aps {
		who := a.Actor.Name
		if who == "" {
			who = a.Actor.ID
		}
		action := a.Action
		if i := strings.IndexByte(action, '.'); i >= 0 {
			action = action[i+1:]
		}
		out = append(out, action+" by "+who)
	}
	return strings.Join(out, ", ")
}

// exposuresText shows exposures as "affected CVE-…" or "needs 1.1.0 (high)".
func exposuresText(xs []store.Exposure) string {
	var out []string
	for _, x := range xs {
		switch x.Reason {
		case store.ExposureAffected:
			out = append(out, "affected by "+strings.Join(x.CVEs, ","))
		case store.ExposureMissingFix:
			out = append(out, fmt.Sprintf("needs %s (%s)", x.Release, x.Severity))
		default:
			out = append(out, x.Reason+" "+x.Release)
		}
	}
	return strings.Join(out, "; ")
}

// writeOutput runs write against standard output, or, when file is set,
// against a temporary file in the same directory that replaces file only
// when write succeeded completely, so an interrupted download never leaves
// a short file behind under the final name.
func (e *Env) writeOutput(file string, write func(io.Writer) error) (err error) {
	if file == "" || file == "-" {
		return write(e.Stdout)
	}
	dir := filepath.Dir(file)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(file)+".*.partial")
	if err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	defer func() {
		if err != nil {
			_ = tmp.Close()
			_ = os.Remove(tmp.Name())
		}
	}()
	if err := write(tmp); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Sync(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := os.Rename(tmp.Name(), file); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	if err := atomicfile.SyncDir(dir); err != nil {
		return fmt.Errorf("write %s: %w", file, err)
	}
	fmt.Fprintf(e.Stderr, "wrote %s\n", file)
	return nil
}
