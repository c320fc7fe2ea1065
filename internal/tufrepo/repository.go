package tufrepo

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Repository is the published state of an Updraft TUF repository: every
// root version, the latest version of every targets role, and the latest
// snapshot and timestamp. It is a plain value: the server loads it from its
// store, applies a Change or Publishes, and stores the Files that are new.
// Older consistent-snapshot files ("3.snapshot.json") should stay
// downloadable for a while after a newer one is published, so a device
// that fetched the previous timestamp can finish its refresh.
type Repository struct {
	Roots     [][]byte          // Roots[i] is root version i+1
	Targets   map[string][]byte // latest bytes of "targets" and of every delegated role ever published
	Snapshot  []byte
	Timestamp []byte
	Limits    tufmeta.Limits // zero: tufmeta.DefaultLimits
}

// File is a metadata file under its consistent-snapshot name.
type File struct {
	Name string // "N.root.json", "timestamp.json", "N.snapshot.json", "N.targets.json", "N.<role>.json"
	Data []byte
}

// NewRepository starts a repository from a signed first root and signed
// top-level targets. Publish it to create snapshot and timestamp.
func NewRepository(root, targets []byte, now time.Time, limits tufmeta.Limits) (*Repository, error) {
	r := &Repository{Limits: limits}
	if err := VerifyFirstRoot(root, r.limits().Root); err != nil {
		return nil, fmt.Errorf("new repository: %w", err)
	}
	info, err := Describe(root)
	if err != nil {
		return nil, err
	}
	if info.Version != 1 {
		return nil, fmt.Errorf("new repository: root version is %d, want 1 (load an existing chain with Roots)", info.Version)
	}
	r.Roots = [][]byte{root}
	r.Targets = map[string][]byte{}
	if err := r.Apply(Change{Uploads: []Upload{{Role: metadata.TARGETS, Metadata: targets}}}, now); err != nil {
		return nil, fmt.Errorf("new repository: %w", err)
	}
	return r, nil
}

func (r *Repository) limits() tufmeta.Limits { return r.Limits.WithDefaults() }

// Root is the latest root.
func (r *Repository) Root() []byte {
	if len(r.Roots) == 0 {
		return nil
	}
	return r.Roots[len(r.Roots)-1]
}

// Clone returns a copy that shares no maps or slices with r (metadata
// byte slices are immutable and shared).
func (r *Repository) Clone() *Repository {
	c := *r
	c.Roots = slices.Clone(r.Roots)
	c.Targets = maps.Clone(r.Targets)
	if c.Targets == nil {
		c.Targets = map[string][]byte{}
	}
	return &c
}

// Change is a batch of signed uploads applied together: new root versions
// first (in order), then targets metadata. A key rotation usually needs a
// batch — a root that rotates the targets key together with top-level
// targets signed by the new key, or top-level targets that rotate a
// release-signing role's key together with that role re-signed by it — so
// that the repository is never left in a state devices would refuse.
type Change struct {
	Roots   [][]byte
	Uploads []Upload
}

// Apply checks every item of c (VerifyRoot, VerifyUpload) against the
// state left by the items before it and commits them only if all pass and
// the result is consistent: top-level targets verifies under the latest
// root, and every published delegated role verifies under its delegation.
// On error r is unchanged.
func (r *Repository) Apply(c Change, now time.Time) error {
	next := r.Clone()
	lim := r.limits()
	for _, root := range c.Roots {
		if err := VerifyRoot(next.Root(), root, now, lim.Root); err != nil {
			return err
		}
		next.Roots = append(next.Roots, root)
	}
	for _, u := range c.Uploads {
		if u.Role != metadata.TARGETS && !tufmeta.ValidRoleName(u.Role) {
			return fmt.Errorf("%w: %q is not a valid role name", ErrNotDelegated, u.Role)
		}
		delegator := next.Targets[metadata.TARGETS]
		if u.Role == metadata.TARGETS {
			delegator = next.Root()
		} else if delegator == nil {
			return fmt.Errorf("%w: %s: no top-level targets yet", ErrNotDelegated, u.Role)
		}
		if err := VerifyUpload(delegator, next.Targets[u.Role], u, now, lim); err != nil {
			return err
		}
		next.Targets[u.Role] = bytes.Clone(u.Metadata)
	}
	// Uploads of release-signing roles alone were each verified under the
	// current delegations; only a new root or new top-level targets can
	// invalidate what is already published.
	topChanged := len(c.Roots) > 0 || slices.ContainsFunc(c.Uploads, func(u Upload) bool { return u.Role == metadata.TARGETS })
	if topChanged {
		if err := next.consistent(); err != nil {
			return err
		}
	}
	*r = *next
	return nil
}

