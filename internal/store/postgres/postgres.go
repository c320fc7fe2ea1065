// Package postgres is the scaled-out store: PostgreSQL through pgx's
// database/sql driver, with its numbered migrations applied under an
// advisory lock so replicas that start together do not race.
package postgres

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLockKey is the advisory lock id taken while migrating ("updraft" in ASCII).
const migrationLockKey = 0x7570647261667400

// Dialect is PostgreSQL's sqlstore.Dialect.
type Dialect struct{}

// Name implements sqlstore.Dialect.
func (Dialect) Name() string { return "postgres" }

// Rebind implements sqlstore.Dialect: '?' becomes $1, $2, … outside of
// quoted strings and identifiers.
func (Dialect) Rebind(q string) string {
	if !strings.Contains(q, "?") {
		return q
	}
	var b strings.Builder
	b.Grow(len(q) + 16)
	n := 0
	var quote byte
	for i := 0; i < len(q); i++ {
		c := q[i]
		switch {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '?':
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Migrations implements sqlstore.Dialect.
func (Dialect) Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// LockMigrations implements sqlstore.Dialect with a session advisory lock.
func (Dialect) LockMigrations(ctx context.Context, conn *sql.Conn) (func(), error) {
	if _, err := conn.ExecContext(ctx, `SELECT pg_advisory_lock($1)`, int64(migrationLockKey)); err != nil {
		return nil, err
	}
	return func() {
		_, _ = conn.ExecContext(context.Background(), `SELECT pg_advisory_unlock($1)`, int64(migrationLockKey))
	}, nil
}

// TableExists implements sqlstore.Dialect. to_regclass resolves the name
// through search_path as the unqualified queries do, and yields NULL rather
// than an error for a missing relation; relkind keeps views and indexes out.
func (Dialect) TableExists(ctx context.Context, conn *sql.Conn, name string) (bool, error) {
	var ok bool
	if err := conn.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = to_regclass($1) AND relkind IN ('r', 'p'))`, name).Scan(&ok); err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	return ok, nil
}

// IsUniqueViolation implements sqlstore.Dialect.
func (Dialect) IsUniqueViolation(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "23505"
}

// Filter implements sqlstore.Dialect.
func (Dialect) Filter() filter.Dialect { return filter.Postgres }

// Open connects to the database at dsn (a postgres:// URL) and returns a
// store that has not been migrated yet.
func Open(ctx context.Context, dsn string, log *slog.Logger) (*sqlstore.Store, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, fmt.Errorf("open postgres: %w", err)
	}
	db.SetMaxOpenConns(32)
	db.SetMaxIdleConns(32)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to postgres: %w", err)
	}
	return sqlstore.New(db, db, Dialect{}, sqlstore.Options{Logger: log}), nil
}
