package testenv_test

import (
	"context"
	"database/sql"
	"testing"

	"github.com/updraft/updraft/internal/testenv"
)

func TestPostgresCreatesIsolatedDatabase(t *testing.T) {
	dsn := testenv.Postgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var name string
	if err := db.QueryRowContext(context.Background(), "SELECT current_database()").Scan(&name); err != nil {
		t.Fatal(err)
	}
	if len(name) < len("updraft_test_") || name[:len("updraft_test_")] != "updraft_test_" {
		t.Fatalf("connected to %q, want a fresh updraft_test_ database", name)
	}
}
