package tufrepo

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Assignment is what the director signs for one device: the target to
// install (as the offline-signed targets list it) and the campaign's
// instructions.
type Assignment struct {
	DeviceID     string
	AssignmentID string
	CampaignID   string
	Target       Target
	// Counter is the device's director counter: the server keeps one per
	// device and increments it for every document it signs for that device,
	// assignment or finalize. The device refuses a counter below the last
	// one it accepted.
	Counter int64
	Expires time.Time
	Windows []tufmeta.Window
	Gates   tufmeta.GateOverrides
	Forced  bool
}

// SignAssignment returns a director document: TUF targets metadata whose
// version is the counter, holding exactly the assignment's target with
// tufmeta.AssignmentCustom, signed by the director keys.
func SignAssignment(a Assignment, signers ...Signer) ([]byte, error) {
	if a.DeviceID == "" || a.AssignmentID == "" {
		return nil, fmt.Errorf("sign assignment: device id and assignment id are required")
	}
	if a.Counter < 1 {
		return nil, fmt.Errorf("sign assignment: counter must be at least 1")
	}
	if err := a.Target.Validate(); err != nil {
		return nil, fmt.Errorf("sign assignment: %w", err)
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("sign assignment: no director key")
	}
	f, err := a.Target.file()
	if err != nil {
		return nil, err
	}
	custom, err := json.Marshal(tufmeta.AssignmentCustom{
		DeviceID: a.DeviceID, AssignmentID: a.AssignmentID, CampaignID: a.CampaignID,
		Target: a.Target.Custom, Windows: a.Windows, Gates: a.Gates, Forced: a.Forced,
	})
	if err != nil {
		return nil, fmt.Errorf("sign assignment: %w", err)
	}
	raw := json.RawMessage(custom)
	f.Custom = &raw
	m := metadata.Targets(expiry(a.Expires))
	m.Signed.Version = a.Counter
	m.Signed.Targets[a.Target.Path] = f
	if err := signMeta(m, signers); err != nil {
		return nil, fmt.Errorf("sign assignment: %w", err)
	}
	return encode(m)
}

// Finalize is the director's statement that a device running Version may
// raise its security floor to SecurityVersion.
type Finalize struct {
	DeviceID        string
	Version         string
	SecurityVersion int64
	Counter         int64 // from the same per-device counter as assignments
	Expires         time.Time
}

// SignFinalize returns a finalize document: TUF targets metadata with no
// targets and tufmeta.FinalizeCustom under "custom", signed by the director.
func SignFinalize(f Finalize, signers ...Signer) ([]byte, error) {
	if f.DeviceID == "" || f.Version == "" {
		return nil, fmt.Errorf("sign finalize: device id and version are required")
	}
	if f.Counter < 1 || f.SecurityVersion < 0 {
		return nil, fmt.Errorf("sign finalize: counter must be at least 1 and security version not negative")
	}
	if len(signers) == 0 {
		return nil, fmt.Errorf("sign finalize: no director key")
	}
	m := metadata.Targets(expiry(f.Expires))
	m.Signed.Version = f.Counter
	m.Signed.UnrecognizedFields = map[string]any{"custom": tufmeta.FinalizeCustom{
		Type: tufmeta.FinalizeType, DeviceID: f.DeviceID, Version: f.Version, SecurityVersion: f.SecurityVersion,
	}}
	if err := signMeta(m, signers); err != nil {
		return nil, fmt.Errorf("sign finalize: %w", err)
	}
	return encode(m)
}
