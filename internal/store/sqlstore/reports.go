package sqlstore

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// Status reports (store.Assignments.RecordReports).
//
// A batch is validated as a whole before anything is written: one invalid
// report fails the call with store.ErrInvalidRequest and stores nothing.
// Validation needs no database, so callers that gather many devices'
// requests into one group commit validate each request first
// (store.StatusReport.Validate) and answer a bad one on its own.
//
// The valid batch is written in ONE transaction. Devices are processed in
// (tenant, device id) order, which is also the order their rows are locked
// in, so concurrent group commits on PostgreSQL cannot deadlock on each
// other. A device that does not exist or is not accepted (only accepted
// devices hold credentials to report with) gets a nil outcome slice and
// nothing of it is stored; the other devices' reports are committed.
//
// Per device, per report in order:
//   - (device, seq) already stored: ReportDuplicate, nothing changes.
//   - Otherwise the report is stored as an assignment event. A seq beyond
//     last_report_seq+1 records the gap [last+1, seq-1]; a seq below
//     last_report_seq is a late report and shrinks or splits the gap it
//     falls into. last_report_seq becomes the highest seq seen.
//   - The report is applied to its assignment when the assignment belongs
//     to the device and the transition is allowed (see allowedTransition):
//     ReportApplied. Otherwise it stays in history only: ReportRecorded.
//   - Applying a terminal state ends the assignment (active = false);
//     succeeded also sets the device's installed version to the release's,
//     keeping the old one as previous_version.
//
// Reports are not written to the audit log: they are device history, kept
// append-only in assignment_events, and their volume would serialize every
// group commit on the tenant's audit chain.

// stage orders the non-terminal states; ok is false for terminal ones.
func stage(s store.AssignmentState) (rank int, ok bool) {
	switch s {
	case store.AssignPending:
		return 0, true
	case store.AssignNotified:
		return 1, true
	case store.AssignDownloading:
		return 2, true
	case store.AssignInstalling:
		return 3, true
	case store.AssignRebooting:
		return 4, true
	case store.AssignVerifying:
		return 5, true
	}
	return 0, false
}

// allowedTransition is the transition table for device reports:
//
//	from \ to          notified … verifying        succeeded failed rolled-back skipped
//	pending … verifying  same or later stage only   yes (from any of them)
//	terminal states      no                          no
//
// Devices never report pending (the server's initial state), timed-out (the
// server decides), canceled or superseded (operator and server decisions);
// such reports, backward moves (e.g. a late "downloading" after
// "installing") and anything after a terminal state are recorded but not
// applied. Repeating the current stage is allowed so progress can update.
func allowedTransition(from, to store.AssignmentState) bool {
	fromRank, fromActive := stage(from)
	if !fromActive {
		return false
	}
	switch to {
	case store.AssignSucceeded, store.AssignFailed, store.AssignRolledBack, store.AssignSkipped:
		return true
	case store.AssignPending:
		return false
	}
	toRank, toActive := stage(to)
	return toActive && toRank >= fromRank
}

