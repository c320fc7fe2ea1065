package cli

import (
	"context"
	"flag"
	"fmt"

	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

func migrateCommand() *command {
	var dataDir, database string
	var dryRun bool
	return &command{
		name:  "migrate",
		short: "apply database migrations (serve does this at start)",
		help: `Applies the numbered schema migrations this binary carries to the database,
or with --dry-run lists the ones it would apply and changes nothing. A
database whose schema is newer than this binary is refused.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&dataDir, "data-dir", "", "data `directory` holding the SQLite database (env UPDRAFT_DATA_DIR; default updraft-data)")
			fs.StringVar(&database, "database", "", "PostgreSQL `URL` (env UPDRAFT_DATABASE); empty: SQLite in the data directory")
			fs.BoolVar(&dryRun, "dry-run", false, "list pending migrations without applying them")
		},
		run: func(ctx context.Context, e *Env, args []string) error {
			if dataDir == "" {
				dataDir = e.Getenv("UPDRAFT_DATA_DIR")
			}
			if database == "" {
				database = e.Getenv("UPDRAFT_DATABASE")
			}
			st, err := server.OpenStore(ctx, server.Config{DataDir: dataDir, Database: database})
			if err != nil {
				return err
			}
			defer st.Close()
			status, err := st.Migrate(ctx, sqlstore.MigrateOptions{DryRun: true, Now: e.Clock.Now()})
			if err != nil {
				return err
			}
			if len(status.Pending) == 0 {
				fmt.Fprintf(e.Stdout, "schema is up to date at version %d\n", status.Current)
				return nil
			}
			verb := "would apply"
			if !dryRun {
				verb = "applying"
			}
			fmt.Fprintf(e.Stdout, "schema at version %d of %d; %s:\n", status.Current, status.Latest, verb)
			for _, m := range status.Pending {
				fmt.Fprintf(e.Stdout, "  %04d_%s\n", m.Version, m.Name)
			}
			if dryRun {
				return nil
			}
			if status, err = st.Migrate(ctx, sqlstore.MigrateOptions{Now: e.Clock.Now()}); err != nil {
				return err
			}
			fmt.Fprintf(e.Stdout, "schema is now at version %d\n", status.Current)
			return nil
		},
	}
}
