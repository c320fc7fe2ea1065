package verifier

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/theupdateframework/go-tuf/v2/metadata/trustedmetadata"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/tufmeta"
)

// Refresh implements Verifier. It follows the TUF client workflow with
// go-tuf's trustedmetadata state machine: the root chain (until the
// fetcher reports 404), timestamp, snapshot, top-level targets, then only
// the delegated roles whose paths can cover "<device type>/…". Every file
// it accepts is persisted atomically before the next is fetched; persisted
// copies are loaded first so versions never go backwards across restarts.
//
// On a refusal the previous trusted set stays usable (until it expires)
// unless the root changed, in which case nothing verified under the old
// root is trusted any more.
func (c *Client) Refresh(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	rootBefore := c.rootMeta.Signed.Version
	tm, err := c.update(ctx, c.now(), true)
	if err != nil {
		if c.rootMeta.Signed.Version != rootBefore {
			c.trusted = nil
		}
		if ReasonOf(err) != "" {
			c.lastRefusal = err
		}
		return err
	}
	c.trusted, c.lastRefusal = tm, nil
	return nil
}

// update builds a trusted set from the persisted metadata and, when remote
// is set, from the fetcher.
func (c *Client) update(ctx context.Context, now time.Time, remote bool) (*trustedmetadata.TrustedMetadata, error) {
	var tm *trustedmetadata.TrustedMetadata
	if err := guard(func() (err error) { tm, err = trustedmetadata.New(c.root); return err }); err != nil {
		return nil, fmt.Errorf("verifier: trusted root: %w", err)
	}
	tm.RefTime = now
	lim := c.cfg.Limits

	if remote {
		if err := c.updateRoot(ctx, tm); err != nil {
			return nil, err
		}
	}

	// Timestamp: the persisted copy (even if expired) guards against
	// rollback; an equal remote version keeps it.
	if local := c.readLocal(fileTimestamp, lim.Timestamp); local != nil {
		_ = guard(func() error { _, err := tm.UpdateTimestamp(local); return err })
	}
	if remote {
		b, err := c.fetch(ctx, "timestamp.json", lim.Timestamp)
		if err != nil {
			return nil, err
		}
		if err := parses[metadata.TimestampType]("timestamp", b); err != nil {
			return nil, err
		}
		err = guard(func() error { _, err := tm.UpdateTimestamp(b); return err })
		switch {
		case errors.Is(err, &metadata.ErrEqualVersionNumber{}):
		case err != nil:
			return nil, classify("timestamp", err, func() Reason { return ReasonRollback })
		default:
			if err := c.persist(fileTimestamp, b); err != nil {
				return nil, err
			}
		}
	}
	if tm.Timestamp == nil {
		return nil, errors.New("verifier: no trusted timestamp")
	}

	// Snapshot: the persisted copy is enough if it is the one the
	// timestamp names; otherwise it still guards against rollback.
	// go-tuf skips the hash check for a trusted local copy; it must still
	// be the very file the timestamp names to spare the download.
	current := false
	if local := c.readLocal(fileSnapshot, lim.Snapshot); local != nil {
		current = guard(func() error { _, err := tm.UpdateSnapshot(local, true); return err }) == nil &&
			guard(func() error { return tm.Timestamp.Signed.Meta["snapshot.json"].VerifyLengthHashes(local) }) == nil
	}
	if !current {
		if !remote {
			return nil, errors.New("verifier: no current snapshot persisted")
		}
		if err := c.updateSnapshot(ctx, tm); err != nil {
			return nil, err
		}
	}

	if err := c.updateRole(ctx, tm, metadata.TARGETS, metadata.ROOT, lim.Targets, remote); err != nil {
		return nil, err
	}
	top := tm.Targets[metadata.TARGETS]
	if top.Signed.Delegations == nil {
		return tm, nil
	}
	loaded := 0
	for _, r := range top.Signed.Delegations.Roles {
		if !covers(r, c.cfg.DeviceType) {
			continue
		}
		if !tufmeta.ValidRoleName(r.Name) {
			c.cfg.Logger.Warn("verifier: skipping delegated role with an unusable name", "role", r.Name)
			continue
		}
		if loaded++; loaded > c.cfg.MaxDelegations {
			c.cfg.Logger.Warn("verifier: too many delegated roles cover this device type", "limit", c.cfg.MaxDelegations)
			break
		}
		if err := c.updateRole(ctx, tm, r.Name, metadata.TARGETS, lim.Delegated, remote); err != nil {
			return nil, err
		}
	}
	return tm, nil
}

