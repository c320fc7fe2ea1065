// Package tufmeta defines the signed fields Updraft adds to TUF metadata and
// the director's per-device documents. It is shared by the server (which
// signs) and the device-side verifier (which checks), so it must never import
// server code.
//
// Layout of trust (see docs/security.md):
//   - Offline-signed targets metadata (top-level targets, delegating to one
//     release-signing role per product line by path pattern) lists every
//     artifact with its length, SHA-256 and TargetCustom.
//   - The director (an online key listed in root under the role name
//     RoleDirector) signs, per device, a TUF targets document holding exactly
//     one target: the artifact the device should install, with
//     AssignmentCustom. Its metadata version is the device's director
//     counter, which only grows; its expiry bounds how long it may be used.
//   - A finalize document is a director-signed targets document with no
//     targets and FinalizeCustom: it raises the device's security floor.
//
// A device installs only if the director document and the offline-signed
// targets agree on path, length, hashes and every TargetCustom field.
package tufmeta

import (
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"time"
)

// RoleDirector is the name under which root lists the director's keys.
const RoleDirector = "director"

// Artifact types a target may have.
const (
	TypeRawImage   = "raw-image"
	TypeFile       = "file"
	TypeArchive    = "archive"
	TypeScript     = "script"
	TypeSWU        = "swu"
	TypeRAUCBundle = "rauc-bundle"
	TypeMender     = "mender"
	TypeDelta      = "delta"
)

// Compressions a target may have.
const (
	CompressionNone = ""
	CompressionGzip = "gzip"
	CompressionZstd = "zstd"
)

// TargetCustom is the "custom" object of every Updraft target in the
// offline-signed targets metadata. Every field is signed.
type TargetCustom struct {
	Version         string   `json:"version"`          // semantic version of the release
	SecurityVersion int64    `json:"security_version"` // anti-rollback counter, operator-set
	DeviceType      string   `json:"device_type"`
	HWRevs          []string `json:"hw_revs"`
	ArtifactType    string   `json:"artifact_type"`
	Compression     string   `json:"compression,omitempty"`
	Component       string   `json:"component"`
	// FromVersion is the base version of a delta artifact.
	FromVersion string `json:"from_version,omitempty"`
}

var namePattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Validate checks the fields' form (not the version's semantics, which the
// caller checks with internal/semver).
func (c TargetCustom) Validate() error {
	switch {
	case c.Version == "":
		return fmt.Errorf("target custom: version is required")
	case c.SecurityVersion < 0:
		return fmt.Errorf("target custom: security_version must not be negative")
	case !namePattern.MatchString(c.DeviceType):
		return fmt.Errorf("target custom: device_type %q is not a name", c.DeviceType)
	case len(c.HWRevs) == 0:
		return fmt.Errorf("target custom: hw_revs must name at least one revision")
	case !namePattern.MatchString(c.Component):
		return fmt.Errorf("target custom: component %q is not a name", c.Component)
	}
	for _, r := range c.HWRevs {
		if !namePattern.MatchString(r) {
			return fmt.Errorf("target custom: hardware revision %q is not a name", r)
		}
	}
	switch c.ArtifactType {
	case TypeRawImage, TypeFile, TypeArchive, TypeScript, TypeSWU, TypeRAUCBundle, TypeMender, TypeDelta:
	default:
		return fmt.Errorf("target custom: unknown artifact_type %q", c.ArtifactType)
	}
	switch c.Compression {
	case CompressionNone, CompressionGzip, CompressionZstd:
	default:
		return fmt.Errorf("target custom: unknown compression %q", c.Compression)
	}
	if (c.ArtifactType == TypeDelta) != (c.FromVersion != "") {
		return fmt.Errorf("target custom: from_version is required for delta artifacts and only for them")
	}
	return nil
}

// Suits reports whether the target is for this hardware.
func (c TargetCustom) Suits(deviceType, hwRev string) bool {
	return c.DeviceType == deviceType && slices.Contains(c.HWRevs, hwRev)
}

// Equal reports whether two customs agree on every signed field.
func (c TargetCustom) Equal(o TargetCustom) bool {
	return c.Version == o.Version && c.SecurityVersion == o.SecurityVersion &&
		c.DeviceType == o.DeviceType && slices.Equal(c.HWRevs, o.HWRevs) &&
		c.ArtifactType == o.ArtifactType && c.Compression == o.Compression &&
		c.Component == o.Component && c.FromVersion == o.FromVersion
}

// TargetPath is the canonical target path of an artifact:
// "<device_type>/<component>/<version>/<name>". Delegations to release-signing
// roles use path patterns such as "gw-200/*/*/*" (DelegationPaths: TUF
// matches patterns segment by segment), so a product line's key can sign
// only its own paths, and a device fetches only its line's metadata.
func TargetPath(deviceType, component, version, name string) string {
	return deviceType + "/" + component + "/" + version + "/" + name
}

// Window is a recurring maintenance window in the device's local time zone:
// on the given weekdays (0 = Sunday; empty: every day), from Start for
// Duration. Start is "HH:MM".
type Window struct {
	Days     []time.Weekday `json:"days,omitempty"`
	Start    string         `json:"start"`
	Duration Duration       `json:"duration"`
}

// Duration is a time.Duration encoded as a Go duration string ("90m").
type Duration time.Duration

// MarshalJSON implements json.Marshaler.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON implements json.Unmarshaler.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("duration: want a string such as \"90m\": %w", err)
	}
	v, err := time.ParseDuration(s)
	if err != nil || v < 0 {
		return fmt.Errorf("duration %q: want a non-negative Go duration such as \"90m\"", s)
	}
	*d = Duration(v)
	return nil
}

// GateOverrides are the campaign's gate settings carried in the signed
// assignment. A device's local configuration may only narrow them.
type GateOverrides struct {
	// MinBattery is the lowest battery percentage at which to install
	// (unless charging); 0: the device's own setting.
	MinBattery int `json:"min_battery,omitempty"`
	// AllowMetered permits downloading over a metered link.
	AllowMetered bool `json:"allow_metered,omitempty"`
}

// AssignmentCustom is the "custom" object of the single target in a
// director document.
type AssignmentCustom struct {
	DeviceID     string `json:"device_id"`
	AssignmentID string `json:"assignment_id"`
	CampaignID   string `json:"campaign_id,omitempty"`
	// Target repeats the offline-signed TargetCustom; the device checks
	// that the two agree.
	Target  TargetCustom  `json:"target"`
	Windows []Window      `json:"windows,omitempty"`
	Gates   GateOverrides `json:"gates"`
	// Forced skips the soft gates (maintenance window, metered link,
	// custom gate); hard gates (battery/power, storage, temperature) apply.
	Forced bool `json:"forced,omitempty"`
}

// FinalizeCustom is the custom object of a finalize document: the device's
// security floor may rise to SecurityVersion once it runs Version.
type FinalizeCustom struct {
	Type            string `json:"_type"` // FinalizeType
	DeviceID        string `json:"device_id"`
	Version         string `json:"version"`
	SecurityVersion int64  `json:"security_version"`
}

// FinalizeType marks a finalize document.
const FinalizeType = "updraft-finalize"
