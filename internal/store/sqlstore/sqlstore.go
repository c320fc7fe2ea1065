// Package sqlstore implements store.Store once, over database/sql, for both
// SQLite and PostgreSQL. The differences between the two live behind
// Dialect, implemented by internal/store/sqlite and internal/store/postgres,
// which also own the numbered migrations.
//
// Conventions: times are stored as INTEGER/BIGINT microseconds since the
// Unix epoch (UTC); booleans as 0/1; string lists and attribute maps as JSON
// text. Queries are written with '?' placeholders and rebound by the
// dialect. Every write runs in one transaction (Store.tx) that also appends
// its audit entry. SQLite has one writer connection, so writes never race
// for the database lock; reads use a separate pool.
package sqlstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

// Dialect is what differs between the SQL databases.
type Dialect interface {
	// Name is "sqlite" or "postgres".
	Name() string
	// Rebind turns '?' placeholders into the dialect's form.
	Rebind(query string) string
	// Migrations holds files named NNNN_name.sql, applied in order.
	Migrations() fs.FS
	// LockMigrations serializes concurrent migrators (an advisory lock on
	// PostgreSQL; a no-op on SQLite, whose write transaction already is one).
	LockMigrations(ctx context.Context, conn *sql.Conn) (unlock func(), err error)
	// IsUniqueViolation reports whether err is a unique-constraint violation.
	IsUniqueViolation(err error) bool
	// Filter is the filter language's SQL dialect.
	Filter() filter.Dialect
}

// Store is the SQL implementation of store.Store.
type Store struct {
	read  *sql.DB // reads
	write *sql.DB // writes; one connection on SQLite
	d     Dialect
	log   *slog.Logger
}

// Options configures New.
type Options struct {
	Logger *slog.Logger
}

// New returns a store over the given pools, which may be the same. It does
// not migrate; call Migrate first.
func New(read, write *sql.DB, d Dialect, opts Options) *Store {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Store{read: read, write: write, d: d, log: log}
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d }

// DB returns the read pool (for tests and diagnostics).
func (s *Store) DB() *sql.DB { return s.read }

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return err
	}
	return s.write.PingContext(ctx)
}

// Close closes both pools.
func (s *Store) Close() error {
	err := s.read.Close()
	if s.write != s.read {
		err = errors.Join(err, s.write.Close())
	}
	return err
}

// txn is a write transaction with the dialect's rebinding applied.
type txn struct {
	tx *sql.Tx
	s  *Store
}

func (t *txn) exec(ctx context.Context, q string, args ...any) (sql.Result, error) {
	return t.tx.ExecContext(ctx, t.s.d.Rebind(q), args...)
}

func (t *txn) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return t.tx.QueryContext(ctx, t.s.d.Rebind(q), args...)
}

func (t *txn) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return t.tx.QueryRowContext(ctx, t.s.d.Rebind(q), args...)
}

// tx runs fn in one write transaction and commits it; any error rolls back.
func (s *Store) tx(ctx context.Context, fn func(t *txn) error) error {
	tx, err := s.write.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	if err := fn(&txn{tx: tx, s: s}); err != nil {
		_ = tx.Rollback()
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

func (s *Store) query(ctx context.Context, q string, args ...any) (*sql.Rows, error) {
	return s.read.QueryContext(ctx, s.d.Rebind(q), args...)
}

func (s *Store) queryRow(ctx context.Context, q string, args ...any) *sql.Row {
	return s.read.QueryRowContext(ctx, s.d.Rebind(q), args...)
}

// newID returns a random 128-bit identifier as 32 hex characters.
func newID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err))
	}
	return hex.EncodeToString(b[:])
}

// micros converts a time to the stored form.
func micros(t time.Time) int64 { return t.UnixMicro() }

// fromMicros converts the stored form to a UTC time.
func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

// nullMicros converts an optional time to the stored form.
func nullMicros(t *time.Time) sql.NullInt64 {
	if t == nil || t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: t.UnixMicro(), Valid: true}
}

// timePtr converts a nullable stored time.
func timePtr(n sql.NullInt64) *time.Time {
	if !n.Valid {
		return nil
	}
	t := fromMicros(n.Int64)
	return &t
}

func boolInt(b bool) int64 {
	if b {
		return 1
	}
	return 0
}

// jsonText encodes v as JSON text for a TEXT column.
func jsonText(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("encode %T: %v", v, err))
	}
	return string(b)
}

// decodeJSON decodes a JSON text column; an empty column leaves v unchanged.
func decodeJSON(s string, v any) error {
	if s == "" {
		return nil
	}
	if err := json.Unmarshal([]byte(s), v); err != nil {
		return fmt.Errorf("decode stored JSON: %w", err)
	}
	return nil
}

// limit clamps a page limit.
func limit(p store.Page) int {
	switch {
	case p.Limit <= 0:
		return store.DefaultPageLimit
	case p.Limit > store.MaxPageLimit:
		return store.MaxPageLimit
	}
	return p.Limit
}

// Cursors are opaque to clients: base64url of "micros|id" for lists ordered
// by (created_at, id), or of a decimal sequence number.

func encodeCursor(parts ...string) string {
	return base64.RawURLEncoding.EncodeToString([]byte(strings.Join(parts, "|")))
}

func decodeCursor(c string, n int) ([]string, error) {
	b, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil {
		return nil, fmt.Errorf("%w: malformed page cursor", store.ErrInvalidRequest)
	}
	parts := strings.Split(string(b), "|")
	if len(parts) != n {
		return nil, fmt.Errorf("%w: malformed page cursor", store.ErrInvalidRequest)
	}
	return parts, nil
}

// notFound wraps sql.ErrNoRows as store.ErrNotFound with context.
func notFound(err error, what string) error {
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("%s: %w", what, store.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}