func (c *Client) updateRoot(ctx context.Context, tm *trustedmetadata.TrustedMetadata) error {
	for i := 0; i < c.cfg.MaxRootRotations; i++ {
		next := tm.Root.Signed.Version + 1
		b, err := c.fetch(ctx, versioned(next, metadata.ROOT), c.cfg.Limits.Root)
		var httpErr *metadata.ErrDownloadHTTP
		if errors.As(err, &httpErr) && httpErr.StatusCode == 404 {
			return nil
		}
		if err != nil {
			return err
		}
		if err := parses[metadata.RootType]("root", b); err != nil {
			return err
		}
		if err := guard(func() error { _, err := tm.UpdateRoot(b); return err }); err != nil {
			return classify("root", err, func() Reason { return ReasonRollback })
		}
		if err := c.persist(fileRoot, b); err != nil {
			return err
		}
		c.root, c.rootMeta = b, tm.Root
		c.cfg.Logger.Info("verifier: root rotated", "version", next)
	}
	return nil
}

func (c *Client) updateSnapshot(ctx context.Context, tm *trustedmetadata.TrustedMetadata) error {
	meta := tm.Timestamp.Signed.Meta["snapshot.json"]
	if meta == nil {
		return refusal(ReasonMalformed, "timestamp names no snapshot", nil)
	}
	// The timestamp's expiry is checked before anything is downloaded.
	if tm.Timestamp.Signed.IsExpired(tm.RefTime) {
		return refusal(ReasonExpired, fmt.Sprintf("timestamp version %d expired at %s", tm.Timestamp.Signed.Version, tm.Timestamp.Signed.Expires.Format(time.RFC3339)), nil)
	}
	b, err := c.fetch(ctx, versioned(meta.Version, metadata.SNAPSHOT), capTo(c.cfg.Limits.Snapshot, meta.Length))
	if err != nil {
		return err
	}
	if err := parses[metadata.SnapshotType]("snapshot", b); err != nil {
		return err
	}
	err = guard(func() error { _, err := tm.UpdateSnapshot(b, false); return err })
	if err != nil {
		return classify("snapshot", err, func() Reason {
			// A snapshot other than the one the timestamp names is a
			// mix-and-match; the one it names but with role versions
			// going backwards is a rollback.
			if v, ok := versionOf[metadata.SnapshotType](b); ok && v != meta.Version {
				return ReasonMixAndMatch
			}
			return ReasonRollback
		})
	}
	return c.persist(fileSnapshot, b)
}

// updateRole loads role (delegated by parent) from its persisted copy if
// that is the version the snapshot names, else from the fetcher. A
// delegated role the snapshot does not list has published nothing yet.
func (c *Client) updateRole(ctx context.Context, tm *trustedmetadata.TrustedMetadata, role, parent string, limit int64, remote bool) error {
	name := role + ".json"
	if local := c.readLocal(c.relRoleFile(role), limit); local != nil {
		if guard(func() error { _, err := tm.UpdateDelegatedTargets(local, role, parent); return err }) == nil {
			return nil
		}
	}
	meta := tm.Snapshot.Signed.Meta[name]
	if meta == nil {
		if role == metadata.TARGETS {
			return refusal(ReasonMixAndMatch, "snapshot lists no top-level targets", nil)
		}
		return nil
	}
	if !remote {
		return fmt.Errorf("verifier: %s version %d not persisted", role, meta.Version)
	}
	b, err := c.fetch(ctx, versioned(meta.Version, role), capTo(limit, meta.Length))
	if err != nil {
		return err
	}
	if meta.Length > 0 && int64(len(b)) != meta.Length || len(meta.Hashes) > 0 && meta.VerifyLengthHashes(b) != nil {
		return refusal(ReasonMixAndMatch, fmt.Sprintf("%s is not the version %d the snapshot names", name, meta.Version), nil)
	}
	if err := parses[metadata.TargetsType](role, b); err != nil {
		return err
	}
	err = guard(func() error { _, err := tm.UpdateDelegatedTargets(b, role, parent); return err })
	if err != nil {
		return classify(role, err, func() Reason { return ReasonMixAndMatch })
	}
	return c.persist(c.relRoleFile(role), b)
}

