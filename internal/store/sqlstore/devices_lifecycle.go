package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Enroll implements store.Devices. In order:
//
//  1. The key is an active credential of a device: that device is returned
//     (a pending one gets a fresh expiry). The same key under another serial
//     is a conflict.
//  2. A device with this serial exists: rejected and decommissioned devices
//     are returned unchanged; a device holding another active key of this
//     kind is a conflict; a device without one takes the key only if an
//     operator preauthorized it (re-keying), and is then accepted. A pending
//     device whose enrollment expired is deleted first, as if it never was.
//  3. A new device: accepted with a preauthorized key, otherwise pending
//     unless the tenant already has MaxPending unexpired pending devices.
//
// MaxPending <= 0 means no cap; PendingTTL <= 0 means pending enrollments
// never expire. Refreshing a pending enrollment's expiry is not audited.
func (s *Store) Enroll(ctx context.Context, p store.EnrollParams) (store.Device, error) {
	if err := checkEnroll(&p); err != nil {
		return store.Device{}, err
	}
	var out store.Device
	err := s.tx(ctx, func(t *txn) error {
		d, err := enroll(ctx, t, p)
		out = d
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("enroll %q: %w", p.Serial, err)
	}
	return out, nil
}

func checkEnroll(p *store.EnrollParams) error {
	if p.TenantID == "" {
		return fmt.Errorf("%w: enrollment without tenant", store.ErrInvalidRequest)
	}
	if p.Serial == "" {
		return fmt.Errorf("%w: enrollment without serial number", store.ErrInvalidRequest)
	}
	for name, v := range map[string]string{"serial": p.Serial, "device type": p.DeviceType, "hardware revision": p.HWRev, "region": p.Region, "time zone": p.TimeZone} {
		if err := checkIdentityField(name, v); err != nil {
			return err
		}
	}
	if err := checkAttributes(p.Attributes); err != nil {
		return err
	}
	switch p.Protocol {
	case "":
		p.Protocol = store.ProtocolNative
	case store.ProtocolNative, store.ProtocolDDI, store.ProtocolMender:
	default:
		return fmt.Errorf("%w: unknown protocol %q", store.ErrInvalidRequest, p.Protocol)
	}
	p.Key.TenantID = p.TenantID
	if err := checkCredential(p.Key); err != nil {
		return err
	}
	if p.Key.Kind == store.CredToken {
		return fmt.Errorf("%w: devices enroll with a key, not a token", store.ErrInvalidRequest)
	}
	if p.Attributes == nil {
		p.Attributes = map[string]string{}
	}
	return nil
}

func enroll(ctx context.Context, t *txn, p store.EnrollParams) (store.Device, error) {
	tenant := p.TenantID
	// Serialize enrollments per tenant, so the pending cap holds and two
	// enrollments of one serial or key cannot both pass the checks below
	// (PostgreSQL; SQLite has one writer anyway).
	if err := lockTenant(ctx, t, tenant); err != nil {
		return store.Device{}, err
	}
	cred, found, err := liveCredential(ctx, t, tenant, p.Key.Kind, p.Key.Fingerprint)
	if err != nil {
		return store.Device{}, err
	}
	if found && cred.State == store.CredActive {
		if cred.DeviceID == "" {
			return store.Device{}, store.Conflictf("key is registered without a device")
		}
		return reenroll(ctx, t, p, cred)
	}
	preauth := found // a live credential that is not active is preauthorized
	if preauth && cred.PreauthSerial != "" && cred.PreauthSerial != p.Serial {
		return store.Device{}, store.Conflictf("key is preauthorized for another serial number")
	}

	existing, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices d WHERE d.tenant_id = ? AND d.serial = ?`, tenant, p.Serial))
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return store.Device{}, fmt.Errorf("look up serial: %w", err)
	case pendingExpired(existing, p.Now):
		deleted, err := deleteExpired(ctx, t, existing, p.Now)
		if err != nil {
			return store.Device{}, err
		}
		if !deleted {
			return store.Device{}, store.Conflictf("serial number %q changed state during enrollment; try again", p.Serial)
		}
	default:
		return enrollExisting(ctx, t, p, existing, cred, preauth)
	}

	d := store.Device{
		TenantID: tenant, ID: newID(), Serial: p.Serial, Protocol: p.Protocol,
		DeviceType: p.DeviceType, HWRev: p.HWRev, Region: p.Region, TimeZone: p.TimeZone,
		Attributes: p.Attributes, CreatedAt: p.Now.UTC(), UpdatedAt: p.Now.UTC(),
	}
	if preauth {
		d.State = store.DeviceAccepted
	} else {
		if err := checkPendingCap(ctx, t, tenant, p); err != nil {
			return store.Device{}, err
		}
		d.State = store.DevicePending
		d.PendingExpiresAt = pendingExpiry(p)
	}
	if _, err := t.exec(ctx, `INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, region, time_zone,
		attributes, created_at, updated_at, pending_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tenant, d.ID, d.Serial, string(d.State), string(d.Protocol), d.DeviceType, d.HWRev, d.Region, d.TimeZone,
		jsonText(d.Attributes), micros(d.CreatedAt), micros(d.UpdatedAt), nullMicros(d.PendingExpiresAt)); err != nil {
		return store.Device{}, fmt.Errorf("insert device: %w", err)
	}
	if preauth {
		if err := bindPreauthorized(ctx, t, cred, d.ID); err != nil {
			return store.Device{}, err
		}
	} else {
		key := p.Key
		key.ID, key.DeviceID, key.State, key.PreauthSerial, key.CreatedAt, key.RevokedAt = newID(), d.ID, store.CredActive, "", p.Now.UTC(), nil
		if err := insertCredential(ctx, t, key); err != nil {
			return store.Device{}, err
		}
	}
	if err := t.audit(ctx, tenant, deviceActor(d), "device.enroll", "device", d.ID, enrollAudit(d, p, preauth), p.Now); err != nil {
		return store.Device{}, err
	}
	return loadDevice(ctx, t, tenant, d.ID)
}

