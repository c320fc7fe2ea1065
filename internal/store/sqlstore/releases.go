package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// Release rules (see store.Releases):
//   - A release is created as a draft; artifacts are added only to drafts;
//     publishing needs at least one artifact and makes the release
//     immutable. Bad/BadReason and AffectedBy stay changeable, audited.
//   - Versions are strict semantic versions stored in canonical form;
//     version_key (semver.Key) orders them as text.
//   - An empty severity means low.
//   - MarkAffected replaces the list of CVE ids (an empty list clears it);
//     the audit entry records the list before and after.
//   - Rows that are changed after being read are locked first (a no-op
//     UPDATE), so a concurrent publish cannot slip between the draft check
//     and an artifact insert on PostgreSQL.

// Limits on release and artifact fields; the database would accept more,
// but nothing legitimate needs it.
const (
	maxNotes        = 64 << 10
	maxCVEs         = 1000
	maxLabel        = 128 // device type, hardware revision, component, compression
	maxArtifactName = 255
	maxHWRevs       = 256
	maxReasonLen    = 1024
)

var cvePattern = regexp.MustCompile(`^CVE-[0-9]{4}-[0-9]{4,19}$`)

func invalidf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", store.ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// checkText rejects what PostgreSQL's TEXT cannot hold (invalid UTF-8, NUL)
// and values longer than max bytes, so both dialects answer alike.
func checkText(field, s string, max int) error {
	if len(s) > max {
		return invalidf("%s is %d bytes long; the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidf("%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalidf("%s contains a NUL byte", field)
	}
	return nil
}

// checkLabel is checkText for short identifiers shown in lists and keys:
// no control characters and no leading or trailing white space.
func checkLabel(field, s string, required bool) error {
	if s == "" {
		if required {
			return invalidf("%s is required", field)
		}
		return nil
	}
	if err := checkText(field, s, maxLabel); err != nil {
		return err
	}
	if strings.TrimSpace(s) != s {
		return invalidf("%s %q has leading or trailing white space", field, s)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalidf("%s %q contains a control character", field, s)
	}
	return nil
}

// parseVersion parses a release version strictly and returns its
// canonical form and order key.
func parseVersion(field, s string) (canonical, key string, err error) {
	v, err := semver.Parse(s)
	if err != nil {
		return "", "", fmt.Errorf("%w: %s: %v", store.ErrInvalidRequest, field, err)
	}
	return v.String(), semver.Key(v), nil
}

// normalizeCVEs validates CVE ids (case-insensitively, stored upper case)
// and drops repeats, keeping the first occurrence's order.
func normalizeCVEs(field string, in []string) ([]string, error) {
	if len(in) > maxCVEs {
		return nil, invalidf("%s lists %d CVE ids; the limit is %d", field, len(in), maxCVEs)
	}
	out := make([]string, 0, len(in))
	for _, c := range in {
		u := strings.ToUpper(strings.TrimSpace(c))
		if !cvePattern.MatchString(u) {
			return nil, invalidf("%s: %q is not a CVE id (want CVE-YYYY-NNNN)", field, c)
		}
		if !slices.Contains(out, u) {
			out = append(out, u)
		}
	}
	return out, nil
}

func validSeverity(s store.Severity) bool {
	switch s {
	case store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
		return true
	}
	return false
}

func validArtifactType(t store.ArtifactType) bool {
	switch t {
	case store.ArtifactRawImage, store.ArtifactFile, store.ArtifactArchive, store.ArtifactScript,
		store.ArtifactSWU, store.ArtifactRAUCBundle, store.ArtifactMender, store.ArtifactDelta:
		return true
	}
	return false
}

// checkHex validates a lower-case hex digest of n characters.
func checkHex(field, s string, n int) error {
	if len(s) != n {
		return invalidf("%s must be %d hex digits, got %d characters", field, n, len(s))
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return invalidf("%s must be lower-case hex", field)
		}
	}
	return nil
}