func (c *Client) relRoleFile(role string) string {
	if role == metadata.TARGETS {
		return fileTargets
	}
	return path.Join(dirRoles, role+".json")
}

// covers reports whether a delegation's paths can match a target path of
// the device type (whose first segment is the device type).
func covers(r metadata.DelegatedRole, deviceType string) bool {
	for _, p := range r.Paths {
		first, _, _ := strings.Cut(p, "/")
		if ok, _ := path.Match(first, deviceType); ok {
			return true
		}
	}
	return false
}

// fetch downloads a metadata file, refusing it if it is longer than limit.
func (c *Client) fetch(ctx context.Context, name string, limit int64) ([]byte, error) {
	b, err := c.cfg.Fetcher.Get(ctx, name, limit+1)
	if err != nil {
		return nil, fmt.Errorf("verifier: fetch %s: %w", name, err)
	}
	if int64(len(b)) > limit {
		return nil, refusal(ReasonTooLong, fmt.Sprintf("%s is larger than %d bytes", name, limit), nil)
	}
	return b, nil
}

func (c *Client) readLocal(name string, limit int64) []byte {
	b, err := devfs.ReadFile(c.cfg.FS, c.file(name), limit)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			c.cfg.Logger.Warn("verifier: ignoring persisted metadata", "file", name, "err", err)
		}
		return nil
	}
	return b
}

func (c *Client) persist(name string, b []byte) error {
	if err := devfs.WriteFileAtomic(c.cfg.FS, c.file(name), b, 0o600); err != nil {
		return fmt.Errorf("verifier: persist %s: %w", name, err)
	}
	return nil
}

func versioned(v int64, role string) string { return strconv.FormatInt(v, 10) + "." + role + ".json" }

// capTo is the download limit: the signed length when one is given (and
// smaller than the configured limit).
func capTo(limit, signed int64) int64 {
	if signed > 0 && signed < limit {
		return signed
	}
	return limit
}

// parses refuses bytes that are not metadata of type T.
func parses[T metadata.Roles](what string, b []byte) error {
	err := guard(func() error { _, err := new(metadata.Metadata[T]).FromBytes(b); return err })
	if err != nil {
		return refusal(ReasonMalformed, what+" cannot be parsed", err)
	}
	return nil
}

func versionOf[T metadata.Roles](b []byte) (int64, bool) {
	var v int64
	err := guard(func() error {
		m, err := new(metadata.Metadata[T]).FromBytes(b)
		if err != nil {
			return err
		}
		switch s := any(&m.Signed).(type) {
		case *metadata.SnapshotType:
			v = s.Version
		case *metadata.TargetsType:
			v = s.Version
		}
		return nil
	})
	return v, err == nil
}

// classify turns a go-tuf error for metadata that parsed into a refusal.
// versionReason decides what a bad version number means at this stage.
func classify(what string, err error, versionReason func() Reason) error {
	var (
		unsigned *metadata.ErrUnsignedMetadata
		expired  *metadata.ErrExpiredMetadata
		mismatch *metadata.ErrLengthOrHashMismatch
		version  *metadata.ErrBadVersionNumber
		repo     *metadata.ErrRepository
		value    *metadata.ErrValue
		typ      *metadata.ErrType
	)
	switch {
	case errors.As(err, &unsigned), errors.As(err, &value), errors.As(err, &typ):
		return refusal(ReasonBadSignature, what+" is not signed by a threshold of trusted keys", err)
	case errors.As(err, &expired):
		return refusal(ReasonExpired, what+" has expired", err)
	case errors.As(err, &mismatch):
		return refusal(ReasonMixAndMatch, what+" does not match the hashes or length it was announced with", err)
	case errors.As(err, &version):
		return refusal(versionReason(), what+" has an unexpected version", err)
	case errors.As(err, &repo):
		return refusal(versionReason(), what+" drops or changes what trusted metadata listed", err)
	default:
		return fmt.Errorf("verifier: %s: %w", what, err)
	}
}

func refusal(r Reason, detail string, err error) *Refusal {
	return &Refusal{Reason: r, Detail: detail, Err: err}
}
