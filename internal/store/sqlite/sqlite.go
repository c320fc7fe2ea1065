// Package sqlite is the embedded-default store: SQLite through the pure-Go
// modernc.org/sqlite driver, in WAL mode, with its numbered migrations.
//
// Writes go through a single connection (SQLite has one writer anyway, and
// this avoids SQLITE_BUSY upgrades); reads use a pool. synchronous=FULL makes
// every commit durable, which status reports rely on; group commit in the
// device API keeps that affordable.
//
// The database files (the main file, -wal and -shm) hold password and token
// hashes and sealed signing keys, so they are private to the server's user:
// Open creates the main file 0600 before SQLite touches it (SQLite gives the
// -wal and -shm files the main file's mode) and tightens files an older
// version or another tool left readable.
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
	"os"
	"runtime"
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

// TableExists implements sqlstore.Dialect.
func (Dialect) TableExists(ctx context.Context, conn *sql.Conn, name string) (bool, error) {
	var n int
	if err := conn.QueryRowContext(ctx, `SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = ?`, name).Scan(&n); err != nil {
		return false, fmt.Errorf("look up table %s: %w", name, err)
	}
	return n > 0, nil
}

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
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	q := url.Values{}
	for _, p := range []string{"busy_timeout(10000)", "journal_mode(WAL)", "foreign_keys(1)", "synchronous(FULL)", "mmap_size(268435456)"} {
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
	// One reader per CPU: more only adds contention in the driver.
	readers := max(2, runtime.GOMAXPROCS(0))
	read.SetMaxOpenConns(readers)
	read.SetMaxIdleConns(readers)
	read.SetConnMaxLifetime(0)
	// Create the file and switch it to WAL before the readers touch it.
	if err := write.Ping(); err != nil {
		write.Close()
		read.Close()
		return nil, fmt.Errorf("open sqlite %s: %w", path, err)
	}
	if err := chmodPrivate(path); err != nil {
		write.Close()
		read.Close()
		return nil, err
	}
	return sqlstore.New(read, write, Dialect{}, sqlstore.Options{Logger: log}), nil
}

// fileMode is the mode of every database file.
const fileMode os.FileMode = 0o600

// createPrivate creates the database file with fileMode if it does not exist
// yet, so that SQLite never creates it with the umask's looser default, and
// tightens existing files before SQLite copies the main file's mode to new
// -wal and -shm files.
func createPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("create sqlite %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("create sqlite %s: %w", path, err)
	}
	return chmodPrivate(path)
}

// chmodPrivate sets fileMode on the database and its -wal and -shm files
// where they exist (a file made before this version may be readable by
// others; the -shm file is absent until WAL is first used).
func chmodPrivate(path string) error {
	for _, p := range []string{path, path + "-wal", path + "-shm"} {
		if err := os.Chmod(p, fileMode); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("restrict sqlite file %s: %w", p, err)
		}
	}
	return nil
}
