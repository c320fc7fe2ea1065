package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"sort"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

func deviceCommand() *command {
	return &command{
		name:  "device",
		short: "list, inspect, accept, tag and assign devices",
		help:  "Devices enroll themselves and wait as pending until an operator accepts them.",
		subs: []*command{
			deviceListCommand(),
			deviceShowCommand(),
			deviceStateCommand("accept", "accept a pending device so it may receive updates", (*client.Client).AcceptDevice, "accepted"),
			deviceStateCommand("reject", "reject a pending device", (*client.Client).RejectDevice, "rejected"),
			deviceStateCommand("decommission", "revoke every credential of a device and cancel its work", (*client.Client).DecommissionDevice, "decommissioned"),
			deviceTagCommand(),
			deviceAssignCommand(),
		},
	}
}

func deviceListCommand() *command {
	var (
		filterSrc, state string
		page             pageFlags
	)
	return &command{
		name:  "list",
		short: "list devices, optionally filtered",
		help: `The filter language is described in docs/filter-language.md, for example

  updraft device list --filter 'device_type == "gw-200" and hw_rev in ("B","C") and tag:lab'`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&filterSrc, "filter", "", "filter `expression`")
			fs.StringVar(&state, "state", "", "only devices in this `state`: pending, accepted, rejected or decommissioned")
			page.register(fs, "devices")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if filterSrc != "" {
				if _, err := filter.Parse(filterSrc); err != nil {
					return filterUsageError(filterSrc, err)
				}
			}
			switch store.DeviceState(state) {
			case "", store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned:
			default:
				return usageErrorf("invalid value %q for flag --state: want pending, accepted, rejected or decommissioned", state)
			}
			if err := page.check(); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, func(ctx context.Context, o client.ListOptions) (client.List[store.Device], error) {
				return c.ListDevices(ctx, client.DeviceListOptions{Filter: filterSrc, State: state, ListOptions: o})
			})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			tw := e.table()
			fmt.Fprintln(tw, "ID\tSERIAL\tSTATE\tTYPE\tREV\tVERSION\tLAST SEEN\tTAGS")
			for _, d := range l.Items {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", d.ID, d.Serial, d.State,
					orDash(d.DeviceType), orDash(d.HWRev), orDash(d.Version), fmtTimePtr(d.LastSeenAt),
					orDash(strings.Join(d.Tags, ",")))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			page.moreNote(e, l.Next, "devices")
			return nil
		},
	}
}

// filterUsageError shows where a filter is wrong:
//
//	updraft: bad --filter: column 16: expected a string after "=="
//	  device_type == and tag:lab
//	                 ^
func filterUsageError(src string, err error) error {
	var se *filter.SyntaxError
	if !errors.As(err, &se) {
		return usageErrorf("bad --filter: %v", err)
	}
	lines := strings.Split(src, "\n")
	msg := strings.TrimPrefix(se.Error(), "filter: ")
	if se.Line < 1 || se.Line > len(lines) {
		return usageErrorf("bad --filter: %s", msg)
	}
	line := lines[se.Line-1]
	col := min(se.Column-1, utf8.RuneCountInString(line))
	return usageErrorf("bad --filter: %s\n  %s\n  %s^", msg, line, strings.Repeat(" ", max(col, 0)))
}

func deviceShowCommand() *command {
	return &command{
		name:  "show",
		args:  "ID",
		short: "show one device",
		api:   true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			d, err := c.Device(ctx, args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(d)
			}
			return printDevice(e, d)
		},
	}
}

func printDevice(e *Env, dd client.DeviceDetail) error {
	d := dd.Device
	tw := e.table()
	row := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, v) }
	row("ID", d.ID)
	row("Serial", d.Serial)
	row("State", string(d.State))
	row("Protocol", orDash(string(d.Protocol)))
	row("Device type", orDash(d.DeviceType))
	row("HW revision", orDash(d.HWRev))
	row("Region", orDash(d.Region))
	row("Time zone", orDash(d.TimeZone))
	v := orDash(d.Version)
	if d.VersionSince != nil {
		v += " (since " + fmtTime(*d.VersionSince) + ")"
	}
	row("Version", v)
	if d.PreviousVersion != "" {
		row("Previous version", d.PreviousVersion)
	}
	row("Security floor", fmt.Sprint(d.SecurityFloor))
	row("Tags", orDash(strings.Join(d.Tags, ", ")))
	row("Groups", orDash(strings.Join(d.Groups, ", ")))
	row("Created", fmtTime(d.CreatedAt))
	row("Last seen", fmtTimePtr(d.LastSeenAt))
	if d.PendingExpiresAt != nil {
		row("Pending until", fmtTime(*d.PendingExpiresAt))
	}
	if len(d.Attributes) > 0 {
		fmt.Fprintln(tw, "Attributes:\t")
		keys := make([]string, 0, len(d.Attributes))
		for k := range d.Attributes {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			fmt.Fprintf(tw, "  %s\t%s\n", k, d.Attributes[k])
		}
	}
	if a := dd.ActiveAssignment; a != nil {
		row("Assignment", fmt.Sprintf("%s %s (%s, %d%%)", orDash(a.Version), a.State, a.ID, a.Progress))
	} else {
		row("Assignment", "-")
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(dd.Credentials) > 0 {
		fmt.Fprintf(e.Stdout, "\nCredentials:\n")
		tw = e.table()
		fmt.Fprintln(tw, "  ID\tKIND\tALGORITHM\tSTATE\tFINGERPRINT\tCREATED")
		for _, c := range dd.Credentials {
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Kind, orDash(c.Algorithm), c.State, c.Fingerprint, fmtTime(c.CreatedAt))
		}
		return tw.Flush()
	}
	return nil
}