// reenroll answers an enrollment with a key the device already holds.
func reenroll(ctx context.Context, t *txn, p store.EnrollParams, cred store.Credential) (store.Device, error) {
	d, err := loadDevice(ctx, t, p.TenantID, cred.DeviceID)
	if err != nil {
		return d, err
	}
	if d.Serial != p.Serial {
		return store.Device{}, store.Conflictf("key is enrolled under another serial number")
	}
	if d.State != store.DevicePending {
		return d, nil
	}
	// An operator may be accepting or rejecting it right now.
	if err := lockDeviceRow(ctx, t, p.TenantID, d.ID); err != nil {
		return store.Device{}, err
	}
	if d, err = loadDevice(ctx, t, p.TenantID, d.ID); err != nil || d.State != store.DevicePending {
		return d, err
	}
	if pendingExpired(d, p.Now) {
		// Reviving an expired enrollment takes a pending slot again.
		if err := checkPendingCap(ctx, t, p.TenantID, p); err != nil {
			return store.Device{}, err
		}
	}
	d.PendingExpiresAt = pendingExpiry(p)
	if _, err := t.exec(ctx, `UPDATE devices SET pending_expires_at = ? WHERE tenant_id = ? AND id = ?`,
		nullMicros(d.PendingExpiresAt), p.TenantID, d.ID); err != nil {
		return store.Device{}, fmt.Errorf("refresh pending enrollment: %w", err)
	}
	return d, nil
}