// consistent checks that the offline-signed part verifies end to end.
func (r *Repository) consistent() error {
	root, err := parse[metadata.RootType](r.Root())
	if err != nil {
		return err
	}
	top, err := parse[metadata.TargetsType](r.Targets[metadata.TARGETS])
	if err != nil {
		return fmt.Errorf("%w: top-level targets: %v", ErrInconsistent, err)
	}
	var bad []string
	if err := verify(root, metadata.TARGETS, top); err != nil {
		bad = append(bad, "targets (not signed by the targets keys of the latest root)")
	}
	if top.Signed.Delegations != nil {
		for _, d := range top.Signed.Delegations.Roles {
			b, ok := r.Targets[d.Name]
			if !ok {
				continue
			}
			m, err := parse[metadata.TargetsType](b)
			if err == nil {
				err = verify(top, d.Name, m)
			}
			if err != nil {
				bad = append(bad, d.Name+" (not signed by its delegated keys: re-sign it in the same change)")
			}
		}
	}
	if len(bad) > 0 {
		return fmt.Errorf("%w: %v", ErrInconsistent, bad)
	}
	return nil
}

// Publish signs a new snapshot when the targets roles changed, the current
// one is past half its lifetime, or it no longer verifies under the latest
// root (online key rotation); and a new timestamp when the snapshot changed
// or the timestamp is past half its lifetime or no longer verifies. It
// returns the files it created (nil when nothing was due). The server runs
// it after every Apply and periodically, one replica at a time.
func (r *Repository) Publish(o Online, now time.Time) ([]File, error) {
	o = o.withDefaults()
	root, err := parse[metadata.RootType](r.Root())
	if err != nil {
		return nil, err
	}
	if r.Targets[metadata.TARGETS] == nil {
		return nil, fmt.Errorf("publish: no top-level targets")
	}
	lim := r.limits()
	var out []File
	if r.snapshotDue(root, now, o.SnapshotLifetime) {
		b, err := NextSnapshot(r.Snapshot, r.Targets, now.Add(o.SnapshotLifetime))
		if err != nil {
			return nil, err
		}
		if b, err = signOnline(root, metadata.SNAPSHOT, b, o.Snapshot, lim.Snapshot); err != nil {
			return nil, err
		}
		r.Snapshot = b
		info, _ := Describe(b)
		out = append(out, File{Name: versioned(info.Version, metadata.SNAPSHOT), Data: b})
	}
	if len(out) > 0 || r.timestampDue(root, now, o.TimestampLifetime) {
		b, err := NextTimestamp(r.Timestamp, r.Snapshot, now.Add(o.TimestampLifetime))
		if err != nil {
			return nil, err
		}
		if b, err = signOnline(root, metadata.TIMESTAMP, b, o.Timestamp, lim.Timestamp); err != nil {
			return nil, err
		}
		r.Timestamp = b
		out = append(out, File{Name: "timestamp.json", Data: b})
	}
	return out, nil
}

