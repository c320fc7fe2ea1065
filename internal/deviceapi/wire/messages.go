package wire

import (
	"encoding/json"
	"time"
)

// The enrollment and token-renewal request bodies are
// identity.EnrollmentRequest and identity.RenewRequest, signed over the
// exact body bytes in identity.SignatureHeader.

// Enrollment and token statuses.
const (
	StatusAccepted = "accepted"
	StatusPending  = "pending"
)

// TokenResponse answers an accepted enrollment (200) and a token renewal.
type TokenResponse struct {
	Status   string `json:"status"` // StatusAccepted
	DeviceID string `json:"device_id"`
	// Token goes in "Authorization: Bearer <token>" on check-ins, reports
	// and telemetry.
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// PendingResponse answers an enrollment that waits for an operator (202).
type PendingResponse struct {
	Status   string `json:"status"` // StatusPending
	DeviceID string `json:"device_id"`
	// RetryAfter is how many seconds to wait before enrolling again (the
	// same value is in the Retry-After header).
	RetryAfter int `json:"retry_after"`
}

// CheckInRequest is the body of POST /api/device/v1/checkin.
type CheckInRequest struct {
	// Version is the installed firmware version, a semantic version.
	Version string `json:"version"`
	// State is the agent's own state ("idle", "downloading", …), 1 to 32
	// characters of a-z 0-9 and '-'; informational.
	State string `json:"state,omitempty"`
	// AssignmentID is the assignment the device is working on, if any.
	AssignmentID string `json:"assignment_id,omitempty"`
	DeviceType   string `json:"device_type,omitempty"`
	HWRev        string `json:"hw_rev,omitempty"`
	// TimeZone is an IANA zone name such as "Europe/Berlin".
	TimeZone string `json:"time_zone,omitempty"`
	// Attributes replace the reported attributes when present.
	Attributes map[string]string `json:"attributes,omitempty"`
	// SecurityFloor is the device's security floor (the verifier's), if
	// it verifies signed updates; the server then sends a finalize only
	// when it would raise the floor.
	SecurityFloor *int64 `json:"security_floor,omitempty"`
}

// CheckInResponse answers a check-in.
type CheckInResponse struct {
	// PollAfterSeconds is when to check in next, jitter included.
	PollAfterSeconds int      `json:"poll_after_seconds"`
	LongPoll         LongPoll `json:"long_poll"`
	// Assignment is the device's current work, or null.
	Assignment *Assignment `json:"assignment"`
	// Cancel tells the device to stop working on the assignment it
	// reported; the replacement, if any, is in Assignment.
	Cancel *Cancel `json:"cancel,omitempty"`
	// Finalize is a director-signed finalize document for the version the
	// device runs: the device may raise its security floor to the
	// document's security version (verifier.Finalize). Present while the
	// device runs a release an operator finalized and has not reported a
	// floor at least that high.
	Finalize json.RawMessage `json:"finalize,omitempty"`
}

// LongPoll says whether and how long a check-in may wait for news
// (?wait=30s).
type LongPoll struct {
	Supported      bool `json:"supported"`
	MaxWaitSeconds int  `json:"max_wait_seconds"`
}

// Assignment is one release assigned to the device.
type Assignment struct {
	ID              string   `json:"id"`
	ReleaseID       string   `json:"release_id"`
	Version         string   `json:"version"`
	SecurityVersion int64    `json:"security_version"`
	CampaignID      string   `json:"campaign_id,omitempty"`
	State           string   `json:"state"`
	Artifact        Artifact `json:"artifact"`
	// Signed is the director-signed assignment document that devices
	// verifying signed updates check against the offline-signed targets.
	// It is present only when the server has a director configured.
	Signed json.RawMessage `json:"signed,omitempty"`
}

// Artifact is the file to install and where to get it.
type Artifact struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Type        string `json:"type"`
	Component   string `json:"component"`
	Compression string `json:"compression,omitempty"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	SHA1        string `json:"sha1"`
	MD5         string `json:"md5"`
	// URL is an absolute, signed download URL that needs no Authorization
	// header; it stops working at URLExpiresAt (410 Gone: check in again).
	URL          string    `json:"url"`
	URLExpiresAt time.Time `json:"url_expires_at"`
}

// Cancel reasons.
const (
	CancelCanceled   = "canceled"
	CancelSuperseded = "superseded"
)

// Cancel tells a device to abandon an assignment.
type Cancel struct {
	AssignmentID string `json:"assignment_id"`
	Reason       string `json:"reason"` // CancelCanceled or CancelSuperseded
}

// ReportsRequest is the body of POST /api/device/v1/reports.
type ReportsRequest struct {
	Reports []Report `json:"reports"`
}

// Report is one status report, numbered by the device: Seq grows by one
// per report over the device's life, across assignments.
type Report struct {
	AssignmentID string `json:"assignment_id"`
	Seq          int64  `json:"seq"`
	State        string `json:"state"`
	Progress     int    `json:"progress"`
	ErrorCode    string `json:"error_code,omitempty"`
	Message      string `json:"message,omitempty"`
	// LogTail is the end of the device's log, sent with failures.
	LogTail string `json:"log_tail,omitempty"`
	// ReportedAt is the device's clock when the report was made; the
	// server's receive time is used when it is absent.
	ReportedAt time.Time `json:"reported_at,omitzero"`
}

// Report outcomes.
const (
	OutcomeApplied   = "applied"   // stored and moved the assignment
	OutcomeRecorded  = "recorded"  // stored in history only (assignment no longer active)
	OutcomeDuplicate = "duplicate" // this seq was stored before; nothing changed
)

// ReportsResponse answers a reports request once every report is durable.
type ReportsResponse struct {
	Results []ReportResult `json:"results"`
}

// ReportResult is the outcome of one report, in request order.
type ReportResult struct {
	AssignmentID string `json:"assignment_id"`
	Seq          int64  `json:"seq"`
	Outcome      string `json:"outcome"`
}

// TelemetryRequest is the body of POST /api/device/v1/telemetry.
type TelemetryRequest struct {
	Points []Point `json:"points"`
}

// Point is one metric sample.
type Point struct {
	Name  string    `json:"name"`
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// TelemetryResponse says how many points were stored. Points older than
// the server keeps raw data are dropped, not refused, so a device that was
// offline for long does not retry them forever.
type TelemetryResponse struct {
	Accepted int `json:"accepted"`
	Dropped  int `json:"dropped"`
}
