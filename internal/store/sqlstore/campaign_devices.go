package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

// Campaign devices: one row per targeted device, and campaign_tallies
// counting them per (step, stratum, state, silent). Every write of a row
// adjusts the tallies in the same transaction, so reading a campaign's
// progress costs a handful of rows however large the fleet.
//
// The engine's writes are fenced: fence runs first in their transaction.
// Dispatch and EndCampaignAssignments lock every device row they touch in
// id order before anything else, then the audit chain, as Assign and
// RecordReports do, so they cannot deadlock each other on PostgreSQL.

// fence checks the lease inside t. On PostgreSQL the lease row is read
// FOR SHARE, so a takeover (an UPDATE of that row) waits until this
// transaction ends: a write that passed the check commits before the new
// leader's epoch begins.
func (t *txn) fence(ctx context.Context, l store.Lease, now time.Time) error {
	if t.s.d.Name() != "postgres" {
		return t.checkLease(ctx, l, now)
	}
	var one int
	err := t.queryRow(ctx, `SELECT 1 FROM leases WHERE name = ? AND holder = ? AND epoch = ? AND expires_at > ? FOR SHARE`,
		l.Name, l.Holder, l.Epoch, micros(now)).Scan(&one)
	if errNoRows(err) {
		return fmt.Errorf("lease %s (epoch %d, holder %s): %w", l.Name, l.Epoch, l.Holder, store.ErrLeaseLost)
	}
	if err != nil {
		return fmt.Errorf("check lease %s: %w", l.Name, err)
	}
	return nil
}

const cdColumns = `cd.device_id, cd.stratum, cd.step, cd.silent, cd.state, cd.release_id, cd.from_version, cd.assignment_id, cd.eligible_at,
	cd.due_at, cd.waiting, cd.attempts, cd.reason, cd.assigned_at, cd.soak_started_at, cd.finished_at, cd.updated_at`

func scanCD(row interface{ Scan(...any) error }, extra ...any) (store.CampaignDevice, error) {
	var d store.CampaignDevice
	var state string
	var silent, waiting, eligible, updated int64
	var due, assigned, soak, finished sql.NullInt64
	dest := []any{&d.DeviceID, &d.Stratum, &d.Step, &silent, &state, &d.ReleaseID, &d.FromVersion, &d.AssignmentID, &eligible,
		&due, &waiting, &d.Attempts, &d.Reason, &assigned, &soak, &finished, &updated}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return d, err
	}
	d.State = store.CampaignDeviceState(state)
	d.Silent, d.Waiting = silent != 0, waiting != 0
	d.EligibleAt, d.UpdatedAt = fromMicros(eligible), fromMicros(updated)
	d.DueAt, d.AssignedAt, d.SoakStartedAt, d.FinishedAt = timePtr(due), timePtr(assigned), timePtr(soak), timePtr(finished)
	return d, nil
}

// tally adds delta to one tally row.
func (t *txn) tally(ctx context.Context, tenant, campaignID string, step int, stratum string, state store.CampaignDeviceState, silent bool, delta int) error {
	if delta == 0 {
		return nil
	}
	_, err := t.exec(ctx, `INSERT INTO campaign_tallies (tenant_id, campaign_id, step, stratum, state, silent, n) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (tenant_id, campaign_id, step, stratum, state, silent) DO UPDATE SET n = campaign_tallies.n + excluded.n`,
		tenant, campaignID, step, stratum, string(state), boolInt(silent), delta)
	if err != nil {
		return fmt.Errorf("update tallies: %w", err)
	}
	return nil
}

