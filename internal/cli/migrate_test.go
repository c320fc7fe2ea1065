package cli

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

// dirEntries lists the names in dir; a missing dir lists as nil.
func dirEntries(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestMigrateDryRunCreatesNothing(t *testing.T) {
	t.Parallel()
	all, err := sqlstore.Migrations(sqlite.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		create bool // the data directory exists, empty
	}{
		{"MissingDataDir", false},
		{"EmptyDataDir", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			root := t.TempDir()
			dir := filepath.Join(root, "data")
			if tc.create {
				if err := os.Mkdir(dir, 0o700); err != nil {
					t.Fatal(err)
				}
			}
			db := filepath.Join(dir, "updraft.db")
			want := fmt.Sprintf("no database at %s; would create it and apply all %d migrations", db, len(all))
			runCLI(t, runOpts{}, "migrate", "--dry-run", "--data-dir", dir).
				check(t, 0, []string{want, "0001_" + all[0].Name, fmt.Sprintf("%04d_%s", len(all), all[len(all)-1].Name)}, []string{"^$"})
			if tc.create {
				if got := dirEntries(t, dir); len(got) != 0 {
					t.Fatalf("dry run left %v in the data directory", got)
				}
			} else if got := dirEntries(t, root); len(got) != 0 {
				t.Fatalf("dry run created %v", got)
			}
		})
	}
}

func TestMigrateThenDryRun(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "data")
	all, err := sqlstore.Migrations(sqlite.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"UPDRAFT_DATA_DIR": dir}
	runCLI(t, runOpts{env: env}, "migrate").
		check(t, 0, []string{"applying:", fmt.Sprintf("schema is now at version %d", len(all))}, []string{"^$"})
	runCLI(t, runOpts{env: env}, "migrate", "--dry-run").
		check(t, 0, []string{fmt.Sprintf("schema is up to date at version %d", len(all))}, []string{"^$"})
}

func TestMigrateDryRunPostgresCreatesNoTable(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	all, err := sqlstore.Migrations(postgres.Dialect{})
	if err != nil {
		t.Fatal(err)
	}
	runCLI(t, runOpts{}, "migrate", "--dry-run", "--database", dsn).
		check(t, 0, []string{fmt.Sprintf("schema at version 0 of %d; would apply:", len(all)), "0001_" + all[0].Name}, []string{"^$"})
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRowContext(context.Background(),
		`SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema()`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatalf("dry run left %d tables in the database", n)
	}
}
