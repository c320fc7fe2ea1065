package store

import (
	"context"
	"time"
)

// RegisterDDIParams registers a hawkBit DDI controller that polled without
// being known.
type RegisterDDIParams struct {
	TenantID     string
	ControllerID string // becomes the device's serial number
	// DeviceType and HWRev are what the server assumes for DDI devices,
	// which do not say (assignments match artifacts on them).
	DeviceType string
	HWRev      string
	Now        time.Time
	PendingTTL time.Duration // <= 0: the pending registration never expires
	MaxPending int           // cap on unexpired pending devices per tenant; <= 0: no cap
}

// DDI is what the hawkBit DDI API needs beyond the device registry: DDI
// devices are found by controller id (their serial number), may register
// without a key, and see assignments under short numeric action ids.
type DDI interface {
	// DDIDevice returns the device whose serial number is controllerID, or
	// ErrNotFound.
	DDIDevice(ctx context.Context, tenant, controllerID string) (Device, error)
	// RegisterDDIDevice creates a pending device with protocol ddi and no
	// credential, audited as the device's doing, and reports created=true;
	// an existing device with that serial is returned unchanged (an expired
	// pending one is replaced). Too many pending devices is ErrPendingLimit.
	RegisterDDIDevice(ctx context.Context, p RegisterDDIParams) (d Device, created bool, err error)
	// DDIActionID returns the assignment's numeric DDI action id, allocating
	// it on first use; ids are positive, unique and never reused. An unknown
	// assignment is ErrNotFound.
	DDIActionID(ctx context.Context, tenant, assignmentID string, now time.Time) (int64, error)
	// DDIActionAssignment returns the assignment id behind an action id of
	// the tenant, or ErrNotFound.
	DDIActionAssignment(ctx context.Context, tenant string, actionID int64) (string, error)
}
