package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

func auditCommand() *command {
	return &command{
		name:  "audit",
		short: "read the audit log",
		subs:  []*command{auditListCommand()},
	}
}

func auditListCommand() *command {
	var (
		action, objectType, objectID string
		page                         pageFlags
	)
	return &command{
		name:  "list",
		short: "list audit entries: who changed what, and when",
		api:   true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&action, "action", "", "only this `action`, e.g. device.accept")
			fs.StringVar(&objectType, "object-type", "", "only objects of this `type`, e.g. device or release")
			fs.StringVar(&objectID, "object-id", "", "only the object with this `id`")
			page.register(fs, "entries")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, func(ctx context.Context, o client.ListOptions) (client.List[store.AuditEntry], error) {
				return c.ListAudit(ctx, client.AuditListOptions{Action: action, ObjectType: objectType, ObjectID: objectID, ListOptions: o})
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
