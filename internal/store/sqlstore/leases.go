package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// AcquireLease implements store.Leases. The compare-and-set runs in one
// write transaction: on PostgreSQL the row lock taken by the UPDATE (or the
// primary key on INSERT) serializes concurrent claimants; on SQLite the
// single writer does.
func (s *Store) AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (store.Lease, error) {
	if name == "" || holder == "" || ttl <= 0 {
		return store.Lease{}, fmt.Errorf("%w: lease needs a name, a holder and a positive ttl", store.ErrInvalidRequest)
	}
	var out store.Lease
	err := s.tx(ctx, func(t *txn) error {
		exp := micros(now.Add(ttl))
		// Renew when we hold it; take it over (new epoch) when it is free.
		res, err := t.exec(ctx, `UPDATE leases SET expires_at = ? WHERE name = ? AND holder = ? AND expires_at > ?`,
			exp, name, holder, micros(now))
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			res, err = t.exec(ctx, `UPDATE leases SET holder = ?, epoch = epoch + 1, expires_at = ? WHERE name = ? AND expires_at <= ?`,
				holder, exp, name, micros(now))
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				if _, err := t.exec(ctx, `INSERT INTO leases (name, holder, epoch, expires_at) VALUES (?, ?, 1, ?) ON CONFLICT (name) DO NOTHING`,
					name, holder, exp); err != nil {
					return err
				}
			}
		}
		var expires int64
		if err := t.queryRow(ctx, `SELECT name, holder, epoch, expires_at FROM leases WHERE name = ?`, name).Scan(&out.Name, &out.Holder, &out.Epoch, &expires); err != nil {
			return err
		}
		out.ExpiresAt = fromMicros(expires)
		return nil
	})
	if err != nil {
		return store.Lease{}, fmt.Errorf("acquire lease %s: %w", name, err)
	}
	return out, nil
}

// ReleaseLease implements store.Leases: the lease expires at once, so the
// next claimant takes it with a new epoch.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	return s.tx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, `UPDATE leases SET expires_at = 0 WHERE name = ? AND holder = ?`, name, holder)
		if err != nil {
			return fmt.Errorf("release lease %s: %w", name, err)
		}
		return nil
	})
}

// CheckLease implements store.Leases.
func (s *Store) CheckLease(ctx context.Context, l store.Lease, now time.Time) error {
	return s.tx(ctx, func(t *txn) error { return t.checkLease(ctx, l, now) })
}

// checkLease is the fencing check every leader write runs inside its own
// transaction, so the check and the write commit together.
func (t *txn) checkLease(ctx context.Context, l store.Lease, now time.Time) error {
	q := `SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ?`
	if t.s.d.Name() == "postgres" {
		// Hold the row until this transaction ends, so a takeover (an
		// UPDATE of the row) waits for a write that already passed the
		// check instead of committing in between. SQLite's single writer
		// gives the same order.
		q += ` FOR SHARE`
	}
	var one int
	err := t.queryRow(ctx, q, l.Name, l.Holder, l.Epoch, micros(now)).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return fmt.Errorf("lease %s (epoch %d, holder %s): %w", l.Name, l.Epoch, l.Holder, store.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("check lease %s: %w", l.Name, err)
	}
	return nil
}