// writeCD rewrites a campaign device row and moves its tally.
func (t *txn) writeCD(ctx context.Context, tenant, campaignID string, old, d store.CampaignDevice, now time.Time) error {
	if _, err := t.exec(ctx, `UPDATE campaign_devices SET stratum = ?, step = ?, silent = ?, state = ?, release_id = ?, from_version = ?,
		assignment_id = ?, eligible_at = ?, due_at = ?, waiting = ?, attempts = ?, reason = ?, assigned_at = ?, soak_started_at = ?,
		finished_at = ?, updated_at = ? WHERE tenant_id = ? AND campaign_id = ? AND device_id = ?`,
		d.Stratum, d.Step, boolInt(d.Silent), string(d.State), d.ReleaseID, d.FromVersion, d.AssignmentID, micros(d.EligibleAt),
		nullMicros(d.DueAt), boolInt(d.Waiting), d.Attempts, d.Reason, nullMicros(d.AssignedAt), nullMicros(d.SoakStartedAt),
		nullMicros(d.FinishedAt), micros(now), tenant, campaignID, d.DeviceID); err != nil {
		return fmt.Errorf("update campaign device %s: %w", d.DeviceID, err)
	}
	if old.State == d.State && old.Step == d.Step && old.Stratum == d.Stratum && old.Silent == d.Silent {
		return nil
	}
	if err := t.tally(ctx, tenant, campaignID, old.Step, old.Stratum, old.State, old.Silent, -1); err != nil {
		return err
	}
	return t.tally(ctx, tenant, campaignID, d.Step, d.Stratum, d.State, d.Silent, 1)
}

func (t *txn) readCD(ctx context.Context, tenant, campaignID, deviceID string) (store.CampaignDevice, error) {
	d, err := scanCD(t.queryRow(ctx, `SELECT `+cdColumns+` FROM campaign_devices cd WHERE cd.tenant_id = ? AND cd.campaign_id = ? AND cd.device_id = ?`,
		tenant, campaignID, deviceID))
	if err != nil {
		return d, notFound(err, "campaign device "+deviceID)
	}
	return d, nil
}

// strataKey is the stratum key of a device: "field=value" for each field,
// joined by commas, in the order given.
func strataKey(fields []string, vals []string) string {
	parts := make([]string, len(fields))
	for i, f := range fields {
		parts[i] = f + "=" + vals[i]
	}
	return strings.Join(parts, ",")
}

