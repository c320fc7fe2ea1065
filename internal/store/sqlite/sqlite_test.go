package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/store/storetest"
)

func open(t *testing.T) *sqlstore.Store {
	t.Helper()
	s, err := sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: open})
}

func TestPragmas(t *testing.T) {
	t.Parallel()
	s := storetest.Harness{Open: open}.NewStore(t)
	ctx := context.Background()
	// Pragmas are per connection: the write connection is the one whose
	// synchronous=FULL makes an acknowledged status report durable; the
	// read pool must agree on WAL and foreign keys.
	for _, c := range []struct {
		pool   string
		db     *sql.DB
		pragma string
		want   string
	}{
		{"write", s.WriteDB(), "journal_mode", "wal"},
		{"write", s.WriteDB(), "synchronous", "2"}, // FULL
		{"write", s.WriteDB(), "foreign_keys", "1"},
		{"write", s.WriteDB(), "busy_timeout", "10000"},
		{"read", s.DB(), "journal_mode", "wal"},
		{"read", s.DB(), "foreign_keys", "1"},
	} {
		var got string
		if err := c.db.QueryRowContext(ctx, `PRAGMA `+c.pragma).Scan(&got); err != nil {
			t.Fatalf("%s pool: PRAGMA %s: %v", c.pool, c.pragma, err)
		}
		if got != c.want {
			t.Errorf("%s pool: %s = %s, want %s", c.pool, c.pragma, got, c.want)
		}
	}
	// And foreign keys are enforced on writes: a tag for a device that does
	// not exist.
	_, err := s.WriteDB().ExecContext(ctx, `INSERT INTO device_tags (tenant_id, device_id, tag) VALUES ('default', 'no-such-device', 'lab')`)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "foreign key") {
		t.Fatalf("orphan tag: err = %v, want a foreign key violation", err)
	}
}

// TestFilesArePrivate checks that the database and its WAL files, which
// hold password hashes and sealed keys, are readable by their owner only,
// both for a new database and for one an earlier version left readable.
func TestFilesArePrivate(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		existing bool
	}{
		{"New", false},
		{"ExistingReadable", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "updraft.db")
			if tc.existing {
				if err := os.WriteFile(path, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(path, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s, err := sqlite.Open(path, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			// Write something so that the -wal and -shm files exist.
			if _, err := s.Migrate(context.Background(), sqlstore.MigrateOptions{Now: storetest.T0}); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{path, path + "-wal", path + "-shm"} {
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if m := fi.Mode().Perm(); m != 0o600 {
					t.Errorf("%s has mode %v, want -rw-------", filepath.Base(p), m)
				}
			}
		})
	}
}

func TestOpenRefusesQueryInPath(t *testing.T) {
	t.Parallel()
	if _, err := sqlite.Open(filepath.Join(t.TempDir(), "x.db?mode=memory"), nil); err == nil {
		t.Fatal("Open accepted a path with a query string")
	}
}
