package sqlite_test

import (
	"context"
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
	var mode string
	if err := s.DB().QueryRowContext(ctx, `PRAGMA journal_mode`).Scan(&mode); err != nil {
		t.Fatal(err)
	}
	if mode != "wal" {
		t.Fatalf("journal_mode = %q, want wal", mode)
	}
	var fk int
	if err := s.DB().QueryRowContext(ctx, `PRAGMA foreign_keys`).Scan(&fk); err != nil {
		t.Fatal(err)
	}
	if fk != 1 {
		t.Fatalf("foreign_keys = %d, want 1", fk)
	}
	// And they are enforced: a tag for a device that does not exist.
	_, err := s.DB().ExecContext(ctx, `INSERT INTO device_tags (tenant_id, device_id, tag) VALUES ('default', 'no-such-device', 'lab')`)
	if err == nil || !strings.Contains(strings.ToLower(err.Error()), "foreign key") {
		t.Fatalf("orphan tag: err = %v, want a foreign key violation", err)
	}
}

func TestOpenRefusesQueryInPath(t *testing.T) {
	t.Parallel()
	if _, err := sqlite.Open(filepath.Join(t.TempDir(), "x.db?mode=memory"), nil); err == nil {
		t.Fatal("Open accepted a path with a query string")
	}
}
