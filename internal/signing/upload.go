package signing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// maxReleasesPerUpload bounds the releases one upload may add targets of,
// and so the store reads it costs.
const maxReleasesPerUpload = 64

// writeAttempts bounds the retries of a write that lost a race with
// another writer.
const writeAttempts = 8

// DefaultComponent is the target path component of artifacts uploaded
// without one.
const DefaultComponent = "main"

// Component is the component segment of an artifact's target path: its
// component, or DefaultComponent when it has none.
func Component(c string) string {
	if c == "" {
		return DefaultComponent
	}
	return c
}

// TargetPath is the target path the offline-signed metadata must list for
// an artifact of a release: "<device_type>/<component>/<version>/<name>".
func TargetPath(art store.Artifact, version string) string {
	return tufmeta.TargetPath(art.DeviceType, Component(art.Component), version, art.Name)
}

// RoleVersion names one stored metadata file.
type RoleVersion struct {
	Role    string `json:"role"`
	Version int64  `json:"version"`
}

// Result is what an upload changed.
type Result struct {
	// Stored lists the files the upload added, roots first.
	Stored []RoleVersion `json:"stored"`
	// Published is true when this replica re-signed snapshot and
	// timestamp right away; otherwise the replica holding the publisher
	// lease does so within its publish interval.
	Published bool `json:"published"`
	// Snapshot and Timestamp are the versions devices see now.
	Snapshot  int64 `json:"snapshot_version"`
	Timestamp int64 `json:"timestamp_version"`
}

// Apply checks and stores signed metadata: new root versions (in order)
// and targets metadata of "targets" or a release-signing role, as one
// change (tufrepo.Repository.Apply), then publishes a new snapshot and
// timestamp. The first change of a tenant must hold root version 1 and
// top-level targets version 1 (what `updraft keys init` writes).
//
// Every new or changed target must match, in length and SHA-256, the
// artifact of the release with its version stored at its path
// (TargetPath), and agree with it on hardware revisions, type, compression
// and base version. Refusals are tufrepo's errors (*tufrepo.StaleVersionError
// for a version that is not the stored one plus one) or *InputError.
//
// A root that would leave the server without a usable snapshot, timestamp
// or director key is refused: devices would stop updating.
func (s *Service) Apply(ctx context.Context, c tufrepo.Change, by store.Actor) (Result, error) {
	if len(c.Roots) == 0 && len(c.Uploads) == 0 {
		return Result{}, &InputError{Code: "empty_change", Msg: "the change holds no metadata"}
	}
	s.writeMu.Lock()
	var res Result
	var err error
	for range writeAttempts {
		res, err = s.applyOnce(ctx, c, by)
		if !errors.Is(err, store.ErrConflict) {
			break
		}
	}
	s.writeMu.Unlock()
	if err != nil {
		return Result{}, err
	}
	if res.Published, err = s.PublishNow(ctx); err != nil {
		s.log.WarnContext(ctx, "signing: publish after upload", "err", err)
	}
	if !res.Published {
		s.poke()
	}
	if st, err := s.current(ctx); err == nil && st.repo != nil {
		res.Snapshot, res.Timestamp = version(st.repo.Snapshot), version(st.repo.Timestamp)
	}
	return res, nil
}

func version(b []byte) int64 {
	if info, err := tufrepo.Describe(b); err == nil {
		return info.Version
	}
	return 0
}