// CountTargets implements store.Campaigns.
func (s *Store) CountTargets(ctx context.Context, tenant string, f *filter.Expr, fields []string) (map[string]int, error) {
	if len(fields) == 0 {
		return nil, invalidf("count targets: no stratum fields")
	}
	cols := make([]string, len(fields))
	for i, field := range fields {
		col, ok := countColumn(field)
		if !ok || field == store.CountByState {
			return nil, invalidf("count targets: cannot stratify by %q", field)
		}
		cols[i] = col
	}
	where, args, err := s.deviceWhere(tenant, f, store.DeviceAccepted)
	if err != nil {
		return nil, err
	}
	list := strings.Join(cols, ", ")
	rows, err := s.query(ctx, `SELECT `+list+`, COUNT(*) FROM devices d WHERE `+where+` GROUP BY `+list, args...)
	if err != nil {
		return nil, fmt.Errorf("count targets: %w", err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		vals := make([]string, len(cols))
		dest := make([]any, 0, len(cols)+1)
		for i := range vals {
			dest = append(dest, &vals[i])
		}
		var n int
		if err := rows.Scan(append(dest, &n)...); err != nil {
			return nil, fmt.Errorf("count targets: %w", err)
		}
		out[strataKey(fields, vals)] += n
	}
	return out, rows.Err()
}

// HardwareOf implements store.Campaigns.
func (s *Store) HardwareOf(ctx context.Context, tenant string, f *filter.Expr) (map[[2]string]int, error) {
	where, args, err := s.deviceWhere(tenant, f, store.DeviceAccepted)
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT d.device_type, d.hw_rev, COUNT(*) FROM devices d WHERE `+where+` GROUP BY d.device_type, d.hw_rev`, args...)
	if err != nil {
		return nil, fmt.Errorf("hardware of targets: %w", err)
	}
	defer rows.Close()
	out := map[[2]string]int{}
	for rows.Next() {
		var typ, rev string
		var n int
		if err := rows.Scan(&typ, &rev, &n); err != nil {
			return nil, fmt.Errorf("hardware of targets: %w", err)
		}
		out[[2]string{typ, rev}] = n
	}
	return out, rows.Err()
}

// CampaignCandidates implements store.Campaigns.
func (s *Store) CampaignCandidates(ctx context.Context, tenant, campaignID string, f *filter.Expr, after store.DeviceCursor, n int) ([]store.CampaignCandidate, error) {
	match := `1 = 1`
	var args []any
	if f != nil {
		c := s.d.Filter().SQLConfig()
		c.Alias, c.QuestionMarks = "d", true
		match, args = f.SQL(c)
	}
	at := micros(after.UpdatedAt)
	if after.UpdatedAt.IsZero() {
		at = -1 << 62
	}
	args = append(args, campaignID, tenant, at, at, after.ID)
	rows, err := s.query(ctx, `SELECT `+deviceColumns+`, CASE WHEN d.state = 'accepted' AND (`+match+`) THEN 1 ELSE 0 END, COALESCE(cd.state, '')
		FROM devices d LEFT JOIN campaign_devices cd ON cd.tenant_id = d.tenant_id AND cd.campaign_id = ? AND cd.device_id = d.id
		WHERE d.tenant_id = ? AND (d.updated_at > ? OR (d.updated_at = ? AND d.id > ?))
		ORDER BY d.updated_at, d.id LIMIT `+strconv.Itoa(max(n, 1)), args...)
	if err != nil {
		return nil, fmt.Errorf("campaign candidates: %w", err)
	}
	defer rows.Close()
	var out []store.CampaignCandidate
	for rows.Next() {
		var c store.CampaignCandidate
		var matches int
		var in string
		d, err := scanDevice(extraScan{rows, []any{&matches, &in}})
		if err != nil {
			return nil, fmt.Errorf("campaign candidates: %w", err)
		}
		c.Device, c.Matches, c.In = d, matches != 0, store.CampaignDeviceState(in)
		out = append(out, c)
	}
	return out, rows.Err()
}

// AddCampaignDevices implements store.Campaigns.
func (s *Store) AddCampaignDevices(ctx context.Context, l store.Lease, tenant, campaignID string, devs []store.CampaignDevice, now time.Time) (int, error) {
	now = storedTime(now)
	added := 0
	err := s.tx(ctx, func(t *txn) error {
		added = 0
		if err := t.fence(ctx, l, now); err != nil {
			return err
		}
		for _, d := range devs {
			if d.State == "" {
				d.State = store.CDQueued
			}
			res, err := t.exec(ctx, `INSERT INTO campaign_devices (tenant_id, campaign_id, device_id, stratum, step, silent, state, release_id,
				from_version, assignment_id, eligible_at, due_at, waiting, attempts, reason, assigned_at, soak_started_at, finished_at, updated_at)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, '', ?, NULL, 0, 0, ?, NULL, NULL, NULL, ?)
				ON CONFLICT (tenant_id, campaign_id, device_id) DO NOTHING`,
				tenant, campaignID, d.DeviceID, d.Stratum, d.Step, boolInt(d.Silent), string(d.State), d.ReleaseID, d.FromVersion,
				micros(d.EligibleAt), d.Reason, micros(now))
			if err != nil {
				return fmt.Errorf("add campaign device %s: %w", d.DeviceID, err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				continue
			}
			added++
			if err := t.tally(ctx, tenant, campaignID, d.Step, d.Stratum, d.State, d.Silent, 1); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("add campaign devices: %w", err)
	}
	return added, nil
}

// CampaignDevice implements store.Campaigns.
func (s *Store) CampaignDevice(ctx context.Context, tenant, campaignID, deviceID string) (store.CampaignDevice, error) {
	d, err := scanCD(s.queryRow(ctx, `SELECT `+cdColumns+` FROM campaign_devices cd WHERE cd.tenant_id = ? AND cd.campaign_id = ? AND cd.device_id = ?`,
		tenant, campaignID, deviceID))
	if err != nil {
		return d, notFound(err, "campaign device "+deviceID)
	}
	return d, nil
}

// ListCampaignDevices implements store.Campaigns.
func (s *Store) ListCampaignDevices(ctx context.Context, tenant, campaignID string, state store.CampaignDeviceState, p store.Page) ([]store.CampaignDevice, string, error) {
	where := `cd.tenant_id = ? AND cd.campaign_id = ?`
	args := []any{tenant, campaignID}
	if state != "" {
		where += ` AND cd.state = ?`
		args = append(args, string(state))
	}
	if p.After != "" {
		parts, err := decodeCursor(p.After, 1)
		if err != nil {
			return nil, "", err
		}
		where += ` AND cd.device_id > ?`
		args = append(args, parts[0])
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT `+cdColumns+` FROM campaign_devices cd WHERE `+where+` ORDER BY cd.device_id LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list campaign devices: %w", err)
	}
	defer rows.Close()
	out := []store.CampaignDevice{}
	for rows.Next() {
		d, err := scanCD(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list campaign devices: %w", err)
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list campaign devices: %w", err)
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = encodeCursor(out[n-1].DeviceID)
	}
	return out, next, nil
}

// QueuedCampaignDevices implements store.Campaigns.
func (s *Store) QueuedCampaignDevices(ctx context.Context, tenant, campaignID string, maxStep int, control bool, now time.Time, n int) ([]store.CampaignDevice, []store.Device, error) {
	steps := `(cd.step >= 0 AND cd.step <= ?)`
	if control {
		steps = `(cd.step <= ?)`
	}
	rows, err := s.query(ctx, `SELECT `+cdColumns+`, d.protocol, d.device_type, d.hw_rev, d.time_zone, d.version, d.security_floor FROM campaign_devices cd
		JOIN devices d ON d.tenant_id = cd.tenant_id AND d.id = cd.device_id
		WHERE cd.tenant_id = ? AND cd.campaign_id = ? AND cd.state = 'queued' AND cd.eligible_at <= ? AND `+steps+`
		ORDER BY cd.eligible_at, cd.device_id LIMIT `+strconv.Itoa(max(n, 1)),
		tenant, campaignID, micros(now), maxStep)
	if err != nil {
		return nil, nil, fmt.Errorf("queued campaign devices: %w", err)
	}
	defer rows.Close()
	var cds []store.CampaignDevice
	var devs []store.Device
	for rows.Next() {
		var dev store.Device
		var protocol string
		cd, err := scanCD(rows, &protocol, &dev.DeviceType, &dev.HWRev, &dev.TimeZone, &dev.Version, &dev.SecurityFloor)
		if err != nil {
			return nil, nil, fmt.Errorf("queued campaign devices: %w", err)
		}
		dev.TenantID, dev.ID, dev.Protocol = tenant, cd.DeviceID, store.Protocol(protocol)
		cds = append(cds, cd)
		devs = append(devs, dev)
	}
	return cds, devs, rows.Err()
}

// DueCampaignDevices implements store.Campaigns.
func (s *Store) DueCampaignDevices(ctx context.Context, tenant, campaignID string, now time.Time, n int) ([]store.CampaignDevice, error) {
	rows, err := s.query(ctx, `SELECT `+cdColumns+` FROM campaign_devices cd
		WHERE cd.tenant_id = ? AND cd.campaign_id = ? AND cd.state = 'assigned' AND cd.due_at <= ?
		ORDER BY cd.due_at, cd.device_id LIMIT `+strconv.Itoa(max(n, 1)), tenant, campaignID, micros(now))
	if err != nil {
		return nil, fmt.Errorf("due campaign devices: %w", err)
	}
	defer rows.Close()
	var out []store.CampaignDevice
	for rows.Next() {
		d, err := scanCD(rows)
		if err != nil {
			return nil, fmt.Errorf("due campaign devices: %w", err)
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// UpdateCampaignDevices implements store.Campaigns.
func (s *Store) UpdateCampaignDevices(ctx context.Context, l store.Lease, tenant, campaignID string, changes []store.CampaignDeviceChange, now time.Time) error {
	now = storedTime(now)
	err := s.tx(ctx, func(t *txn) error {
		if err := t.fence(ctx, l, now); err != nil {
			return err
		}
		for _, c := range changes {
			old, err := t.readCD(ctx, tenant, campaignID, c.Device.DeviceID)
			if err != nil {
				return err
			}
			if err := t.writeCD(ctx, tenant, campaignID, old, c.Device, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("update campaign devices: %w", err)
	}
	return nil
}

// DispatchCampaign implements store.Campaigns. The checks are Assign's
// (accepted device, published release, not bad unless allowed, an artifact
// for the hardware), plus the device's security floor; a device failing
// one is skipped with the reason rather than failing the batch.
func (s *Store) DispatchCampaign(ctx context.Context, l store.Lease, tenant, campaignID string, ds []store.CampaignDispatch, by store.Actor, now time.Time) ([]store.DispatchResult, error) {
	now = storedTime(now)
	sorted := slices.Clone(ds)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].DeviceID < sorted[j].DeviceID })
	var out []store.DispatchResult
	err := s.tx(ctx, func(t *txn) error {
		out = out[:0]
		if err := t.fence(ctx, l, now); err != nil {
			return err
		}
		devs := make(map[string]deviceRow, len(sorted))
		for _, d := range sorted {
			row, err := t.lockDevice(ctx, tenant, d.DeviceID)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return err
			}
			if err == nil {
				devs[d.DeviceID] = row
			}
		}
		releases := map[string]store.Release{}
		for _, d := range sorted {
			res, err := t.dispatchOne(ctx, tenant, campaignID, d, devs, releases, by, now)
			if err != nil {
				return fmt.Errorf("device %s: %w", d.DeviceID, err)
			}
			out = append(out, res)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("dispatch campaign %s: %w", campaignID, err)
	}
	return out, nil
}

func (t *txn) dispatchOne(ctx context.Context, tenant, campaignID string, p store.CampaignDispatch, devs map[string]deviceRow,
	releases map[string]store.Release, by store.Actor, now time.Time) (store.DispatchResult, error) {
	res := store.DispatchResult{DeviceID: p.DeviceID}
	cd, err := t.readCD(ctx, tenant, campaignID, p.DeviceID)
	if err != nil {
		return res, err
	}
	if cd.State != store.CDQueued {
		res.Skipped = fmt.Sprintf("device is %s in the campaign, not queued", cd.State)
		return res, nil
	}
	skip := func(format string, args ...any) (store.DispatchResult, error) {
		res.Skipped = fmt.Sprintf(format, args...)
		old := cd
		cd.State, cd.Reason, cd.FinishedAt = store.CDSkipped, res.Skipped, &now
		return res, t.writeCD(ctx, tenant, campaignID, old, cd, now)
	}
	d, ok := devs[p.DeviceID]
	if !ok {
		return skip("the device no longer exists")
	}
	if store.DeviceState(d.State) != store.DeviceAccepted {
		return skip("the device is %s", d.State)
	}
	r, ok := releases[p.ReleaseID]
	if !ok {
		r, err = scanRelease(t.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND id = ?`, tenant, p.ReleaseID))
		if err != nil {
			return res, notFound(err, "release "+p.ReleaseID)
		}
		releases[p.ReleaseID] = r
	}
	if r.State != store.ReleasePublished {
		return skip("release %s is a draft", r.Version)
	}
	if r.Bad && !p.AllowBad {
		return skip("release %s is marked bad (%s)", r.Version, r.BadReason)
	}
	var floor int64
	if err := t.queryRow(ctx, `SELECT security_floor FROM devices WHERE tenant_id = ? AND id = ?`, tenant, d.ID).Scan(&floor); err != nil {
		return res, fmt.Errorf("read security floor: %w", err)
	}
	if r.SecurityVersion < floor {
		return skip("release %s has security version %d, below the device's floor %d", r.Version, r.SecurityVersion, floor)
	}
	var artifactID string
	err = t.queryRow(ctx, `SELECT artifact_id FROM artifact_hw
		WHERE tenant_id = ? AND release_id = ? AND device_type = ? AND hw_rev = ? AND (from_version = '' OR from_version = ?)
		ORDER BY from_version, artifact_id LIMIT 1`, tenant, r.ID, d.DeviceType, d.HWRev, d.Version).Scan(&artifactID)
	if errNoRows(err) {
		return skip("release %s has no artifact for %s rev %s", r.Version, d.DeviceType, d.HWRev)
	} else if err != nil {
		return res, fmt.Errorf("match artifact: %w", err)
	}
	a := store.Assignment{
		TenantID: tenant, ID: newID(), DeviceID: d.ID, ReleaseID: r.ID, Version: r.Version, CampaignID: campaignID,
		State: store.AssignPending, Active: true, CreatedAt: now, UpdatedAt: now,
	}
	prev, err := scanAssignment(t.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.device_id = ? AND a.active = 1`, tenant, d.ID))
	switch {
	case err == nil:
		if _, err := t.exec(ctx, `UPDATE assignments SET state = ?, active = 0, superseded_by = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			string(store.AssignSuperseded), a.ID, micros(now), tenant, prev.ID); err != nil {
			return res, fmt.Errorf("supersede assignment %s: %w", prev.ID, err)
		}
		stateWas := prev.State
		prev.State, prev.Active, prev.SupersededBy, prev.UpdatedAt = store.AssignSuperseded, false, a.ID, now
		res.Superseded = &prev
		if err := t.audit(ctx, tenant, by, "assignment.supersede", "assignment", prev.ID, map[string]any{
			"device_id": d.ID, "superseded_by": a.ID, "state_was": stateWas,
		}, now); err != nil {
			return res, err
		}
	case !errNoRows(err):
		return res, fmt.Errorf("read active assignment: %w", err)
	}
	if _, err := t.exec(ctx, `INSERT INTO assignments (tenant_id, id, device_id, release_id, campaign_id, state, active, progress, error_code, reason, superseded_by, created_at, updated_at)
		VALUES (?, ?, ?, ?, ?, ?, 1, 0, '', '', '', ?, ?)`,
		a.TenantID, a.ID, a.DeviceID, a.ReleaseID, campaignID, string(a.State), micros(now), micros(now)); err != nil {
		return res, fmt.Errorf("insert assignment: %w", err)
	}
	if r.Bad {
		if err := t.audit(ctx, tenant, by, "assignment.override_bad", "assignment", a.ID, map[string]any{
			"device_id": d.ID, "release_id": r.ID, "version": r.Version, "bad_reason": r.BadReason, "campaign_id": campaignID,
		}, now); err != nil {
			return res, err
		}
	}
	details := map[string]any{"device_id": d.ID, "release_id": r.ID, "version": r.Version, "artifact_id": artifactID, "campaign_id": campaignID}
	if res.Superseded != nil {
		details["supersedes"] = res.Superseded.ID
	}
	if err := t.audit(ctx, tenant, by, "assignment.create", "assignment", a.ID, details, now); err != nil {
		return res, err
	}
	old := cd
	cd.State, cd.AssignmentID, cd.AssignedAt, cd.FromVersion = store.CDAssigned, a.ID, &now, d.Version
	cd.DueAt, cd.Waiting, cd.Reason, cd.Attempts = p.DueAt, false, "", cd.Attempts+1
	cd.SoakStartedAt, cd.FinishedAt = nil, nil
	if err := t.writeCD(ctx, tenant, campaignID, old, cd, now); err != nil {
		return res, err
	}
	res.Assignment = &a
	return res, nil
}

