package cli

import (
	"context"
	"flag"
	"fmt"
	"strings"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

func releaseCommand() *command {
	return &command{
		name:  "release",
		short: "create, upload, publish and flag releases",
		help: `A release is created as a draft, receives its artifacts, and is published;
after that it is immutable except for the audited flags bad and affected-by.
RELEASE arguments take a release id or a version.`,
		subs: []*command{
			releaseCreateCommand(),
			releaseUploadCommand(),
			releasePublishCommand(),
			releaseListCommand(),
			releaseShowCommand(),
			releaseMarkBadCommand(),
			releaseMarkAffectedCommand(),
			releaseSignCommand(),
			releaseUploadMetadataCommand(),
			releaseFinalizeCommand(),
		},
	}
}

func releaseCreateCommand() *command {
	var (
		notes    string
		secVer   int64
		severity string
		cves     []string
	)
	return &command{
		name:  "create",
		args:  "VERSION",
		short: "create a draft release",
		help:  "VERSION is a semantic version such as 1.4.0 or 2.0.0-rc.1.",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&notes, "notes", "", "release `notes`")
			fs.Int64Var(&secVer, "security-version", 0, "anti-rollback security `version` (an integer that only grows)")
			fs.StringVar(&severity, "severity", "", "`severity`: low, medium, high or critical (default: the server's)")
			fs.Var(listFlag{&cves}, "cve", "`CVE` ids the release fixes (comma-separated, repeatable)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if _, err := semver.Parse(args[0]); err != nil {
				return usageErrorf("VERSION %q is not a semantic version: %v", args[0], err)
			}
			if secVer < 0 {
				return usageErrorf("invalid value %d for flag --security-version: must not be negative", secVer)
			}
			switch store.Severity(severity) {
			case "", store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
			default:
				return usageErrorf("invalid value %q for flag --severity: want low, medium, high or critical", severity)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.CreateRelease(ctx, client.NewRelease{Version: args[0], Notes: notes, SecurityVersion: secVer, Severity: severity, CVEs: cves})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(r)
			}
			fmt.Fprintf(e.Stdout, "created draft release %s (id %s)\n", r.Version, r.ID)
			return nil
		},
	}
}

func releasePublishCommand() *command {
	return &command{
		name:  "publish",
		args:  "RELEASE",
		short: "publish a draft release, making it immutable",
		api:   true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			id, err := releaseID(ctx, c, args[0])
			if err != nil {
				return err
			}
			r, err := c.PublishRelease(ctx, id)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(r)
			}
			fmt.Fprintf(e.Stdout, "published release %s with %d artifact(s)\n", r.Version, len(r.Artifacts))
			return nil
		},
	}
}

func releaseListCommand() *command {
	var page pageFlags
	return &command{
		name:  "list",
		short: "list releases",
		api:   true,
		flags: func(fs *flag.FlagSet) { page.register(fs, "releases") },
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, c.ListReleases)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			tw := e.table()
			fmt.Fprintln(tw, "VERSION\tID\tSTATE\tSEVERITY\tSECURITY VERSION\tARTIFACTS\tFLAGS\tCREATED")
			for _, r := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%s\t%s\n", r.Version, r.ID, r.State, orDash(string(r.Severity)),
					r.SecurityVersion, len(r.Artifacts), orDash(releaseFlags(r)), fmtTime(r.CreatedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			page.moreNote(e, l.Next, "releases")
			return nil
		},
	}
}

// releaseFlags summarizes a release's audited flags for a table cell.
func releaseFlags(r store.Release) string {
	var f []string
	if r.Bad {
		f = append(f, "bad")
	}
	if len(r.AffectedBy) > 0 {
		f = append(f, "affected:"+strings.Join(r.AffectedBy, ","))
	}
	return strings.Join(f, " ")
}

func releaseShowCommand() *command {
	return &command{
		name:  "show",
		args:  "RELEASE",
		short: "show a release and its artifacts",
		api:   true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			r, err := c.Release(ctx, args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(r)
			}
			return printRelease(e, r)
		},
	}
}