func deviceStateCommand(name, short string, do func(*client.Client, context.Context, string) (store.Device, error), past string) *command {
	return &command{
		name:  name,
		args:  "ID",
		short: short,
		api:   true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			d, err := do(c, ctx, args[0])
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(d)
			}
			fmt.Fprintf(e.Stdout, "device %s (%s) %s\n", d.ID, d.Serial, past)
			return nil
		},
	}
}

func deviceTagCommand() *command {
	var add, remove []string
	return &command{
		name:  "tag",
		args:  "ID",
		short: "add and remove tags of a device",
		help:  "Tags are matched by filters as tag:NAME.",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.Var(listFlag{&add}, "add", "comma-separated `tags` to add (repeatable)")
			fs.Var(listFlag{&remove}, "remove", "comma-separated `tags` to remove (repeatable)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if len(add) == 0 && len(remove) == 0 {
				return usageErrorf("nothing to do: give --add or --remove")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			d, err := c.TagDevice(ctx, args[0], add, remove)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(d)
			}
			fmt.Fprintf(e.Stdout, "device %s tags: %s\n", d.ID, orDash(strings.Join(d.Tags, ", ")))
			return nil
		},
	}
}

func deviceAssignCommand() *command {
	var allowBad bool
	return &command{
		name:  "assign",
		args:  "ID RELEASE",
		short: "assign a release to one device",
		help: `RELEASE is a release id or version. The device receives the release at its
next check-in; an earlier active assignment is superseded. A release marked
bad is refused unless --allow-bad is given (the override is audited).`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.BoolVar(&allowBad, "allow-bad", false, "assign even if the release is marked bad")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			res, err := c.AssignRelease(ctx, args[0], client.AssignRequest{Release: args[1], AllowBad: allowBad})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(res)
			}
			a := res.Assignment
			fmt.Fprintf(e.Stdout, "assigned release %s to device %s (assignment %s, %s)\n", orDash(a.Version), a.DeviceID, a.ID, a.State)
			if s := res.Superseded; s != nil {
				fmt.Fprintf(e.Stdout, "superseded assignment %s of release %s\n", s.ID, orDash(s.Version))
			}
			return nil
		},
	}
}

// pageFlags are the paging flags of list commands.
type pageFlags struct {
	limit int
	after string
	all   bool
}

func (p *pageFlags) register(fs *flag.FlagSet, what string) {
	fs.IntVar(&p.limit, "limit", 0, "at most `N` "+what+" per page (default: the server's)")
	fs.StringVar(&p.after, "after", "", "start after this `cursor` (from a previous page)")
	fs.BoolVar(&p.all, "all", false, "fetch every page")
}

func (p *pageFlags) check() error {
	if p.limit < 0 || p.limit > store.MaxPageLimit {
		return usageErrorf("invalid value %d for flag --limit: want 1 to %d", p.limit, store.MaxPageLimit)
	}
	return nil
}

// moreNote tells on stderr how to get the next page, if there is one.
func (p *pageFlags) moreNote(e *Env, next, what string) {
	if next != "" {
		fmt.Fprintf(e.Stderr, "more %s: use --all, or --after %s for the next page\n", what, next)
	}
}

// collect fetches one page, or every page with --all.
func collect[T any](ctx context.Context, p pageFlags, list func(context.Context, client.ListOptions) (client.List[T], error)) (client.List[T], error) {
	o := client.ListOptions{Limit: p.limit, After: p.after}
	out := client.List[T]{Items: []T{}}
	for {
		l, err := list(ctx, o)
		if err != nil {
			return out, err
		}
		out.Items = append(out.Items, l.Items...)
		out.Next = l.Next
		if !p.all || l.Next == "" {
			return out, nil
		}
		if l.Next == o.After {
			return out, fmt.Errorf("server returned the same page cursor %q twice", l.Next)
		}
		o.After = l.Next
	}
}

// fmtTime shows a time in UTC, to the second.
func fmtTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func fmtTimePtr(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return fmtTime(*t)
}
