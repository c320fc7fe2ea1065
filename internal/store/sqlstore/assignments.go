package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Assignment rules (see store.Assignments):
//   - active is true exactly while the state is not terminal; the partial
//     unique index assignments_one_active keeps one active assignment per
//     device even if the code below were wrong.
//   - Every write that touches a device's assignments first locks the
//     device row (a no-op UPDATE), then the assignment rows, then the audit
//     chain head. One lock order for Assign, CancelAssignment and
//     RecordReports means concurrent calls on PostgreSQL queue instead of
//     deadlocking or failing on the unique index; SQLite's single writer
//     serializes them anyway.
//   - A new assignment supersedes the active one whatever its state, even
//     for the same release: the newest decision wins.

// lockDevice locks the device row for the rest of t and returns the fields
// assignments need. A missing device is ErrNotFound.
func (t *txn) lockDevice(ctx context.Context, tenant, id string) (deviceRow, error) {
	res, err := t.exec(ctx, `UPDATE devices SET last_report_seq = last_report_seq WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return deviceRow{}, fmt.Errorf("lock device %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return deviceRow{}, fmt.Errorf("lock device %s: %w", id, err)
	} else if n == 0 {
		return deviceRow{}, fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	var d deviceRow
	err = t.queryRow(ctx, `SELECT id, serial, state, device_type, hw_rev, version, last_report_seq FROM devices WHERE tenant_id = ? AND id = ?`, tenant, id).
		Scan(&d.ID, &d.Serial, &d.State, &d.DeviceType, &d.HWRev, &d.Version, &d.LastReportSeq)
	if err != nil {
		return deviceRow{}, notFound(err, "device "+id)
	}
	return d, nil
}

// deviceRow is the part of a device that assignments and reports use.
type deviceRow struct {
	ID, Serial, State, DeviceType, HWRev, Version string
	LastReportSeq                                 int64
}

const assignmentSelect = `SELECT a.tenant_id, a.id, a.device_id, a.release_id, r.version, a.campaign_id, a.state, a.active, a.progress,
	a.error_code, a.reason, a.superseded_by, a.created_at, a.updated_at
	FROM assignments a JOIN releases r ON r.tenant_id = a.tenant_id AND r.id = a.release_id`

func scanAssignment(row interface{ Scan(...any) error }) (store.Assignment, error) {
	var a store.Assignment
	var state string
	var active, created, updated int64
	if err := row.Scan(&a.TenantID, &a.ID, &a.DeviceID, &a.ReleaseID, &a.Version, &a.CampaignID, &state, &active, &a.Progress,
		&a.ErrorCode, &a.Reason, &a.SupersededBy, &created, &updated); err != nil {
		return a, err
	}
	a.State = store.AssignmentState(state)
	a.Active = active != 0
	a.CreatedAt = fromMicros(created)
	a.UpdatedAt = fromMicros(updated)
	return a, nil
}

// Assign implements store.Assignments.
func (s *Store) Assign(ctx context.Context, p store.AssignParams, by store.Actor) (store.Assignment, *store.Assignment, error) {
	if p.TenantID == "" || p.DeviceID == "" || p.ReleaseID == "" {
		return store.Assignment{}, nil, invalidf("assign needs a tenant, a device and a release")
	}
	if err := checkLabel("campaign id", p.CampaignID, false); err != nil {
		return store.Assignment{}, nil, fmt.Errorf("assign: %w", err)
	}
	now := fromMicros(micros(p.Now))
	a := store.Assignment{
		TenantID:   p.TenantID,
		ID:         newID(),
		DeviceID:   p.DeviceID,
		ReleaseID:  p.ReleaseID,
		CampaignID: p.CampaignID,
		State:      store.AssignPending,
		Active:     true,
		CreatedAt:  now,
		UpdatedAt:  now,
	}
	var superseded *store.Assignment
	err := s.tx(ctx, func(t *txn) error {
		d, err := t.lockDevice(ctx, p.TenantID, p.DeviceID)
		if err != nil {
			return err
		}
		if store.DeviceState(d.State) != store.DeviceAccepted {
			return store.Conflictf("device %s (%s) is %s; only accepted devices get assignments", d.Serial, d.ID, d.State)
		}
		r, err := scanRelease(t.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND id = ?`, p.TenantID, p.ReleaseID))
		if err != nil {
			return notFound(err, "release "+p.ReleaseID)
		}
		a.Version = r.Version
		if r.State != store.ReleasePublished {
			return store.Conflictf("release %s is a draft; publish it before assigning it", r.Version)
		}
		if r.Bad && !p.AllowBad {
			return store.Conflictf("release %s is marked bad (%s); assigning it needs an explicit override", r.Version, r.BadReason)
		}
		// A full artifact for the hardware, or a delta from what the device runs.
		var artifactID string
		err = t.queryRow(ctx, `SELECT artifact_id FROM artifact_hw
			WHERE tenant_id = ? AND release_id = ? AND device_type = ? AND hw_rev = ? AND (from_version = '' OR from_version = ?)
			ORDER BY from_version, artifact_id LIMIT 1`, p.TenantID, p.ReleaseID, d.DeviceType, d.HWRev, d.Version).Scan(&artifactID)
		if errors.Is(err, sql.ErrNoRows) {
			return store.Conflictf("release %s has no artifact for %s rev %s", r.Version, d.DeviceType, d.HWRev)
		} else if err != nil {
			return fmt.Errorf("match artifact: %w", err)
		}
		prev, err := scanAssignment(t.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.device_id = ? AND a.active = 1`, p.TenantID, p.DeviceID))
		switch {
		case err == nil:
			if _, err := t.exec(ctx, `UPDATE assignments SET state = ?, active = 0, superseded_by = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
				string(store.AssignSuperseded), a.ID, micros(now), p.TenantID, prev.ID); err != nil {
				return fmt.Errorf("supersede assignment %s: %w", prev.ID, err)
			}
			prev.State, prev.Active, prev.SupersededBy, prev.UpdatedAt = store.AssignSuperseded, false, a.ID, now
			superseded = &prev
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read active assignment: %w", err)
		}
		if _, err := t.exec(ctx, `INSERT INTO assignments (tenant_id, id, device_id, release_id, campaign_id, state, active, progress, error_code, reason, superseded_by, created_at, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, 1, 0, '', '', '', ?, ?)`,
			a.TenantID, a.ID, a.DeviceID, a.ReleaseID, a.CampaignID, string(a.State), micros(now), micros(now)); err != nil {
			if s.d.IsUniqueViolation(err) {
				return store.Conflictf("device %s got another active assignment at the same time; retry", d.ID)
			}
			return fmt.Errorf("insert assignment: %w", err)
		}
		if r.Bad {
			if err := t.audit(ctx, p.TenantID, by, "assignment.override_bad", "assignment", a.ID, map[string]any{
				"device_id": d.ID, "release_id": r.ID, "version": r.Version, "bad_reason": r.BadReason,
			}, now); err != nil {
				return err
			}
		}
		if superseded != nil {
			if err := t.audit(ctx, p.TenantID, by, "assignment.supersede", "assignment", superseded.ID, map[string]any{
				"device_id": d.ID, "superseded_by": a.ID, "state_was": prev.State,
			}, now); err != nil {
				return err
			}
		}
		details := map[string]any{"device_id": d.ID, "release_id": r.ID, "version": r.Version, "artifact_id": artifactID}
		if a.CampaignID != "" {
			details["campaign_id"] = a.CampaignID
		}
		if superseded != nil {
			details["supersedes"] = superseded.ID
		}
		return t.audit(ctx, p.TenantID, by, "assignment.create", "assignment", a.ID, details, now)
	})
	if err != nil {
		return store.Assignment{}, nil, fmt.Errorf("assign release to device %s: %w", p.DeviceID, err)
	}
	return a, superseded, nil
}

