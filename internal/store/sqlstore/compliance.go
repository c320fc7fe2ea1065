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
// A device's version at a time T is decided from two sources, in one SQL
// statement per page:
//   - the newest applied "succeeded" status report received by T
//     (assignment_events is append-only, so this is history, not the
//     current state); its assignment, release and campaign;
//   - the version the device itself reports (devices.version), which it
//     has run continuously since devices.version_since up to now.
//
// The reported version wins when it was first reported by T, after the
// succeeded report, and differs from that assignment's version (the device
// changed version without Updraft); the assignment wins otherwise. A device
// with neither by T is "unknown". Devices enrolled after T are left out.
//
// Exposure (accepted devices with a known version only):
//   - affected: the release of the running version lists affected_by CVEs
//     (or the queried CVE);
//   - missing-fix: a release of a listed severity (and listing the queried
//     CVE, if any), published by T, newer than the running version, with a
//     full artifact for the device's type and revision (or a delta from the
//     running version), exists.
//
// The same rules are written twice: as SQL conditions, so that a page of
// exposed devices is filled by the database, and in Go (exposures), to
// explain each row. The conformance suite checks that they agree.
//
// Per page: one query for the rows, one for the approvals of the page's
// campaigns and hand-made assignments, and one (per call) for the fix
// releases with their hardware. Nothing is read per device.

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
	releaseVersion := ""
	if q.ReleaseID != "" {
		if err := s.queryRow(ctx, `SELECT version FROM releases WHERE tenant_id = ? AND id = ?`, tenant, q.ReleaseID).Scan(&releaseVersion); err != nil {
			return nil, "", notFound(err, "release "+q.ReleaseID)
		}
	}
	after := ""
	if q.Page.After != "" {
		parts, err := decodeCursor(q.Page.After, 1)
		if err != nil {
			return nil, "", err
		}
		after = parts[0]
	}
	fixes, err := s.fixReleases(ctx, tenant, at, sev, q.CVE)
	if err != nil {
		return nil, "", err
	}
	n := limit(q.Page)

	var a sqlArgs
	a.add(`SELECT id, serial, device_type, hw_rev, state, src, eff_version, eff_key, since, assignment_id, campaign_id, campaign_name, rv_id, rv_affected FROM (
SELECT y.*, rv.id AS rv_id, rv.affected_by AS rv_affected FROM (
SELECT x.*,
  CASE x.src WHEN 'reported' THEN x.d_version WHEN 'assignment' THEN x.a_version ELSE '' END AS eff_version,
  CASE x.src WHEN 'reported' THEN x.d_key WHEN 'assignment' THEN x.a_key ELSE '' END AS eff_key,
  CASE x.src WHEN 'reported' THEN x.d_since WHEN 'assignment' THEN x.e_at ELSE NULL END AS since
FROM (
SELECT d.id, d.serial, d.device_type, d.hw_rev, d.state,
  d.version AS d_version, d.version_key AS d_key, d.version_since AS d_since,
  e.received_at AS e_at, COALESCE(a.id, '') AS assignment_id, COALESCE(a.campaign_id, '') AS campaign_id,
  COALESCE(c.name, '') AS campaign_name, COALESCE(ra.version, '') AS a_version, COALESCE(ra.version_key, '') AS a_key,
  CASE
    WHEN d.version <> '' AND d.version_since IS NOT NULL AND d.version_since <= ?
      AND (e.received_at IS NULL OR (d.version_since > e.received_at AND d.version <> ra.version)) THEN 'reported'
    WHEN e.received_at IS NOT NULL THEN 'assignment'
    ELSE 'unknown'
  END AS src
FROM devices d
LEFT JOIN assignment_events e ON e.tenant_id = d.tenant_id AND e.device_id = d.id AND e.seq = (
  SELECT e2.seq FROM assignment_events e2
  WHERE e2.tenant_id = d.tenant_id AND e2.device_id = d.id AND e2.state = 'succeeded' AND e2.applied = 1 AND e2.received_at <= ?
  ORDER BY e2.received_at DESC, e2.seq DESC LIMIT 1)
LEFT JOIN assignments a ON a.tenant_id = e.tenant_id AND a.id = e.assignment_id
LEFT JOIN releases ra ON ra.tenant_id = a.tenant_id AND ra.id = a.release_id
LEFT JOIN campaigns c ON c.tenant_id = a.tenant_id AND c.id = a.campaign_id
WHERE d.tenant_id = ? AND d.state IN ('accepted', 'decommissioned') AND d.created_at <= ? AND d.id > ?
) x
) y
LEFT JOIN releases rv ON rv.tenant_id = ? AND rv.version = y.eff_version
) z
WHERE 1 = 1`, at, at, tenant, at, after, tenant)
	if q.ReleaseID != "" {
		a.add(` AND eff_version = ?`, releaseVersion)
	}
	if exposedOnly {
		a.add(` AND state = 'accepted' AND eff_version <> '' AND (`)
		if q.CVE != "" {
			a.add(`rv_affected LIKE ?`, cveLike(q.CVE))
		} else {
			a.add(`(rv_affected IS NOT NULL AND rv_affected <> '[]')`)
		}
		a.add(` OR EXISTS (SELECT 1 FROM releases f JOIN artifact_hw h ON h.tenant_id = f.tenant_id AND h.release_id = f.id
  WHERE f.tenant_id = ? AND f.state = 'published' AND f.published_at <= ? AND f.severity IN `, tenant, at)
		a.in(severityStrings(sev))
		if q.CVE != "" {
			a.add(` AND f.cves LIKE ?`, cveLike(q.CVE))
		}
		a.add(` AND f.version_key > z.eff_key AND h.device_type = z.device_type AND h.hw_rev = z.hw_rev
    AND (h.from_version = '' OR h.from_version = z.eff_version)))`)
	}
	a.add(` ORDER BY id LIMIT ` + strconv.Itoa(n+1))

	rows, err := s.query(ctx, a.b.String(), a.args...)
	if err != nil {
		return nil, "", err
	}
	type row struct {
		dv         store.DeviceVersion
		key        string
		rvAffected string
	}
	page, next, err := scanPage(rows, n, func(sc interface{ Scan(...any) error }) (row, error) {
		var r row
		var state, src string
		var since sql.NullInt64
		var rvID, rvAffected sql.NullString
		if err := sc.Scan(&r.dv.DeviceID, &r.dv.Serial, &r.dv.DeviceType, &r.dv.HWRev, &state, &src, &r.dv.Version, &r.key, &since,
			&r.dv.AssignmentID, &r.dv.CampaignID, &r.dv.CampaignName, &rvID, &rvAffected); err != nil {
			return r, err
		}
		r.dv.State = store.DeviceState(state)
		r.dv.Source = store.VersionSource(src)
		r.dv.Since = timePtr(since)
		r.dv.ReleaseID = rvID.String
		r.rvAffected = rvAffected.String
		return r, nil
	}, func(r row) string { return encodeCursor(r.dv.DeviceID) })
	if err != nil {
		return nil, "", err
	}
	out := make([]store.DeviceVersion, len(page))
	for i, r := range page {
		dv := r.dv
		if dv.Source != store.SourceAssignment {
			// The reported version was not put there by an assignment.
			dv.AssignmentID, dv.CampaignID, dv.CampaignName = "", "", ""
		}
		dv.Exposures, err = exposures(dv, r.key, r.rvAffected, fixes, q.CVE)
		if err != nil {
			return nil, "", err
		}
		out[i] = dv
	}
	if err := s.attachApprovals(ctx, tenant, at, out); err != nil {
		return nil, "", err
	}
	return out, next, nil
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

