package cli

import (
	"context"
	"flag"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/store"
)

func tokenCommand() *command {
	return &command{
		name:  "token",
		short: "create, list and revoke API tokens",
		help:  "API tokens authenticate the CLI and automation; each carries a role: admin, operator or viewer.",
		subs: []*command{
			tokenCreateCommand(),
			tokenListCommand(),
			tokenRevokeCommand(),
		},
	}
}

// checkRole validates a --role flag.
func checkRole(role string) error {
	switch store.Role(role) {
	case store.RoleAdmin, store.RoleOperator, store.RoleViewer:
		return nil
	case "":
		return usageErrorf("--role is required: admin, operator or viewer")
	}
	return usageErrorf("invalid value %q for flag --role: want admin, operator or viewer", role)
}

func tokenCreateCommand() *command {
	var (
		role    string
		expires time.Duration
	)
	return &command{
		name:  "create",
		args:  "NAME",
		short: "create an API token and print its secret once",
		help: `The token is printed once and cannot be shown again; store it in a secret
manager or a file for UPDRAFT_TOKEN_FILE.`,
		api: true,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&role, "role", "", "`role`: admin, operator or viewer (required)")
			fs.DurationVar(&expires, "expires", 0, "lifetime, e.g. 720h (default: no expiry)")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if err := checkRole(role); err != nil {
				return err
			}
			if expires < 0 {
				return usageErrorf("invalid value %s for flag --expires: must be positive", expires)
			}
			if expires > 0 && expires < time.Minute {
				return usageErrorf("invalid value %s for flag --expires: at least 1m", expires)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			t, err := c.CreateToken(ctx, client.NewToken{Name: args[0], Role: role, ExpiresIn: expires})
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(t)
			}
			expiry := "does not expire"
			if t.ExpiresAt != nil {
				expiry = "expires " + fmtTime(*t.ExpiresAt)
			}
			fmt.Fprintf(e.Stderr, "created %s token %s (id %s), %s; it is shown only now:\n", t.Role, t.Name, t.ID, expiry)
			fmt.Fprintln(e.Stdout, t.Token)
			return nil
		},
	}
}

func tokenListCommand() *command {
	var page pageFlags
	return &command{
		name:  "list",
		short: "list API tokens (never their secrets)",
		api:   true,
		flags: func(fs *flag.FlagSet) { page.register(fs, "tokens") },
		run: func(ctx context.Context, e *Env, _ []string) error {
			if err := page.check(); err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			l, err := collect(ctx, page, c.ListTokens)
			if err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(l)
			}
			now := e.Clock.Now()
			tw := e.table()
			fmt.Fprintln(tw, "ID\tNAME\tROLE\tSTATUS\tCREATED\tEXPIRES\tLAST USED")
			for _, t := range l.Items {
				status := "active"
				switch {
				case t.RevokedAt != nil:
					status = "revoked"
				case t.ExpiresAt != nil && !now.Before(*t.ExpiresAt):
					status = "expired"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Role, status,
					fmtTime(t.CreatedAt), fmtTimePtr(t.ExpiresAt), fmtTimePtr(t.LastUsedAt))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			page.moreNote(e, l.Next, "tokens")
			return nil
		},
	}
}

func tokenRevokeCommand() *command {
	return &command{
		name:  "revoke",
		args:  "ID",
		short: "revoke an API token; it stops working at once",
		api:   true,
		run: func(ctx context.Context, e *Env, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			if err := c.RevokeToken(ctx, args[0]); err != nil {
				return err
			}
			if e.json() {
				return e.printJSON(map[string]string{"revoked": args[0]})
			}
			fmt.Fprintf(e.Stdout, "token %s revoked\n", args[0])
			return nil
		},
	}
}
