package sqlstore

import (
	"context"
	"database/sql"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// Device lifecycle:
//
//	pending  ──accept──► accepted ──reject──► rejected ──accept──► accepted
//	pending  ──reject──► rejected
//	any state but decommissioned ──decommission──► decommissioned (final)
//	pending (expired) ──ExpirePending──► deleted
//
// A transition to the state the device is already in changes nothing and is
// not audited; any other transition out of decommissioned is a conflict.

// Limits on device identity data. They bound what a device can make the
// server store; the API layer bounds request bodies as well.
const (
	maxIdentityLen  = 128  // serial, device type, hardware revision, region, time zone
	maxAttributes   = 256  // reported attributes per device
	maxAttrKeyLen   = 128  // bytes
	maxAttrValueLen = 4096 // bytes
)

// labelPattern is what tags and group names look like.
var labelPattern = regexp.MustCompile(`^[A-Za-z0-9._:-]{1,64}$`)

// deviceColumns are read by scanDevice, in order, from table alias d.
const deviceColumns = `d.tenant_id, d.id, d.serial, d.state, d.protocol, d.device_type, d.hw_rev, d.region,
	d.time_zone, d.version, d.previous_version, d.version_since, d.security_floor, d.attributes,
	d.credential_epoch, d.created_at, d.updated_at, d.last_seen_at, d.pending_expires_at, d.last_report_seq`

// rowSource is what both the read pool (*Store) and a write transaction (*txn)
// offer, so loaders work inside and outside transactions.
type rowSource interface {
	query(ctx context.Context, q string, args ...any) (*sql.Rows, error)
	queryRow(ctx context.Context, q string, args ...any) *sql.Row
}

func scanDevice(row interface{ Scan(...any) error }) (store.Device, error) {
	var d store.Device
	var state, protocol, attrs string
	var versionSince, lastSeen, pendingExpires sql.NullInt64
	var created, updated int64
	if err := row.Scan(&d.TenantID, &d.ID, &d.Serial, &state, &protocol, &d.DeviceType, &d.HWRev, &d.Region,
		&d.TimeZone, &d.Version, &d.PreviousVersion, &versionSince, &d.SecurityFloor, &attrs,
		&d.CredentialEpoch, &created, &updated, &lastSeen, &pendingExpires, &d.LastReportSeq); err != nil {
		return d, err
	}
	d.State = store.DeviceState(state)
	d.Protocol = store.Protocol(protocol)
	d.VersionSince = timePtr(versionSince)
	d.CreatedAt = fromMicros(created)
	d.UpdatedAt = fromMicros(updated)
	d.LastSeenAt = timePtr(lastSeen)
	d.PendingExpiresAt = timePtr(pendingExpires)
	d.Attributes = map[string]string{}
	if err := decodeJSON(attrs, &d.Attributes); err != nil {
		return d, fmt.Errorf("device %s attributes: %w", d.ID, err)
	}
	if d.Attributes == nil { // stored "null"
		d.Attributes = map[string]string{}
	}
	d.Tags = []string{}
	d.Groups = []string{}
	return d, nil
}

// loadDevice reads one device with its tags and groups.
func loadDevice(ctx context.Context, r rowSource, tenant, id string) (store.Device, error) {
	d, err := scanDevice(r.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices d WHERE d.tenant_id = ? AND d.id = ?`, tenant, id))
	if err != nil {
		return d, notFound(err, "device "+id)
	}
	devs := []store.Device{d}
	if err := loadLabels(ctx, r, tenant, devs); err != nil {
		return d, err
	}
	return devs[0], nil
}

// loadLabels fills in the tags and groups of devs (all of one tenant), each
// sorted, with one query per table.
func loadLabels(ctx context.Context, r rowSource, tenant string, devs []store.Device) error {
	if len(devs) == 0 {
		return nil
	}
	index := make(map[string]int, len(devs))
	args := make([]any, 0, len(devs)+1)
	args = append(args, tenant)
	for i, d := range devs {
		index[d.ID] = i
		args = append(args, d.ID)
	}
	in := placeholders(len(devs))
	load := func(q string, add func(d *store.Device, v string)) error {
		rows, err := r.query(ctx, q, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var id, v string
			if err := rows.Scan(&id, &v); err != nil {
				return err
			}
			if i, ok := index[id]; ok {
				add(&devs[i], v)
			}
		}
		return rows.Err()
	}
	if err := load(`SELECT device_id, tag FROM device_tags WHERE tenant_id = ? AND device_id IN (`+in+`)`,
		func(d *store.Device, v string) { d.Tags = append(d.Tags, v) }); err != nil {
		return fmt.Errorf("load device tags: %w", err)
	}
	if err := load(`SELECT device_id, group_name FROM device_group_members WHERE tenant_id = ? AND device_id IN (`+in+`)`,
		func(d *store.Device, v string) { d.Groups = append(d.Groups, v) }); err != nil {
		return fmt.Errorf("load device groups: %w", err)
	}
	// Sorted here, byte-wise, so both databases agree whatever their collation.
	for i := range devs {
		slices.Sort(devs[i].Tags)
		slices.Sort(devs[i].Groups)
	}
	return nil
}

// lockDeviceRow locks the device's row for the rest of t (PostgreSQL; SQLite
// has one writer), so that a read-check-write on the device cannot
// interleave with another; a missing device is ErrNotFound.
func lockDeviceRow(ctx context.Context, t *txn, tenant, id string) error {
	res, err := t.exec(ctx, `UPDATE devices SET updated_at = updated_at WHERE tenant_id = ? AND id = ?`, tenant, id)
	if err != nil {
		return fmt.Errorf("lock device %s: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("lock device %s: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("device %s: %w", id, store.ErrNotFound)
	}
	return nil
}

// storedTime is t as it reads back from the database: UTC, microseconds.
func storedTime(t time.Time) time.Time { return fromMicros(micros(t)) }

// placeholders returns "?, ?, …" with n placeholders.
func placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?, ", n-1) + "?"
}

// Device implements store.Devices.
func (s *Store) Device(ctx context.Context, tenant, id string) (store.Device, error) {
	return loadDevice(ctx, s, tenant, id)
}

// DeviceByCredential implements store.Devices. It returns the device
// whatever its state; the caller decides what a rejected or decommissioned
// device may do.
func (s *Store) DeviceByCredential(ctx context.Context, tenant string, kind store.CredentialKind, fingerprint string) (store.Device, store.Credential, error) {
	c, err := scanCredential(s.queryRow(ctx, `SELECT `+credentialColumns+` FROM device_credentials
		WHERE tenant_id = ? AND kind = ? AND fingerprint = ? AND state = 'active' AND device_id IS NOT NULL`,
		tenant, string(kind), fingerprint))
	if err != nil {
		return store.Device{}, store.Credential{}, notFound(err, "device credential")
	}
	d, err := loadDevice(ctx, s, tenant, c.DeviceID)
	if err != nil {
		return store.Device{}, store.Credential{}, err
	}
	return d, c, nil
}

// deviceWhere builds the WHERE clause (over alias d) shared by ListDevices
// and CountDevices.
func (s *Store) deviceWhere(tenant string, f *filter.Expr, state store.DeviceState) (string, []any, error) {
	where := `d.tenant_id = ?`
	args := []any{tenant}
	if f != nil {
		// The whole query is written with '?' and rebound at the end, so
		// the fragment must use '?' too, whatever the dialect's default.
		c := s.d.Filter().SQLConfig()
		c.Alias, c.QuestionMarks = "d", true
		frag, fargs := f.SQL(c)
		where += ` AND (` + frag + `)`
		args = append(args, fargs...)
	}
	if state != "" {
		if !validDeviceState(state) {
			return "", nil, fmt.Errorf("%w: unknown device state %q", store.ErrInvalidRequest, state)
		}
		where += ` AND d.state = ?`
		args = append(args, string(state))
	}
	return where, args, nil
}

// ListDevices implements store.Devices: devices in enrollment order, paged
// by (created_at, id).
func (s *Store) ListDevices(ctx context.Context, tenant string, q store.DeviceQuery) ([]store.Device, string, error) {
	where, args, err := s.deviceWhere(tenant, q.Filter, q.State)
	if err != nil {
		return nil, "", err
	}
	if q.Page.After != "" {
		at, id, err := decodeTimeCursor(q.Page.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (d.created_at > ? OR (d.created_at = ? AND d.id > ?))`
		args = append(args, at, at, id)
	}
	n := limit(q.Page)
	rows, err := s.query(ctx, `SELECT `+deviceColumns+` FROM devices d WHERE `+where+
		` ORDER BY d.created_at, d.id LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	defer rows.Close()
	devs := []store.Device{}
	for rows.Next() {
		d, err := scanDevice(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list devices: %w", err)
		}
		devs = append(devs, d)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	rows.Close()
	next := ""
	if len(devs) > n {
		devs = devs[:n]
		last := devs[n-1]
		next = encodeCursor(strconv.FormatInt(micros(last.CreatedAt), 10), last.ID)
	}
	if err := loadLabels(ctx, s, tenant, devs); err != nil {
		return nil, "", fmt.Errorf("list devices: %w", err)
	}
	return devs, next, nil
}

// decodeTimeCursor decodes a "micros|id" cursor.
func decodeTimeCursor(c string) (int64, string, error) {
	parts, err := decodeCursor(c, 2)
	if err != nil {
		return 0, "", err
	}
	at, err := strconv.ParseInt(parts[0], 10, 64)
	if err != nil {
		return 0, "", fmt.Errorf("%w: malformed page cursor", store.ErrInvalidRequest)
	}
	return at, parts[1], nil
}

// CountDevices implements store.Devices.
func (s *Store) CountDevices(ctx context.Context, tenant string, f *filter.Expr) (int, error) {
	where, args, err := s.deviceWhere(tenant, f, "")
	if err != nil {
		return 0, err
	}
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM devices d WHERE `+where, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count devices: %w", err)
	}
	return n, nil
}

// CountDevicesByState implements store.Devices.
func (s *Store) CountDevicesByState(ctx context.Context) (map[string]map[store.DeviceState]int, error) {
	rows, err := s.query(ctx, `SELECT tenant_id, state, COUNT(*) FROM devices GROUP BY tenant_id, state`)
	if err != nil {
		return nil, fmt.Errorf("count devices by state: %w", err)
	}
	defer rows.Close()
	out := map[string]map[store.DeviceState]int{}
	for rows.Next() {
		var tenant, state string
		var n int
		if err := rows.Scan(&tenant, &state, &n); err != nil {
			return nil, fmt.Errorf("count devices by state: %w", err)
		}
		if out[tenant] == nil {
			out[tenant] = map[store.DeviceState]int{}
		}
		out[tenant][store.DeviceState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count devices by state: %w", err)
	}
	return out, nil
}

// UpdateDeviceReport implements store.Devices. The comparison runs on the
// read pool first, so the common check-in that changes nothing costs one
// read and no write transaction.
func (s *Store) UpdateDeviceReport(ctx context.Context, tenant, id string, r store.DeviceReport) (store.Device, error) {
	var versionKey string
	if r.Version != "" {
		v, err := semver.Parse(r.Version)
		if err != nil {
			return store.Device{}, fmt.Errorf("%w: reported %w", store.ErrInvalidRequest, err)
		}
		r.Version = v.String()
		versionKey = semver.Key(v)
	}
	for name, v := range map[string]string{"device type": r.DeviceType, "hardware revision": r.HWRev, "time zone": r.TimeZone} {
		if err := checkIdentityField(name, v); err != nil {
			return store.Device{}, err
		}
	}
	if r.Attributes != nil {
		if err := checkAttributes(r.Attributes); err != nil {
			return store.Device{}, err
		}
	}
	cur, err := loadDevice(ctx, s, tenant, id)
	if err != nil {
		return store.Device{}, err
	}
	if len(reportChanges(cur, r)) == 0 {
		return cur, nil
	}
	var out store.Device
	err = s.tx(ctx, func(t *txn) error {
		if err := lockDeviceRow(ctx, t, tenant, id); err != nil {
			return err
		}
		d, err := loadDevice(ctx, t, tenant, id)
		if err != nil {
			return err
		}
		changed := reportChanges(d, r)
		if len(changed) == 0 {
			out = d
			return nil
		}
		details := map[string]any{"changed": changed}
		versionChanged := slices.Contains(changed, "version")
		if versionChanged {
			details["version"] = r.Version
			details["previous_version"] = d.Version
			d.PreviousVersion = d.Version
			d.Version = r.Version
			now := storedTime(r.Now)
			d.VersionSince = &now
		}
		if r.DeviceType != "" {
			d.DeviceType = r.DeviceType
		}
		if r.HWRev != "" {
			d.HWRev = r.HWRev
		}
		if r.TimeZone != "" {
			d.TimeZone = r.TimeZone
		}
		if r.Attributes != nil {
			d.Attributes = maps.Clone(r.Attributes)
		}
		d.UpdatedAt = storedTime(r.Now)
		q := `UPDATE devices SET device_type = ?, hw_rev = ?, time_zone = ?, attributes = ?,
			version = ?, previous_version = ?, version_since = ?, updated_at = ?`
		args := []any{d.DeviceType, d.HWRev, d.TimeZone, jsonText(d.Attributes),
			d.Version, d.PreviousVersion, nullMicros(d.VersionSince), micros(d.UpdatedAt)}
		if versionChanged {
			q += `, version_key = ?`
			args = append(args, versionKey)
		}
		args = append(args, tenant, id)
		if _, err := t.exec(ctx, q+` WHERE tenant_id = ? AND id = ?`, args...); err != nil {
			return fmt.Errorf("update device report: %w", err)
		}
		if err := t.audit(ctx, tenant, deviceActor(d), "device.report", "device", id, details, r.Now); err != nil {
			return err
		}
		out = d
		return nil
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("update device %s report: %w", id, err)
	}
	return out, nil
}

// reportChanges names the fields r would change on d.
func reportChanges(d store.Device, r store.DeviceReport) []string {
	var changed []string
	if r.Version != "" && r.Version != d.Version {
		changed = append(changed, "version")
	}
	if r.DeviceType != "" && r.DeviceType != d.DeviceType {
		changed = append(changed, "device_type")
	}
	if r.HWRev != "" && r.HWRev != d.HWRev {
		changed = append(changed, "hw_rev")
	}
	if r.TimeZone != "" && r.TimeZone != d.TimeZone {
		changed = append(changed, "time_zone")
	}
	if r.Attributes != nil && !maps.Equal(r.Attributes, d.Attributes) {
		changed = append(changed, "attributes")
	}
	return changed
}

// deviceActor is the audit actor for changes a device makes itself.
func deviceActor(d store.Device) store.Actor {
	return store.Actor{Kind: store.ActorDevice, ID: d.ID, Name: d.Serial}
}

// SetTags implements store.Devices.
func (s *Store) SetTags(ctx context.Context, tenant, id string, add, remove []string, by store.Actor, now time.Time) (store.Device, error) {
	return s.setLabels(ctx, labelTable{table: "device_tags", column: "tag", what: "tag", action: "device.tags"}, tenant, id, add, remove, by, now)
}

// SetGroups implements store.Devices.
func (s *Store) SetGroups(ctx context.Context, tenant, id string, add, remove []string, by store.Actor, now time.Time) (store.Device, error) {
	return s.setLabels(ctx, labelTable{table: "device_group_members", column: "group_name", what: "group", action: "device.groups"}, tenant, id, add, remove, by, now)
}

type labelTable struct{ table, column, what, action string }

// setLabels adds and removes tags or group memberships. Adding a label the
// device has, or removing one it lacks, changes nothing; a call that
// changes nothing writes nothing and is not audited.
func (s *Store) setLabels(ctx context.Context, lt labelTable, tenant, id string, add, remove []string, by store.Actor, now time.Time) (store.Device, error) {
	add, remove = dedupe(add), dedupe(remove)
	for _, l := range slices.Concat(add, remove) {
		if !labelPattern.MatchString(l) {
			return store.Device{}, fmt.Errorf("%w: %s %q: want 1 to 64 of A-Z a-z 0-9 . _ : -", store.ErrInvalidRequest, lt.what, l)
		}
	}
	for _, l := range add {
		if slices.Contains(remove, l) {
			return store.Device{}, fmt.Errorf("%w: %s %q is both added and removed", store.ErrInvalidRequest, lt.what, l)
		}
	}
	var out store.Device
	err := s.tx(ctx, func(t *txn) error {
		if err := lockDeviceRow(ctx, t, tenant, id); err != nil {
			return err
		}
		d, err := loadDevice(ctx, t, tenant, id)
		if err != nil {
			return err
		}
		have := d.Tags
		if lt.table == "device_group_members" {
			have = d.Groups
		}
		var added, removed []string
		for _, l := range add {
			if slices.Contains(have, l) {
				continue
			}
			if _, err := t.exec(ctx, `INSERT INTO `+lt.table+` (tenant_id, device_id, `+lt.column+`) VALUES (?, ?, ?)`, tenant, id, l); err != nil {
				return fmt.Errorf("add %s %s: %w", lt.what, l, err)
			}
			added = append(added, l)
		}
		for _, l := range remove {
			if !slices.Contains(have, l) {
				continue
			}
			if _, err := t.exec(ctx, `DELETE FROM `+lt.table+` WHERE tenant_id = ? AND device_id = ? AND `+lt.column+` = ?`, tenant, id, l); err != nil {
				return fmt.Errorf("remove %s %s: %w", lt.what, l, err)
			}
			removed = append(removed, l)
		}
		if len(added) == 0 && len(removed) == 0 {
			out = d
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE devices SET updated_at = ? WHERE tenant_id = ? AND id = ?`, micros(now), tenant, id); err != nil {
			return fmt.Errorf("update device: %w", err)
		}
		if err := t.audit(ctx, tenant, by, lt.action, "device", id, map[string]any{"added": nonNil(added), "removed": nonNil(removed)}, now); err != nil {
			return err
		}
		out, err = loadDevice(ctx, t, tenant, id)
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("set %ss of device %s: %w", lt.what, id, err)
	}
	return out, nil
}

// dedupe returns the distinct values of l, in order.
func dedupe(l []string) []string {
	var out []string
	for _, v := range l {
		if !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return out
}

func nonNil(l []string) []string {
	if l == nil {
		return []string{}
	}
	return l
}

// touchBatch is how many devices one TouchLastSeen statement updates.
const touchBatch = 500

// TouchLastSeen implements store.Devices: one UPDATE per 500 devices, in
// one transaction, never moving a last-seen time backwards. Unknown device
// ids are ignored. Not audited: last-seen is lossy telemetry, not a change.
func (s *Store) TouchLastSeen(ctx context.Context, tenant string, seen map[string]time.Time) error {
	ids := make([]string, 0, len(seen))
	for id, at := range seen {
		if !at.IsZero() {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	// A fixed order keeps concurrent flushes from deadlocking on PostgreSQL.
	slices.Sort(ids)
	err := s.tx(ctx, func(t *txn) error {
		for chunk := range slices.Chunk(ids, touchBatch) {
			if t.s.d.Name() == "postgres" {
				// An UPDATE … FROM (VALUES …) locks rows in the order its
				// join plan reads them (often the table's), not in id
				// order; report group commits lock device rows one by one
				// in id order, and the two deadlocked under load. Take the
				// locks in id order first.
				lock := make([]any, 0, len(chunk)+1)
				lock = append(lock, tenant)
				for _, id := range chunk {
					lock = append(lock, id)
				}
				rows, err := t.query(ctx, `SELECT id FROM devices WHERE tenant_id = ? AND id IN (`+
					strings.TrimSuffix(strings.Repeat("?, ", len(chunk)), ", ")+`) ORDER BY id FOR UPDATE`, lock...)
				if err != nil {
					return err
				}
				for rows.Next() {
				}
				if err := rows.Close(); err != nil {
					return err
				}
				if err := rows.Err(); err != nil {
					return err
				}
			}
			args := make([]any, 0, 2*len(chunk)+1)
			for _, id := range chunk {
				args = append(args, id, micros(seen[id]))
			}
			args = append(args, tenant)
			q := `WITH seen (id, at) AS (VALUES ` + strings.TrimSuffix(strings.Repeat(`(?, CAST(? AS BIGINT)), `, len(chunk)), ", ") + `)
				UPDATE devices SET last_seen_at = seen.at FROM seen
				WHERE devices.tenant_id = ? AND devices.id = seen.id
				AND (devices.last_seen_at IS NULL OR devices.last_seen_at < seen.at)`
			if _, err := t.exec(ctx, q, args...); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch last seen: %w", err)
	}
	return nil
}

// checkIdentityField bounds one identity string (serial, device type, …).
func checkIdentityField(name, v string) error {
	if len(v) > maxIdentityLen {
		return fmt.Errorf("%w: %s is longer than %d bytes", store.ErrInvalidRequest, name, maxIdentityLen)
	}
	if !printable(v) {
		return fmt.Errorf("%w: %s %q has non-printable characters", store.ErrInvalidRequest, name, v)
	}
	return nil
}

func checkAttributes(attrs map[string]string) error {
	if len(attrs) > maxAttributes {
		return fmt.Errorf("%w: %d attributes, at most %d allowed", store.ErrInvalidRequest, len(attrs), maxAttributes)
	}
	for k, v := range attrs {
		if k == "" || len(k) > maxAttrKeyLen || !printable(k) {
			return fmt.Errorf("%w: attribute name %q: want 1 to %d printable bytes", store.ErrInvalidRequest, k, maxAttrKeyLen)
		}
		if len(v) > maxAttrValueLen || !utf8.ValidString(v) {
			return fmt.Errorf("%w: attribute %q: value must be UTF-8 of at most %d bytes", store.ErrInvalidRequest, k, maxAttrValueLen)
		}
	}
	return nil
}

// printable reports whether s is valid UTF-8 without control characters.
func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

func validDeviceState(st store.DeviceState) bool {
	switch st {
	case store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned:
		return true
	}
	return false
}
