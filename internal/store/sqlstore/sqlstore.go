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
// for the database lock; reads use a separate pool. The few hot reads with a
// fixed query text (the device check-in) run as statements prepared once on
// the read pool (Store.queryRowPrepared); everything else is parsed per call.
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
	"strconv"
	"strings"
	"sync"
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
	// TableExists reports whether the table exists where an unqualified
	// name would find it, without creating or locking anything.
	TableExists(ctx context.Context, conn *sql.Conn, name string) (bool, error)
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
	stmts *stmtCache // prepared statements on read
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
	return &Store{read: read, write: write, d: d, log: log, stmts: newStmtCache(read, d.Rebind)}
}

// Dialect returns the store's dialect.
func (s *Store) Dialect() Dialect { return s.d }

// DB returns the read pool (for tests and diagnostics).
func (s *Store) DB() *sql.DB { return s.read }

// WriteDB returns the write pool (for tests and diagnostics: on SQLite its
// one connection has its own pragmas).
func (s *Store) WriteDB() *sql.DB { return s.write }

// Ping checks both pools.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.read.PingContext(ctx); err != nil {
		return err
	}
	return s.write.PingContext(ctx)
}

// Close closes the prepared statements and both pools.
func (s *Store) Close() error {
	err := errors.Join(s.stmts.close(), s.read.Close())
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

// rowScanner is a single-row result: *sql.Row, or errRow.
type rowScanner interface{ Scan(dest ...any) error }

// errRow is a row whose query could not even start.
type errRow struct{ err error }

func (r errRow) Scan(...any) error { return r.err }

// queryRowPrepared is queryRow through the read pool's statement cache.
// Use it only for hot queries whose text is fixed (it is the cache key)
// and that name their columns; queries built per call (filters, IN lists)
// would grow the cache without bound.
func (s *Store) queryRowPrepared(ctx context.Context, q string, args ...any) rowScanner {
	st, err := s.stmts.get(ctx, q)
	if err != nil {
		return errRow{err}
	}
	return st.QueryRowContext(ctx, args...)
}

// stmtCache holds statements prepared on one pool, one per query text,
// each prepared on first use. It is safe for concurrent use, and so is a
// *sql.Stmt: database/sql prepares it on every pool connection it runs on,
// once, and the driver then keeps the parsed statement (modernc.org/sqlite
// its compiled statement, pgx a named server-side statement). A statement
// survives a migration run by another replica: SQLite re-prepares it and
// PostgreSQL re-plans it, as long as its result columns keep their types,
// so cached queries name their columns (never SELECT *).
type stmtCache struct {
	db     *sql.DB
	rebind func(string) string

	mu     sync.RWMutex
	stmts  map[string]*sql.Stmt // by query text as written, with '?'
	closed bool
}

func newStmtCache(db *sql.DB, rebind func(string) string) *stmtCache {
	return &stmtCache{db: db, rebind: rebind, stmts: map[string]*sql.Stmt{}}
}

// errClosed is returned for queries on a closed store.
var errClosed = errors.New("store is closed")

// get returns the statement for q, preparing it if this is its first use.
func (c *stmtCache) get(ctx context.Context, q string) (*sql.Stmt, error) {
	c.mu.RLock()
	st, ok := c.stmts[q]
	closed := c.closed
	c.mu.RUnlock()
	switch {
	case ok:
		return st, nil
	case closed:
		return nil, errClosed
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if st, ok := c.stmts[q]; ok {
		return st, nil
	}
	if c.closed {
		return nil, errClosed
	}
	st, err := c.db.PrepareContext(ctx, c.rebind(q))
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	c.stmts[q] = st
	return st, nil
}

// close closes every statement; later gets fail with errClosed.
func (c *stmtCache) close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	var err error
	for q, st := range c.stmts {
		err = errors.Join(err, st.Close())
		delete(c.stmts, q)
	}
	return err
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

// scanPage reads the rows of a list query that asked for n+1 rows: at most
// n items, and when the extra row exists, the cursor of the last item kept
// (empty when this is the last page). It closes rows.
func scanPage[T any](rows *sql.Rows, n int, scan func(interface{ Scan(...any) error }) (T, error), cursor func(T) string) ([]T, string, error) {
	defer rows.Close()
	out := []T{}
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) <= n {
		return out, "", nil
	}
	out = out[:n]
	return out, cursor(out[n-1]), nil
}

// timeCursor is the cursor of lists ordered by (created_at, id).
func timeCursor(at time.Time, id string) string {
	return encodeCursor(strconv.FormatInt(micros(at), 10), id)
}
