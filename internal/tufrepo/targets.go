package tufrepo

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Target is one artifact as listed in targets metadata.
type Target struct {
	Path   string // tufmeta.TargetPath(device type, component, version, name)
	Length int64
	SHA256 string // lowercase hex
	Custom tufmeta.TargetCustom
}

// Validate checks the target's form: a canonical path whose device type,
// component and version equal the signed custom fields, a valid custom
// object and a SHA-256.
func (t Target) Validate() error {
	dt, comp, ver, _, err := tufmeta.SplitTargetPath(t.Path)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadTarget, err)
	}
	if err := t.Custom.Validate(); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadTarget, t.Path, err)
	}
	if dt != t.Custom.DeviceType || comp != t.Custom.Component || ver != t.Custom.Version {
		return fmt.Errorf("%w: %s: path disagrees with device_type %q, component %q, version %q",
			ErrBadTarget, t.Path, t.Custom.DeviceType, t.Custom.Component, t.Custom.Version)
	}
	if t.Length < 0 {
		return fmt.Errorf("%w: %s: negative length", ErrBadTarget, t.Path)
	}
	if b, err := hex.DecodeString(t.SHA256); err != nil || len(b) != 32 || t.SHA256 != strings.ToLower(t.SHA256) {
		return fmt.Errorf("%w: %s: sha256 must be 64 lowercase hex digits", ErrBadTarget, t.Path)
	}
	return nil
}

func (t Target) file() (*metadata.TargetFiles, error) {
	sum, err := hex.DecodeString(t.SHA256)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrBadTarget, t.Path, err)
	}
	custom, err := json.Marshal(t.Custom)
	if err != nil {
		return nil, fmt.Errorf("encode custom of %s: %w", t.Path, err)
	}
	raw := json.RawMessage(custom)
	return &metadata.TargetFiles{
		Length: t.Length,
		Hashes: metadata.Hashes{"sha256": sum},
		Custom: &raw,
		Path:   t.Path,
	}, nil
}

// targetFromFile reads a target back from metadata; it fails unless the
// target has a SHA-256 and an Updraft custom object.
func targetFromFile(path string, f *metadata.TargetFiles) (Target, error) {
	if f == nil {
		return Target{}, fmt.Errorf("%w: %s: empty entry", ErrBadTarget, path)
	}
	sum, ok := f.Hashes["sha256"]
	if !ok || len(sum) != 32 {
		return Target{}, fmt.Errorf("%w: %s: no sha256 hash", ErrBadTarget, path)
	}
	t := Target{Path: path, Length: f.Length, SHA256: hex.EncodeToString(sum)}
	if f.Custom == nil {
		return Target{}, fmt.Errorf("%w: %s: no custom fields", ErrBadTarget, path)
	}
	if err := json.Unmarshal(*f.Custom, &t.Custom); err != nil {
		return Target{}, fmt.Errorf("%w: %s: custom: %v", ErrBadTarget, path, err)
	}
	return t, nil
}

// Delegation delegates trust for target paths to a release-signing role.
type Delegation struct {
	Name string
	// Paths are TUF path patterns matched segment by segment; use
	// tufmeta.DelegationPaths for whole product lines.
	Paths       []string
	Keys        []*metadata.Key
	Threshold   int
	Terminating bool
}

// TargetsEdit is what NextTargets changes.
type TargetsEdit struct {
	Expires    time.Time
	Add        []Target     // added, or replacing the entry with the same path
	Remove     []string     // paths to drop
	Delegate   []Delegation // added, or replacing the delegation with the same name (keeping its place)
	Undelegate []string     // delegations to drop
}

// NextTargets returns unsigned targets metadata: version 1 with the edit
// applied when current is nil, otherwise current's version plus one. It is
// the offline step of signing a release: the input is the role's current
// metadata, the output (after Sign) is what `updraft release upload` sends.
func NextTargets(current []byte, e TargetsEdit) ([]byte, error) {
	var m *metadata.Metadata[metadata.TargetsType]
	if current == nil {
		m = metadata.Targets(expiry(e.Expires))
	} else {
		var err error
		if m, err = parse[metadata.TargetsType](current); err != nil {
			return nil, fmt.Errorf("next targets: %w", err)
		}
		m.Signed.Version++
		m.Signed.Expires = expiry(e.Expires)
		m.ClearSignatures()
	}
	if m.Signed.Targets == nil {
		m.Signed.Targets = map[string]*metadata.TargetFiles{}
	}
	for _, p := range e.Remove {
		if _, ok := m.Signed.Targets[p]; !ok {
			return nil, fmt.Errorf("next targets: remove %s: no such target", p)
		}
		delete(m.Signed.Targets, p)
	}
	for _, t := range e.Add {
		if err := t.Validate(); err != nil {
			return nil, fmt.Errorf("next targets: %w", err)
		}
		f, err := t.file()
		if err != nil {
			return nil, err
		}
		m.Signed.Targets[t.Path] = f
	}
	if len(e.Delegate) > 0 || len(e.Undelegate) > 0 {
		if err := editDelegations(&m.Signed, e.Delegate, e.Undelegate); err != nil {
			return nil, fmt.Errorf("next targets: %w", err)
		}
	}
	return encode(m)
}

