package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Compliance reports (store.Compliance).
//
// A device's version at a time T is decided from two sources:
//   - the newest applied "succeeded" status report received by T
//     (assignment_events is append-only, so this is history, not the
//     current state); its assignment, release and campaign;
//   - the version the device itself reports (devices.version), which it
//     has run continuously since devices.version_since up to now.
//
// The reported version wins when it was first reported by T and after the
// succeeded report: the device changed version without Updraft since (even
// if it came back to the assigned one, it has run it only since then). The
// assignment wins otherwise. A device
// with neither by T is "unknown". Devices enrolled after T are left out.
//
// Exposure (accepted devices with a known version only):
//   - affected: the release of the running version was marked affected by
//     CVEs (or the queried CVE) at T: the list the newest
//     release.mark_affected audit entry made by T set; without one, the
//     list the first later entry replaced ("was"); without any entry, the
//     current list, which then never changed (affectedAt);
//   - missing-fix: a release of a listed severity (and listing the queried
//     CVE, if any), published by T, newer than the running version, with a
//     full artifact for the device's type and revision (or a delta from the
//     running version), exists. A release's severity and fixed CVEs are
//     set when it is created and never change: they need no history.
//
// How it reads: the devices in id order, a chunk at a time, each with its
// newest succeeded report found by one correlated lookup on the
// assignment_events primary key (no join, so both databases walk the
// devices index in order and stop at the chunk's end); then the chunk's
// assignments, releases and campaigns in one query by id. The tenant's
// releases and the fix releases' hardware are read once per call. The
// rules above are applied in Go, and a release or exposure filter keeps
// reading chunks until the page is full. Approvals are one more query per
// page. No query is sent per device.

// complianceChunk bounds how many devices a filtered page reads at a time.
const complianceChunk = store.MaxPageLimit

// approvalActions are the audit actions that count as approvals.
var (
	campaignApprovalActions   = []string{"campaign.create", "campaign.start", "campaign.approve", "campaign.resume", "campaign.override_bad", "campaign.override_staging"}
	assignmentApprovalActions = []string{"assignment.create", "assignment.override_bad"}
)

// fixRelease is a release that counts as a security fix under a query,
// with the hardware it was built for.
type fixRelease struct {
	version, key string
	severity     store.Severity
	cves         []string
	hw           map[[2]string][]string // (device type, hw rev) → from_versions ("" for a full artifact)
}

// fits reports whether the release installs on a device of this hardware
// running version.
func (f *fixRelease) fits(deviceType, hwRev, version string) bool {
	for _, from := range f.hw[[2]string{deviceType, hwRev}] {
		if from == "" || from == version {
			return true
		}
	}
	return false
}

// DeviceVersionsAt implements store.Compliance.
func (s *Store) DeviceVersionsAt(ctx context.Context, tenant string, q store.ComplianceQuery) ([]store.DeviceVersion, string, error) {
	out, next, err := s.complianceAt(ctx, tenant, q, false)
	if err != nil {
		return nil, "", fmt.Errorf("device versions at %s: %w", q.At.UTC().Format(time.RFC3339), err)
	}
	return out, next, nil
}

// ExposedDevicesAt implements store.Compliance.
func (s *Store) ExposedDevicesAt(ctx context.Context, tenant string, q store.ComplianceQuery) ([]store.DeviceVersion, string, error) {
	out, next, err := s.complianceAt(ctx, tenant, q, true)
	if err != nil {
		return nil, "", fmt.Errorf("exposed devices at %s: %w", q.At.UTC().Format(time.RFC3339), err)
	}
	return out, next, nil
}

// checkComplianceQuery validates q and returns its severities, defaulted.
func checkComplianceQuery(q store.ComplianceQuery) ([]store.Severity, error) {
	if q.At.IsZero() {
		return nil, invalidf("a compliance report needs a point in time")
	}
	if q.CVE != "" && !cvePattern.MatchString(q.CVE) {
		return nil, invalidf("%q is not a CVE id such as CVE-2026-1234", q.CVE)
	}
	sev := q.Severities
	if len(sev) == 0 {
		sev = []store.Severity{store.SeverityHigh, store.SeverityCritical}
	}
	for _, v := range sev {
		if !validSeverity(v) {
			return nil, invalidf("severity %q is not one of low, medium, high, critical", v)
		}
	}
	return sev, nil
}

