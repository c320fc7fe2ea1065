package store

import (
	"encoding/json"
	"time"
)

// DefaultTenant is the tenant every installation starts with. API paths are
// tenant-free for now and act on it; hawkBit-style /{tenant}/ paths map onto
// tenants later.
const DefaultTenant = "default"

// DeviceState is the lifecycle state of a device in the registry.
type DeviceState string

// Device states. Pending devices have enrolled but are not yet accepted;
// decommissioned devices have every credential revoked and keep their history.
const (
	DevicePending        DeviceState = "pending"
	DeviceAccepted       DeviceState = "accepted"
	DeviceRejected       DeviceState = "rejected"
	DeviceDecommissioned DeviceState = "decommissioned"
)

// Protocol is the device API a device speaks.
type Protocol string

// Device protocols.
const (
	ProtocolNative Protocol = "native"
	ProtocolDDI    Protocol = "ddi"
	ProtocolMender Protocol = "mender"
)

// Device is one registered device.
type Device struct {
	TenantID   string      `json:"tenant_id"`
	ID         string      `json:"id"`
	Serial     string      `json:"serial"`
	State      DeviceState `json:"state"`
	Protocol   Protocol    `json:"protocol"`
	DeviceType string      `json:"device_type"`
	HWRev      string      `json:"hw_rev"`
	Region     string      `json:"region,omitempty"`
	TimeZone   string      `json:"time_zone,omitempty"`
	// Version is the installed version as last reported (a semantic version,
	// or empty when the device has not said).
	Version         string `json:"version,omitempty"`
	PreviousVersion string `json:"previous_version,omitempty"`
	// VersionSince is when Version was first reported.
	VersionSince  *time.Time        `json:"version_since,omitempty"`
	SecurityFloor int64             `json:"security_floor"`
	Attributes    map[string]string `json:"attributes"`
	Tags          []string          `json:"tags"`
	Groups        []string          `json:"groups"`
	// CredentialEpoch grows whenever the device's credentials are revoked;
	// device tokens carry it, so older tokens stop working at once.
	CredentialEpoch  int64      `json:"credential_epoch"`
	CreatedAt        time.Time  `json:"created_at"`
	UpdatedAt        time.Time  `json:"updated_at"`
	LastSeenAt       *time.Time `json:"last_seen_at,omitempty"`
	PendingExpiresAt *time.Time `json:"pending_expires_at,omitempty"`
	// LastReportSeq is the highest status-report sequence number received.
	LastReportSeq int64 `json:"last_report_seq"`
}

// CredentialKind says what a device credential is.
type CredentialKind string

// Credential kinds.
const (
	CredPublicKey   CredentialKind = "pubkey"
	CredToken       CredentialKind = "token" // hawkBit TargetToken; stored hashed
	CredCertificate CredentialKind = "cert"
)

// CredentialState is the state of a credential.
type CredentialState string

// Credential states. A preauthorized credential is not yet bound to a
// device; the device that first enrolls with it is accepted at once.
const (
	CredActive        CredentialState = "active"
	CredPreauthorized CredentialState = "preauthorized"
	CredRevoked       CredentialState = "revoked"
)

// Credential is one member of a device's typed credential set.
type Credential struct {
	TenantID string `json:"tenant_id"`
	ID       string `json:"id"`
	// DeviceID is empty for a preauthorized credential not yet used.
	DeviceID  string         `json:"device_id,omitempty"`
	Kind      CredentialKind `json:"kind"`
	Algorithm string         `json:"algorithm,omitempty"`
	// Fingerprint identifies the credential: the SHA-256 of a public key's
	// DER encoding, or the SHA-256 of a token. Unique per tenant and kind.
	Fingerprint string `json:"fingerprint"`
	// Material is the PEM public key; empty for tokens (only the hash is kept).
	Material string          `json:"material,omitempty"`
	State    CredentialState `json:"state"`
	// PreauthSerial is the serial number a preauthorization pins, if any:
	// only a device enrolling with that serial may use the key. Device type
	// and hardware revision are not pinned.
	PreauthSerial string     `json:"preauth_serial,omitempty"`
	CreatedAt     time.Time  `json:"created_at"`
	RevokedAt     *time.Time `json:"revoked_at,omitempty"`
}

// Severity of a release.
type Severity string

// Release severities.
const (
	SeverityLow      Severity = "low"
	SeverityMedium   Severity = "medium"
	SeverityHigh     Severity = "high"
	SeverityCritical Severity = "critical"
)

