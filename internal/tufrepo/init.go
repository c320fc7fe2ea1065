package tufrepo

import (
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// InitSpec is a key ceremony with every offline key holder present. For a
// ceremony spread over time or places, build the root with NewRoot, have
// each holder Sign it, and Combine the copies.
type InitSpec struct {
	Root             []Signer
	RootThreshold    int
	Targets          []Signer
	TargetsThreshold int
	// Public keys of the server's online keys.
	Snapshot, Timestamp, Director RoleKeys
	RootExpires, TargetsExpires   time.Time
	// Delegations to create in the first top-level targets.
	Delegations []Delegation
}

// Init returns a signed root version 1 and signed top-level targets
// version 1, ready for NewRepository.
func Init(spec InitSpec) (root, targets []byte, err error) {
	rootKeys, err := SignerKeys(spec.Root...)
	if err != nil {
		return nil, nil, err
	}
	targetsKeys, err := SignerKeys(spec.Targets...)
	if err != nil {
		return nil, nil, err
	}
	unsigned, err := NewRoot(RootSpec{
		Expires: spec.RootExpires,
		Roles: map[string]RoleKeys{
			metadata.ROOT:        {Keys: rootKeys, Threshold: spec.RootThreshold},
			metadata.TARGETS:     {Keys: targetsKeys, Threshold: spec.TargetsThreshold},
			metadata.SNAPSHOT:    spec.Snapshot,
			metadata.TIMESTAMP:   spec.Timestamp,
			tufmeta.RoleDirector: spec.Director,
		},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("init: %w", err)
	}
	if root, err = Sign(unsigned, spec.Root...); err != nil {
		return nil, nil, fmt.Errorf("init: sign root: %w", err)
	}
	if err := VerifyFirstRoot(root, 0); err != nil {
		return nil, nil, fmt.Errorf("init: %w", err)
	}
	unsigned, err = NextTargets(nil, TargetsEdit{Expires: spec.TargetsExpires, Delegate: spec.Delegations})
	if err != nil {
		return nil, nil, fmt.Errorf("init: %w", err)
	}
	if targets, err = Sign(unsigned, spec.Targets...); err != nil {
		return nil, nil, fmt.Errorf("init: sign targets: %w", err)
	}
	return root, targets, nil
}