// sqlArgs builds a statement's text and arguments together, so that the
// arguments stay in the order of their placeholders.
type sqlArgs struct {
	b    strings.Builder
	args []any
}

func (a *sqlArgs) add(text string, args ...any) {
	a.b.WriteString(text)
	a.args = append(a.args, args...)
}

// in writes "(?, ?, …)" for vs.
func (a *sqlArgs) in(vs []string) {
	a.b.WriteByte('(')
	for i, v := range vs {
		if i > 0 {
			a.b.WriteString(", ")
		}
		a.b.WriteByte('?')
		a.args = append(a.args, v)
	}
	a.b.WriteByte(')')
}

func severityStrings(sev []store.Severity) []string {
	out := make([]string, len(sev))
	for i, v := range sev {
		out[i] = string(v)
	}
	return out
}

// cveLike matches a CVE id inside a stored JSON list of ids.
func cveLike(cve string) string { return `%"` + cve + `"%` }

func (s *Store) complianceAt(ctx context.Context, tenant string, q store.ComplianceQuery, exposedOnly bool) ([]store.DeviceVersion, string, error) {
	sev, err := checkComplianceQuery(q)
	if err != nil {
		return nil, "", err
	}
	at := micros(q.At)
	after := ""
	if q.Page.After != "" {
		parts, err := decodeCursor(q.Page.After, 1)
		if err != nil {
			return nil, "", err
		}
		after = parts[0]
	}
	releases, err := s.releasesByVersion(ctx, tenant, at)
	if err != nil {
		return nil, "", err
	}
	releaseVersion := ""
	if q.ReleaseID != "" {
		for v, r := range releases {
			if r.id == q.ReleaseID {
				releaseVersion = v
			}
		}
		if releaseVersion == "" {
			return nil, "", fmt.Errorf("release %s: %w", q.ReleaseID, store.ErrNotFound)
		}
	}
	fixes, err := s.fixReleases(ctx, tenant, at, sev, q.CVE)
	if err != nil {
		return nil, "", err
	}
	n := limit(q.Page)
	chunk := n + 1
	if exposedOnly || releaseVersion != "" {
		// Filtered: read more than a page at a time, up to the bound.
		chunk = max(chunk, min(complianceChunk, 2*chunk))
	}
	var out []store.DeviceVersion
	for len(out) <= n {
		devs, err := s.devicesAt(ctx, tenant, at, after, chunk)
		if err != nil {
			return nil, "", err
		}
		if err := s.resolveAssignments(ctx, tenant, devs); err != nil {
			return nil, "", err
		}
		for _, d := range devs {
			dv, key := d.decide(at, releases)
			if releaseVersion != "" && dv.Version != releaseVersion {
				continue
			}
			dv.Exposures = exposures(dv, key, releases[dv.Version].affected, fixes, q.CVE)
			if exposedOnly && !dv.Exposed() {
				continue
			}
			out = append(out, dv)
			if len(out) > n {
				break
			}
		}
		if len(devs) < chunk {
			break
		}
		after = devs[len(devs)-1].id
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = encodeCursor(out[n-1].DeviceID)
	}
	if out == nil {
		out = []store.DeviceVersion{}
	}
	if err := s.attachApprovals(ctx, tenant, at, out); err != nil {
		return nil, "", err
	}
	return out, next, nil
}

// deviceAt is one device as read for a report, before the rules apply.
type deviceAt struct {
	id, serial, deviceType, hwRev, state string
	version, versionKey                  string
	versionSince                         sql.NullInt64
	// The newest applied succeeded report by the report's time, if any,
	// and (from resolveAssignments) its assignment.
	assignmentID sql.NullString
	succeededAt  sql.NullInt64
	a            assignmentAt
}

// assignmentAt is what the report needs of an assignment.
type assignmentAt struct {
	campaignID, campaignName string
	version, versionKey      string
}

// releaseAt is what the report needs of a release, by version.
type releaseAt struct {
	id       string
	affected []string
}

