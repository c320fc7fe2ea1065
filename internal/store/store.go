// Package store defines Updraft's persistent state: the types of the device
// registry, releases, assignments, telemetry, operators and the audit log,
// and the Store interface that the SQLite and PostgreSQL implementations
// satisfy (internal/store/sqlstore with the dialects in internal/store/sqlite
// and internal/store/postgres; one conformance suite, internal/store/storetest,
// runs against both).
//
// Invariants every implementation keeps:
//   - Every row belongs to a tenant; every method takes the tenant explicitly.
//   - Writes that belong together happen in one transaction, including the
//     audit entry that records them: a failed call changes nothing.
//   - A device has at most one active assignment.
//   - Status reports are durable when RecordReports returns; a repeated
//     (device, seq) is a no-op, and skipped sequence numbers are recorded as gaps.
//   - The store never calls the wall clock: callers pass "now" (from an
//     injected clock.Clock) in the params.
//
// Implementations are safe for concurrent use.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/filter"
)

// Sentinel errors; match with errors.Is. The API layers map them to HTTP codes.
var (
	ErrNotFound       = errors.New("not found")
	ErrConflict       = errors.New("conflict")         // unique key taken, or state forbids the change
	ErrPendingLimit   = errors.New("too many pending") // pending enrollments capped
	ErrImmutable      = errors.New("release is published and immutable")
	ErrSchemaTooNew   = errors.New("database schema is newer than this binary")
	ErrInvalidRequest = errors.New("invalid request")
)

// ConflictError explains a conflict; it matches ErrConflict.
type ConflictError struct{ Msg string }

func (e *ConflictError) Error() string { return e.Msg }

// Is makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Conflictf returns a *ConflictError.
func Conflictf(format string, args ...any) error {
	return &ConflictError{Msg: fmt.Sprintf(format, args...)}
}

// Page asks for one page of a list: at most Limit items after the opaque
// cursor After (empty for the first page).
type Page struct {
	Limit int
	After string
}

// MaxPageLimit caps Page.Limit; DefaultPageLimit applies when it is 0.
const (
	MaxPageLimit     = 1000
	DefaultPageLimit = 100
)

// Store is the persistent state of one Updraft installation.
type Store interface {
	Devices
	Releases
	Assignments
	Telemetry
	Operators
	Audit
	Leases
	TUF
	Campaigns
	DDI
	Compliance
	FleetStats
	// Secret returns the named server secret, creating it with gen on first
	// use; concurrent replicas agree on one value.
	Secret(ctx context.Context, name string, gen func() ([]byte, error)) ([]byte, error)
	// Ping checks the database connection.
	Ping(ctx context.Context) error
	Close() error
}

// EnrollParams is a device's signed enrollment, already verified.
type EnrollParams struct {
	TenantID   string
	Serial     string
	DeviceType string
	HWRev      string
	Region     string
	TimeZone   string
	Attributes map[string]string
	Protocol   Protocol
	// Key is the device's public key (Kind, Algorithm, Fingerprint, Material set).
	Key        Credential
	Now        time.Time
	PendingTTL time.Duration // how long a pending enrollment lives; <= 0: it never expires
	MaxPending int           // cap on unexpired pending devices per tenant; <= 0: no cap
}

// DeviceQuery selects devices.
type DeviceQuery struct {
	Filter *filter.Expr // nil: all
	State  DeviceState  // empty: any
	Page   Page
}

// DeviceReport is what a device tells about itself at check-in. Empty
// fields are left unchanged.
type DeviceReport struct {
	Version    string
	DeviceType string
	HWRev      string
	TimeZone   string
	Attributes map[string]string // replaces the reported attributes when non-nil
	Now        time.Time
}

