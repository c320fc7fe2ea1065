// Package sqlite is the embedded-default store: SQLite through the pure-Go
// modernc.org/sqlite driver, in WAL mode, with its numbered migrations.
//
// Writes go through a single connection (SQLite has one writer anyway, and
// this avoids SQLITE_BUSY upgrades); reads use a pool. synchronous=FULL makes
// every commit durable, which status reports rely on; group commit in the
// device API keeps that affordable.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"strings"

	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Dialect is SQLite's sqlstore.Dialect.
type Dialect struct{}

// Name implements sqlstore.Dialect.
func (Dialect) Name() string { return "sqlite" }

// Rebind implements sqlstore.Dialect; SQLite takes '?' as is.
func (Dialect) Rebind(q string) string { return q }

// Migrations implements sqlstore.Dialect.
func (Dialect) Migrations() fs.FS {
	sub, err := fs.Sub(migrations, "migrations")
	if err != nil {
		panic(err)
	}
	return sub
}

// LockMigrations implements sqlstore.Dialect. Each migration runs in a
// write transaction, which SQLite already serializes across processes.
func (Dialect) LockMigrations(context.Context, *sql.Conn) (func(), error) { return func() {}, nil }

// IsUniqueViolation implements sqlstore.Dialect.
func (Dialect) IsUniqueViolation(err error) bool {
	var se *sqlite.Error
	if errors.As(err, &se) {
		c := se.Code()
		return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
	}
	return false
}

// Filter implements sqlstore.Dialect.
func (Dialect) Filter() filter.Dialect { return filter.SQLite }

// Open opens (creating if needed) the database file at path and returns a
// store that has not been migrated yet.
func Open(path string, log *slog.Logger) (*sqlstore.Store, error) {
	if strings.ContainsAny(path, "?#") {
		return nil, fmt.Errorf("sqlite path %q must not contain '?' or '#'", path)
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)"} {
		q.Add("_pragma", p)
	}
	wq := url.Values{}
	for k, v := range q {
		wq[k] = v
	}
	wq.Set("_txlock", "immediate")
	write, err := sql.Open("sqlite", "file:"+path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	write.SetMaxOpenConns(1)
	write.SetMaxIdleConns(1)
	write.SetConnMaxLifetime(0)
	read, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		write.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	read.SetMaxOpenConns(8)
	read.SetMaxIdleConns(8)
	read.SetConnMaxLifetime(0)
	// Create the file and switch it to WAL before the readers touch it.
	if err := write.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	return sqlstore.New(read, write, Dialect{}, sqlstore.Options{Logger: log}), nil
}