// exposures explains why a device counts as exposed; the SQL of
// complianceAt selects exactly the rows for which it is not empty.
func exposures(dv store.DeviceVersion, key, rvAffected string, fixes []*fixRelease, cve string) ([]store.Exposure, error) {
	out := []store.Exposure{}
	if dv.State != store.DeviceAccepted || dv.Version == "" {
		return out, nil
	}
	if rvAffected != "" {
		var affected []string
		if err := decodeJSON(rvAffected, &affected); err != nil {
			return nil, err
		}
		if cve != "" {
			affected = slices.DeleteFunc(affected, func(c string) bool { return c != cve })
		}
		if len(affected) > 0 {
			out = append(out, store.Exposure{Reason: store.ExposureAffected, Release: dv.Version, CVEs: affected})
		}
	}
	// Fix releases come newest first; list them oldest first, the order
	// an operator would install them in.
	var missed []store.Exposure
	for _, f := range fixes {
		if f.key > key && f.fits(dv.DeviceType, dv.HWRev, dv.Version) {
			cves := slices.Clone(f.cves)
			if cve != "" {
				cves = []string{cve}
			}
			missed = append(missed, store.Exposure{Reason: store.ExposureMissingFix, Release: f.version, Severity: f.severity, CVEs: cves})
		}
	}
	slices.Reverse(missed)
	return append(out, missed...), nil
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