// Devices is the device registry.
type Devices interface {
	// Enroll records a signed enrollment. A key preauthorized by an operator
	// makes the device accepted at once; an enrollment repeated with the same
	// key returns the existing device; the same serial with another key is a
	// conflict; too many unexpired pending devices is ErrPendingLimit.
	Enroll(ctx context.Context, p EnrollParams) (Device, error)
	Device(ctx context.Context, tenant, id string) (Device, error)
	// CheckInState is the one read a device check-in needs: the device
	// without its tags and groups (left nil, not loaded) and its active
	// assignment with the release's version, nil if it has none. An unknown
	// device is ErrNotFound; the device is returned whatever its state.
	CheckInState(ctx context.Context, tenant, deviceID string) (Device, *Assignment, error)
	// MarkNotified moves an assignment from pending to notified when a
	// device is first handed it, and reports whether it did; any other
	// state is left alone. Not audited: it is device traffic.
	MarkNotified(ctx context.Context, tenant, assignmentID string, now time.Time) (bool, error)
	// DeviceByCredential finds the device holding an active credential.
	DeviceByCredential(ctx context.Context, tenant string, kind CredentialKind, fingerprint string) (Device, Credential, error)
	ListDevices(ctx context.Context, tenant string, q DeviceQuery) (devs []Device, next string, err error)
	CountDevices(ctx context.Context, tenant string, f *filter.Expr) (int, error)
	// CountDevicesByState counts devices per tenant and state (for metrics).
	CountDevicesByState(ctx context.Context) (map[string]map[DeviceState]int, error)
	// CountDevicesBy counts the devices f matches (nil: all) per value of
	// field, one of CountByFields (another is ErrInvalidRequest). Devices
	// that never reported a region or version count under "".
	CountDevicesBy(ctx context.Context, tenant string, f *filter.Expr, field string) (map[string]int, error)
	AcceptDevice(ctx context.Context, tenant, id string, by Actor, now time.Time) (Device, error)
	RejectDevice(ctx context.Context, tenant, id string, by Actor, now time.Time) (Device, error)
	// DecommissionDevice revokes every credential, bumps the credential
	// epoch and cancels the active assignment.
	DecommissionDevice(ctx context.Context, tenant, id string, by Actor, now time.Time) (Device, error)
	// PreauthorizeKey registers a public key so that the device enrolling
	// with it is accepted on first contact.
	PreauthorizeKey(ctx context.Context, key Credential, by Actor, now time.Time) (Credential, error)
	// AddCredential adds a credential (e.g. a target token) to a device.
	AddCredential(ctx context.Context, c Credential, by Actor, now time.Time) (Credential, error)
	ListCredentials(ctx context.Context, tenant, deviceID string) ([]Credential, error)
	RevokeCredential(ctx context.Context, tenant, credentialID string, by Actor, now time.Time) error
	// UpdateDeviceReport stores what the device reported about itself; it
	// writes only when something changed.
	UpdateDeviceReport(ctx context.Context, tenant, id string, r DeviceReport) (Device, error)
	SetTags(ctx context.Context, tenant, id string, add, remove []string, by Actor, now time.Time) (Device, error)
	SetGroups(ctx context.Context, tenant, id string, add, remove []string, by Actor, now time.Time) (Device, error)
	// TouchLastSeen stores last-seen times in one batch (lossy by design).
	TouchLastSeen(ctx context.Context, tenant string, seen map[string]time.Time) error
	// ExpirePending deletes pending devices whose enrollment expired.
	ExpirePending(ctx context.Context, now time.Time) (int, error)
}

// NewRelease describes a release to create as a draft.
type NewRelease struct {
	TenantID        string
	Version         string // semantic version, validated by the caller and again here
	Notes           string
	SecurityVersion int64
	Severity        Severity // empty means low
	CVEs            []string
}

// Releases holds releases and their artifacts.
type Releases interface {
	CreateRelease(ctx context.Context, r NewRelease, by Actor, now time.Time) (Release, error)
	Release(ctx context.Context, tenant, id string) (Release, error)
	ReleaseByVersion(ctx context.Context, tenant, version string) (Release, error)
	ListReleases(ctx context.Context, tenant string, p Page) ([]Release, string, error)
	// AddArtifact adds an artifact whose blob is already stored; only drafts
	// accept artifacts (ErrImmutable otherwise); an overlapping
	// (device type, revision, type, component) is a conflict.
	AddArtifact(ctx context.Context, a Artifact, by Actor, now time.Time) (Artifact, error)
	Artifact(ctx context.Context, tenant, id string) (Artifact, error)
	// PublishRelease makes a draft with at least one artifact immutable.
	PublishRelease(ctx context.Context, tenant, id string, by Actor, now time.Time) (Release, error)
	// DeleteDraft removes a draft release and its artifact rows.
	DeleteDraft(ctx context.Context, tenant, id string, by Actor, now time.Time) error
	MarkBad(ctx context.Context, tenant, id string, bad bool, reason string, by Actor, now time.Time) (Release, error)
	// MarkAffected replaces the release's affected_by list with cves (an
	// empty list clears it); allowed on published releases too, and audited.
	MarkAffected(ctx context.Context, tenant, id string, cves []string, by Actor, now time.Time) (Release, error)
	// BlobInUse reports whether any artifact references the blob.
	BlobInUse(ctx context.Context, sha256 string) (bool, error)
}

// AssignParams assigns a release to one device.
type AssignParams struct {
	TenantID   string
	DeviceID   string
	ReleaseID  string
	CampaignID string
	// AllowBad permits a release marked bad (audited as an override).
	AllowBad bool
	Now      time.Time
}