// devicesAt reads up to limit accepted or decommissioned devices enrolled
// by at, after the id after, with their newest succeeded report by at.
func (s *Store) devicesAt(ctx context.Context, tenant string, at int64, after string, limit int) ([]deviceAt, error) {
	// One lookup per device gives both the time and the assignment of its
	// newest succeeded report, as "<received_at> <assignment id>".
	rows, err := s.query(ctx, `SELECT d.id, d.serial, d.device_type, d.hw_rev, d.state, d.version, d.version_key, d.version_since,
		(SELECT e.received_at || ' ' || e.assignment_id FROM assignment_events e
			WHERE e.tenant_id = d.tenant_id AND e.device_id = d.id AND e.state = 'succeeded' AND e.applied = 1 AND e.received_at <= ?
			ORDER BY e.received_at DESC, e.seq DESC LIMIT 1)
		FROM devices d
		WHERE d.tenant_id = ? AND d.state IN ('accepted', 'decommissioned') AND d.created_at <= ? AND d.id > ?
		ORDER BY d.id LIMIT `+strconv.Itoa(limit), at, tenant, at, after)
	if err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	defer rows.Close()
	var out []deviceAt
	for rows.Next() {
		var d deviceAt
		var newest sql.NullString
		if err := rows.Scan(&d.id, &d.serial, &d.deviceType, &d.hwRev, &d.state, &d.version, &d.versionKey, &d.versionSince, &newest); err != nil {
			return nil, fmt.Errorf("read devices: %w", err)
		}
		if newest.Valid {
			when, id, ok := strings.Cut(newest.String, " ")
			us, err := strconv.ParseInt(when, 10, 64)
			if !ok || err != nil {
				return nil, fmt.Errorf("read devices: newest report of %s: %q", d.id, newest.String)
			}
			d.succeededAt = sql.NullInt64{Int64: us, Valid: true}
			d.assignmentID = sql.NullString{String: id, Valid: true}
		}
		out = append(out, d)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read devices: %w", err)
	}
	return out, nil
}