// CreateRelease implements store.Releases.
func (s *Store) CreateRelease(ctx context.Context, nr store.NewRelease, by store.Actor, now time.Time) (store.Release, error) {
	if nr.TenantID == "" {
		return store.Release{}, invalidf("tenant is required")
	}
	version, key, err := parseVersion("release version", nr.Version)
	if err != nil {
		return store.Release{}, err
	}
	if err := checkText("notes", nr.Notes, maxNotes); err != nil {
		return store.Release{}, err
	}
	if nr.SecurityVersion < 0 {
		return store.Release{}, invalidf("security version %d is negative", nr.SecurityVersion)
	}
	sev := nr.Severity
	if sev == "" {
		sev = store.SeverityLow
	}
	if !validSeverity(sev) {
		return store.Release{}, invalidf("severity %q is not one of low, medium, high, critical", nr.Severity)
	}
	cves, err := normalizeCVEs("fixed CVEs", nr.CVEs)
	if err != nil {
		return store.Release{}, err
	}
	r := store.Release{
		TenantID:        nr.TenantID,
		ID:              newID(),
		Version:         version,
		Notes:           nr.Notes,
		SecurityVersion: nr.SecurityVersion,
		Severity:        sev,
		CVEs:            cves,
		State:           store.ReleaseDraft,
		AffectedBy:      []string{},
		CreatedAt:       fromMicros(micros(now)),
		Artifacts:       []store.Artifact{},
	}
	err = s.tx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, `INSERT INTO releases (tenant_id, id, version, version_key, notes, security_version, severity, cves, state, bad, bad_reason, affected_by, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, '', '[]', ?)`,
			r.TenantID, r.ID, r.Version, key, r.Notes, r.SecurityVersion, string(r.Severity), jsonText(r.CVEs), string(r.State), micros(r.CreatedAt))
		if err != nil {
			if s.d.IsUniqueViolation(err) {
				return store.Conflictf("release %s already exists", r.Version)
			}
			return fmt.Errorf("insert release %s: %w", r.Version, err)
		}
		return t.audit(ctx, r.TenantID, by, "release.create", "release", r.ID, map[string]any{
			"version": r.Version, "security_version": r.SecurityVersion, "severity": r.Severity, "cves": r.CVEs,
		}, now)
	})
	if err != nil {
		return store.Release{}, fmt.Errorf("create release %s: %w", version, err)
	}
	return r, nil
}

const releaseColumns = `tenant_id, id, version, notes, security_version, severity, cves, state, bad, bad_reason, affected_by, created_at, published_at`

func scanRelease(row interface{ Scan(...any) error }) (store.Release, error) {
	var r store.Release
	var sev, cves, state, affected string
	var bad, created int64
	var published sql.NullInt64
	if err := row.Scan(&r.TenantID, &r.ID, &r.Version, &r.Notes, &r.SecurityVersion, &sev, &cves, &state, &bad, &r.BadReason, &affected, &created, &published); err != nil {
		return r, err
	}
	r.Severity = store.Severity(sev)
	r.State = store.ReleaseState(state)
	r.Bad = bad != 0
	r.CreatedAt = fromMicros(created)
	r.PublishedAt = timePtr(published)
	r.CVEs, r.AffectedBy, r.Artifacts = []string{}, []string{}, []store.Artifact{}
	if err := decodeJSON(cves, &r.CVEs); err != nil {
		return r, err
	}
	if err := decodeJSON(affected, &r.AffectedBy); err != nil {
		return r, err
	}
	return r, nil
}

const artifactColumns = `tenant_id, id, release_id, device_type, hw_revs, type, component, from_version, compression, name, size, sha256, sha1, md5, created_at`

func scanArtifact(row interface{ Scan(...any) error }) (store.Artifact, error) {
	var a store.Artifact
	var revs, typ string
	var created int64
	if err := row.Scan(&a.TenantID, &a.ID, &a.ReleaseID, &a.DeviceType, &revs, &typ, &a.Component, &a.FromVersion, &a.Compression, &a.Name, &a.Size, &a.SHA256, &a.SHA1, &a.MD5, &created); err != nil {
		return a, err
	}
	a.Type = store.ArtifactType(typ)
	a.CreatedAt = fromMicros(created)
	a.HWRevs = []string{}
	return a, decodeJSON(revs, &a.HWRevs)
}

