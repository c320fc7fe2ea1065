package sqlstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// auditRecord is the canonical form hashed into the chain. Field order is
// fixed by the struct; changing it breaks every existing chain.
type auditRecord struct {
	Tenant     string          `json:"tenant"`
	Seq        int64           `json:"seq"`
	At         int64           `json:"at"`
	ActorKind  string          `json:"actor_kind"`
	ActorID    string          `json:"actor_id"`
	ActorName  string          `json:"actor_name"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details,omitempty"`
}

func chainHash(prev string, r auditRecord) string {
	b, err := json.Marshal(r)
	if err != nil {
		panic(fmt.Sprintf("encode audit record: %v", err))
	}
	h := sha256.New()
	h.Write([]byte(prev))
	h.Write([]byte{'\n'})
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// audit appends an entry to the tenant's chain inside t. Updating the
// chain head first takes the row lock that serializes appends per tenant.
func (t *txn) audit(ctx context.Context, tenant string, by store.Actor, action, objectType, objectID string, details any, now time.Time) error {
	var raw json.RawMessage
	if details != nil {
		b, err := json.Marshal(details)
		if err != nil {
			return fmt.Errorf("encode audit details: %w", err)
		}
		raw = b
	}
	if _, err := t.exec(ctx, `UPDATE audit_heads SET seq = seq + 1 WHERE tenant_id = ?`, tenant); err != nil {
		return fmt.Errorf("lock audit chain: %w", err)
	}
	var seq int64
	var prev string
	if err := t.queryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = ?`, tenant).Scan(&seq, &prev); err != nil {
		return notFound(err, "audit chain head of tenant "+tenant)
	}
	rec := auditRecord{
		Tenant: tenant, Seq: seq, At: micros(now),
		ActorKind: string(by.Kind), ActorID: by.ID, ActorName: by.Name,
		Action: action, ObjectType: objectType, ObjectID: objectID, Details: raw,
	}
	hash := chainHash(prev, rec)
	if _, err := t.exec(ctx, `INSERT INTO audit_log (tenant_id, seq, at, actor_kind, actor_id, actor_name, action, object_type, object_id, details, prev_hash, hash)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tenant, seq, rec.At, rec.ActorKind, rec.ActorID, rec.ActorName, action, objectType, objectID, string(raw), prev, hash); err != nil {
		return fmt.Errorf("append audit entry: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE audit_heads SET hash = ? WHERE tenant_id = ?`, hash, tenant); err != nil {
		return fmt.Errorf("advance audit chain: %w", err)
	}
	return nil
}

// AppendAudit implements store.Audit.
func (s *Store) AppendAudit(ctx context.Context, tenant string, by store.Actor, action, objectType, objectID string, details any, now time.Time) error {
	return s.tx(ctx, func(t *txn) error {
		return t.audit(ctx, tenant, by, action, objectType, objectID, details, now)
	})
}

const auditColumns = `tenant_id, seq, at, actor_kind, actor_id, actor_name, action, object_type, object_id, details, prev_hash, hash`

func scanAudit(row interface{ Scan(...any) error }) (store.AuditEntry, error) {
	var e store.AuditEntry
	var at int64
	var kind, details string
	if err := row.Scan(&e.TenantID, &e.Seq, &at, &kind, &e.Actor.ID, &e.Actor.Name, &e.Action, &e.ObjectType, &e.ObjectID, &details, &e.PrevHash, &e.Hash); err != nil {
		return e, err
	}
	e.At = fromMicros(at)
	e.Actor.Kind = store.ActorKind(kind)
	if details != "" {
		e.Details = json.RawMessage(details)
	}
	return e, nil
}

// ListAudit implements store.Audit; entries come newest first.
func (s *Store) ListAudit(ctx context.Context, tenant string, q store.AuditQuery) ([]store.AuditEntry, string, error) {
	where := `tenant_id = ?`
	args := []any{tenant}
	add := func(cond string, v any) {
		where += " AND " + cond
		args = append(args, v)
	}
	if q.Action != "" {
		add("action = ?", q.Action)
	}
	if q.ObjectType != "" {
		add("object_type = ?", q.ObjectType)
	}
	if q.ObjectID != "" {
		add("object_id = ?", q.ObjectID)
	}
	if q.ActorID != "" {
		add("actor_id = ?", q.ActorID)
	}
	if !q.Since.IsZero() {
		add("at >= ?", micros(q.Since))
	}
	if !q.Until.IsZero() {
		add("at < ?", micros(q.Until))
	}
	if q.Page.After != "" {
		parts, err := decodeCursor(q.Page.After, 1)
		if err != nil {
			return nil, "", err
		}
		seq, err := strconv.ParseInt(parts[0], 10, 64)
		if err != nil {
			return nil, "", fmt.Errorf("%w: malformed page cursor", store.ErrInvalidRequest)
		}
		add("seq < ?", seq)
	}
	n := limit(q.Page)
	rows, err := s.query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE `+where+` ORDER BY seq DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	defer rows.Close()
	var out []store.AuditEntry
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list audit: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list audit: %w", err)
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = encodeCursor(strconv.FormatInt(out[n-1].Seq, 10))
	}
	return out, next, nil
}