// resolveAssignments reads the assignments behind the devices' succeeded
// reports, with their release and campaign, in one query.
func (s *Store) resolveAssignments(ctx context.Context, tenant string, devs []deviceAt) error {
	var ids []string
	for _, d := range devs {
		if d.assignmentID.Valid {
			ids = append(ids, d.assignmentID.String)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	var a sqlArgs
	a.add(`SELECT a.id, a.campaign_id, COALESCE(c.name, ''), r.version, r.version_key
		FROM assignments a
		JOIN releases r ON r.tenant_id = a.tenant_id AND r.id = a.release_id
		LEFT JOIN campaigns c ON c.tenant_id = a.tenant_id AND c.id = a.campaign_id
		WHERE a.tenant_id = ? AND a.id IN `, tenant)
	a.in(ids)
	rows, err := s.query(ctx, a.b.String(), a.args...)
	if err != nil {
		return fmt.Errorf("read assignments: %w", err)
	}
	defer rows.Close()
	byID := map[string]assignmentAt{}
	for rows.Next() {
		var id string
		var as assignmentAt
		if err := rows.Scan(&id, &as.campaignID, &as.campaignName, &as.version, &as.versionKey); err != nil {
			return fmt.Errorf("read assignments: %w", err)
		}
		byID[id] = as
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read assignments: %w", err)
	}
	for i := range devs {
		if devs[i].assignmentID.Valid {
			devs[i].a = byID[devs[i].assignmentID.String]
		}
	}
	return nil
}

// releasesByVersion reads every release of the tenant (their number is
// small next to the fleet's): id and affected_by as it was at the time at.
func (s *Store) releasesByVersion(ctx context.Context, tenant string, at int64) (map[string]releaseAt, error) {
	rows, err := s.query(ctx, `SELECT id, version, affected_by FROM releases WHERE tenant_id = ?`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read releases: %w", err)
	}
	defer rows.Close()
	out := map[string]releaseAt{}
	for rows.Next() {
		var version, affected string
		var r releaseAt
		if err := rows.Scan(&r.id, &version, &affected); err != nil {
			return nil, fmt.Errorf("read releases: %w", err)
		}
		if err := decodeJSON(affected, &r.affected); err != nil {
			return nil, err
		}
		out[version] = r
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read releases: %w", err)
	}
	then, err := s.affectedAt(ctx, tenant, at)
	if err != nil {
		return nil, err
	}
	for v, r := range out {
		if list, ok := then[r.id]; ok {
			r.affected = list
			out[v] = r
		}
	}
	return out, nil
}

// affectedAt reads, from the release.mark_affected audit entries (the only
// way affected_by changes; the audit log is append-only), each marked
// release's affected_by list as it was at the time at. Releases never
// marked are left out: their current list is the one they always had.
//
// Entries are taken in commit order (seq), not by their time: a marking's
// time is its request's, read before the release is locked, so two
// markings of one release can commit in the other order than their times
// say. The list at the time at is that of the last committed entry stamped
// at or before it; with none, the list the first entry replaced.
func (s *Store) affectedAt(ctx context.Context, tenant string, at int64) (map[string][]string, error) {
	rows, err := s.query(ctx, `SELECT object_id, at, details FROM audit_log
WHERE tenant_id = ? AND action = 'release.mark_affected' AND object_type = 'release' ORDER BY seq`, tenant)
	if err != nil {
		return nil, fmt.Errorf("read release markings: %w", err)
	}
	defer rows.Close()
	type marks struct {
		first []string // what the first entry replaced
		then  []string // the last entry stamped by then
		found bool     // then is set
	}
	byID := map[string]*marks{}
	for rows.Next() {
		var id, details string
		var when int64
		if err := rows.Scan(&id, &when, &details); err != nil {
			return nil, fmt.Errorf("read release markings: %w", err)
		}
		var d struct {
			AffectedBy []string `json:"affected_by"`
			Was        []string `json:"was"`
		}
		if err := decodeJSON(details, &d); err != nil {
			return nil, fmt.Errorf("release %s marking: %w", id, err)
		}
		m := byID[id]
		if m == nil {
			m = &marks{first: d.Was}
			byID[id] = m
		}
		if when <= at {
			m.then, m.found = d.AffectedBy, true
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read release markings: %w", err)
	}
	out := make(map[string][]string, len(byID))
	for id, m := range byID {
		list := m.first
		if m.found {
			list = m.then
		}
		if list == nil {
			list = []string{}
		}
		out[id] = list
	}
	return out, nil
}

// decide applies the version rules to a device read at the time at; key
// orders the version it ran (semver.Key).
func (d deviceAt) decide(at int64, releases map[string]releaseAt) (dv store.DeviceVersion, key string) {
	dv = store.DeviceVersion{DeviceID: d.id, Serial: d.serial, DeviceType: d.deviceType, HWRev: d.hwRev,
		State: store.DeviceState(d.state), Source: store.SourceUnknown}
	reported := d.version != "" && d.versionSince.Valid && d.versionSince.Int64 <= at
	switch {
	case reported && (!d.succeededAt.Valid || (d.versionSince.Int64 > d.succeededAt.Int64)):
		dv.Source, dv.Version, dv.Since, key = store.SourceReported, d.version, timePtr(d.versionSince), d.versionKey
	case d.succeededAt.Valid:
		dv.Source, dv.Version, dv.Since, key = store.SourceAssignment, d.a.version, timePtr(d.succeededAt), d.a.versionKey
		dv.AssignmentID, dv.CampaignID, dv.CampaignName = d.assignmentID.String, d.a.campaignID, d.a.campaignName
	}
	if r, ok := releases[dv.Version]; ok && dv.Version != "" {
		dv.ReleaseID = r.id
	}
	return dv, key
}

// fixReleases reads the releases that count as security fixes at the time
// at, with their hardware, newest version first.
func (s *Store) fixReleases(ctx context.Context, tenant string, at int64, sev []store.Severity, cve string) ([]*fixRelease, error) {
	var a sqlArgs
	a.add(`SELECT r.id, r.version, r.version_key, r.severity, r.cves, h.device_type, h.hw_rev, h.from_version
FROM releases r JOIN artifact_hw h ON h.tenant_id = r.tenant_id AND h.release_id = r.id
WHERE r.tenant_id = ? AND r.state = 'published' AND r.published_at <= ? AND r.severity IN `, tenant, at)
	a.in(severityStrings(sev))
	if cve != "" {
		a.add(` AND r.cves LIKE ?`, cveLike(cve))
	}
	a.add(` ORDER BY r.version_key DESC, r.id`)
	rows, err := s.query(ctx, a.b.String(), a.args...)
	if err != nil {
		return nil, fmt.Errorf("read fix releases: %w", err)
	}
	defer rows.Close()
	var out []*fixRelease
	byID := map[string]*fixRelease{}
	for rows.Next() {
		var id, version, key, severity, cves, deviceType, hwRev, from string
		if err := rows.Scan(&id, &version, &key, &severity, &cves, &deviceType, &hwRev, &from); err != nil {
			return nil, fmt.Errorf("read fix releases: %w", err)
		}
		f := byID[id]
		if f == nil {
			f = &fixRelease{version: version, key: key, severity: store.Severity(severity), cves: []string{}, hw: map[[2]string][]string{}}
			if err := decodeJSON(cves, &f.cves); err != nil {
				return nil, err
			}
			byID[id] = f
			out = append(out, f)
		}
		hw := [2]string{deviceType, hwRev}
		f.hw[hw] = append(f.hw[hw], from)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read fix releases: %w", err)
	}
	return out, nil
}

// exposures lists why a device counts as exposed (see the rules above):
// key orders the version it runs, affected is its release's affected_by.
func exposures(dv store.DeviceVersion, key string, affected []string, fixes []*fixRelease, cve string) []store.Exposure {
	out := []store.Exposure{}
	if dv.State != store.DeviceAccepted || dv.Version == "" {
		return out
	}
	if cve != "" {
		affected = slices.DeleteFunc(slices.Clone(affected), func(c string) bool { return c != cve })
	}
	if len(affected) > 0 {
		out = append(out, store.Exposure{Reason: store.ExposureAffected, Release: dv.Version, CVEs: slices.Clone(affected)})
	}
	// Fix releases come newest first; list them oldest first, the order
	// an operator would install them in.
	var missed []store.Exposure
	for _, f := range fixes {
		if key != "" && f.key > key && f.fits(dv.DeviceType, dv.HWRev, dv.Version) {
			cves := slices.Clone(f.cves)
			if cve != "" {
				cves = []string{cve}
			}
			missed = append(missed, store.Exposure{Reason: store.ExposureMissingFix, Release: f.version, Severity: f.severity, CVEs: cves})
		}
	}
	slices.Reverse(missed)
	return append(out, missed...)
}

// attachApprovals reads, in one query, the approval audit entries (up to
// the time at) of the campaigns and hand-made assignments behind the rows.
func (s *Store) attachApprovals(ctx context.Context, tenant string, at int64, rows []store.DeviceVersion) error {
	var campaigns, assignments []string
	for i := range rows {
		rows[i].Approvals = []store.Approval{}
		switch {
		case rows[i].CampaignID != "":
			if !slices.Contains(campaigns, rows[i].CampaignID) {
				campaigns = append(campaigns, rows[i].CampaignID)
			}
		case rows[i].AssignmentID != "":
			assignments = append(assignments, rows[i].AssignmentID)
		}
	}
	if len(campaigns) == 0 && len(assignments) == 0 {
		return nil
	}
	var a sqlArgs
	a.add(`SELECT seq, at, actor_kind, actor_id, actor_name, action, object_type, object_id FROM audit_log WHERE tenant_id = ? AND at <= ? AND (1 = 0`, tenant, at)
	if len(campaigns) > 0 {
		a.add(` OR (object_type = 'campaign' AND action IN `)
		a.in(campaignApprovalActions)
		a.add(` AND object_id IN `)
		a.in(campaigns)
		a.add(`)`)
	}
	if len(assignments) > 0 {
		a.add(` OR (object_type = 'assignment' AND action IN `)
		a.in(assignmentApprovalActions)
		a.add(` AND object_id IN `)
		a.in(assignments)
		a.add(`)`)
	}
	a.add(`) ORDER BY seq`)
	rs, err := s.query(ctx, a.b.String(), a.args...)
	if err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}
	defer rs.Close()
	byObject := map[[2]string][]store.Approval{}
	for rs.Next() {
		var ap store.Approval
		var when int64
		var kind, objectType, objectID string
		if err := rs.Scan(&ap.Seq, &when, &kind, &ap.Actor.ID, &ap.Actor.Name, &ap.Action, &objectType, &objectID); err != nil {
			return fmt.Errorf("read approvals: %w", err)
		}
		ap.At = fromMicros(when)
		ap.Actor.Kind = store.ActorKind(kind)
		k := [2]string{objectType, objectID}
		byObject[k] = append(byObject[k], ap)
	}
	if err := rs.Err(); err != nil {
		return fmt.Errorf("read approvals: %w", err)
	}
	for i := range rows {
		var k [2]string
		switch {
		case rows[i].CampaignID != "":
			k = [2]string{"campaign", rows[i].CampaignID}
		case rows[i].AssignmentID != "":
			k = [2]string{"assignment", rows[i].AssignmentID}
		default:
			continue
		}
		if aps := byObject[k]; len(aps) > 0 {
			rows[i].Approvals = slices.Clone(aps)
		}
	}
	return nil
}