// loadArtifacts fills in the artifacts of the given releases.
func (s *Store) loadArtifacts(ctx context.Context, tenant string, rels []store.Release) error {
	if len(rels) == 0 {
		return nil
	}
	idx := make(map[string]int, len(rels))
	args := []any{tenant}
	marks := make([]string, 0, len(rels))
	for i, r := range rels {
		idx[r.ID] = i
		args = append(args, r.ID)
		marks = append(marks, "?")
	}
	rows, err := s.query(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE tenant_id = ? AND release_id IN (`+strings.Join(marks, ", ")+`) ORDER BY created_at, id`, args...)
	if err != nil {
		return fmt.Errorf("load artifacts: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		a, err := scanArtifact(rows)
		if err != nil {
			return fmt.Errorf("load artifacts: %w", err)
		}
		i := idx[a.ReleaseID]
		rels[i].Artifacts = append(rels[i].Artifacts, a)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("load artifacts: %w", err)
	}
	return nil
}

// Release implements store.Releases; the release comes with its artifacts.
func (s *Store) Release(ctx context.Context, tenant, id string) (store.Release, error) {
	r, err := scanRelease(s.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND id = ?`, tenant, id))
	if err != nil {
		return store.Release{}, notFound(err, "release "+id)
	}
	rels := []store.Release{r}
	if err := s.loadArtifacts(ctx, tenant, rels); err != nil {
		return store.Release{}, fmt.Errorf("release %s: %w", id, err)
	}
	return rels[0], nil
}

// ReleaseByVersion implements store.Releases. A string that is not a
// semantic version names no release (ErrNotFound).
func (s *Store) ReleaseByVersion(ctx context.Context, tenant, version string) (store.Release, error) {
	v, err := semver.Parse(version)
	if err != nil {
		return store.Release{}, fmt.Errorf("release %q: %w", version, store.ErrNotFound)
	}
	r, err := scanRelease(s.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND version = ?`, tenant, v.String()))
	if err != nil {
		return store.Release{}, notFound(err, "release "+v.String())
	}
	rels := []store.Release{r}
	if err := s.loadArtifacts(ctx, tenant, rels); err != nil {
		return store.Release{}, fmt.Errorf("release %s: %w", version, err)
	}
	return rels[0], nil
}

// ListReleases implements store.Releases: newest first (creation time,
// then id), with their artifacts.
func (s *Store) ListReleases(ctx context.Context, tenant string, p store.Page) ([]store.Release, string, error) {
	where := `tenant_id = ?`
	args := []any{tenant}
	if p.After != "" {
		at, id, err := decodeTimeCursor(p.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (created_at < ? OR (created_at = ? AND id < ?))`
		args = append(args, at, at, id)
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT `+releaseColumns+` FROM releases WHERE `+where+` ORDER BY created_at DESC, id DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list releases: %w", err)
	}
	out, next, err := scanPage(rows, n, scanRelease, func(v store.Release) string { return timeCursor(v.CreatedAt, v.ID) })
	if err != nil {
		return nil, "", fmt.Errorf("list releases: %w", err)
	}
	if err := s.loadArtifacts(ctx, tenant, out); err != nil {
		return nil, "", fmt.Errorf("list releases: %w", err)
	}
	return out, next, nil
}

// decodeTimeCursor decodes the "micros|id" cursor of a list ordered
// by (created_at, id).

// lockRelease locks the release row for the rest of t and returns it.
func (t *txn) lockRelease(ctx context.Context, tenant, id string) (store.Release, error) {
	if _, err := t.exec(ctx, `UPDATE releases SET state = state WHERE tenant_id = ? AND id = ?`, tenant, id); err != nil {
		return store.Release{}, fmt.Errorf("lock release %s: %w", id, err)
	}
	r, err := scanRelease(t.queryRow(ctx, `SELECT `+releaseColumns+` FROM releases WHERE tenant_id = ? AND id = ?`, tenant, id))
	if err != nil {
		return store.Release{}, notFound(err, "release "+id)
	}
	return r, nil
}