func (s *Service) applyOnce(ctx context.Context, c tufrepo.Change, by store.Actor) (Result, error) {
	st, err := s.reload(ctx)
	if err != nil {
		return Result{}, err
	}
	now := s.clock.Now()
	var repo *tufrepo.Repository
	if st.repo == nil {
		if repo, c, err = s.initial(c, now); err != nil {
			return Result{}, err
		}
	} else {
		repo = st.repo.Clone()
	}
	for i, u := range c.Uploads {
		if c.Uploads[i].Artifacts, err = s.artifactFacts(ctx, repo.Targets[u.Role], u); err != nil {
			return Result{}, err
		}
	}
	if err := repo.Apply(c, now); err != nil {
		return Result{}, err
	}
	if err := s.checkOnlineKeys(ctx, repo); err != nil {
		return Result{}, err
	}
	var old *tufrepo.Repository
	if st.repo != nil {
		old = st.repo
	}
	files, stored, err := newFiles(old, repo)
	if err != nil {
		return Result{}, err
	}
	details := map[string]any{}
	for _, rv := range stored {
		details[rv.Role] = rv.Version
	}
	action := "tuf.upload"
	if old == nil {
		action = "tuf.init"
	}
	gen, err := s.store.WriteTUF(ctx, s.tenant, store.TUFWrite{
		Generation: st.gen, Files: files, Action: action, By: by, Details: details, Now: now,
	})
	if err != nil {
		return Result{}, err
	}
	next, err := newState(gen, repo)
	if err != nil {
		return Result{}, err
	}
	s.install(next)
	s.log.InfoContext(ctx, "signing: metadata stored", "files", describeStored(stored), "generation", gen, "by", by.Name)
	return Result{Stored: stored}, nil
}

// initial starts a repository from the first change: root version 1 and
// top-level targets (of any version the root's keys signed).
func (s *Service) initial(c tufrepo.Change, now time.Time) (*tufrepo.Repository, tufrepo.Change, error) {
	i := slices.IndexFunc(c.Uploads, func(u tufrepo.Upload) bool { return u.Role == metadata.TARGETS })
	if len(c.Roots) == 0 || i < 0 {
		return nil, c, &InputError{Code: "not_initialized",
			Msg: "the server has no TUF repository yet: upload root version 1 and top-level targets together first (updraft keys init)"}
	}
	repo, err := tufrepo.NewRepository(c.Roots[0], c.Uploads[i].Metadata, now, s.opts.Limits)
	if err != nil {
		return nil, c, err
	}
	rest := tufrepo.Change{Roots: c.Roots[1:]}
	rest.Uploads = append(slices.Clone(c.Uploads[:i]), c.Uploads[i+1:]...)
	return repo, rest, nil
}

// checkOnlineKeys refuses a repository whose latest root gives a role this
// server signs for keys it does not hold (to a threshold).
func (s *Service) checkOnlineKeys(ctx context.Context, repo *tufrepo.Repository) error {
	info, _ := tufrepo.Describe(repo.Root())
	for _, role := range OnlineRoles {
		signers := s.signersFor(ctx, repo.Root(), role, false)
		if err := repo.CheckSigners(role, signers...); err != nil {
			return &InputError{Code: "online_keys", Err: err, Msg: fmt.Sprintf(
				"root version %d lists %s keys this server does not hold (to its threshold): generate them with `updraft keys online --generate %s` or upload the private key, and list their public keys in root",
				info.Version, role, role)}
		}
	}
	return nil
}

// newFiles lists what next holds that prev (nil: nothing) does not.
func newFiles(prev, next *tufrepo.Repository) ([]store.TUFFile, []RoleVersion, error) {
	var files []store.TUFFile
	var stored []RoleVersion
	have := 0
	if prev != nil {
		have = len(prev.Roots)
	}
	add := func(role string, b []byte) error {
		info, err := tufrepo.Describe(b)
		if err != nil {
			return err
		}
		files = append(files, store.TUFFile{Role: role, Version: info.Version, Data: b, Expires: info.Expires})
		stored = append(stored, RoleVersion{Role: role, Version: info.Version})
		return nil
	}
	for _, b := range next.Roots[have:] {
		if err := add(metadata.ROOT, b); err != nil {
			return nil, nil, err
		}
	}
	for _, role := range slices.Sorted(maps.Keys(next.Targets)) {
		b := next.Targets[role]
		if prev != nil && bytes.Equal(prev.Targets[role], b) {
			continue
		}
		if err := add(role, b); err != nil {
			return nil, nil, err
		}
	}
	return files, stored, nil
}

