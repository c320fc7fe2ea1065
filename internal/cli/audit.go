package cli

import (
	"context"
	"flag"
	"fmt"
	"io"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

func auditCommand() *command {
	return &command{
		name:  "audit",
		short: "read the audit log",
		subs:  []*command{auditListCommand(), auditExportCommand()},
	}
}

func auditListCommand() *command {
	var (
		filter auditFilterFlags
		page   pageFlags
	)
	return &command{
		name:  "list",
		short: "list audit entries: who changed what, and when",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			filter.register(fs)
			page.register(fs, "entries")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			o, err := filter.options()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, func(ctx context.Context, lo client.ListOptions) (client.List[store.AuditEntry], error) {
				q := o
				q.ListOptions = lo
				return c.ListAudit(ctx, q)
			})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			tw := e.table()
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tACTION\tOBJECT")
			for _, a := range l.Items {
				actor := a.Actor.Name
				if actor == "" {
					actor = a.Actor.ID
				}
				fmt.Fprintf(tw, "%d\t%s\t%s:%s\t%s\t%s %s\n", a.Seq, fmtTime(a.At), a.Actor.Kind, actor, a.Action, a.ObjectType, a.ObjectID)
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			page.moreNote(e, l.Next, "entries")
			return nil
		},
	}
}

// auditFilterFlags are the filters audit list and audit export share.
type auditFilterFlags struct {
	action, objectType, objectID, actor, since, until string
}

func (f *auditFilterFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.action, "action", "", "only this `action`, e.g. device.accept")
	fs.StringVar(&f.objectType, "object-type", "", "only objects of this `type`, e.g. device or release")
	fs.StringVar(&f.objectID, "object-id", "", "only the object with this `id`")
	fs.StringVar(&f.actor, "actor", "", "only changes by this actor `id` (a user or token id)")
	fs.StringVar(&f.since, "since", "", "only entries at or after this `time` (RFC 3339, or a date YYYY-MM-DD: its start, UTC)")
	fs.StringVar(&f.until, "until", "", "only entries before this `time` (RFC 3339, or a date YYYY-MM-DD: its start, UTC)")
}

func (f *auditFilterFlags) options() (client.AuditListOptions, error) {
	o := client.AuditListOptions{Action: f.action, ObjectType: f.objectType, ObjectID: f.objectID, Actor: f.actor}
	var err error
	if o.Since, err = parseTimeOrDate("since", f.since); err != nil {
		return o, err
	}
	if o.Until, err = parseTimeOrDate("until", f.until); err != nil {
		return o, err
	}
	if !o.Since.IsZero() && !o.Until.IsZero() && !o.Since.Before(o.Until) {
		return o, usageErrorf("--since must be before --until")
	}
	return o, nil
}

// parseTimeOrDate reads an optional RFC 3339 time or a date, which means
// the start of that day in UTC.
func parseTimeOrDate(name, s string) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, usageErrorf("invalid value %q for flag --%s: want an RFC 3339 time such as 2026-03-01T12:00:00Z or a date such as 2026-03-01", s, name)
}

func auditExportCommand() *command {
	var (
		filter       auditFilterFlags
		format, file string
	)
	return &command{
		name:  "export",
		short: "export every matching audit entry as CSV or JSON",
		help: `Streams every entry that matches the filters, newest first, as CSV (the
default) or as one JSON array. -f writes to a file, replaced only when the
whole export has arrived; a transfer the server broke off fails and leaves
no file.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			filter.register(fs)
			fs.StringVar(&format, "format", "csv", "file `format`: csv or json")
			fs.StringVar(&file, "f", "", "write to `file` instead of standard output")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if format != "csv" && format != "json" {
				return usageErrorf("invalid value %q for flag --format: want csv or json", format)
			}
			o, err := filter.options()
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.writeOutput(file, func(w io.Writer) error {
				body, err := c.ExportAudit(ctx, o, format)
				if err != nil {
					return err
				}
				defer body.Close()
				if _, err := io.Copy(w, body); err != nil {
					return fmt.Errorf("read the export: %w", err)
				}
				return nil
			})
		},
	}
}