// validateArtifact checks a and returns it normalized: hex digests lower
// case, from_version canonical, revisions de-duplicated in given order.
func validateArtifact(a store.Artifact) (store.Artifact, error) {
	if a.TenantID == "" || a.ReleaseID == "" {
		return a, invalidf("artifact needs a tenant and a release")
	}
	if err := checkLabel("device type", a.DeviceType, true); err != nil {
		return a, err
	}
	if len(a.HWRevs) == 0 {
		return a, invalidf("artifact %q lists no hardware revisions; name at least one", a.Name)
	}
	if len(a.HWRevs) > maxHWRevs {
		return a, invalidf("artifact %q lists %d hardware revisions; the limit is %d", a.Name, len(a.HWRevs), maxHWRevs)
	}
	revs := make([]string, 0, len(a.HWRevs))
	for _, r := range a.HWRevs {
		if err := checkLabel("hardware revision", r, true); err != nil {
			return a, err
		}
		if !slices.Contains(revs, r) {
			revs = append(revs, r)
		}
	}
	a.HWRevs = revs
	if !validArtifactType(a.Type) {
		return a, invalidf("artifact type %q is not one of raw-image, file, archive, script, swu, rauc-bundle, mender, delta", a.Type)
	}
	if err := checkLabel("component", a.Component, false); err != nil {
		return a, err
	}
	if a.Type == store.ArtifactDelta {
		if a.FromVersion == "" {
			return a, invalidf("a delta artifact needs the version it applies to (from_version)")
		}
		v, _, err := parseVersion("delta from_version", a.FromVersion)
		if err != nil {
			return a, err
		}
		a.FromVersion = v
	} else if a.FromVersion != "" {
		return a, invalidf("only delta artifacts have a from_version (type is %s)", a.Type)
	}
	if err := checkLabel("compression", a.Compression, false); err != nil {
		return a, err
	}
	if err := checkLabel("artifact name", a.Name, true); err != nil {
		return a, err
	}
	if len(a.Name) > maxArtifactName || strings.ContainsAny(a.Name, `/\`) || a.Name == "." || a.Name == ".." {
		return a, invalidf("artifact name %q must be a plain file name of at most %d bytes", a.Name, maxArtifactName)
	}
	if a.Size < 0 {
		return a, invalidf("artifact size %d is negative", a.Size)
	}
	a.SHA256, a.SHA1, a.MD5 = strings.ToLower(a.SHA256), strings.ToLower(a.SHA1), strings.ToLower(a.MD5)
	if err := checkHex("sha256", a.SHA256, 64); err != nil {
		return a, err
	}
	if err := checkHex("sha1", a.SHA1, 40); err != nil {
		return a, err
	}
	if err := checkHex("md5", a.MD5, 32); err != nil {
		return a, err
	}
	return a, nil
}

// describeKey names an artifact key for error messages.
func describeKey(deviceType, rev string, typ store.ArtifactType, component, from string) string {
	s := fmt.Sprintf("%s rev %s, type %s", deviceType, rev, typ)
	if component != "" {
		s += ", component " + component
	}
	if from != "" {
		s += ", from " + from
	}
	return s
}

// AddArtifact implements store.Releases. The artifact row and one
// artifact_hw row per revision go in together; the unique key on
// artifact_hw refuses an overlap even between concurrent calls.
func (s *Store) AddArtifact(ctx context.Context, in store.Artifact, by store.Actor, now time.Time) (store.Artifact, error) {
	a, err := validateArtifact(in)
	if err != nil {
		return store.Artifact{}, fmt.Errorf("add artifact: %w", err)
	}
	a.ID = newID()
	a.CreatedAt = fromMicros(micros(now))
	err = s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, a.TenantID, a.ReleaseID)
		if err != nil {
			return err
		}
		if r.State != store.ReleaseDraft {
			return fmt.Errorf("release %s: %w", r.Version, store.ErrImmutable)
		}
		// Name the clash precisely when there is one; the unique key below
		// still decides under concurrency.
		args := []any{a.TenantID, a.ReleaseID, a.DeviceType, string(a.Type), a.Component, a.FromVersion}
		marks := make([]string, len(a.HWRevs))
		for i, rev := range a.HWRevs {
			marks[i] = "?"
			args = append(args, rev)
		}
		var clashRev, clashName, clashID string
		err = t.queryRow(ctx, `SELECT h.hw_rev, a.name, a.id FROM artifact_hw h JOIN artifacts a ON a.tenant_id = h.tenant_id AND a.id = h.artifact_id
			WHERE h.tenant_id = ? AND h.release_id = ? AND h.device_type = ? AND h.type = ? AND h.component = ? AND h.from_version = ?
			AND h.hw_rev IN (`+strings.Join(marks, ", ")+`) ORDER BY h.hw_rev LIMIT 1`, args...).Scan(&clashRev, &clashName, &clashID)
		switch {
		case err == nil:
			return store.Conflictf("release %s already has artifact %s (%s) for %s", r.Version, clashName, clashID,
				describeKey(a.DeviceType, clashRev, a.Type, a.Component, a.FromVersion))
		case !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("check artifact key: %w", err)
		}
		if _, err := t.exec(ctx, `INSERT INTO artifacts (`+artifactColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.TenantID, a.ID, a.ReleaseID, a.DeviceType, jsonText(a.HWRevs), string(a.Type), a.Component, a.FromVersion, a.Compression,
			a.Name, a.Size, a.SHA256, a.SHA1, a.MD5, micros(a.CreatedAt)); err != nil {
			return fmt.Errorf("insert artifact: %w", err)
		}
		for _, rev := range a.HWRevs {
			if _, err := t.exec(ctx, `INSERT INTO artifact_hw (tenant_id, release_id, artifact_id, device_type, hw_rev, type, component, from_version)
				VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, a.TenantID, a.ReleaseID, a.ID, a.DeviceType, rev, string(a.Type), a.Component, a.FromVersion); err != nil {
				if s.d.IsUniqueViolation(err) {
					return store.Conflictf("release %s already has an artifact for %s", r.Version,
						describeKey(a.DeviceType, rev, a.Type, a.Component, a.FromVersion))
				}
				return fmt.Errorf("insert artifact key: %w", err)
			}
		}
		return t.audit(ctx, a.TenantID, by, "release.add_artifact", "release", a.ReleaseID, map[string]any{
			"artifact_id": a.ID, "version": r.Version, "name": a.Name, "device_type": a.DeviceType, "hw_revs": a.HWRevs,
			"type": a.Type, "component": a.Component, "from_version": a.FromVersion, "size": a.Size, "sha256": a.SHA256,
		}, now)
	})
	if err != nil {
		return store.Artifact{}, fmt.Errorf("add artifact %s: %w", a.Name, err)
	}
	return a, nil
}