// artifactFacts collects, for every target of u that is new or changed
// against stored, the stored artifact at its path: the facts
// tufrepo.VerifyUpload compares. A signed target that disagrees with its
// artifact on hardware revisions, type, compression or base version is
// refused here, with the field named.
func (s *Service) artifactFacts(ctx context.Context, stored []byte, u tufrepo.Upload) (map[string]tufrepo.Artifact, error) {
	ts, err := tufrepo.Targets(u.Metadata)
	if err != nil {
		return nil, nil // VerifyUpload reports what is wrong with the bytes
	}
	old := map[string]tufrepo.Target{}
	if stored != nil {
		if prev, err := tufrepo.Targets(stored); err == nil {
			for _, t := range prev {
				old[t.Path] = t
			}
		}
	}
	changed := map[string]map[string]tufrepo.Target{} // version → path → target
	for _, t := range ts {
		if p, ok := old[t.Path]; ok && p.Length == t.Length && p.SHA256 == t.SHA256 && p.Custom.Equal(t.Custom) {
			continue
		}
		_, _, v, _, err := tufmeta.SplitTargetPath(t.Path)
		if err != nil {
			continue // VerifyUpload refuses the path
		}
		if changed[v] == nil {
			changed[v] = map[string]tufrepo.Target{}
		}
		changed[v][t.Path] = t
	}
	if len(changed) > maxReleasesPerUpload {
		return nil, &InputError{Code: "too_many_releases",
			Msg: fmt.Sprintf("the upload adds targets of %d releases; at most %d per upload", len(changed), maxReleasesPerUpload)}
	}
	facts := map[string]tufrepo.Artifact{}
	for v, targets := range changed {
		if _, err := semver.Parse(v); err != nil {
			continue // no release can have it; VerifyUpload says which target has no artifact
		}
		rel, err := s.store.ReleaseByVersion(ctx, s.tenant, v)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read release %s: %w", v, err)
		}
		for _, art := range rel.Artifacts {
			p := TargetPath(art, rel.Version)
			t, ok := targets[p]
			if !ok {
				continue
			}
			if err := agrees(t, art); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", tufrepo.ErrArtifactMismatch, p, err)
			}
			facts[p] = tufrepo.Artifact{Length: art.Size, SHA256: strings.ToLower(art.SHA256)}
		}
	}
	return facts, nil
}

// agrees compares the signed fields of t with the stored artifact.
func agrees(t tufrepo.Target, art store.Artifact) error {
	c := t.Custom
	switch {
	case !sameSet(c.HWRevs, art.HWRevs):
		return fmt.Errorf("signed for hardware revisions %v, the release's artifact suits %v", c.HWRevs, art.HWRevs)
	case c.ArtifactType != string(art.Type):
		return fmt.Errorf("signed as artifact type %q, the release's artifact is %q", c.ArtifactType, art.Type)
	case c.Compression != art.Compression:
		return fmt.Errorf("signed with compression %q, the release's artifact has %q", c.Compression, art.Compression)
	case c.FromVersion != art.FromVersion:
		return fmt.Errorf("signed as a delta from %q, the release's artifact applies to %q", c.FromVersion, art.FromVersion)
	}
	return nil
}

func sameSet(a, b []string) bool {
	x, y := slices.Clone(a), slices.Clone(b)
	slices.Sort(x)
	slices.Sort(y)
	return slices.Equal(slices.Compact(x), slices.Compact(y))
}

// describeStored renders stored files for logs and messages.
func describeStored(rv []RoleVersion) string {
	var parts []string
	for _, r := range rv {
		parts = append(parts, strconv.FormatInt(r.Version, 10)+"."+r.Role+".json")
	}
	return strings.Join(parts, ", ")
}
