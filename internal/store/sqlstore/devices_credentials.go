package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Credential rules: a key or token fingerprint identifies at most one live
// (not revoked) credential per tenant and kind. A preauthorized credential
// has no device until a device enrolls with it. Revoking a credential bound
// to a device bumps the device's credential epoch, so device tokens issued
// before stop working at once.

const credentialColumns = `tenant_id, id, device_id, kind, algorithm, fingerprint, material, state, preauth_serial, created_at, revoked_at`

func scanCredential(row interface{ Scan(...any) error }) (store.Credential, error) {
	var c store.Credential
	var device sql.NullString
	var kind, state string
	var created int64
	var revoked sql.NullInt64
	if err := row.Scan(&c.TenantID, &c.ID, &device, &kind, &c.Algorithm, &c.Fingerprint, &c.Material, &state, &c.PreauthSerial, &created, &revoked); err != nil {
		return c, err
	}
	c.DeviceID = device.String
	c.Kind = store.CredentialKind(kind)
	c.State = store.CredentialState(state)
	c.CreatedAt = fromMicros(created)
	c.RevokedAt = timePtr(revoked)
	return c, nil
}

// checkCredential validates the parts of a credential a caller provides.
func checkCredential(c store.Credential) error {
	if c.TenantID == "" {
		return fmt.Errorf("%w: credential without tenant", store.ErrInvalidRequest)
	}
	switch c.Kind {
	case store.CredPublicKey, store.CredCertificate:
		if c.Material == "" {
			return fmt.Errorf("%w: %s credential without material", store.ErrInvalidRequest, c.Kind)
		}
	case store.CredToken:
		if c.Material != "" {
			return fmt.Errorf("%w: token credentials keep only the hash, not the token", store.ErrInvalidRequest)
		}
	default:
		return fmt.Errorf("%w: unknown credential kind %q", store.ErrInvalidRequest, c.Kind)
	}
	if c.Fingerprint == "" || len(c.Fingerprint) > 256 || !printable(c.Fingerprint) {
		return fmt.Errorf("%w: credential fingerprint must be 1 to 256 printable bytes", store.ErrInvalidRequest)
	}
	if len(c.Algorithm) > 64 || !printable(c.Algorithm) {
		return fmt.Errorf("%w: credential algorithm must be at most 64 printable bytes", store.ErrInvalidRequest)
	}
	return nil
}

// credentialAudit is what the audit log keeps about a credential: never the
// token hash, whose only use would be to attack it.
func credentialAudit(c store.Credential) map[string]any {
	m := map[string]any{"kind": c.Kind}
	if c.Algorithm != "" {
		m["algorithm"] = c.Algorithm
	}
	if c.Kind != store.CredToken {
		m["fingerprint"] = c.Fingerprint
	}
	if c.DeviceID != "" {
		m["device_id"] = c.DeviceID
	}
	if c.PreauthSerial != "" {
		m["preauth_serial"] = c.PreauthSerial
	}
	return m
}

func insertCredential(ctx context.Context, t *txn, c store.Credential) error {
	device := sql.NullString{String: c.DeviceID, Valid: c.DeviceID != ""}
	_, err := t.exec(ctx, `INSERT INTO device_credentials (`+credentialColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		c.TenantID, c.ID, device, string(c.Kind), c.Algorithm, c.Fingerprint, c.Material, string(c.State), c.PreauthSerial,
		micros(c.CreatedAt), nullMicros(c.RevokedAt))
	if err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return store.Conflictf("a live %s credential with this fingerprint already exists", c.Kind)
		}
		return fmt.Errorf("insert credential: %w", err)
	}
	return nil
}

// PreauthorizeKey implements store.Devices. PreauthSerial, if set, pins the
// key to one serial number.
func (s *Store) PreauthorizeKey(ctx context.Context, key store.Credential, by store.Actor, now time.Time) (store.Credential, error) {
	if err := checkCredential(key); err != nil {
		return store.Credential{}, err
	}
	if key.Kind == store.CredToken {
		return store.Credential{}, fmt.Errorf("%w: only public keys and certificates can be preauthorized", store.ErrInvalidRequest)
	}
	if err := checkIdentityField("serial", key.PreauthSerial); err != nil {
		return store.Credential{}, err
	}
	c := key
	c.ID = newID()
	c.DeviceID = ""
	c.State = store.CredPreauthorized
	c.CreatedAt = storedTime(now)
	c.RevokedAt = nil
	err := s.tx(ctx, func(t *txn) error {
		if err := insertCredential(ctx, t, c); err != nil {
			return err
		}
		return t.audit(ctx, c.TenantID, by, "credential.preauthorize", "credential", c.ID, credentialAudit(c), now)
	})
	if err != nil {
		return store.Credential{}, fmt.Errorf("preauthorize key: %w", err)
	}
	return c, nil
}

