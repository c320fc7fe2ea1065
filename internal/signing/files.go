package signing

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// maxNameLen bounds a metadata file name.
const maxNameLen = 128

// ParseName splits a metadata file name: "N.<role>.json" gives the role and
// version N ≥ 1; "<role>.json" gives the role and version 0 (the current
// one). The role is root, targets, snapshot, timestamp or a valid
// delegated role name. Anything else is an error.
func ParseName(name string) (role string, version int64, err error) {
	if len(name) > maxNameLen {
		return "", 0, fmt.Errorf("metadata name longer than %d bytes", maxNameLen)
	}
	base, ok := strings.CutSuffix(name, ".json")
	if !ok || base == "" {
		return "", 0, fmt.Errorf("metadata name %q does not end in .json", name)
	}
	role = base
	if num, rest, ok := strings.Cut(base, "."); ok && num != "" && num[0] >= '0' && num[0] <= '9' {
		if num[0] == '0' {
			return "", 0, fmt.Errorf("metadata name %q: version has a leading zero", name)
		}
		for i := 0; i < len(num); i++ {
			if num[i] < '0' || num[i] > '9' {
				return "", 0, fmt.Errorf("metadata name %q: version is not a number", name)
			}
		}
		v, err := strconv.ParseInt(num, 10, 64)
		if err != nil {
			return "", 0, fmt.Errorf("metadata name %q: version out of range", name)
		}
		role, version = rest, v
	}
	switch role {
	case metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP:
	default:
		if !tufmeta.ValidRoleName(role) {
			return "", 0, fmt.Errorf("metadata name %q: %q is not a role", name, role)
		}
	}
	return role, version, nil
}

// MetadataFile serves a device's request for a metadata file by its
// consistent-snapshot name: "timestamp.json" or "N.<role>.json". Any other
// name, a version that does not exist, or a tenant the service does not
// sign for is ErrNoSuchFile (404), which is also how a device learns that
// there is no newer root.
//
// timestamp.json and the root after the newest cached one are answered
// only after comparing the store's generation, so a replica never serves
// an older timestamp or a shorter root chain than another replica already
// did. Other versioned files never change and are read from the cache or,
// if older, from the store.
func (s *Service) MetadataFile(ctx context.Context, tenant, name string) ([]byte, error) {
	if tenant != s.tenant {
		return nil, ErrNoSuchFile
	}
	role, version, err := ParseName(name)
	if err != nil || (version == 0) != (role == metadata.TIMESTAMP) {
		return nil, ErrNoSuchFile
	}
	st, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	if role == metadata.TIMESTAMP || (role == metadata.ROOT && version > st.maxRoot) || st.files[name] == nil {
		if st, err = s.refresh(ctx); err != nil {
			return nil, err
		}
	}
	if role == metadata.TIMESTAMP {
		name = "timestamp.json"
	}
	if b, ok := st.files[name]; ok {
		return b, nil
	}
	if role == metadata.ROOT || st.repo == nil {
		return nil, ErrNoSuchFile // every root is cached
	}
	return s.storedFile(ctx, role, version)
}

func (s *Service) storedFile(ctx context.Context, role string, version int64) ([]byte, error) {
	f, err := s.store.TUFFile(ctx, s.tenant, role, version)
	if errors.Is(err, store.ErrNotFound) {
		return nil, ErrNoSuchFile
	}
	if err != nil {
		return nil, err
	}
	return f.Data, nil
}

// Metadata returns a metadata file for offline signers and operators: a
// name as devices use it, or "<role>.json" for the role's current version
// ("root.json" is the latest root).
func (s *Service) Metadata(ctx context.Context, name string) ([]byte, error) {
	role, version, err := ParseName(name)
	if err != nil {
		return nil, &InputError{Code: "bad_name", Msg: err.Error() + `: want "<role>.json" or "N.<role>.json"`}
	}
	st, err := s.refresh(ctx)
	if err != nil {
		return nil, err
	}
	if st.repo == nil {
		return nil, ErrNotInitialized
	}
	if version == 0 {
		switch role {
		case metadata.ROOT:
			return st.repo.Root(), nil
		case metadata.SNAPSHOT:
			return nonEmpty(st.repo.Snapshot)
		case metadata.TIMESTAMP:
			return nonEmpty(st.repo.Timestamp)
		}
		return nonEmpty(st.repo.Targets[role])
	}
	if role == metadata.TIMESTAMP {
		return s.storedFile(ctx, role, version)
	}
	if b, ok := st.files[name]; ok {
		return b, nil
	}
	return s.storedFile(ctx, role, version)
}

// HasRole reports whether uploads for role are possible: root, targets, or
// a role top-level targets delegates. ErrNotInitialized when there is no
// repository yet.
func (s *Service) HasRole(ctx context.Context, role string) (bool, error) {
	st, err := s.refresh(ctx)
	if err != nil {
		return false, err
	}
	if st.repo == nil {
		return false, ErrNotInitialized
	}
	if role == metadata.ROOT || role == metadata.TARGETS {
		return true, nil
	}
	dels, err := tufrepo.Delegations(st.repo.Targets[metadata.TARGETS])
	if err != nil {
		return false, err
	}
	for _, d := range dels {
		if d.Name == role {
			return true, nil
		}
	}
	return false, nil
}

func nonEmpty(b []byte) ([]byte, error) {
	if b == nil {
		return nil, ErrNoSuchFile
	}
	return b, nil
}
