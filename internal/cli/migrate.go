package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

func migrateCommand() *command {
	var dataDir, database string
	var dryRun bool
	return &command{
		name:  "migrate",
		short: "apply database migrations (serve does this at start)",
		help: `Applies the numbered schema migrations this binary carries to the database,
or with --dry-run lists the ones it would apply and changes nothing (it
does not create a missing SQLite database). A database whose schema is
newer than this binary, or whose applied migrations differ from the ones
this binary carries, is refused.`,
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
			cfg := server.Config{DataDir: dataDir, Database: database}
			if dryRun {
				// Opening a SQLite database creates it (and the data
				// directory); a dry run must not, so a missing file is
				// reported without opening anything.
				path, err := server.SQLitePath(cfg)
				if err != nil {
					return err
				}
				if path != "" {
					if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
						return dryRunNoDatabase(e, path)
					}
				}
			}
			st, err := server.OpenStore(ctx, cfg)
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

// dryRunNoDatabase reports what migrate would do where no SQLite database
// exists yet.
func dryRunNoDatabase(e *Env, path string) error {
	all, err := sqlstore.Migrations(sqlite.Dialect{})
	if err != nil {
		return err
	}
	fmt.Fprintf(e.Stdout, "no database at %s; would create it and apply all %d migrations:\n", path, len(all))
	for _, m := range all {
		fmt.Fprintf(e.Stdout, "  %04d_%s\n", m.Version, m.Name)
	}
	return nil
}
