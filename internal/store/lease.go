package store

import (
	"context"
	"errors"
	"time"
)

// ErrLeaseLost is returned by a fenced write whose lease has expired or
// passed to another holder: the caller is no longer the leader and must
// stop writing.
var ErrLeaseLost = errors.New("lease lost")

// Lease is a named, time-limited leadership claim held in the database.
// Epoch grows every time the lease changes holder, so a write fenced by
// (name, holder, epoch) fails once anybody else has taken the lease — even
// if the old holder was paused and wakes up believing it still leads.
type Lease struct {
	Name      string    `json:"name"`
	Holder    string    `json:"holder"`
	Epoch     int64     `json:"epoch"`
	ExpiresAt time.Time `json:"expires_at"`
}

// Held reports whether holder holds the lease at now.
func (l Lease) Held(holder string, now time.Time) bool {
	return l.Holder == holder && now.Before(l.ExpiresAt)
}

// Leases elects one leader per named duty (the rollout engine, the TUF
// publisher) among replicas sharing a database.
type Leases interface {
	// AcquireLease takes the named lease for holder until now+ttl when it is
	// free or expired, or renews it when holder already holds it. It returns
	// the lease as it stands afterwards: Held(holder, now) says whether the
	// caller leads.
	AcquireLease(ctx context.Context, name, holder string, ttl time.Duration, now time.Time) (Lease, error)
	// ReleaseLease gives the lease up early if holder holds it.
	ReleaseLease(ctx context.Context, name, holder string) error
	// CheckLease returns ErrLeaseLost unless holder holds the lease with
	// this epoch at now. Fenced store writes run the same check inside
	// their own transaction.
	CheckLease(ctx context.Context, l Lease, now time.Time) error
}