// EndCampaignAssignments implements store.Campaigns. A device whose
// assignment already ended keeps its campaign state unless it was still
// assigned or queued there.
func (s *Store) EndCampaignAssignments(ctx context.Context, l store.Lease, tenant, campaignID string, ends []store.CampaignEnd, by store.Actor, now time.Time) ([]store.Assignment, error) {
	now = storedTime(now)
	sorted := slices.Clone(ends)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].DeviceID < sorted[j].DeviceID })
	var out []store.Assignment
	err := s.tx(ctx, func(t *txn) error {
		out = out[:0]
		if err := t.fence(ctx, l, now); err != nil {
			return err
		}
		for _, e := range sorted {
			if e.State != store.AssignCanceled && e.State != store.AssignTimedOut {
				return invalidf("a campaign ends assignments as canceled or timed-out, not %s", e.State)
			}
			if err := checkText("reason", e.Reason, maxReasonLen); err != nil {
				return err
			}
			if _, err := t.lockDevice(ctx, tenant, e.DeviceID); err != nil {
				return err
			}
		}
		for _, e := range sorted {
			cd, err := t.readCD(ctx, tenant, campaignID, e.DeviceID)
			if err != nil {
				return err
			}
			old := cd
			if cd.AssignmentID != "" {
				a, err := scanAssignment(t.queryRow(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.id = ?`, tenant, cd.AssignmentID))
				if err != nil {
					return notFound(err, "assignment "+cd.AssignmentID)
				}
				if a.Active {
					if _, err := t.exec(ctx, `UPDATE assignments SET state = ?, active = 0, reason = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
						string(e.State), e.Reason, micros(now), tenant, a.ID); err != nil {
						return fmt.Errorf("end assignment %s: %w", a.ID, err)
					}
					action := "assignment.cancel"
					if e.State == store.AssignTimedOut {
						action = "assignment.timeout"
					}
					if err := t.audit(ctx, tenant, by, action, "assignment", a.ID, map[string]any{
						"device_id": a.DeviceID, "version": a.Version, "state_was": a.State, "reason": e.Reason, "campaign_id": campaignID,
					}, now); err != nil {
						return err
					}
					a.State, a.Active, a.Reason, a.UpdatedAt = e.State, false, e.Reason, now
					out = append(out, a)
				} else if cd.State != store.CDAssigned && cd.State != store.CDQueued {
					continue
				}
			}
			cd.State, cd.Reason, cd.FinishedAt, cd.DueAt, cd.Waiting = e.DeviceState, e.Reason, &now, nil, false
			if err := t.writeCD(ctx, tenant, campaignID, old, cd, now); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("end campaign assignments: %w", err)
	}
	return out, nil
}

// CampaignAssignmentChanges implements store.Campaigns.
func (s *Store) CampaignAssignmentChanges(ctx context.Context, tenant, campaignID string, since time.Time, afterID string, n int) ([]store.AssignmentChange, error) {
	at := micros(since)
	rows, err := s.query(ctx, assignmentSelect+` WHERE a.tenant_id = ? AND a.campaign_id = ? AND (a.updated_at > ? OR (a.updated_at = ? AND a.id > ?))
		ORDER BY a.updated_at, a.id LIMIT `+strconv.Itoa(max(n, 1)), tenant, campaignID, at, at, afterID)
	if err != nil {
		return nil, fmt.Errorf("assignment changes: %w", err)
	}
	var out []store.AssignmentChange
	for rows.Next() {
		a, err := scanAssignment(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("assignment changes: %w", err)
		}
		out = append(out, store.AssignmentChange{Assignment: a})
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("assignment changes: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	index := map[string]int{}
	args := []any{tenant}
	for i, c := range out {
		index[c.ID] = i
		args = append(args, c.ID)
	}
	msgs, err := s.query(ctx, `SELECT assignment_id, message FROM assignment_events WHERE tenant_id = ? AND assignment_id IN (`+
		placeholders(len(out))+`) ORDER BY seq`, args...)
	if err != nil {
		return nil, fmt.Errorf("assignment changes: last messages: %w", err)
	}
	defer msgs.Close()
	for msgs.Next() {
		var id, msg string
		if err := msgs.Scan(&id, &msg); err != nil {
			return nil, fmt.Errorf("assignment changes: last messages: %w", err)
		}
		if i, ok := index[id]; ok {
			out[i].LastMessage = msg
		}
	}
	return out, msgs.Err()
}

// CampaignTallies implements store.Campaigns: the non-zero tallies.
func (s *Store) CampaignTallies(ctx context.Context, tenant, campaignID string) ([]store.CampaignTally, error) {
	rows, err := s.query(ctx, `SELECT step, stratum, state, silent, n FROM campaign_tallies
		WHERE tenant_id = ? AND campaign_id = ? AND n <> 0 ORDER BY step, stratum, state, silent`, tenant, campaignID)
	if err != nil {
		return nil, fmt.Errorf("campaign tallies: %w", err)
	}
	defer rows.Close()
	var out []store.CampaignTally
	for rows.Next() {
		var tl store.CampaignTally
		var state string
		var silent int64
		if err := rows.Scan(&tl.Step, &tl.Stratum, &state, &silent, &tl.N); err != nil {
			return nil, fmt.Errorf("campaign tallies: %w", err)
		}
		tl.State, tl.Silent = store.CampaignDeviceState(state), silent != 0
		out = append(out, tl)
	}
	return out, rows.Err()
}
