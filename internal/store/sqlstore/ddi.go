package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// DDIDevice implements store.DDI.
func (s *Store) DDIDevice(ctx context.Context, tenant, controllerID string) (store.Device, error) {
	d, err := scanDevice(s.read.QueryRowContext(ctx, s.d.Rebind(`SELECT `+deviceColumns+` FROM devices d WHERE d.tenant_id = ? AND d.serial = ?`), tenant, controllerID))
	if errors.Is(err, sql.ErrNoRows) {
		return store.Device{}, fmt.Errorf("ddi controller %q: %w", controllerID, store.ErrNotFound)
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("ddi controller %q: %w", controllerID, err)
	}
	return d, nil
}

// RegisterDDIDevice implements store.DDI. It takes the tenant lock like
// Enroll, so the pending cap holds and one serial registers once.
func (s *Store) RegisterDDIDevice(ctx context.Context, p store.RegisterDDIParams) (store.Device, bool, error) {
	if p.TenantID == "" || p.ControllerID == "" {
		return store.Device{}, false, fmt.Errorf("%w: ddi registration without tenant or controller id", store.ErrInvalidRequest)
	}
	for name, v := range map[string]string{"controller id": p.ControllerID, "device type": p.DeviceType, "hardware revision": p.HWRev} {
		if err := checkIdentityField(name, v); err != nil {
			return store.Device{}, false, err
		}
	}
	var out store.Device
	var created bool
	err := s.tx(ctx, func(t *txn) error {
		if err := lockTenant(ctx, t, p.TenantID); err != nil {
			return err
		}
		existing, err := scanDevice(t.queryRow(ctx, `SELECT `+deviceColumns+` FROM devices d WHERE d.tenant_id = ? AND d.serial = ?`, p.TenantID, p.ControllerID))
		switch {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return fmt.Errorf("look up serial: %w", err)
		case pendingExpired(existing, p.Now):
			deleted, err := deleteExpired(ctx, t, existing, p.Now)
			if err != nil {
				return err
			}
			if !deleted {
				return store.Conflictf("controller %q changed state during registration; try again", p.ControllerID)
			}
		default:
			out = existing
			return nil
		}
		ep := store.EnrollParams{TenantID: p.TenantID, Now: p.Now, PendingTTL: p.PendingTTL, MaxPending: p.MaxPending}
		if err := checkPendingCap(ctx, t, p.TenantID, ep); err != nil {
			return err
		}
		d := store.Device{
			TenantID: p.TenantID, ID: newID(), Serial: p.ControllerID, State: store.DevicePending,
			Protocol: store.ProtocolDDI, DeviceType: p.DeviceType, HWRev: p.HWRev, Attributes: map[string]string{},
			CreatedAt: p.Now.UTC(), UpdatedAt: p.Now.UTC(), PendingExpiresAt: pendingExpiry(ep),
		}
		if _, err := t.exec(ctx, `INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, region, time_zone,
			attributes, created_at, updated_at, pending_expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, '', '', ?, ?, ?, ?)`,
			d.TenantID, d.ID, d.Serial, string(d.State), string(d.Protocol), d.DeviceType, d.HWRev,
			jsonText(d.Attributes), micros(d.CreatedAt), micros(d.UpdatedAt), nullMicros(d.PendingExpiresAt)); err != nil {
			return fmt.Errorf("insert device: %w", err)
		}
		if err := t.audit(ctx, p.TenantID, deviceActor(d), "device.register_ddi", "device", d.ID,
			map[string]any{"serial": d.Serial, "protocol": d.Protocol, "state": d.State}, p.Now); err != nil {
			return err
		}
		created = true
		out, err = loadDevice(ctx, t, p.TenantID, d.ID)
		return err
	})
	if err != nil {
		return store.Device{}, false, fmt.Errorf("register ddi controller %q: %w", p.ControllerID, err)
	}
	return out, created, nil
}

// DDIActionID implements store.DDI.
func (s *Store) DDIActionID(ctx context.Context, tenant, assignmentID string, now time.Time) (int64, error) {
	const sel = `SELECT id FROM ddi_actions WHERE tenant_id = ? AND assignment_id = ?`
	var id int64
	err := s.read.QueryRowContext(ctx, s.d.Rebind(sel), tenant, assignmentID).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("ddi action of %s: %w", assignmentID, err)
	}
	err = s.tx(ctx, func(t *txn) error {
		if err := t.queryRow(ctx, sel, tenant, assignmentID).Scan(&id); err == nil {
			return nil
		} else if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM assignments WHERE tenant_id = ? AND id = ?`, tenant, assignmentID).Scan(&one); errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		} else if err != nil {
			return err
		}
		if _, err := t.exec(ctx, `INSERT INTO ddi_actions (tenant_id, assignment_id, created_at) VALUES (?, ?, ?)`,
			tenant, assignmentID, micros(now)); err != nil {
			return err
		}
		return t.queryRow(ctx, sel, tenant, assignmentID).Scan(&id)
	})
	if err != nil && s.d.IsUniqueViolation(err) {
		// Another replica allocated it first.
		err = s.read.QueryRowContext(ctx, s.d.Rebind(sel), tenant, assignmentID).Scan(&id)
	}
	if err != nil {
		return 0, fmt.Errorf("ddi action of %s: %w", assignmentID, err)
	}
	return id, nil
}

// DDIActionAssignment implements store.DDI.
func (s *Store) DDIActionAssignment(ctx context.Context, tenant string, actionID int64) (string, error) {
	var id string
	err := s.read.QueryRowContext(ctx, s.d.Rebind(`SELECT assignment_id FROM ddi_actions WHERE tenant_id = ? AND id = ?`), tenant, actionID).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("ddi action %d: %w", actionID, store.ErrNotFound)
	}
	if err != nil {
		return "", fmt.Errorf("ddi action %d: %w", actionID, err)
	}
	return id, nil
}
