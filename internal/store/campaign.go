package store

import (
	"context"
	"encoding/json"
	"time"

	"github.com/updraft/updraft/internal/filter"
)

// CampaignState is the lifecycle state of a campaign:
//
//	draft → running ⇄ waiting-approval
//	running, waiting-approval ⇄ paused
//	running, waiting-approval, paused → completed | halted | aborted
//	halted → running (an operator's audited resume) | aborted
//
// docs/campaigns.md draws the diagram.
type CampaignState string

// Campaign states.
const (
	CampaignDraft           CampaignState = "draft"
	CampaignRunning         CampaignState = "running"
	CampaignWaitingApproval CampaignState = "waiting-approval"
	CampaignPaused          CampaignState = "paused"
	CampaignCompleted       CampaignState = "completed"
	CampaignHalted          CampaignState = "halted"
	CampaignAborted         CampaignState = "aborted"
)

// Terminal reports whether the campaign will never dispatch again.
func (s CampaignState) Terminal() bool { return s == CampaignCompleted || s == CampaignAborted }

// Known reports whether s is a campaign state.
func (s CampaignState) Known() bool {
	switch s {
	case CampaignDraft, CampaignRunning, CampaignWaitingApproval, CampaignPaused,
		CampaignCompleted, CampaignHalted, CampaignAborted:
		return true
	}
	return false
}

// Campaign kinds.
const (
	CampaignKindRollout  = "rollout"
	CampaignKindRollback = "rollback"
)

// Campaign is a release rolled out to the devices a selector matches. The
// store keeps Spec, Plan and Engine as opaque JSON: internal/campaign owns
// the spec and plan, internal/rollout its bookkeeping.
type Campaign struct {
	TenantID  string `json:"tenant_id"`
	ID        string `json:"id"`
	Name      string `json:"name"`
	Kind      string `json:"kind"`
	ReleaseID string `json:"release_id"`
	Version   string `json:"version"` // the release's version, for convenience
	// RollbackOf names the campaign a rollback campaign undoes.
	RollbackOf  string          `json:"rollback_of,omitempty"`
	Spec        json.RawMessage `json:"spec"`
	Plan        json.RawMessage `json:"plan"`
	Engine      json.RawMessage `json:"engine"`
	State       CampaignState   `json:"state"`
	StateReason string          `json:"state_reason,omitempty"`
	// Step is the index of the current step of the plan (staging waves,
	// then production waves, then the control group).
	Step int `json:"step"`
	// ApprovedStep is the highest step an operator approved; -1 for none.
	ApprovedStep int `json:"approved_step"`
	// RetryRequested counts operator retry requests; the engine re-queues
	// failed devices when it sees the count grow.
	RetryRequested int   `json:"retry_requested"`
	Seed           int64 `json:"seed"`
	// Revision grows with every change of the row.
	Revision    int64      `json:"revision"`
	CreatedAt   time.Time  `json:"created_at"`
	UpdatedAt   time.Time  `json:"updated_at"`
	StartedAt   *time.Time `json:"started_at,omitempty"`
	FinishedAt  *time.Time `json:"finished_at,omitempty"`
	FinalizedAt *time.Time `json:"finalized_at,omitempty"`
}

// CampaignDeviceState is a campaign's view of one targeted device.
type CampaignDeviceState string

// Campaign device states. Queued devices wait for their step, a window or
// the rate limit; assigned ones have an active assignment of the campaign;
// the rest are final unless an operator retries them.
const (
	CDQueued     CampaignDeviceState = "queued"
	CDAssigned   CampaignDeviceState = "assigned"
	CDSucceeded  CampaignDeviceState = "succeeded"
	CDFailed     CampaignDeviceState = "failed"
	CDRolledBack CampaignDeviceState = "rolled-back"
	CDTimedOut   CampaignDeviceState = "timed-out"
	CDCanceled   CampaignDeviceState = "canceled"
	CDSuperseded CampaignDeviceState = "superseded"
	CDSkipped    CampaignDeviceState = "skipped"
	CDExcluded   CampaignDeviceState = "excluded"
)

// ControlStep is the step of the hold-back control group.
const ControlStep = -1