// ReleaseState is draft while artifacts are being added, then published
// (immutable except for the audited flags Bad and AffectedBy).
type ReleaseState string

// Release states.
const (
	ReleaseDraft     ReleaseState = "draft"
	ReleasePublished ReleaseState = "published"
)

// Release is a firmware version with its artifacts.
type Release struct {
	TenantID        string       `json:"tenant_id"`
	ID              string       `json:"id"`
	Version         string       `json:"version"`
	Notes           string       `json:"notes,omitempty"`
	SecurityVersion int64        `json:"security_version"`
	Severity        Severity     `json:"severity"`
	CVEs            []string     `json:"cves"`
	State           ReleaseState `json:"state"`
	Bad             bool         `json:"bad"`
	BadReason       string       `json:"bad_reason,omitempty"`
	AffectedBy      []string     `json:"affected_by"`
	CreatedAt       time.Time    `json:"created_at"`
	PublishedAt     *time.Time   `json:"published_at,omitempty"`
	Artifacts       []Artifact   `json:"artifacts"`
}

// ArtifactType says how a device installs an artifact.
type ArtifactType string

// Artifact types.
const (
	ArtifactRawImage   ArtifactType = "raw-image"
	ArtifactFile       ArtifactType = "file"
	ArtifactArchive    ArtifactType = "archive"
	ArtifactScript     ArtifactType = "script"
	ArtifactSWU        ArtifactType = "swu"
	ArtifactRAUCBundle ArtifactType = "rauc-bundle"
	ArtifactMender     ArtifactType = "mender"
	ArtifactDelta      ArtifactType = "delta"
)

// Artifact is one installable file of a release, keyed by
// (release, hardware, type, component). Hardware is a device type plus the
// set of hardware revisions the file suits; no two artifacts of a release
// share device type, a revision, type and component.
type Artifact struct {
	TenantID   string       `json:"tenant_id"`
	ID         string       `json:"id"`
	ReleaseID  string       `json:"release_id"`
	DeviceType string       `json:"device_type"`
	HWRevs     []string     `json:"hw_revs"`
	Type       ArtifactType `json:"type"`
	Component  string       `json:"component"`
	// FromVersion is set for delta artifacts: the version the delta applies to.
	FromVersion string    `json:"from_version,omitempty"`
	Compression string    `json:"compression,omitempty"`
	Name        string    `json:"name"`
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	SHA1        string    `json:"sha1"`
	MD5         string    `json:"md5"`
	CreatedAt   time.Time `json:"created_at"`
}

// AssignmentState is the state of one device's work on one release.
type AssignmentState string

// Assignment states; see docs/device-api.md for the state diagram.
const (
	AssignPending     AssignmentState = "pending"
	AssignNotified    AssignmentState = "notified"
	AssignDownloading AssignmentState = "downloading"
	AssignInstalling  AssignmentState = "installing"
	AssignRebooting   AssignmentState = "rebooting"
	AssignVerifying   AssignmentState = "verifying"
	AssignSucceeded   AssignmentState = "succeeded"
	AssignFailed      AssignmentState = "failed"
	AssignRolledBack  AssignmentState = "rolled-back"
	AssignTimedOut    AssignmentState = "timed-out"
	AssignSkipped     AssignmentState = "skipped"
	AssignCanceled    AssignmentState = "canceled"
	AssignSuperseded  AssignmentState = "superseded"
)

// Terminal reports whether no further transition is expected.
func (s AssignmentState) Terminal() bool {
	switch s {
	case AssignSucceeded, AssignFailed, AssignRolledBack, AssignTimedOut,
		AssignSkipped, AssignCanceled, AssignSuperseded:
		return true
	}
	return false
}