// Assignments is per-device work and its history.
type Assignments interface {
	// Assign makes the release the device's active assignment, superseding
	// the previous active one. The device must be accepted, the release
	// published, not bad (unless AllowBad) and carry an artifact for the
	// device's hardware.
	Assign(ctx context.Context, p AssignParams, by Actor) (a Assignment, superseded *Assignment, err error)
	Assignment(ctx context.Context, tenant, id string) (Assignment, error)
	// ActiveAssignment returns the device's active assignment or ErrNotFound.
	ActiveAssignment(ctx context.Context, tenant, deviceID string) (Assignment, error)
	// ListAssignments lists a device's assignments, newest first; an empty
	// deviceID lists every assignment of the tenant.
	ListAssignments(ctx context.Context, tenant, deviceID string, p Page) ([]Assignment, string, error)
	CancelAssignment(ctx context.Context, tenant, id, reason string, by Actor, now time.Time) (Assignment, error)
	// RecordReports stores the status reports of many devices in one
	// transaction (group commit) and returns an outcome per report, in order.
	// A device that is unknown or not accepted gets a nil outcome slice and
	// nothing of it is stored; the other devices in the batch still commit.
	// Reports are not audited: they are device history (AssignmentEvents).
	RecordReports(ctx context.Context, batch []DeviceReports, now time.Time) ([][]ReportOutcome, error)
	AssignmentEvents(ctx context.Context, tenant, assignmentID string) ([]AssignmentEvent, error)
	ReportGaps(ctx context.Context, tenant, deviceID string) ([]ReportGap, error)
}

// Telemetry stores device metrics: raw points for a while, hourly roll-ups
// for longer.
type Telemetry interface {
	RecordTelemetry(ctx context.Context, tenant, deviceID string, points []MetricPoint) error
	TelemetryRaw(ctx context.Context, tenant, deviceID, metric string, from, to time.Time) ([]MetricPoint, error)
	TelemetryHourly(ctx context.Context, tenant, deviceID, metric string, from, to time.Time) ([]HourlyRollup, error)
	// PruneTelemetry deletes raw points before rawBefore and roll-ups before hourlyBefore.
	PruneTelemetry(ctx context.Context, rawBefore, hourlyBefore time.Time) (int64, error)
}

// Operators holds users and API tokens.
type Operators interface {
	CreateUser(ctx context.Context, u User, by Actor, now time.Time) (User, error)
	User(ctx context.Context, tenant, id string) (User, error)
	UserByName(ctx context.Context, tenant, name string) (User, error)
	ListUsers(ctx context.Context, tenant string, p Page) ([]User, string, error)
	SetPassword(ctx context.Context, tenant, userID, hash string, mustChange bool, by Actor, now time.Time) error
	CountUsers(ctx context.Context, tenant string) (int, error)
	// CreateInitialAdmin creates u and the token t, which belongs to u, with
	// their audit entries in one transaction, if u's tenant has no users;
	// created is false (and nothing changes) if it has. Concurrent first
	// starts are serialized: exactly one creates its admin.
	CreateInitialAdmin(ctx context.Context, u User, t APIToken, now time.Time) (created bool, err error)
	CreateAPIToken(ctx context.Context, t APIToken, by Actor, now time.Time) (APIToken, error)
	APIToken(ctx context.Context, tenant, id string) (APIToken, error)
	// APITokenByID finds a token by its id in any tenant (token ids are global).
	APITokenByID(ctx context.Context, id string) (APIToken, error)
	ListAPITokens(ctx context.Context, tenant string, p Page) ([]APIToken, string, error)
	RevokeAPIToken(ctx context.Context, tenant, id string, by Actor, now time.Time) error
	// TouchAPITokens stores when API tokens were last used, keyed by token
	// id (ids are global), in one batch. It never moves a time backwards,
	// ignores unknown ids and zero times, and is not audited: like
	// TouchLastSeen it is lossy by design.
	TouchAPITokens(ctx context.Context, used map[string]time.Time) error
}

// AuditQuery filters the audit log.
type AuditQuery struct {
	Action     string
	ObjectType string
	ObjectID   string
	ActorID    string
	Since      time.Time
	Until      time.Time
	Page       Page
}

// Audit is the append-only, hash-chained log of every change. Entries are
// written by the store methods that make the changes, in the same transaction.
type Audit interface {
	// AppendAudit records an action that changed nothing else in the store
	// (e.g. a failed sign-in, an override); other writes audit themselves.
	AppendAudit(ctx context.Context, tenant string, by Actor, action, objectType, objectID string, details any, now time.Time) error
	ListAudit(ctx context.Context, tenant string, q AuditQuery) ([]AuditEntry, string, error)
	// VerifyAudit recomputes the hash chain and returns the first broken entry's error.
	VerifyAudit(ctx context.Context, tenant string) (checked int, err error)
}