// Artifact implements store.Releases.
func (s *Store) Artifact(ctx context.Context, tenant, id string) (store.Artifact, error) {
	a, err := scanArtifact(s.queryRow(ctx, `SELECT `+artifactColumns+` FROM artifacts WHERE tenant_id = ? AND id = ?`, tenant, id))
	if err != nil {
		return store.Artifact{}, notFound(err, "artifact "+id)
	}
	return a, nil
}

// PublishRelease implements store.Releases.
func (s *Store) PublishRelease(ctx context.Context, tenant, id string, by store.Actor, now time.Time) (store.Release, error) {
	err := s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, tenant, id)
		if err != nil {
			return err
		}
		if r.State != store.ReleaseDraft {
			return fmt.Errorf("release %s: %w", r.Version, store.ErrImmutable)
		}
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM artifacts WHERE tenant_id = ? AND release_id = ?`, tenant, id).Scan(&n); err != nil {
			return fmt.Errorf("count artifacts: %w", err)
		}
		if n == 0 {
			return store.Conflictf("release %s has no artifacts; add one before publishing", r.Version)
		}
		if _, err := t.exec(ctx, `UPDATE releases SET state = ?, published_at = ? WHERE tenant_id = ? AND id = ?`,
			string(store.ReleasePublished), micros(now), tenant, id); err != nil {
			return fmt.Errorf("update release: %w", err)
		}
		return t.audit(ctx, tenant, by, "release.publish", "release", id, map[string]any{"version": r.Version, "artifacts": n}, now)
	})
	if err != nil {
		return store.Release{}, fmt.Errorf("publish release: %w", err)
	}
	return s.Release(ctx, tenant, id)
}

// DeleteDraft implements store.Releases. Blobs stay; BlobInUse tells the
// blob collector when one is no longer referenced.
func (s *Store) DeleteDraft(ctx context.Context, tenant, id string, by store.Actor, now time.Time) error {
	err := s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, tenant, id)
		if err != nil {
			return err
		}
		if r.State != store.ReleaseDraft {
			return fmt.Errorf("release %s: %w", r.Version, store.ErrImmutable)
		}
		for _, q := range []string{
			`DELETE FROM artifact_hw WHERE tenant_id = ? AND release_id = ?`,
			`DELETE FROM artifacts WHERE tenant_id = ? AND release_id = ?`,
			`DELETE FROM releases WHERE tenant_id = ? AND id = ?`,
		} {
			if _, err := t.exec(ctx, q, tenant, id); err != nil {
				return fmt.Errorf("delete draft: %w", err)
			}
		}
		return t.audit(ctx, tenant, by, "release.delete_draft", "release", id, map[string]any{"version": r.Version}, now)
	})
	if err != nil {
		return fmt.Errorf("delete draft release: %w", err)
	}
	return nil
}

// MarkBad implements store.Releases. A bad release cannot be assigned
// without an explicit override; clearing the flag clears the reason.
func (s *Store) MarkBad(ctx context.Context, tenant, id string, bad bool, reason string, by store.Actor, now time.Time) (store.Release, error) {
	if err := checkText("reason", reason, maxReasonLen); err != nil {
		return store.Release{}, fmt.Errorf("mark release bad: %w", err)
	}
	if !bad {
		reason = ""
	}
	err := s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, tenant, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE releases SET bad = ?, bad_reason = ? WHERE tenant_id = ? AND id = ?`, boolInt(bad), reason, tenant, id); err != nil {
			return fmt.Errorf("update release: %w", err)
		}
		return t.audit(ctx, tenant, by, "release.mark_bad", "release", id, map[string]any{
			"version": r.Version, "bad": bad, "reason": reason, "was_bad": r.Bad,
		}, now)
	})
	if err != nil {
		return store.Release{}, fmt.Errorf("mark release bad: %w", err)
	}
	return s.Release(ctx, tenant, id)
}