// CampaignDevice is one device a campaign targets.
type CampaignDevice struct {
	DeviceID string `json:"device_id"`
	Stratum  string `json:"stratum"`
	Step     int    `json:"step"`
	// Silent devices send no telemetry (hawkBit and Mender clients).
	Silent bool                `json:"silent"`
	State  CampaignDeviceState `json:"state"`
	// ReleaseID overrides the campaign's release for this device (rollback
	// campaigns move each device back to its own previous release).
	ReleaseID    string `json:"release_id,omitempty"`
	FromVersion  string `json:"from_version,omitempty"`
	AssignmentID string `json:"assignment_id,omitempty"`
	// EligibleAt is the earliest time the device may be dispatched (its
	// next maintenance window).
	EligibleAt time.Time  `json:"eligible_at"`
	DueAt      *time.Time `json:"due_at,omitempty"`
	// Waiting is set while the device reports that a gate or window holds it.
	Waiting       bool       `json:"waiting"`
	Attempts      int        `json:"attempts"`
	Reason        string     `json:"reason,omitempty"`
	AssignedAt    *time.Time `json:"assigned_at,omitempty"`
	SoakStartedAt *time.Time `json:"soak_started_at,omitempty"`
	FinishedAt    *time.Time `json:"finished_at,omitempty"`
	UpdatedAt     time.Time  `json:"updated_at"`
}

// CampaignTally counts a campaign's devices per step, stratum, state and
// whether they send telemetry.
type CampaignTally struct {
	Step    int                 `json:"step"`
	Stratum string              `json:"stratum"`
	State   CampaignDeviceState `json:"state"`
	Silent  bool                `json:"silent"`
	N       int                 `json:"n"`
}

// CampaignDecision is one stored judgement of the engine.
type CampaignDecision struct {
	Seq     int64     `json:"seq"`
	At      time.Time `json:"at"`
	Step    int       `json:"step"`
	Verdict string    `json:"verdict"` // advance, hold, halt
	// Action is what the engine did with it (e.g. "advance to wave 3",
	// "halt stratum hw_rev=B").
	Action  string          `json:"action"`
	Summary string          `json:"summary"`
	Detail  json.RawMessage `json:"detail"` // the tests, as internal/rollout records them
}

// CampaignRatePeriod is one hour of rate evidence for one stratum and metric.
type CampaignRatePeriod struct {
	Hour          time.Time `json:"hour"`
	Stratum       string    `json:"stratum"`
	Metric        string    `json:"metric"`
	CanaryEvents  int       `json:"canary_events"`
	CanaryHours   float64   `json:"canary_hours"`
	ControlEvents int       `json:"control_events"`
	ControlHours  float64   `json:"control_hours"`
}

// CampaignUpdate changes a campaign in one transaction: Apply edits the
// locked row, and the decision, rate periods and webhook events are stored
// with it. A non-nil Lease fences the write (ErrLeaseLost once another
// holder has the lease). A non-empty Action is audited with Details.
type CampaignUpdate struct {
	Lease       *Lease
	Apply       func(c *Campaign) error
	Decision    *CampaignDecision
	RatePeriods []CampaignRatePeriod
	Events      []WebhookEvent
	By          Actor
	Action      string
	Details     any
	Now         time.Time
}

// CampaignQuery selects campaigns; empty States means any.
type CampaignQuery struct {
	States []CampaignState
	Page   Page
}

// DeviceCursor is a position in the devices ordered by (updated_at, id).
type DeviceCursor struct {
	UpdatedAt time.Time `json:"updated_at"`
	ID        string    `json:"id"`
}

// CampaignCandidate is a device that changed after a cursor, as seen by a
// campaign's continuous targeting.
type CampaignCandidate struct {
	Device
	// Matches is true when the device is accepted and the selector
	// matches it.
	Matches bool
	// In is the device's campaign state, "" when the campaign does not
	// target it yet.
	In CampaignDeviceState
}

// AssignmentChange is an assignment of a campaign that changed, with the
// message of its latest stored report.
type AssignmentChange struct {
	Assignment
	LastMessage string
}

// CampaignDeviceChange rewrites one campaign device row; tallies follow.
type CampaignDeviceChange struct {
	Device CampaignDevice
}

// CampaignDispatch assigns a campaign's release (or the device's override)
// to one queued device.
type CampaignDispatch struct {
	DeviceID  string
	ReleaseID string
	AllowBad  bool
	DueAt     *time.Time
}

// DispatchResult says what happened to one dispatch: an assignment, or the
// reason the device was skipped.
type DispatchResult struct {
	DeviceID   string
	Assignment *Assignment
	Superseded *Assignment
	Skipped    string
}

