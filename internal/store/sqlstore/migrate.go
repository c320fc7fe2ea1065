package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
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

// Checksum is the hex SHA-256 of the migration's SQL, recorded when it is
// applied so that a later edit of an applied migration is noticed.
func (m Migration) Checksum() string {
	sum := sha256.Sum256([]byte(m.SQL))
	return hex.EncodeToString(sum[:])
}

// MigrationChangedError reports an applied migration whose SQL differs from
// what this binary carries: the database's schema may not be what the
// migration files say, so Migrate refuses to go on.
type MigrationChangedError struct {
	Version  int
	Name     string
	Recorded string // checksum stored when it was applied
	Current  string // checksum of the SQL in this binary
}

func (e *MigrationChangedError) Error() string {
	return fmt.Sprintf("migration %04d_%s was changed after it was applied (checksum %s recorded, %s now)", e.Version, e.Name, e.Recorded, e.Current)
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
// than this binary knows is refused with store.ErrSchemaTooNew, and one
// whose applied migrations no longer match their files with a
// *MigrationChangedError. A dry run creates nothing, not even
// schema_migrations.
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

	exists, err := s.d.TableExists(ctx, conn, "schema_migrations")
	if err != nil {
		return MigrationStatus{}, fmt.Errorf("migrate: %w", err)
	}
	if !exists && !opts.DryRun {
		if _, err := conn.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
			version    INTEGER PRIMARY KEY,
			name       TEXT NOT NULL,
			checksum   TEXT NOT NULL,
			applied_at BIGINT NOT NULL)`); err != nil {
			return MigrationStatus{}, fmt.Errorf("migrate: create schema_migrations: %w", err)
		}
		exists = true
	}
	current := 0
	if exists {
		if current, err = s.checkApplied(ctx, conn, all); err != nil {
			return MigrationStatus{Latest: len(all)}, err
		}
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
		if _, err := tx.ExecContext(ctx, s.d.Rebind(`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, ?, ?, ?)`),
			m.Version, m.Name, m.Checksum(), micros(opts.Now)); err != nil {
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

// checkApplied reads schema_migrations, compares the checksum of every
// applied migration this binary knows with its SQL, and returns the
// highest applied version.
func (s *Store) checkApplied(ctx context.Context, conn *sql.Conn, all []Migration) (int, error) {
	rows, err := conn.QueryContext(ctx, `SELECT version, checksum FROM schema_migrations ORDER BY version`)
	if err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	defer rows.Close()
	current := 0
	for rows.Next() {
		var v int
		var sum string
		if err := rows.Scan(&v, &sum); err != nil {
			return 0, fmt.Errorf("migrate: read schema version: %w", err)
		}
		current = max(current, v)
		if v < 1 || v > len(all) {
			continue // from a newer binary: refused by the caller
		}
		if m := all[v-1]; sum != m.Checksum() {
			return 0, &MigrationChangedError{Version: m.Version, Name: m.Name, Recorded: sum, Current: m.Checksum()}
		}
	}
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("migrate: read schema version: %w", err)
	}
	return current, nil
}
