package client

import (
	"context"
	"net/http"
	"net/url"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// DeviceListOptions select devices.
type DeviceListOptions struct {
	Filter string // filter expression, see docs/filter-language.md; empty: all
	State  string // pending, accepted, rejected or decommissioned; empty: any
	ListOptions
}

// ListDevices returns one page of devices.
func (c *Client) ListDevices(ctx context.Context, o DeviceListOptions) (List[store.Device], error) {
	q := o.values()
	if o.Filter != "" {
		q.Set("q", o.Filter)
	}
	if o.State != "" {
		q.Set("state", o.State)
	}
	var l List[store.Device]
	err := c.call(ctx, http.MethodGet, q, nil, &l, "devices")
	return l, err
}

// DeviceDetail is one device with its credentials (without key material)
// and its active assignment.
type DeviceDetail struct {
	store.Device
	Credentials      []Credential      `json:"credentials"`
	ActiveAssignment *store.Assignment `json:"active_assignment,omitempty"`
}

// Credential is a device credential as the API shows it: enough to
// recognize and revoke it.
type Credential struct {
	ID            string                `json:"id"`
	DeviceID      string                `json:"device_id,omitempty"`
	Kind          store.CredentialKind  `json:"kind"`
	Algorithm     string                `json:"algorithm,omitempty"`
	Fingerprint   string                `json:"fingerprint"`
	State         store.CredentialState `json:"state"`
	PreauthSerial string                `json:"preauth_serial,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	RevokedAt     *time.Time            `json:"revoked_at,omitempty"`
}

// Device returns one device with its credentials and active assignment.
func (c *Client) Device(ctx context.Context, id string) (DeviceDetail, error) {
	var d DeviceDetail
	err := c.call(ctx, http.MethodGet, nil, nil, &d, "devices", id)
	return d, err
}

// CountDevices counts the devices matching a filter expression (empty: all).
func (c *Client) CountDevices(ctx context.Context, filter string) (int, error) {
	q := url.Values{}
	if filter != "" {
		q.Set("q", filter)
	}
	var out struct {
		Count int `json:"count"`
	}
	err := c.call(ctx, http.MethodGet, q, nil, &out, "devices", "count")
	return out.Count, err
}

// AcceptDevice accepts a pending (or rejected) device.
func (c *Client) AcceptDevice(ctx context.Context, id string) (store.Device, error) {
	return c.deviceAction(ctx, id, "accept")
}

// RejectDevice rejects a pending device.
func (c *Client) RejectDevice(ctx context.Context, id string) (store.Device, error) {
	return c.deviceAction(ctx, id, "reject")
}

// DecommissionDevice revokes every credential of a device and cancels its
// active assignment.
func (c *Client) DecommissionDevice(ctx context.Context, id string) (store.Device, error) {
	return c.deviceAction(ctx, id, "decommission")
}

func (c *Client) deviceAction(ctx context.Context, id, action string) (store.Device, error) {
	var d store.Device
	err := c.call(ctx, http.MethodPost, nil, nil, &d, "devices", id, action)
	return d, err
}

// TagRequest adds and removes tags in one change.
type TagRequest struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

// TagDevice adds and removes tags of a device and returns the device.
func (c *Client) TagDevice(ctx context.Context, id string, add, remove []string) (store.Device, error) {
	in := TagRequest{Add: nonNil(add), Remove: nonNil(remove)}
	var d store.Device
	err := c.call(ctx, http.MethodPost, nil, in, &d, "devices", id, "tags")
	return d, err
}

// AssignRequest assigns a release to one device.
type AssignRequest struct {
	Release  string `json:"release"` // release id or version
	AllowBad bool   `json:"allow_bad,omitempty"`
}

// AssignResult is the new assignment and the one it superseded, if any.
type AssignResult struct {
	Assignment store.Assignment  `json:"assignment"`
	Superseded *store.Assignment `json:"superseded,omitempty"`
}

// AssignRelease makes the release the device's active assignment.
func (c *Client) AssignRelease(ctx context.Context, deviceID string, r AssignRequest) (AssignResult, error) {
	var a AssignResult
	err := c.call(ctx, http.MethodPost, nil, r, &a, "devices", deviceID, "assignments")
	return a, err
}

// ListAssignments returns one page of a device's assignments, newest first.
func (c *Client) ListAssignments(ctx context.Context, deviceID string, o ListOptions) (List[store.Assignment], error) {
	var l List[store.Assignment]
	err := c.call(ctx, http.MethodGet, o.values(), nil, &l, "devices", deviceID, "assignments")
	return l, err
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// GroupDevice adds the device to and removes it from static groups.
func (c *Client) GroupDevice(ctx context.Context, id string, add, remove []string) (store.Device, error) {
	in := TagRequest{Add: nonNil(add), Remove: nonNil(remove)}
	var d store.Device
	err := c.call(ctx, http.MethodPost, nil, in, &d, "devices", id, "groups")
	return d, err
}

// PreauthorizeKey registers a device's public key (PEM) so that the device
// is accepted when it first enrolls with it; serial, when set, pins the
// serial the device must enroll with.
func (c *Client) PreauthorizeKey(ctx context.Context, publicKeyPEM, serial string) (Credential, error) {
	in := struct {
		PublicKey string `json:"public_key"`
		Serial    string `json:"serial,omitempty"`
	}{publicKeyPEM, serial}
	var out Credential
	err := c.call(ctx, http.MethodPost, nil, in, &out, "devices", "preauthorize")
	return out, err
}

// TargetToken is a new device token credential with its plaintext, which
// the server shows only in this response.
type TargetToken struct {
	Credential Credential `json:"credential"`
	Token      string     `json:"token"`
}

// CreateTargetToken issues a hawkBit-style target token for a device.
func (c *Client) CreateTargetToken(ctx context.Context, deviceID string) (TargetToken, error) {
	var out TargetToken
	err := c.call(ctx, http.MethodPost, nil, nil, &out, "devices", deviceID, "target-token")
	return out, err
}

// RevokeCredential revokes one credential of a device.
func (c *Client) RevokeCredential(ctx context.Context, deviceID, credentialID string) error {
	return c.call(ctx, http.MethodDelete, nil, nil, nil, "devices", deviceID, "credentials", credentialID)
}

// AssignmentDetail is an assignment with every status report stored for it,
// oldest first.
type AssignmentDetail struct {
	store.Assignment
	Events []store.AssignmentEvent `json:"events"`
}

// Assignment returns an assignment and its history.
func (c *Client) Assignment(ctx context.Context, id string) (AssignmentDetail, error) {
	var out AssignmentDetail
	err := c.call(ctx, http.MethodGet, nil, nil, &out, "assignments", id)
	return out, err
}

// CancelAssignment cancels an active assignment; an empty reason lets the
// server name the caller.
func (c *Client) CancelAssignment(ctx context.Context, id, reason string) (store.Assignment, error) {
	in := struct {
		Reason string `json:"reason,omitempty"`
	}{reason}
	var out store.Assignment
	err := c.call(ctx, http.MethodPost, nil, in, &out, "assignments", id, "cancel")
	return out, err
}

// ReportGaps lists the ranges of status-report sequence numbers a device
// skipped.
func (c *Client) ReportGaps(ctx context.Context, deviceID string) (List[store.ReportGap], error) {
	var l List[store.ReportGap]
	err := c.call(ctx, http.MethodGet, nil, nil, &l, "devices", deviceID, "report-gaps")
	return l, err
}

// TelemetryQuery selects one metric of one device over a time range.
type TelemetryQuery struct {
	Metric string
	// Resolution is "raw" (default) or "hourly".
	Resolution string
	From, To   time.Time // zero: the server's defaults (the last 24 hours)
}

// Telemetry is a metric's raw points or hourly roll-ups.
type Telemetry struct {
	Metric     string               `json:"metric"`
	Resolution string               `json:"resolution"`
	From       time.Time            `json:"from"`
	To         time.Time            `json:"to"`
	Points     []store.MetricPoint  `json:"points,omitempty"`
	Rollups    []store.HourlyRollup `json:"rollups,omitempty"`
}

// DeviceTelemetry reads a device's telemetry.
func (c *Client) DeviceTelemetry(ctx context.Context, deviceID string, tq TelemetryQuery) (Telemetry, error) {
	q := url.Values{}
	q.Set("metric", tq.Metric)
	if tq.Resolution != "" {
		q.Set("resolution", tq.Resolution)
	}
	if !tq.From.IsZero() {
		q.Set("from", tq.From.UTC().Format(time.RFC3339Nano))
	}
	if !tq.To.IsZero() {
		q.Set("to", tq.To.UTC().Format(time.RFC3339Nano))
	}
	var out Telemetry
	err := c.call(ctx, http.MethodGet, q, nil, &out, "devices", deviceID, "telemetry")
	return out, err
}
