package tufrepo

import (
	"fmt"
	"slices"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// RoleKeys are the keys of a role and how many of them must sign.
type RoleKeys struct {
	Keys      []*metadata.Key
	Threshold int
}

// rootRoles are the roles every Updraft root lists.
func rootRoles() []string {
	return []string{metadata.ROOT, metadata.TARGETS, metadata.SNAPSHOT, metadata.TIMESTAMP, tufmeta.RoleDirector}
}

// RootSpec describes a first root.
type RootSpec struct {
	Expires time.Time
	// Roles must give keys for root, targets, snapshot, timestamp and
	// tufmeta.RoleDirector.
	Roles map[string]RoleKeys
}

// NewRoot returns unsigned root metadata version 1 with consistent
// snapshots. Sign it with a threshold of the root keys.
func NewRoot(spec RootSpec) ([]byte, error) {
	m := metadata.Root(expiry(spec.Expires))
	m.Signed.Roles[tufmeta.RoleDirector] = &metadata.Role{KeyIDs: []string{}, Threshold: 1}
	for _, r := range rootRoles() {
		if _, ok := spec.Roles[r]; !ok {
			return nil, fmt.Errorf("new root: no keys for role %s", r)
		}
	}
	if err := setRootRoles(&m.Signed, spec.Roles); err != nil {
		return nil, fmt.Errorf("new root: %w", err)
	}
	return encode(m)
}

// NextRoot returns unsigned root version N+1: the keys and threshold of
// every role named in changes are replaced (rotation adds the new keys and
// drops the old; revocation drops a key), keys no role uses any more are
// removed, and the expiry is set. The result must be signed by a threshold
// of the current root keys and a threshold of the new ones, so that devices
// can follow the chain.
func NextRoot(current []byte, expires time.Time, changes map[string]RoleKeys) ([]byte, error) {
	m, err := parse[metadata.RootType](current)
	if err != nil {
		return nil, fmt.Errorf("next root: %w", err)
	}
	m.Signed.Version++
	m.Signed.Expires = expiry(expires)
	m.ClearSignatures()
	if err := setRootRoles(&m.Signed, changes); err != nil {
		return nil, fmt.Errorf("next root: %w", err)
	}
	return encode(m)
}

func setRootRoles(r *metadata.RootType, roles map[string]RoleKeys) error {
	for name, rk := range roles {
		if !slices.Contains(rootRoles(), name) {
			return fmt.Errorf("unknown top-level role %q", name)
		}
		ids, err := keyIDs(rk)
		if err != nil {
			return fmt.Errorf("role %s: %w", name, err)
		}
		r.Roles[name] = &metadata.Role{KeyIDs: ids, Threshold: rk.Threshold}
		for i, k := range rk.Keys {
			r.Keys[ids[i]] = k
		}
	}
	for id := range r.Keys {
		used := false
		for _, role := range r.Roles {
			used = used || slices.Contains(role.KeyIDs, id)
		}
		if !used {
			delete(r.Keys, id)
		}
	}
	return checkRoot(r)
}

func keyIDs(rk RoleKeys) ([]string, error) {
	if rk.Threshold < 1 || rk.Threshold > len(rk.Keys) {
		return nil, fmt.Errorf("threshold %d with %d keys: want 1 ≤ threshold ≤ keys", rk.Threshold, len(rk.Keys))
	}
	ids := make([]string, 0, len(rk.Keys))
	for _, k := range rk.Keys {
		if k == nil {
			return nil, fmt.Errorf("nil key")
		}
		if _, err := k.ToPublicKey(); err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		id, err := KeyID(k)
		if err != nil {
			return nil, err
		}
		if slices.Contains(ids, id) {
			return nil, fmt.Errorf("key %s listed twice", id)
		}
		ids = append(ids, id)
	}
	return ids, nil
}

// checkRoot checks that r lists every role Updraft needs with a usable
// threshold of known keys.
func checkRoot(r *metadata.RootType) error {
	if !r.ConsistentSnapshot {
		return fmt.Errorf("root must use consistent snapshots")
	}
	for _, name := range rootRoles() {
		role, ok := r.Roles[name]
		if !ok || role == nil {
			return fmt.Errorf("root lists no role %s", name)
		}
		if role.Threshold < 1 || role.Threshold > len(role.KeyIDs) {
			return fmt.Errorf("role %s: threshold %d with %d keys", name, role.Threshold, len(role.KeyIDs))
		}
		for _, id := range role.KeyIDs {
			if k, ok := r.Keys[id]; !ok || k == nil {
				return fmt.Errorf("role %s: key %s is not in root's keys", name, id)
			}
		}
	}
	return nil
}

// VerifyRoot checks that next may follow trusted in the root chain: its
// version is trusted's plus one, it is signed by a threshold of trusted's
// root keys and of its own, it lists every role Updraft needs, it is no
// larger than limit (0: the default) and it has not expired at now.
func VerifyRoot(trusted, next []byte, now time.Time, limit int64) error {
	if limit <= 0 {
		limit = tufmeta.DefaultLimits().Root
	}
	if int64(len(next)) > limit {
		return fmt.Errorf("%w: root is %d bytes, limit %d", ErrTooLarge, len(next), limit)
	}
	old, err := parse[metadata.RootType](trusted)
	if err != nil {
		return fmt.Errorf("trusted root: %w", err)
	}
	m, err := parse[metadata.RootType](next)
	if err != nil {
		return fmt.Errorf("new root: %w", err)
	}
	if m.Signed.Version != old.Signed.Version+1 {
		return &StaleVersionError{Role: metadata.ROOT, Stored: old.Signed.Version, Uploaded: m.Signed.Version}
	}
	if err := verify(old, metadata.ROOT, m); err != nil {
		return fmt.Errorf("new root under the old root's keys: %w", err)
	}
	if err := verify(m, metadata.ROOT, m); err != nil {
		return fmt.Errorf("new root under its own keys: %w", err)
	}
	if err := checkRoot(&m.Signed); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if !m.Signed.Expires.After(now) {
		return fmt.Errorf("%w: root version %d expired at %s", ErrExpired, m.Signed.Version, m.Signed.Expires.Format(time.RFC3339))
	}
	return nil
}

// VerifyFirstRoot checks a root version 1 (or any root trusted out of band):
// signed by a threshold of its own root keys and complete.
func VerifyFirstRoot(root []byte, limit int64) error {
	if limit <= 0 {
		limit = tufmeta.DefaultLimits().Root
	}
	if int64(len(root)) > limit {
		return fmt.Errorf("%w: root is %d bytes, limit %d", ErrTooLarge, len(root), limit)
	}
	m, err := parse[metadata.RootType](root)
	if err != nil {
		return err
	}
	if err := verify(m, metadata.ROOT, m); err != nil {
		return err
	}
	if err := checkRoot(&m.Signed); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}