// enrollExisting answers an enrollment with a new key for a known serial.
func enrollExisting(ctx context.Context, t *txn, p store.EnrollParams, d store.Device, cred store.Credential, preauth bool) (store.Device, error) {
	if err := lockDeviceRow(ctx, t, p.TenantID, d.ID); err != nil {
		return store.Device{}, err
	}
	d, err := loadDevice(ctx, t, p.TenantID, d.ID)
	if err != nil {
		return store.Device{}, err
	}
	if d.State == store.DeviceRejected || d.State == store.DeviceDecommissioned {
		return d, nil
	}
	var active int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM device_credentials WHERE tenant_id = ? AND device_id = ? AND kind = ? AND state = 'active'`,
		p.TenantID, d.ID, string(p.Key.Kind)).Scan(&active); err != nil {
		return store.Device{}, fmt.Errorf("count device keys: %w", err)
	}
	if active > 0 {
		return store.Device{}, store.Conflictf("serial number %q is enrolled with another key", p.Serial)
	}
	if !preauth {
		return store.Device{}, store.Conflictf("serial number %q has no active key; an operator must preauthorize the new one", p.Serial)
	}
	if err := bindPreauthorized(ctx, t, cred, d.ID); err != nil {
		return store.Device{}, err
	}
	if _, err := t.exec(ctx, `UPDATE devices SET state = 'accepted', pending_expires_at = NULL, updated_at = ? WHERE tenant_id = ? AND id = ?`,
		micros(p.Now), p.TenantID, d.ID); err != nil {
		return store.Device{}, fmt.Errorf("accept device: %w", err)
	}
	details := enrollAudit(d, p, true)
	details["rekeyed"] = true
	details["previous_state"] = d.State
	d.State = store.DeviceAccepted
	details["state"] = d.State
	if err := t.audit(ctx, p.TenantID, deviceActor(d), "device.enroll", "device", d.ID, details, p.Now); err != nil {
		return store.Device{}, err
	}
	return loadDevice(ctx, t, p.TenantID, d.ID)
}

func enrollAudit(d store.Device, p store.EnrollParams, preauth bool) map[string]any {
	return map[string]any{
		"serial": d.Serial, "device_type": p.DeviceType, "hw_rev": p.HWRev, "region": p.Region,
		"protocol": p.Protocol, "state": d.State, "preauthorized": preauth,
		"key_kind": p.Key.Kind, "key_algorithm": p.Key.Algorithm, "key_fingerprint": p.Key.Fingerprint,
	}
}

func bindPreauthorized(ctx context.Context, t *txn, cred store.Credential, deviceID string) error {
	res, err := t.exec(ctx, `UPDATE device_credentials SET device_id = ?, state = 'active' WHERE tenant_id = ? AND id = ? AND state = 'preauthorized'`,
		deviceID, cred.TenantID, cred.ID)
	if err != nil {
		return fmt.Errorf("bind preauthorized key: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil || n != 1 {
		return store.Conflictf("preauthorized key changed during enrollment")
	}
	return nil
}

// lockTenant takes the tenant's row lock for the rest of the transaction
// and checks that the tenant exists.
func lockTenant(ctx context.Context, t *txn, tenant string) error {
	res, err := t.exec(ctx, `UPDATE tenants SET name = name WHERE id = ?`, tenant)
	if err != nil {
		return fmt.Errorf("lock tenant: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("lock tenant: %w", err)
	} else if n == 0 {
		return fmt.Errorf("%w: unknown tenant %q", store.ErrInvalidRequest, tenant)
	}
	return nil
}

func checkPendingCap(ctx context.Context, t *txn, tenant string, p store.EnrollParams) error {
	if p.MaxPending <= 0 {
		return nil
	}
	var n int
	if err := t.queryRow(ctx, `SELECT COUNT(*) FROM devices WHERE tenant_id = ? AND state = 'pending'
		AND (pending_expires_at IS NULL OR pending_expires_at > ?)`, tenant, micros(p.Now)).Scan(&n); err != nil {
		return fmt.Errorf("count pending devices: %w", err)
	}
	if n >= p.MaxPending {
		return fmt.Errorf("%w: %d enrollments await an operator", store.ErrPendingLimit, n)
	}
	return nil
}

func pendingExpiry(p store.EnrollParams) *time.Time {
	if p.PendingTTL <= 0 {
		return nil
	}
	at := storedTime(p.Now.Add(p.PendingTTL))
	return &at
}

func pendingExpired(d store.Device, now time.Time) bool {
	return d.State == store.DevicePending && d.PendingExpiresAt != nil && !d.PendingExpiresAt.After(now)
}

// deleteExpired removes a pending device whose enrollment expired, with
// its credentials, tags and groups, and audits it as the system's doing.
// It reports false, changing nothing, if the device is no longer an
// expired pending one (an operator accepted it meanwhile).
func deleteExpired(ctx context.Context, t *txn, d store.Device, now time.Time) (bool, error) {
	// Tags and group memberships go with the device (ON DELETE CASCADE).
	res, err := t.exec(ctx, `DELETE FROM devices WHERE tenant_id = ? AND id = ? AND state = 'pending' AND pending_expires_at <= ?`,
		d.TenantID, d.ID, micros(now))
	if err != nil {
		return false, fmt.Errorf("delete expired device %s: %w", d.ID, err)
	}
	if n, err := res.RowsAffected(); err != nil || n == 0 {
		return false, err
	}
	if _, err := t.exec(ctx, `DELETE FROM device_credentials WHERE tenant_id = ? AND device_id = ?`, d.TenantID, d.ID); err != nil {
		return false, fmt.Errorf("delete credentials of expired device %s: %w", d.ID, err)
	}
	return true, t.audit(ctx, d.TenantID, store.System, "device.expire", "device", d.ID,
		map[string]any{"serial": d.Serial, "pending_expires_at": d.PendingExpiresAt}, now)
}

// expireBatch is how many expired devices one ExpirePending transaction removes.
const expireBatch = 200

// ExpirePending implements store.Devices, in transactions of up to 200
// devices; each deletion is audited.
func (s *Store) ExpirePending(ctx context.Context, now time.Time) (int, error) {
	total := 0
	for {
		n, more := 0, false
		err := s.tx(ctx, func(t *txn) error {
			rows, err := t.query(ctx, `SELECT `+deviceColumns+` FROM devices d WHERE d.state = 'pending' AND d.pending_expires_at <= ?
				ORDER BY d.tenant_id, d.id LIMIT `+fmt.Sprint(expireBatch), micros(now))
			if err != nil {
				return err
			}
			var devs []store.Device
			for rows.Next() {
				d, err := scanDevice(rows)
				if err != nil {
					rows.Close()
					return err
				}
				devs = append(devs, d)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			n = 0
			for _, d := range devs {
				deleted, err := deleteExpired(ctx, t, d, now)
				if err != nil {
					return err
				}
				if deleted {
					n++
				}
			}
			more = len(devs) == expireBatch
			return nil
		})
		if err != nil {
			return total, fmt.Errorf("expire pending devices: %w", err)
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// AcceptDevice implements store.Devices: pending or rejected → accepted.
func (s *Store) AcceptDevice(ctx context.Context, tenant, id string, by store.Actor, now time.Time) (store.Device, error) {
	return s.transition(ctx, tenant, id, store.DeviceAccepted, by, now)
}

// RejectDevice implements store.Devices: pending or accepted → rejected.
// Rejecting an accepted device bumps its credential epoch (its tokens stop
// working) and cancels its active assignment; its keys stay, so the device
// is recognised as rejected when it comes back.
func (s *Store) RejectDevice(ctx context.Context, tenant, id string, by store.Actor, now time.Time) (store.Device, error) {
	return s.transition(ctx, tenant, id, store.DeviceRejected, by, now)
}

// DecommissionDevice implements store.Devices: any state → decommissioned,
// for good. Every credential is revoked, the credential epoch bumped and the
// active assignment canceled; the device's history stays.
func (s *Store) DecommissionDevice(ctx context.Context, tenant, id string, by store.Actor, now time.Time) (store.Device, error) {
	return s.transition(ctx, tenant, id, store.DeviceDecommissioned, by, now)
}

var transitionAction = map[store.DeviceState]string{
	store.DeviceAccepted:       "device.accept",
	store.DeviceRejected:       "device.reject",
	store.DeviceDecommissioned: "device.decommission",
}

func transitionAllowed(from, to store.DeviceState) bool {
	switch to {
	case store.DeviceAccepted:
		return from == store.DevicePending || from == store.DeviceRejected
	case store.DeviceRejected:
		return from == store.DevicePending || from == store.DeviceAccepted
	case store.DeviceDecommissioned:
		return from != store.DeviceDecommissioned
	}
	return false
}

func (s *Store) transition(ctx context.Context, tenant, id string, to store.DeviceState, by store.Actor, now time.Time) (store.Device, error) {
	var out store.Device
	err := s.tx(ctx, func(t *txn) error {
		if err := lockDeviceRow(ctx, t, tenant, id); err != nil {
			return err
		}
		d, err := loadDevice(ctx, t, tenant, id)
		if err != nil {
			return err
		}
		if d.State == to {
			out = d
			return nil
		}
		if !transitionAllowed(d.State, to) {
			return store.Conflictf("device %s is %s and cannot become %s", id, d.State, to)
		}
		details := map[string]any{"serial": d.Serial, "from": d.State, "to": to}
		bump := to == store.DeviceDecommissioned || (to == store.DeviceRejected && d.State == store.DeviceAccepted)
		q := `UPDATE devices SET state = ?, pending_expires_at = NULL, updated_at = ?`
		if bump {
			q += `, credential_epoch = credential_epoch + 1`
		}
		if _, err := t.exec(ctx, q+` WHERE tenant_id = ? AND id = ?`, string(to), micros(now), tenant, id); err != nil {
			return fmt.Errorf("update device state: %w", err)
		}
		if to == store.DeviceDecommissioned {
			res, err := t.exec(ctx, `UPDATE device_credentials SET state = 'revoked', revoked_at = ?
				WHERE tenant_id = ? AND device_id = ? AND state <> 'revoked'`, micros(now), tenant, id)
			if err != nil {
				return fmt.Errorf("revoke credentials: %w", err)
			}
			n, err := res.RowsAffected()
			if err != nil {
				return fmt.Errorf("revoke credentials: %w", err)
			}
			details["revoked_credentials"] = n
		}
		if bump {
			canceled, err := cancelActiveAssignment(ctx, t, tenant, id, "device "+string(to), by, now)
			if err != nil {
				return err
			}
			if canceled != "" {
				details["canceled_assignment"] = canceled
			}
		}
		if err := t.audit(ctx, tenant, by, transitionAction[to], "device", id, details, now); err != nil {
			return err
		}
		out, err = loadDevice(ctx, t, tenant, id)
		return err
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("%s device %s: %w", transitionAction[to], id, err)
	}
	return out, nil
}

// cancelActiveAssignment cancels the device's active assignment, if any,
// audits that as CancelAssignment does, and returns its id.
func cancelActiveAssignment(ctx context.Context, t *txn, tenant, deviceID, reason string, by store.Actor, now time.Time) (string, error) {
	var aid, state string
	err := t.queryRow(ctx, `SELECT id, state FROM assignments WHERE tenant_id = ? AND device_id = ? AND active = 1`, tenant, deviceID).Scan(&aid, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("find active assignment: %w", err)
	}
	if _, err := t.exec(ctx, `UPDATE assignments SET state = 'canceled', active = 0, reason = ?, updated_at = ?
		WHERE tenant_id = ? AND id = ?`, reason, micros(now), tenant, aid); err != nil {
		return "", fmt.Errorf("cancel active assignment: %w", err)
	}
	return aid, t.audit(ctx, tenant, by, "assignment.cancel", "assignment", aid, map[string]any{
		"device_id": deviceID, "state_was": state, "reason": reason,
	}, now)
}