func editDelegations(t *metadata.TargetsType, add []Delegation, remove []string) error {
	if t.Delegations == nil {
		t.Delegations = &metadata.Delegations{Keys: map[string]*metadata.Key{}}
	}
	d := t.Delegations
	if d.SuccinctRoles != nil {
		return fmt.Errorf("succinct (hash-bin) delegations are not supported")
	}
	for _, name := range remove {
		i := slices.IndexFunc(d.Roles, func(r metadata.DelegatedRole) bool { return r.Name == name })
		if i < 0 {
			return fmt.Errorf("undelegate %s: no such delegation", name)
		}
		d.Roles = slices.Delete(d.Roles, i, i+1)
	}
	for _, del := range add {
		if !tufmeta.ValidRoleName(del.Name) {
			return fmt.Errorf("delegate: %q is not a valid role name", del.Name)
		}
		if len(del.Paths) == 0 {
			return fmt.Errorf("delegate %s: no paths", del.Name)
		}
		ids, err := keyIDs(RoleKeys{Keys: del.Keys, Threshold: del.Threshold})
		if err != nil {
			return fmt.Errorf("delegate %s: %w", del.Name, err)
		}
		role := metadata.DelegatedRole{
			Name: del.Name, KeyIDs: ids, Threshold: del.Threshold,
			Terminating: del.Terminating, Paths: slices.Clone(del.Paths),
		}
		for i, k := range del.Keys {
			d.Keys[ids[i]] = k
		}
		if i := slices.IndexFunc(d.Roles, func(r metadata.DelegatedRole) bool { return r.Name == del.Name }); i >= 0 {
			d.Roles[i] = role
		} else {
			d.Roles = append(d.Roles, role)
		}
	}
	for id := range d.Keys {
		if !slices.ContainsFunc(d.Roles, func(r metadata.DelegatedRole) bool { return slices.Contains(r.KeyIDs, id) }) {
			delete(d.Keys, id)
		}
	}
	if len(d.Roles) == 0 {
		t.Delegations = nil
	}
	return nil
}