// CampaignEnd ends a campaign's active assignment of a device as canceled
// or timed-out.
type CampaignEnd struct {
	DeviceID string
	State    AssignmentState // AssignCanceled or AssignTimedOut
	Reason   string
	// DeviceState is the campaign device state to record.
	DeviceState CampaignDeviceState
}

// HourlyCount is one device's telemetry sum for one metric and hour within
// a campaign, with the device's arm in that hour.
type HourlyCount struct {
	DeviceID string
	Stratum  string
	Metric   string
	Arm      int // ArmCanary or ArmControl
	Sum      float64
}

// ArmExposure is the number of device-hours with telemetry per stratum,
// metric and arm.
type ArmExposure struct {
	Stratum string
	Metric  string
	Arm     int
	Hours   int
}

// Campaign arms in telemetry queries.
const (
	ArmCanary  = 1
	ArmControl = 2
)

// Webhook is an HTTP endpoint told about campaign events.
type Webhook struct {
	TenantID  string    `json:"tenant_id"`
	ID        string    `json:"id"`
	URL       string    `json:"url"`
	Secret    string    `json:"-"`
	Events    []string  `json:"events"`
	CreatedAt time.Time `json:"created_at"`
}

// WebhookEvent is something webhooks subscribe to.
type WebhookEvent struct {
	Event   string `json:"event"`
	Payload json.RawMessage
}

