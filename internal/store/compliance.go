package store

import (
	"context"
	"time"
)

// Compliance answers two questions about the fleet at a point in time:
// which device ran which version since when, and who put it there
// (DeviceVersionsAt); and which devices were exposed to a vulnerable
// release (ExposedDevicesAt). Both walk the devices in id order, one page
// per call with a keyset cursor, reading devices in chunks with a fixed
// number of queries per chunk, never one per device; a filtered page reads
// chunks until it is full. docs/compliance.md explains the sources and
// what they cannot tell.
type Compliance interface {
	// DeviceVersionsAt lists the accepted and decommissioned devices
	// enrolled by q.At with the version each ran at q.At, in device id
	// order; q.ReleaseID keeps only the devices running that release (an
	// unknown release is ErrNotFound). Each row also carries its exposure
	// under q's severity and CVE rules.
	DeviceVersionsAt(ctx context.Context, tenant string, q ComplianceQuery) ([]DeviceVersion, string, error)
	// ExposedDevicesAt is DeviceVersionsAt restricted to accepted devices
	// with at least one exposure.
	ExposedDevicesAt(ctx context.Context, tenant string, q ComplianceQuery) ([]DeviceVersion, string, error)
}

// ComplianceQuery selects a compliance report.
type ComplianceQuery struct {
	// At is the point in time the report describes; required.
	At time.Time
	// ReleaseID keeps only devices whose version at At is this release's.
	ReleaseID string
	// Severities are the release severities whose later releases count as
	// security fixes a device may miss; empty means high and critical.
	Severities []Severity
	// CVE, when set, counts only exposure through this CVE id: a running
	// release affected by it, or a missed fix release that lists it.
	CVE  string
	Page Page
}

// VersionSource says where a device's version at a point in time comes from.
type VersionSource string

// Version sources.
const (
	// SourceAssignment: the last assignment that succeeded on the device
	// by then installed the version.
	SourceAssignment VersionSource = "assignment"
	// SourceReported: the device reported the version itself (installed
	// before enrollment, or outside Updraft) and no later assignment
	// changed it; no campaign or approval is behind it.
	SourceReported VersionSource = "reported"
	// SourceUnknown: neither source covers the point in time.
	SourceUnknown VersionSource = "unknown"
)

// Exposure reasons.
const (
	// ExposureAffected: the running release was marked affected by CVEs
	// at the report's time (markings as they were then).
	ExposureAffected = "affected"
	// ExposureMissingFix: a newer release of a listed severity, published
	// by then and built for the device's hardware, is not installed.
	ExposureMissingFix = "missing-fix"
)

// Exposure is one reason a device counts as exposed.
type Exposure struct {
	Reason string `json:"reason"`
	// Release is the version the reason is about: the running release for
	// affected, the missed fix release for missing-fix.
	Release  string   `json:"release"`
	Severity Severity `json:"severity,omitempty"`
	CVEs     []string `json:"cves"`
}

// Approval is an audit entry of a decision that put a version on a
// device: the campaign's creation, start, approvals, resumes and overrides,
// or, for an assignment made by hand, its creation and override.
type Approval struct {
	Seq    int64     `json:"seq"`
	At     time.Time `json:"at"`
	Action string    `json:"action"`
	Actor  Actor     `json:"actor"`
}

// DeviceVersion is one device's line of a compliance report.
type DeviceVersion struct {
	DeviceID   string      `json:"device_id"`
	Serial     string      `json:"serial"`
	DeviceType string      `json:"device_type"`
	HWRev      string      `json:"hw_rev"`
	State      DeviceState `json:"state"`
	// Version is empty when Source is unknown.
	Version string        `json:"version,omitempty"`
	Since   *time.Time    `json:"since,omitempty"`
	Source  VersionSource `json:"source"`
	// ReleaseID is the release of Version, if the server has one.
	ReleaseID    string     `json:"release_id,omitempty"`
	AssignmentID string     `json:"assignment_id,omitempty"`
	CampaignID   string     `json:"campaign_id,omitempty"`
	CampaignName string     `json:"campaign_name,omitempty"`
	Approvals    []Approval `json:"approvals"`
	Exposures    []Exposure `json:"exposures"`
}

// Exposed reports whether the device has any exposure.
func (d DeviceVersion) Exposed() bool { return len(d.Exposures) > 0 }
