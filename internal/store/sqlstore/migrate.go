package sqlstore

import (
	"context"
	"fmt"
	"io/fs"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Migration is one numbered schema change.
type Migration struct {
	Version int
	Name    string
	SQL     string
}

// Migrations lists the dialect's migrations in order. File names are
// NNNN_name.sql; numbers start at 1 and have no gaps.
func Migrations(d Dialect) ([]Migration, error) {
	entries, err := fs.ReadDir(d.Migrations(), ".")
	if err != nil {
		return nil, fmt.Errorf("read %s migrations: %w", d.Name(), err)
	}
	var out []Migration
	for _, e := range entries {
		name := e.Name()
		if e.IsDir() || !strings.HasSuffix(name, ".sql") {
			continue
		}
		num, rest, ok := strings.Cut(strings.TrimSuffix(name, ".sql"), "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration file %s: want NNNN_name.sql", name)
		}
		b, err := fs.ReadFile(d.Migrations(), name)
		if err != nil {
			return nil, err
		}
		out = append(out, Migration{Version: v, Name: rest, SQL: string(b)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Version < out[j].Version })
	for i, m := range out {
		if m.Version != i+1 {
			return nil, fmt.Errorf("%s migrations: expected version %d, found %d", d.Name(), i+1, m.Version)
		}
	}
	return out, nil
}

// MigrationStatus reports the schema version of the database and the
// migrations this binary would apply.
type MigrationStatus struct {
	Current int
	Latest  int
	Pending []Migration
}

// MigrateOptions limits Migrate.
type MigrateOptions struct {
	// To stops after this version (0: latest). Tests use it to build a
	// database at an older schema.
	To int
	// DryRun reports what would be applied without changing anything.
	DryRun bool
	Now    time.Time
}

// Migrate applies pending migrations, each in its own transaction together
// with its schema_migrations row, under the dialect's migration lock so
// replicas starting together are safe. A database whose schema is newer
// than this binary knows is refused with store.ErrSchemaTooNew.
func (s *Store) Migrate(ctx context.Context, opts MigrateOptions) (MigrationStatus, error) {
	all, err := Migrations(s.d)
	if err != nil {
		return MigrationStatus{}, err
	}
	target := len(all)
	if opts.To > 0 && opts.To < target {
		target = opts.To
	}
	conn, err := s.write.Conn(ctx)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migrate: %w", err)
	}
	defer conn.Close()
	unlock, err := s.d.LockMigrations(ctx, conn)
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migrate: lock: %w", err)
	}
	defer unlock()

	if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_at BIGINT NOT NULL)`); err != nil {
		return MigrationStatus{}, fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	var current int
	if err := conn.QueryRowContext(ctx, `SELECT COALESCE(MAX(version), 0) FROM schema_migrations`).Scan(&current); err != nil {
		return MigrationStatus{}, fmt.Errorf("migrate: read schema version: %w", err)
	}
	st := MigrationStatus{Current: current, Latest: len(all)}
	if current > len(all) {
		return st, fmt.Errorf("%w: database is at version %d, this binary knows %d", store.ErrSchemaTooNew, current, len(all))
	}
	if target > current {
		st.Pending = append(st.Pending, all[current:target]...)
	}
	if opts.DryRun {
		return st, nil
	}
	for _, m := range st.Pending {
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return st, fmt.Errorf("migrate %04d_%s: begin: %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			_ = tx.Rollback()
			return st, fmt.Errorf("migrate %04d_%s: %w", m.Version, m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`),
			m.Version, m.Name, micros(opts.Now)); err != nil {
			_ = tx.Rollback()
			return st, fmt.Errorf("migrate %04d_%s: record: %w", m.Version, m.Name, err)
		}
		if err := tx.Commit(); err != nil {
			return st, fmt.Errorf("migrate %04d_%s: commit: %w", m.Version, m.Name, err)
		}
		s.log.Info("applied migration", "dialect", s.d.Name(), "version", m.Version, "name", m.Name)
		st.Current = m.Version
	}
	st.Pending = nil
	return st, nil
}