// RecordReports implements store.Assignments; see the rules above.
func (s *Store) RecordReports(ctx context.Context, batch []store.DeviceReports, now time.Time) ([][]store.ReportOutcome, error) {
	for _, dr := range batch {
		if dr.TenantID == "" || dr.DeviceID == "" {
			return nil, fmt.Errorf("record reports: %w", invalidf("reports need a tenant and a device"))
		}
		for _, r := range dr.Reports {
			if err := r.Validate(); err != nil {
				return nil, fmt.Errorf("record reports: device %s, seq %d: %w", dr.DeviceID, r.Seq, err)
			}
		}
	}
	order := make([]int, len(batch))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Or(cmp.Compare(batch[a].TenantID, batch[b].TenantID), cmp.Compare(batch[a].DeviceID, batch[b].DeviceID))
	})
	now = fromMicros(micros(now))
	out := make([][]store.ReportOutcome, len(batch))
	err := s.tx(ctx, func(t *txn) error {
		for _, i := range order {
			res, err := t.recordDeviceReports(ctx, batch[i], now)
			if err != nil {
				return fmt.Errorf("device %s: %w", batch[i].DeviceID, err)
			}
			out[i] = res
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("record reports: %w", err)
	}
	return out, nil
}

// recordDeviceReports stores one device's reports inside t; a nil result
// means the device is unknown or not accepted and nothing was stored.
func (t *txn) recordDeviceReports(ctx context.Context, dr store.DeviceReports, now time.Time) ([]store.ReportOutcome, error) {
	d, err := t.lockDevice(ctx, dr.TenantID, dr.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	if store.DeviceState(d.State) != store.DeviceAccepted {
		return nil, nil
	}
	res := make([]store.ReportOutcome, len(dr.Reports))
	last := d.LastReportSeq
	for j, r := range dr.Reports {
		var one int
		err := t.queryRow(ctx, `SELECT 1 FROM assignment_events WHERE tenant_id = ? AND device_id = ? AND seq = ?`, dr.TenantID, d.ID, r.Seq).Scan(&one)
		if err == nil {
			res[j] = store.ReportDuplicate
			continue
		} else if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("check seq %d: %w", r.Seq, err)
		}
		switch {
		case r.Seq > last+1:
			if _, err := t.exec(ctx, `INSERT INTO report_gaps (tenant_id, device_id, from_seq, to_seq, detected_at) VALUES (?, ?, ?, ?, ?)`,
				dr.TenantID, d.ID, last+1, r.Seq-1, micros(now)); err != nil {
				return nil, fmt.Errorf("record gap before seq %d: %w", r.Seq, err)
			}
		case r.Seq < last:
			if err := t.fillGap(ctx, dr.TenantID, d.ID, r.Seq); err != nil {
				return nil, err
			}
		}
		last = max(last, r.Seq)
		applied, err := t.applyReport(ctx, dr.TenantID, &d, r, now)
		if err != nil {
			return nil, fmt.Errorf("apply seq %d: %w", r.Seq, err)
		}
		reported := r.ReportedAt
		if reported.IsZero() {
			reported = now
		}
		if _, err := t.exec(ctx, `INSERT INTO assignment_events (tenant_id, device_id, seq, assignment_id, state, progress, error_code, message, log_tail, reported_at, received_at, applied)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			dr.TenantID, d.ID, r.Seq, r.AssignmentID, string(r.State), r.Progress, r.ErrorCode, r.Message, r.LogTail,
			micros(reported), micros(now), boolInt(applied)); err != nil {
			return nil, fmt.Errorf("store seq %d: %w", r.Seq, err)
		}
		res[j] = store.ReportRecorded
		if applied {
			res[j] = store.ReportApplied
		}
	}
	if last != d.LastReportSeq {
		if _, err := t.exec(ctx, `UPDATE devices SET last_report_seq = ? WHERE tenant_id = ? AND id = ?`, last, dr.TenantID, d.ID); err != nil {
			return nil, fmt.Errorf("advance report sequence: %w", err)
		}
	}
	return res, nil
}

// fillGap removes seq from the recorded gap that holds it, shrinking or
// splitting the gap; the pieces keep the original detection time.
func (t *txn) fillGap(ctx context.Context, tenant, deviceID string, seq int64) error {
	var from, to, detected int64
	err := t.queryRow(ctx, `SELECT from_seq, to_seq, detected_at FROM report_gaps WHERE tenant_id = ? AND device_id = ? AND from_seq <= ? AND to_seq >= ?`,
		tenant, deviceID, seq, seq).Scan(&from, &to, &detected)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	} else if err != nil {
		return fmt.Errorf("find gap holding seq %d: %w", seq, err)
	}
	if _, err := t.exec(ctx, `DELETE FROM report_gaps WHERE tenant_id = ? AND device_id = ? AND from_seq = ?`, tenant, deviceID, from); err != nil {
		return fmt.Errorf("fill gap at seq %d: %w", seq, err)
	}
	for _, g := range [][2]int64{{from, seq - 1}, {seq + 1, to}} {
		if g[0] > g[1] {
			continue
		}
		if _, err := t.exec(ctx, `INSERT INTO report_gaps (tenant_id, device_id, from_seq, to_seq, detected_at) VALUES (?, ?, ?, ?, ?)`,
			tenant, deviceID, g[0], g[1], detected); err != nil {
			return fmt.Errorf("fill gap at seq %d: %w", seq, err)
		}
	}
	return nil
}

// applyReport moves the report's assignment when the table allows it and
// reports whether it did. d is updated when the installed version changes.
func (t *txn) applyReport(ctx context.Context, tenant string, d *deviceRow, r store.StatusReport, now time.Time) (bool, error) {
	var deviceID, state, releaseID string
	err := t.queryRow(ctx, `SELECT device_id, state, release_id FROM assignments WHERE tenant_id = ? AND id = ?`, tenant, r.AssignmentID).
		Scan(&deviceID, &state, &releaseID)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	} else if err != nil {
		return false, fmt.Errorf("read assignment %s: %w", r.AssignmentID, err)
	}
	if deviceID != d.ID || !allowedTransition(store.AssignmentState(state), r.State) {
		return false, nil
	}
	q := `UPDATE assignments SET state = ?, active = ?, progress = ?, error_code = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`
	args := []any{string(r.State), boolInt(!r.State.Terminal()), r.Progress, r.ErrorCode, micros(now), tenant, r.AssignmentID}
	if r.State.Terminal() {
		q = `UPDATE assignments SET state = ?, active = ?, progress = ?, error_code = ?, updated_at = ?, reason = ? WHERE tenant_id = ? AND id = ?`
		args = []any{string(r.State), 0, r.Progress, r.ErrorCode, micros(now), r.Message, tenant, r.AssignmentID}
	}
	if _, err := t.exec(ctx, q, args...); err != nil {
		return false, fmt.Errorf("update assignment %s: %w", r.AssignmentID, err)
	}
	if r.State != store.AssignSucceeded {
		return true, nil
	}
	var version string
	if err := t.queryRow(ctx, `SELECT version FROM releases WHERE tenant_id = ? AND id = ?`, tenant, releaseID).Scan(&version); err != nil {
		return false, notFound(err, "release "+releaseID)
	}
	if version == d.Version {
		return true, nil
	}
	v, err := semver.Parse(version)
	if err != nil {
		return false, fmt.Errorf("stored release version: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE devices SET previous_version = version, version = ?, version_key = ?, version_since = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		version, semver.Key(v), micros(now), micros(now), tenant, d.ID); err != nil {
		return false, fmt.Errorf("set installed version: %w", err)
	}
	d.Version = version
	return true, nil
}

const eventColumns = `e.device_id, e.seq, e.assignment_id, e.state, e.progress, e.error_code, e.message, e.log_tail, e.reported_at, e.received_at, e.applied`

// AssignmentEvents implements store.Assignments: the assignment's stored
// reports in sequence order. Reports that named the assignment but came
// from another device are not part of its history.
func (s *Store) AssignmentEvents(ctx context.Context, tenant, assignmentID string) ([]store.AssignmentEvent, error) {
	var deviceID string
	if err := s.queryRow(ctx, `SELECT device_id FROM assignments WHERE tenant_id = ? AND id = ?`, tenant, assignmentID).Scan(&deviceID); err != nil {
		return nil, notFound(err, "assignment "+assignmentID)
	}
	rows, err := s.query(ctx, `SELECT `+eventColumns+` FROM assignment_events e WHERE e.tenant_id = ? AND e.assignment_id = ? AND e.device_id = ? ORDER BY e.seq`,
		tenant, assignmentID, deviceID)
	if err != nil {
		return nil, fmt.Errorf("assignment %s events: %w", assignmentID, err)
	}
	defer rows.Close()
	out := []store.AssignmentEvent{}
	for rows.Next() {
		var e store.AssignmentEvent
		var state string
		var reported, received, applied int64
		if err := rows.Scan(&e.DeviceID, &e.Seq, &e.AssignmentID, &state, &e.Progress, &e.ErrorCode, &e.Message, &e.LogTail, &reported, &received, &applied); err != nil {
			return nil, fmt.Errorf("assignment %s events: %w", assignmentID, err)
		}
		e.State = store.AssignmentState(state)
		e.ReportedAt = fromMicros(reported)
		e.ReceivedAt = fromMicros(received)
		e.Applied = applied != 0
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("assignment %s events: %w", assignmentID, err)
	}
	return out, nil
}

// ReportGaps implements store.Assignments: the device's open gaps in
// sequence order.
func (s *Store) ReportGaps(ctx context.Context, tenant, deviceID string) ([]store.ReportGap, error) {
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM devices WHERE tenant_id = ? AND id = ?`, tenant, deviceID).Scan(&one); err != nil {
		return nil, notFound(err, "device "+deviceID)
	}
	rows, err := s.query(ctx, `SELECT device_id, from_seq, to_seq, detected_at FROM report_gaps WHERE tenant_id = ? AND device_id = ? ORDER BY from_seq`, tenant, deviceID)
	if err != nil {
		return nil, fmt.Errorf("report gaps of device %s: %w", deviceID, err)
	}
	defer rows.Close()
	out := []store.ReportGap{}
	for rows.Next() {
		var g store.ReportGap
		var detected int64
		if err := rows.Scan(&g.DeviceID, &g.FromSeq, &g.ToSeq, &detected); err != nil {
			return nil, fmt.Errorf("report gaps of device %s: %w", deviceID, err)
		}
		g.DetectedAt = fromMicros(detected)
		out = append(out, g)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("report gaps of device %s: %w", deviceID, err)
	}
	return out, nil
}