// AddCredential implements store.Devices. The device must exist and not be
// decommissioned.
func (s *Store) AddCredential(ctx context.Context, c store.Credential, by store.Actor, now time.Time) (store.Credential, error) {
	if err := checkCredential(c); err != nil {
		return store.Credential{}, err
	}
	if c.DeviceID == "" {
		return store.Credential{}, fmt.Errorf("%w: credential without device", store.ErrInvalidRequest)
	}
	c.ID = newID()
	c.State = store.CredActive
	c.PreauthSerial = ""
	c.CreatedAt = storedTime(now)
	c.RevokedAt = nil
	err := s.tx(ctx, func(t *txn) error {
		if err := lockDeviceRow(ctx, t, c.TenantID, c.DeviceID); err != nil {
			return err
		}
		var state string
		if err := t.queryRow(ctx, `SELECT state FROM devices WHERE tenant_id = ? AND id = ?`, c.TenantID, c.DeviceID).Scan(&state); err != nil {
			return notFound(err, "device "+c.DeviceID)
		}
		if store.DeviceState(state) == store.DeviceDecommissioned {
			return store.Conflictf("device %s is decommissioned", c.DeviceID)
		}
		if err := insertCredential(ctx, t, c); err != nil {
			return err
		}
		return t.audit(ctx, c.TenantID, by, "credential.add", "credential", c.ID, credentialAudit(c), now)
	})
	if err != nil {
		return store.Credential{}, fmt.Errorf("add credential to device %s: %w", c.DeviceID, err)
	}
	return c, nil
}

// ListCredentials implements store.Devices: every credential the device
// ever had, revoked ones included, oldest first.
func (s *Store) ListCredentials(ctx context.Context, tenant, deviceID string) ([]store.Credential, error) {
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM devices WHERE tenant_id = ? AND id = ?`, tenant, deviceID).Scan(&one); err != nil {
		return nil, notFound(err, "device "+deviceID)
	}
	rows, err := s.query(ctx, `SELECT `+credentialColumns+` FROM device_credentials WHERE tenant_id = ? AND device_id = ? ORDER BY created_at, id`, tenant, deviceID)
	if err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	defer rows.Close()
	out := []store.Credential{}
	for rows.Next() {
		c, err := scanCredential(rows)
		if err != nil {
			return nil, fmt.Errorf("list credentials: %w", err)
		}
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list credentials: %w", err)
	}
	return out, nil
}

// RevokeCredential implements store.Devices. Revoking a revoked credential
// changes nothing.
func (s *Store) RevokeCredential(ctx context.Context, tenant, credentialID string, by store.Actor, now time.Time) error {
	err := s.tx(ctx, func(t *txn) error {
		c, err := scanCredential(t.queryRow(ctx, `SELECT `+credentialColumns+` FROM device_credentials WHERE tenant_id = ? AND id = ?`, tenant, credentialID))
		if err != nil {
			return notFound(err, "credential "+credentialID)
		}
		if c.State == store.CredRevoked {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE device_credentials SET state = 'revoked', revoked_at = ? WHERE tenant_id = ? AND id = ?`,
			micros(now), tenant, credentialID); err != nil {
			return fmt.Errorf("revoke: %w", err)
		}
		if c.DeviceID != "" {
			if _, err := t.exec(ctx, `UPDATE devices SET credential_epoch = credential_epoch + 1, updated_at = ? WHERE tenant_id = ? AND id = ?`,
				micros(now), tenant, c.DeviceID); err != nil {
				return fmt.Errorf("bump credential epoch: %w", err)
			}
		}
		return t.audit(ctx, tenant, by, "credential.revoke", "credential", credentialID, credentialAudit(c), now)
	})
	if err != nil {
		return fmt.Errorf("revoke credential %s: %w", credentialID, err)
	}
	return nil
}

// liveCredential finds the live credential with this fingerprint, if any.
func liveCredential(ctx context.Context, t *txn, tenant string, kind store.CredentialKind, fingerprint string) (store.Credential, bool, error) {
	c, err := scanCredential(t.queryRow(ctx, `SELECT `+credentialColumns+` FROM device_credentials
		WHERE tenant_id = ? AND kind = ? AND fingerprint = ? AND state <> 'revoked'`, tenant, string(kind), fingerprint))
	if errors.Is(err, sql.ErrNoRows) {
		return c, false, nil
	}
	if err != nil {
		return c, false, fmt.Errorf("look up credential: %w", err)
	}
	return c, true, nil
}