// Webhook delivery states.
const (
	DeliveryPending   = "pending"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event sent (or to be sent) to one webhook.
type WebhookDelivery struct {
	TenantID    string          `json:"tenant_id"`
	ID          string          `json:"id"`
	WebhookID   string          `json:"webhook_id"`
	Event       string          `json:"event"`
	Payload     json.RawMessage `json:"payload"`
	State       string          `json:"state"`
	Attempts    int             `json:"attempts"`
	NextAt      time.Time       `json:"next_at"`
	LastStatus  int             `json:"last_status,omitempty"`
	LastError   string          `json:"last_error,omitempty"`
	CreatedAt   time.Time       `json:"created_at"`
	DeliveredAt *time.Time      `json:"delivered_at,omitempty"`
}

// DeliveryAttempt records the outcome of one delivery attempt.
type DeliveryAttempt struct {
	TenantID string
	ID       string
	Status   int
	Error    string
	// Done marks the delivery delivered (Error empty) or failed for good;
	// otherwise it is retried at NextAt.
	Done   bool
	NextAt time.Time
	Now    time.Time
}

// Campaigns holds campaigns, their devices and decisions, and webhooks.
// Methods that take a Lease are the rollout engine's: they check the lease
// inside their own transaction, so a deposed leader changes nothing.
type Campaigns interface {
	CreateCampaign(ctx context.Context, c Campaign, by Actor, now time.Time) (Campaign, error)
	Campaign(ctx context.Context, tenant, id string) (Campaign, error)
	ListCampaigns(ctx context.Context, tenant string, q CampaignQuery) ([]Campaign, string, error)
	// ActiveCampaigns lists campaigns of every tenant that the engine
	// drives: running, waiting-approval, paused and halted, and aborted
	// ones not yet finished (their assignments still to cancel).
	ActiveCampaigns(ctx context.Context) ([]Campaign, error)
	UpdateCampaign(ctx context.Context, tenant, id string, u CampaignUpdate) (Campaign, error)

	// CountTargets counts the accepted devices f matches per stratum, the
	// stratum being the values of fields joined as "field=value,…".
	CountTargets(ctx context.Context, tenant string, f *filter.Expr, fields []string) (map[string]int, error)
	// HardwareOf counts the accepted devices f matches per (device type,
	// hardware revision), for artifact coverage checks.
	HardwareOf(ctx context.Context, tenant string, f *filter.Expr) (map[[2]string]int, error)
	// CampaignCandidates lists devices updated after the cursor, in
	// (updated_at, id) order, with whether f matches them and their state
	// in the campaign.
	CampaignCandidates(ctx context.Context, tenant, campaignID string, f *filter.Expr, after DeviceCursor, limit int) ([]CampaignCandidate, error)
	// AddCampaignDevices targets devices; devices already targeted are
	// left alone. It returns how many were added.
	AddCampaignDevices(ctx context.Context, l Lease, tenant, campaignID string, devs []CampaignDevice, now time.Time) (int, error)
	CampaignDevice(ctx context.Context, tenant, campaignID, deviceID string) (CampaignDevice, error)
	// ListCampaignDevices lists a campaign's devices in device id order,
	// optionally only those in one state.
	ListCampaignDevices(ctx context.Context, tenant, campaignID string, state CampaignDeviceState, p Page) ([]CampaignDevice, string, error)
	// QueuedCampaignDevices returns up to limit queued devices of steps up
	// to maxStep (and the control group when control is set) that are
	// eligible at now, earliest eligible first, with the device fields
	// dispatch needs (type, revision, time zone, version, floor, protocol).
	QueuedCampaignDevices(ctx context.Context, tenant, campaignID string, maxStep int, control bool, now time.Time, limit int) ([]CampaignDevice, []Device, error)
	// DueCampaignDevices returns up to limit assigned devices whose
	// timeout passed.
	DueCampaignDevices(ctx context.Context, tenant, campaignID string, now time.Time, limit int) ([]CampaignDevice, error)
	UpdateCampaignDevices(ctx context.Context, l Lease, tenant, campaignID string, changes []CampaignDeviceChange, now time.Time) error
	// DispatchCampaign assigns releases to queued devices like Assign
	// (superseding their active assignment), fenced, and marks them
	// assigned; a device that cannot take the release is marked skipped
	// with the reason instead of failing the batch.
	DispatchCampaign(ctx context.Context, l Lease, tenant, campaignID string, ds []CampaignDispatch, by Actor, now time.Time) ([]DispatchResult, error)
	// EndCampaignAssignments cancels or times out the campaign's active
	// assignments of the given devices.
	EndCampaignAssignments(ctx context.Context, l Lease, tenant, campaignID string, ends []CampaignEnd, by Actor, now time.Time) ([]Assignment, error)
	// CampaignAssignmentChanges lists the campaign's assignments updated
	// after (since, afterID) in (updated_at, id) order.
	CampaignAssignmentChanges(ctx context.Context, tenant, campaignID string, since time.Time, afterID string, limit int) ([]AssignmentChange, error)
	CampaignTallies(ctx context.Context, tenant, campaignID string) ([]CampaignTally, error)
	ListCampaignDecisions(ctx context.Context, tenant, campaignID string, p Page) ([]CampaignDecision, string, error)
	CampaignRatePeriods(ctx context.Context, tenant, campaignID string) ([]CampaignRatePeriod, error)
	// CampaignHourCounts returns, for the hour starting at hour, each
	// campaign device's positive sums of the metrics with its arm, and the
	// device-hours of exposure per stratum, metric and arm. A device is
	// in the canary when its soak started by the hour's start and it still
	// runs the release; in the control while it had no assignment of the
	// campaign before the hour's end.
	CampaignHourCounts(ctx context.Context, tenant, campaignID string, metrics []string, hour time.Time) ([]HourlyCount, []ArmExposure, error)
	// TelemetrySums sums the metric per device over [from, to).
	TelemetrySums(ctx context.Context, tenant, metric string, deviceIDs []string, from, to time.Time) (map[string]float64, error)
	// ReleaseOutcomes counts a release's final install outcomes: devices
	// that finished and those that failed, rolled back or timed out.
	ReleaseOutcomes(ctx context.Context, tenant, releaseID string) (devices, failures int, err error)

	CreateWebhook(ctx context.Context, w Webhook, by Actor, now time.Time) (Webhook, error)
	ListWebhooks(ctx context.Context, tenant string) ([]Webhook, error)
	DeleteWebhook(ctx context.Context, tenant, id string, by Actor, now time.Time) error
	// EnqueueWebhookEvents stores deliveries of the events to every
	// webhook subscribed to them (UpdateCampaign does the same in its own
	// transaction).
	EnqueueWebhookEvents(ctx context.Context, tenant string, events []WebhookEvent, now time.Time) error
	// DueWebhookDeliveries lists pending deliveries of every tenant due by
	// now, with their webhook.
	DueWebhookDeliveries(ctx context.Context, now time.Time, limit int) ([]WebhookDelivery, []Webhook, error)
	RecordDeliveryAttempt(ctx context.Context, a DeliveryAttempt) error
	ListWebhookDeliveries(ctx context.Context, tenant, webhookID string, p Page) ([]WebhookDelivery, string, error)
}