// Assignment implements store.Assignments.
func (s *Store) Assignment(ctx context.Context, tenant, id string) (store.Assignment, error) {
	a, err := scanAssignment(s.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.id = ?`, tenant, id))
	if err != nil {
		return store.Assignment{}, notFound(err, "assignment "+id)
	}
	return a, nil
}

// ActiveAssignment implements store.Assignments.
func (s *Store) ActiveAssignment(ctx context.Context, tenant, deviceID string) (store.Assignment, error) {
	a, err := scanAssignment(s.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.device_id = ? AND a.active = 1`, tenant, deviceID))
	if err != nil {
		return store.Assignment{}, notFound(err, "active assignment of device "+deviceID)
	}
	return a, nil
}

// ListAssignments implements store.Assignments: newest first; an empty
// deviceID lists the whole tenant.
func (s *Store) ListAssignments(ctx context.Context, tenant, deviceID string, p store.Page) ([]store.Assignment, string, error) {
	where := `a.tenant_id = ?`
	args := []any{tenant}
	if deviceID != "" {
		where += ` AND a.device_id = ?`
		args = append(args, deviceID)
	}
	if p.After != "" {
		at, id, err := decodeTimeCursor(p.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (a.created_at < ? OR (a.created_at = ? AND a.id < ?))`
		args = append(args, at, at, id)
	}
	n := limit(p)
	rows, err := s.query(ctx, assignmentSelect+` WHERE `+where+` ORDER BY a.created_at DESC, a.id DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list assignments: %w", err)
	}
	out, next, err := scanPage(rows, n, scanAssignment, func(v store.Assignment) string { return timeCursor(v.CreatedAt, v.ID) })
	if err != nil {
		return nil, "", fmt.Errorf("list assignments: %w", err)
	}
	return out, next, nil
}

// CancelAssignment implements store.Assignments: an active assignment
// becomes canceled; one that already ended is a conflict.
func (s *Store) CancelAssignment(ctx context.Context, tenant, id, reason string, by store.Actor, now time.Time) (store.Assignment, error) {
	if err := checkText("reason", reason, maxReasonLen); err != nil {
		return store.Assignment{}, fmt.Errorf("cancel assignment: %w", err)
	}
	now = fromMicros(micros(now))
	var out store.Assignment
	err := s.tx(ctx, func(t *txn) error {
		var deviceID string
		if err := t.queryRow(ctx, `SELECT device_id FROM assignments WHERE tenant_id = ? AND id = ?`, tenant, id).Scan(&deviceID); err != nil {
			return notFound(err, "assignment "+id)
		}
		if _, err := t.lockDevice(ctx, tenant, deviceID); err != nil {
			return err
		}
		a, err := scanAssignment(t.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.id = ?`, tenant, id))
		if err != nil {
			return notFound(err, "assignment "+id)
		}
		if !a.Active {
			return store.Conflictf("assignment %s already ended (%s)", id, a.State)
		}
		if _, err := t.exec(ctx, `UPDATE assignments SET state = ?, active = 0, reason = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			string(store.AssignCanceled), reason, micros(now), tenant, id); err != nil {
			return fmt.Errorf("update assignment: %w", err)
		}
		prevState := a.State
		a.State, a.Active, a.Reason, a.UpdatedAt = store.AssignCanceled, false, reason, now
		out = a
		return t.audit(ctx, tenant, by, "assignment.cancel", "assignment", id, map[string]any{
			"device_id": a.DeviceID, "version": a.Version, "state_was": prevState, "reason": reason,
		}, now)
	})
	if err != nil {
		return store.Assignment{}, fmt.Errorf("cancel assignment: %w", err)
	}
	return out, nil
}