// Delegations lists the delegations in targets metadata (unverified).
func Delegations(targets []byte) ([]Delegation, error) {
	m, err := parse[metadata.TargetsType](targets)
	if err != nil {
		return nil, err
	}
	if m.Signed.Delegations == nil {
		return nil, nil
	}
	var out []Delegation
	for _, r := range m.Signed.Delegations.Roles {
		d := Delegation{Name: r.Name, Paths: slices.Clone(r.Paths), Threshold: r.Threshold, Terminating: r.Terminating}
		for _, id := range r.KeyIDs {
			if k := m.Signed.Delegations.Keys[id]; k != nil {
				d.Keys = append(d.Keys, k)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Targets lists the targets in targets metadata (unverified), by path.
func Targets(targets []byte) ([]Target, error) {
	m, err := parse[metadata.TargetsType](targets)
	if err != nil {
		return nil, err
	}
	out := make([]Target, 0, len(m.Signed.Targets))
	for p, f := range m.Signed.Targets {
		t, err := targetFromFile(p, f)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// Artifact is what the server knows about an uploaded artifact's bytes.
type Artifact struct {
	Length int64
	SHA256 string // lowercase hex
}

// Upload is signed targets metadata sent to the server.
type Upload struct {
	// Role is "targets" or the name of a delegated role.
	Role     string
	Metadata []byte
	// Artifacts holds the facts of the artifacts the server stores, by
	// target path. Every target that is new or changed in Metadata must be
	// here with equal length and SHA-256.
	Artifacts map[string]Artifact
}

// VerifyUpload is the server's check of uploaded targets metadata before
// it stores it. delegator is the trusted metadata that delegates u.Role:
// the current root for "targets", the current top-level targets for a
// release-signing role. stored is the role's current metadata (nil: none).
//
// It refuses metadata over the size limit (ErrTooLarge), not signed by a
// threshold of the role's delegated keys (ErrBadSignature), whose version
// is not stored's plus one (*StaleVersionError, 409), that has expired,
// with targets outside the role's delegated paths (ErrOutsideDelegation),
// invalid targets (ErrBadTarget), or targets whose length or hash differ
// from the uploaded artifacts (ErrArtifactMismatch).
func VerifyUpload(delegator, stored []byte, u Upload, now time.Time, limits tufmeta.Limits) error {
	limits = limits.WithDefaults()
	if lim := limits.ForRole(u.Role); int64(len(u.Metadata)) > lim {
		return fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, u.Role, len(u.Metadata), lim)
	}
	m, err := parse[metadata.TargetsType](u.Metadata)
	if err != nil {
		return fmt.Errorf("%s: %w", u.Role, err)
	}
	var deleg *metadata.DelegatedRole
	if u.Role == metadata.TARGETS {
		root, err := parse[metadata.RootType](delegator)
		if err != nil {
			return fmt.Errorf("root: %w", err)
		}
		if err := verify(root, metadata.TARGETS, m); err != nil {
			return err
		}
		if err := checkTopLevelDelegations(m.Signed.Delegations); err != nil {
			return fmt.Errorf("%w: %v", ErrMalformed, err)
		}
	} else {
		top, err := parse[metadata.TargetsType](delegator)
		if err != nil {
			return fmt.Errorf("targets: %w", err)
		}
		if deleg = findDelegation(top, u.Role); deleg == nil {
			return fmt.Errorf("%w: %s", ErrNotDelegated, u.Role)
		}
		if err := verify(top, u.Role, m); err != nil {
			return err
		}
		if m.Signed.Delegations != nil {
			return fmt.Errorf("%w: %s: release-signing roles may not delegate further", ErrMalformed, u.Role)
		}
	}
	var storedVersion int64
	var old *metadata.Metadata[metadata.TargetsType]
	if stored != nil {
		if old, err = parse[metadata.TargetsType](stored); err != nil {
			return fmt.Errorf("stored %s: %w", u.Role, err)
		}
		storedVersion = old.Signed.Version
	}
	if m.Signed.Version != storedVersion+1 {
		return &StaleVersionError{Role: u.Role, Stored: storedVersion, Uploaded: m.Signed.Version}
	}
	if !m.Signed.Expires.After(now) {
		return fmt.Errorf("%w: %s version %d expired at %s", ErrExpired, u.Role, m.Signed.Version, m.Signed.Expires.Format(time.RFC3339))
	}
	for p, f := range m.Signed.Targets {
		if deleg != nil {
			if ok, _ := deleg.IsDelegatedPath(p); !ok {
				return fmt.Errorf("%w: %s may not sign %s (paths %v)", ErrOutsideDelegation, u.Role, p, deleg.Paths)
			}
		}
		t, err := targetFromFile(p, f)
		if err != nil {
			return err
		}
		if err := t.Validate(); err != nil {
			return err
		}
		if old != nil {
			if prev, ok := old.Signed.Targets[p]; ok {
				if pt, err := targetFromFile(p, prev); err == nil && sameTarget(pt, t) {
					continue
				}
			}
		}
		a, ok := u.Artifacts[p]
		if !ok {
			return fmt.Errorf("%w: %s: no artifact uploaded for this path", ErrArtifactMismatch, p)
		}
		if a.Length != t.Length || !strings.EqualFold(a.SHA256, t.SHA256) {
			return fmt.Errorf("%w: %s: metadata says %d bytes sha256 %s, artifact has %d bytes sha256 %s",
				ErrArtifactMismatch, p, t.Length, t.SHA256, a.Length, a.SHA256)
		}
	}
	return nil
}

func sameTarget(a, b Target) bool {
	return a.Path == b.Path && a.Length == b.Length && a.SHA256 == b.SHA256 && a.Custom.Equal(b.Custom)
}

func findDelegation(top *metadata.Metadata[metadata.TargetsType], role string) *metadata.DelegatedRole {
	if top.Signed.Delegations == nil {
		return nil
	}
	for i := range top.Signed.Delegations.Roles {
		if top.Signed.Delegations.Roles[i].Name == role {
			return &top.Signed.Delegations.Roles[i]
		}
	}
	return nil
}

func checkTopLevelDelegations(d *metadata.Delegations) error {
	if d == nil {
		return nil
	}
	if d.SuccinctRoles != nil {
		return fmt.Errorf("succinct (hash-bin) delegations are not supported")
	}
	seen := map[string]bool{}
	for _, r := range d.Roles {
		if !tufmeta.ValidRoleName(r.Name) || seen[r.Name] {
			return fmt.Errorf("delegation %q: invalid or repeated role name", r.Name)
		}
		seen[r.Name] = true
		if len(r.Paths) == 0 || len(r.PathHashPrefixes) > 0 {
			return fmt.Errorf("delegation %s: want path patterns (hash prefixes are not supported)", r.Name)
		}
		if r.Threshold < 1 || r.Threshold > len(r.KeyIDs) {
			return fmt.Errorf("delegation %s: threshold %d with %d keys", r.Name, r.Threshold, len(r.KeyIDs))
		}
		for _, id := range r.KeyIDs {
			if k, ok := d.Keys[id]; !ok || k == nil {
				return fmt.Errorf("delegation %s: key %s is not listed", r.Name, id)
			}
		}
	}
	return nil
}