// MarkAffected implements store.Releases: cves replaces the list of CVE ids
// found to affect the release.
func (s *Store) MarkAffected(ctx context.Context, tenant, id string, cves []string, by store.Actor, now time.Time) (store.Release, error) {
	list, err := normalizeCVEs("affecting CVEs", cves)
	if err != nil {
		return store.Release{}, fmt.Errorf("mark release affected: %w", err)
	}
	err = s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, tenant, id)
		if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `UPDATE releases SET affected_by = ? WHERE tenant_id = ? AND id = ?`, jsonText(list), tenant, id); err != nil {
			return fmt.Errorf("update release: %w", err)
		}
		return t.audit(ctx, tenant, by, "release.mark_affected", "release", id, map[string]any{
			"version": r.Version, "affected_by": list, "was": r.AffectedBy,
		}, now)
	})
	if err != nil {
		return store.Release{}, fmt.Errorf("mark release affected: %w", err)
	}
	return s.Release(ctx, tenant, id)
}

// BlobInUse implements store.Releases, across all tenants.
func (s *Store) BlobInUse(ctx context.Context, sha256 string) (bool, error) {
	var one int
	err := s.queryRow(ctx, `SELECT 1 FROM artifacts WHERE sha256 = ? LIMIT 1`, strings.ToLower(sha256)).Scan(&one)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, sql.ErrNoRows):
		return false, nil
	}
	return false, fmt.Errorf("blob in use: %w", err)
}
