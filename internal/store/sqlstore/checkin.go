package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// checkInQuery reads a device and its active assignment, if any, in one
// statement. The partial unique index assignments_one_active finds the
// assignment (at most one row joins); the release join only adds its
// version. It runs prepared (see stmtCache): every device check-in runs it.
const checkInQuery = `SELECT ` + deviceColumns + `,
	a.id, a.release_id, r.version, a.campaign_id, a.state, a.progress, a.error_code, a.reason,
	a.superseded_by, a.created_at, a.updated_at
	FROM devices d
	LEFT JOIN assignments a ON a.tenant_id = d.tenant_id AND a.device_id = d.id AND a.active = 1
	LEFT JOIN releases r ON r.tenant_id = a.tenant_id AND r.id = a.release_id
	WHERE d.tenant_id = ? AND d.id = ?`

// extraScan hands Scan the destinations of a scan function (scanDevice)
// followed by more, so that one row can carry a device and what was joined
// to it.
type extraScan struct {
	row   rowScanner
	extra []any
}

func (e extraScan) Scan(dest ...any) error { return e.row.Scan(append(dest, e.extra...)...) }

// CheckInState implements store.Devices with one prepared query.
func (s *Store) CheckInState(ctx context.Context, tenant, deviceID string) (store.Device, *store.Assignment, error) {
	if s.d.Name() == "sqlite" {
		// A read in SQLite's WAL mode never waits for writers, and this
		// point read takes microseconds, so cancelling it buys nothing;
		// watching a cancellable context costs two goroutines per query
		// (database/sql and the driver each start one), 13–16 % of the
		// read. On PostgreSQL the context still bounds the round trip.
		ctx = context.WithoutCancel(ctx)
	}
	// One struct, so the nullable columns cost one allocation, not eleven.
	var a struct {
		id, releaseID, version, campaignID, state, errorCode, reason, supersededBy sql.NullString
		progress, created, updated                                                 sql.NullInt64
	}
	d, err := scanDevice(extraScan{
		row: s.queryRowPrepared(ctx, checkInQuery, tenant, deviceID),
		extra: []any{&a.id, &a.releaseID, &a.version, &a.campaignID, &a.state, &a.progress, &a.errorCode, &a.reason,
			&a.supersededBy, &a.created, &a.updated},
	})
	if err != nil {
		return store.Device{}, nil, notFound(err, "check-in state of device "+deviceID)
	}
	d.Tags, d.Groups = nil, nil // not loaded
	if !a.id.Valid {
		return d, nil, nil
	}
	return d, &store.Assignment{
		TenantID:     d.TenantID,
		ID:           a.id.String,
		DeviceID:     d.ID,
		ReleaseID:    a.releaseID.String,
		Version:      a.version.String,
		CampaignID:   a.campaignID.String,
		State:        store.AssignmentState(a.state.String),
		Active:       true,
		Progress:     int(a.progress.Int64),
		ErrorCode:    a.errorCode.String,
		Reason:       a.reason.String,
		SupersededBy: a.supersededBy.String,
		CreatedAt:    fromMicros(a.created.Int64),
		UpdatedAt:    fromMicros(a.updated.Int64),
	}, nil
}

// MarkNotified implements store.Devices. The state condition is in the
// UPDATE itself, so a report or a supersede that got there first wins and
// a repeated call writes nothing. It touches the assignment row only
// (never the device row or the audit chain), so it cannot deadlock with
// the writes that lock those first. An unknown assignment is ErrNotFound.
func (s *Store) MarkNotified(ctx context.Context, tenant, assignmentID string, now time.Time) (bool, error) {
	var changed bool
	err := s.tx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `UPDATE assignments SET state = ?, updated_at = ? WHERE tenant_id = ? AND id = ? AND state = ?`,
			string(store.AssignNotified), micros(now), tenant, assignmentID, string(store.AssignPending))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		if n > 0 {
			changed = true
			return nil
		}
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM assignments WHERE tenant_id = ? AND id = ?`, tenant, assignmentID).Scan(&one); err != nil {
			return notFound(err, "assignment "+assignmentID)
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("mark assignment %s notified: %w", assignmentID, err)
	}
	return changed, nil
}