// signOnline signs b and checks that the result verifies under root, so a
// server configured with the wrong keys fails here instead of on devices.
func signOnline(root *metadata.Metadata[metadata.RootType], role string, b []byte, signers []Signer, limit int64) ([]byte, error) {
	b, err := Sign(b, signers...)
	if err != nil {
		return nil, fmt.Errorf("sign %s: %w", role, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%w: %s is %d bytes, limit %d", ErrTooLarge, role, len(b), limit)
	}
	var m any
	if role == metadata.SNAPSHOT {
		m, err = parse[metadata.SnapshotType](b)
	} else {
		m, err = parse[metadata.TimestampType](b)
	}
	if err != nil {
		return nil, err
	}
	if err := verify(root, role, m); err != nil {
		return nil, fmt.Errorf("sign %s: the configured keys are not the %s keys of root version %d: %w", role, role, root.Signed.Version, err)
	}
	return b, nil
}

func (r *Repository) snapshotDue(root *metadata.Metadata[metadata.RootType], now time.Time, lifetime time.Duration) bool {
	if r.Snapshot == nil {
		return true
	}
	m, err := parse[metadata.SnapshotType](r.Snapshot)
	if err != nil || verify(root, metadata.SNAPSHOT, m) != nil || m.Signed.Expires.Sub(now) < lifetime/2 {
		return true
	}
	if len(m.Signed.Meta) != len(r.Targets) {
		return true
	}
	for name, b := range r.Targets {
		mf, ok := m.Signed.Meta[name+".json"]
		if !ok || mf == nil {
			return true
		}
		want := metaFile(0, b)
		info, err := Describe(b)
		if err != nil || mf.Version != info.Version || mf.Length != want.Length || !mf.Hashes.Equal(want.Hashes) {
			return true
		}
	}
	return false
}

func (r *Repository) timestampDue(root *metadata.Metadata[metadata.RootType], now time.Time, lifetime time.Duration) bool {
	if r.Timestamp == nil {
		return true
	}
	m, err := parse[metadata.TimestampType](r.Timestamp)
	return err != nil || verify(root, metadata.TIMESTAMP, m) != nil || m.Signed.Expires.Sub(now) < lifetime/2
}

// Files lists every current file under its consistent-snapshot name: all
// root versions, the latest version of each targets role, the snapshot
// and timestamp.json.
func (r *Repository) Files() []File {
	var out []File
	for i, b := range r.Roots {
		out = append(out, File{Name: versioned(int64(i+1), metadata.ROOT), Data: b})
	}
	names := slices.Sorted(maps.Keys(r.Targets))
	for _, name := range names {
		info, err := Describe(r.Targets[name])
		if err != nil {
			continue
		}
		out = append(out, File{Name: versioned(info.Version, name), Data: r.Targets[name]})
	}
	if r.Snapshot != nil {
		if info, err := Describe(r.Snapshot); err == nil {
			out = append(out, File{Name: versioned(info.Version, metadata.SNAPSHOT), Data: r.Snapshot})
		}
	}
	if r.Timestamp != nil {
		out = append(out, File{Name: "timestamp.json", Data: r.Timestamp})
	}
	return out
}

// File returns a current file by name.
func (r *Repository) File(name string) ([]byte, bool) {
	for _, f := range r.Files() {
		if f.Name == name {
			return f.Data, true
		}
	}
	return nil, false
}

func versioned(version int64, role string) string {
	return strconv.FormatInt(version, 10) + "." + role + ".json"
}

// Expiry is when a role's current metadata expires.
type Expiry struct {
	Role    string
	Version int64
	Expires time.Time
	// Offline roles (root, targets, release-signing roles) need a person
	// with keys to re-sign them before Expires; an expired one stops the
	// fleet's updates.
	Offline bool
}

// Expiries lists the expiry of every current role, soonest first, for
// readiness checks and metrics.
func (r *Repository) Expiries() ([]Expiry, error) {
	var out []Expiry
	add := func(role string, b []byte, offline bool) error {
		if b == nil {
			return nil
		}
		info, err := Describe(b)
		if err != nil {
			return fmt.Errorf("%s: %w", role, err)
		}
		out = append(out, Expiry{Role: role, Version: info.Version, Expires: info.Expires, Offline: offline})
		return nil
	}
	errs := []error{add(metadata.ROOT, r.Root(), true), add(metadata.SNAPSHOT, r.Snapshot, false), add(metadata.TIMESTAMP, r.Timestamp, false)}
	for name, b := range r.Targets {
		errs = append(errs, add(name, b, true))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Expires.Equal(out[j].Expires) {
			return out[i].Expires.Before(out[j].Expires)
		}
		return out[i].Role < out[j].Role
	})
	return out, nil
}

// CheckSigners reports whether signers hold a threshold of the keys the
// latest root gives role (e.g. tufmeta.RoleDirector). The server calls it
// at start and after a root rotation to learn that it must switch keys.
func (r *Repository) CheckSigners(role string, signers ...Signer) error {
	root, err := parse[metadata.RootType](r.Root())
	if err != nil {
		return err
	}
	rl, ok := root.Signed.Roles[role]
	if !ok {
		return fmt.Errorf("root lists no role %s", role)
	}
	held := map[string]bool{}
	for _, s := range signers {
		k, err := SignerKey(s)
		if err != nil {
			return err
		}
		id, err := KeyID(k)
		if err != nil {
			return err
		}
		if slices.Contains(rl.KeyIDs, id) {
			held[id] = true
		}
	}
	if n := len(held); n < rl.Threshold {
		return fmt.Errorf("%w: %d of the given keys are %s keys in root version %d, threshold %d",
			ErrBadSignature, n, role, root.Signed.Version, rl.Threshold)
	}
	return nil
}