// Assignment is one release assigned to one device, by an operator or a
// campaign. A device has at most one active assignment.
type Assignment struct {
	TenantID   string          `json:"tenant_id"`
	ID         string          `json:"id"`
	DeviceID   string          `json:"device_id"`
	ReleaseID  string          `json:"release_id"`
	Version    string          `json:"version"` // the release's version, for convenience
	CampaignID string          `json:"campaign_id,omitempty"`
	State      AssignmentState `json:"state"`
	Active     bool            `json:"active"`
	Progress   int             `json:"progress"`
	ErrorCode  string          `json:"error_code,omitempty"`
	Reason     string          `json:"reason,omitempty"`
	// SupersededBy names the assignment that replaced this one.
	SupersededBy string    `json:"superseded_by,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// StatusReport is one status message from a device, numbered by the device.
type StatusReport struct {
	AssignmentID string          `json:"assignment_id"`
	Seq          int64           `json:"seq"`
	State        AssignmentState `json:"state"`
	Progress     int             `json:"progress"`
	ErrorCode    string          `json:"error_code,omitempty"`
	Message      string          `json:"message,omitempty"`
	LogTail      string          `json:"log_tail,omitempty"`
	ReportedAt   time.Time       `json:"reported_at"`
}

// ReportOutcome says what the store did with one report.
type ReportOutcome string

// Report outcomes.
const (
	ReportApplied   ReportOutcome = "applied"   // stored and moved the assignment
	ReportRecorded  ReportOutcome = "recorded"  // stored in history; assignment unchanged (e.g. no longer active)
	ReportDuplicate ReportOutcome = "duplicate" // this sequence number was already stored
)

// DeviceReports is one device's reports within a group commit.
type DeviceReports struct {
	TenantID string
	DeviceID string
	Reports  []StatusReport
}

// AssignmentEvent is one stored status report (the assignment's history).
type AssignmentEvent struct {
	StatusReport
	DeviceID   string    `json:"device_id"`
	ReceivedAt time.Time `json:"received_at"`
	Applied    bool      `json:"applied"`
}

// ReportGap is a range of sequence numbers a device skipped.
type ReportGap struct {
	DeviceID   string    `json:"device_id"`
	FromSeq    int64     `json:"from_seq"`
	ToSeq      int64     `json:"to_seq"`
	DetectedAt time.Time `json:"detected_at"`
}

// MetricPoint is one telemetry sample.
type MetricPoint struct {
	Name  string    `json:"name"`
	At    time.Time `json:"at"`
	Value float64   `json:"value"`
}

// HourlyRollup aggregates a metric over one hour for one device.
type HourlyRollup struct {
	Metric string    `json:"metric"`
	Hour   time.Time `json:"hour"`
	Count  int64     `json:"count"`
	Sum    float64   `json:"sum"`
	Min    float64   `json:"min"`
	Max    float64   `json:"max"`
	Last   float64   `json:"last"`
}

// Role of an operator or API token.
type Role string

// Roles.
const (
	RoleAdmin    Role = "admin"
	RoleOperator Role = "operator"
	RoleViewer   Role = "viewer"
)

// User is an operator who signs in.
type User struct {
	TenantID           string    `json:"tenant_id"`
	ID                 string    `json:"id"`
	Name               string    `json:"name"`
	Role               Role      `json:"role"`
	PasswordHash       string    `json:"-"`
	MustChangePassword bool      `json:"must_change_password"`
	Disabled           bool      `json:"disabled"`
	CreatedAt          time.Time `json:"created_at"`
	UpdatedAt          time.Time `json:"updated_at"`
}

// APIToken is a management API credential. Only a hash of its secret is kept.
type APIToken struct {
	TenantID   string     `json:"tenant_id"`
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	UserID     string     `json:"user_id,omitempty"`
	Role       Role       `json:"role"`
	SecretHash string     `json:"-"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  *time.Time `json:"expires_at,omitempty"`
	RevokedAt  *time.Time `json:"revoked_at,omitempty"`
	LastUsedAt *time.Time `json:"last_used_at,omitempty"`
}

// ActorKind says who made a change.
type ActorKind string

// Actor kinds.
const (
	ActorUser   ActorKind = "user"
	ActorToken  ActorKind = "token"
	ActorDevice ActorKind = "device"
	ActorSystem ActorKind = "system"
)

// Actor is who made a change; every audited store write takes one.
type Actor struct {
	Kind ActorKind `json:"kind"`
	ID   string    `json:"id"`
	Name string    `json:"name"`
}

// System is the actor for changes the server makes by itself.
var System = Actor{Kind: ActorSystem, ID: "system", Name: "updraft"}

// AuditEntry is one record of the append-only, hash-chained audit log.
// Hash = SHA-256 over PrevHash and the canonical encoding of the entry
// (see docs/architecture.md); VerifyAudit recomputes the chain.
type AuditEntry struct {
	TenantID   string          `json:"tenant_id"`
	Seq        int64           `json:"seq"`
	At         time.Time       `json:"at"`
	Actor      Actor           `json:"actor"`
	Action     string          `json:"action"`
	ObjectType string          `json:"object_type"`
	ObjectID   string          `json:"object_id"`
	Details    json.RawMessage `json:"details,omitempty"`
	PrevHash   string          `json:"prev_hash"`
	Hash       string          `json:"hash"`
}