// VerifyAudit implements store.Audit. A chain that does not verify is a
// *store.AuditBrokenError; any other error is the database's.
func (s *Store) VerifyAudit(ctx context.Context, tenant string) (int, error) {
	rows, err := s.query(ctx, `SELECT `+auditColumns+` FROM audit_log WHERE tenant_id = ? ORDER BY seq`, tenant)
	if err != nil {
		return 0, fmt.Errorf("verify audit: %w", err)
	}
	defer rows.Close()
	broken := func(seq int64, format string, args ...any) error {
		return &store.AuditBrokenError{Seq: seq, Problem: fmt.Sprintf(format, args...)}
	}
	prev := ""
	var want int64 = 1
	n := 0
	for rows.Next() {
		e, err := scanAudit(rows)
		if err != nil {
			return n, fmt.Errorf("verify audit: %w", err)
		}
		if e.Seq != want {
			if e.Seq > want {
				return n, broken(want, "missing (the log continues at entry %d)", e.Seq)
			}
			return n, broken(e.Seq, "out of sequence (expected entry %d)", want)
		}
		if e.PrevHash != prev {
			return n, broken(e.Seq, "previous hash does not match the chain")
		}
		// Details that are not JSON cannot have been written by audit;
		// they would also make the canonical encoding fail.
		if len(e.Details) > 0 && !json.Valid(e.Details) {
			return n, broken(e.Seq, "details are not valid JSON (altered)")
		}
		rec := auditRecord{
			Tenant: e.TenantID, Seq: e.Seq, At: micros(e.At),
			ActorKind: string(e.Actor.Kind), ActorID: e.Actor.ID, ActorName: e.Actor.Name,
			Action: e.Action, ObjectType: e.ObjectType, ObjectID: e.ObjectID, Details: e.Details,
		}
		if got := chainHash(prev, rec); got != e.Hash {
			return n, broken(e.Seq, "content does not match its hash (altered)")
		}
		prev = e.Hash
		want++
		n++
	}
	if err := rows.Err(); err != nil {
		return n, fmt.Errorf("verify audit: %w", err)
	}
	var headSeq int64
	var headHash string
	if err := s.queryRow(ctx, `SELECT seq, hash FROM audit_heads WHERE tenant_id = ?`, tenant).Scan(&headSeq, &headHash); err != nil && !errors.Is(err, sql.ErrNoRows) {
		return n, fmt.Errorf("verify audit head: %w", err)
	}
	switch last := int64(n); {
	case headSeq > last:
		return n, broken(last+1, "missing: the chain head is at entry %d but the log ends at %d (entries were removed)", headSeq, last)
	case headSeq < last:
		return n, broken(headSeq+1, "not covered by the chain head, which is at entry %d", headSeq)
	case headHash != prev:
		return n, broken(last, "hash does not match the chain head")
	}
	return n, nil
}

// Secret implements store.Store.
func (s *Store) Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error) {
	var v string
	err := s.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	if err == nil {
		return hex.DecodeString(v)
	}
	if err != sql.ErrNoRows {
		return nil, fmt.Errorf("read secret %s: %w", name, err)
	}
	b, err := gen()
	if err != nil {
		return nil, fmt.Errorf("generate secret %s: %w", name, err)
	}
	err = s.tx(ctx, func(t *txn) error {
		// Another replica may have won the race: keep the first value.
		if _, err := t.exec(ctx, `INSERT INTO secrets (name, value, created_at) VALUES (?, ?, 0) ON CONFLICT (name) DO NOTHING`, name, hex.EncodeToString(b)); err != nil {
			return err
		}
		return t.queryRow(ctx, `SELECT value FROM secrets WHERE name = ?`, name).Scan(&v)
	})
	if err != nil {
		return nil, fmt.Errorf("store secret %s: %w", name, err)
	}
	return hex.DecodeString(v)
}