func printRelease(e *Env, r store.Release) error {
	tw := e.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("Version", r.Version)
	row("ID", r.ID)
	row("State", string(r.State))
	row("Severity", orDash(string(r.Severity)))
	row("Security version", fmt.Sprint(r.SecurityVersion))
	row("Fixes", orDash(strings.Join(r.CVEs, ", ")))
	bad := "no"
	if r.Bad {
		bad = "yes"
		if r.BadReason != "" {
			bad += " (" + r.BadReason + ")"
		}
	}
	row("Bad", bad)
	row("Affected by", orDash(strings.Join(r.AffectedBy, ", ")))
	row("Created", fmtTime(r.CreatedAt))
	row("Published", fmtTimePtr(r.PublishedAt))
	if err := tw.Flush(); err != nil {
		return err
	}
	if r.Notes != "" {
		fmt.Fprintf(e.Stdout, "\nNotes:\n")
		for _, l := range strings.Split(strings.TrimRight(r.Notes, "\n"), "\n") {
			fmt.Fprintf(e.Stdout, "  %s\n", l)
		}
	}
	fmt.Fprintf(e.Stdout, "\nArtifacts:\n")
	if len(r.Artifacts) == 0 {
		fmt.Fprintf(e.Stdout, "  none\n")
		return nil
	}
	tw = e.table()
	fmt.Fprintln(tw, "  NAME\tTYPE\tDEVICE TYPE\tREVS\tCOMPONENT\tSIZE\tSHA256")
	for _, a := range r.Artifacts {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Name, a.Type, a.DeviceType, orDash(strings.Join(a.HWRevs, ",")),
			orDash(a.Component), fmtBytes(a.Size), a.SHA256)
	}
	return tw.Flush()
}

func releaseMarkBadCommand() *command {
	var (
		reason string
		undo   bool
	)
	return &command{
		name:  "mark-bad",
		args:  "RELEASE",
		short: "flag a release as bad so no new campaign uses it",
		help:  "With --undo the flag is cleared. Both changes are audited.",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&reason, "reason", "", "why the release is bad (required unless --undo)")
			fs.BoolVar(&undo, "undo", false, "clear the bad flag")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if !undo && strings.TrimSpace(reason) == "" {
				return usageErrorf("--reason is required (or --undo to clear the flag)")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			id, err := releaseID(ctx, c, args[0])
			if err != nil {
				return err
			}
			r, err := c.MarkBad(ctx, id, client.MarkBadRequest{Bad: !undo, Reason: reason})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(r)
			}
			if r.Bad {
				fmt.Fprintf(e.Stdout, "release %s marked bad: %s\n", r.Version, r.BadReason)
			} else {
				fmt.Fprintf(e.Stdout, "release %s is no longer marked bad\n", r.Version)
			}
			return nil
		},
	}
}

func releaseMarkAffectedCommand() *command {
	var cves []string
	return &command{
		name:  "mark-affected",
		args:  "RELEASE",
		short: "record CVEs found to affect a published release",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.Var(listFlag{&cves}, "cve", "`CVE` ids (comma-separated, repeatable)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if len(cves) == 0 {
				return usageErrorf("--cve is required")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			id, err := releaseID(ctx, c, args[0])
			if err != nil {
				return err
			}
			r, err := c.MarkAffected(ctx, id, cves)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(r)
			}
			fmt.Fprintf(e.Stdout, "release %s affected by: %s\n", r.Version, strings.Join(r.AffectedBy, ", "))
			return nil
		},
	}
}

// releaseID resolves a release id or version to the release id.
func releaseID(ctx context.Context, c *client.Client, idOrVersion string) (string, error) {
	r, err := c.Release(ctx, idOrVersion)
	if err != nil {
		return "", err
	}
	return r.ID, nil
}

// fmtBytes shows a size in decimal units (as disk and network tools do).
func fmtBytes(n int64) string {
	switch {
	case n < 1000:
		return fmt.Sprintf("%d B", n)
	case n < 1000*1000:
		return fmt.Sprintf("%.1f kB", float64(n)/1e3)
	case n < 1000*1000*1000:
		return fmt.Sprintf("%.1f MB", float64(n)/1e6)
	default:
		return fmt.Sprintf("%.2f GB", float64(n)/1e9)
	}
}
