// Package tufrepotest is a test fake of an Updraft update server's TUF
// side: it builds a real repository with tufrepo (offline root, targets and
// one release-signing role per product line; online snapshot, timestamp and
// director keys), publishes it into an in-memory Server that serves
// metadata by file name the way the device API will, and signs director
// documents. Tests attack devices by editing what the Server serves.
package tufrepotest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// Options configures New.
type Options struct {
	Clock clock.Clock
	// Lines are device types; each gets a release-signing role of the
	// same name delegated "<type>/*/*/*".
	Lines []string
	// RootKeys and RootThreshold default to 1.
	RootKeys, RootThreshold int
	// Online lifetimes (tufrepo defaults when zero).
	SnapshotLifetime, TimestampLifetime time.Duration
}

// OfflineLifetime is how long the fake's offline-signed metadata lasts.
const OfflineLifetime = 365 * 24 * time.Hour

// Repo is a repository with all its keys.
type Repo struct {
	t     testing.TB
	Clock clock.Clock

	Root          []tufrepo.Signer
	RootThreshold int
	Targets       tufrepo.Signer
	Lines         map[string]tufrepo.Signer
	Director      tufrepo.Signer
	Online        tufrepo.Online

	Repo   *tufrepo.Repository
	Server *Server

	mu       sync.Mutex
	counters map[string]int64
}

// Key returns a new ed25519 signer.
func Key(t testing.TB) tufrepo.Signer {
	t.Helper()
	k, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	if err != nil {
		t.Fatal(err)
	}
	s, err := tufrepo.NewSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Keys returns the public TUF keys of signers.
func Keys(t testing.TB, signers ...tufrepo.Signer) []*metadata.Key {
	t.Helper()
	ks, err := tufrepo.SignerKeys(signers...)
	if err != nil {
		t.Fatal(err)
	}
	return ks
}

// New builds and publishes a repository.
func New(t testing.TB, o Options) *Repo {
	t.Helper()
	if o.RootKeys == 0 {
		o.RootKeys = 1
	}
	if o.RootThreshold == 0 {
		o.RootThreshold = 1
	}
	r := &Repo{
		t: t, Clock: o.Clock, RootThreshold: o.RootThreshold, Targets: Key(t),
		Lines: map[string]tufrepo.Signer{}, Director: Key(t), Server: NewServer(),
		counters: map[string]int64{},
		Online: tufrepo.Online{
			Snapshot: []tufrepo.Signer{Key(t)}, Timestamp: []tufrepo.Signer{Key(t)},
			SnapshotLifetime: o.SnapshotLifetime, TimestampLifetime: o.TimestampLifetime,
		},
	}
	for range o.RootKeys {
		r.Root = append(r.Root, Key(t))
	}
	var dels []tufrepo.Delegation
	for _, line := range o.Lines {
		r.Lines[line] = Key(t)
		dels = append(dels, tufrepo.Delegation{Name: line, Paths: tufmeta.DelegationPaths(line), Keys: Keys(t, r.Lines[line]), Threshold: 1})
	}
	now := r.Clock.Now()
	root, targets, err := tufrepo.Init(tufrepo.InitSpec{
		Root: r.Root, RootThreshold: o.RootThreshold,
		Targets: []tufrepo.Signer{r.Targets}, TargetsThreshold: 1,
		Snapshot:    tufrepo.RoleKeys{Keys: Keys(t, r.Online.Snapshot...), Threshold: 1},
		Timestamp:   tufrepo.RoleKeys{Keys: Keys(t, r.Online.Timestamp...), Threshold: 1},
		Director:    tufrepo.RoleKeys{Keys: Keys(t, r.Director), Threshold: 1},
		RootExpires: now.Add(OfflineLifetime), TargetsExpires: now.Add(OfflineLifetime),
		Delegations: dels,
	})
	if err != nil {
		t.Fatal(err)
	}
	if r.Repo, err = tufrepo.NewRepository(root, targets, now, tufmeta.Limits{}); err != nil {
		t.Fatal(err)
	}
	r.Publish()
	return r
}

// TrustedRoot is root version 1, as shipped with devices.
func (r *Repo) TrustedRoot() []byte { return r.Repo.Roots[0] }

// Publish re-signs online metadata as due and serves every current file.
func (r *Repo) Publish() {
	r.t.Helper()
	if _, err := r.Repo.Publish(r.Online, r.Clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	for _, f := range r.Repo.Files() {
		r.Server.Put(f.Name, f.Data)
	}
}

// Apply applies a change and publishes.
func (r *Repo) Apply(c tufrepo.Change) {
	r.t.Helper()
	if err := r.Repo.Apply(c, r.Clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	r.Publish()
}

// Release describes a release for one product line.
type Release struct {
	Version         string
	SecurityVersion int64
	HWRevs          []string // default ["A"]
	Component       string   // default "rootfs"
	Artifacts       int      // default 1
	Size            int      // bytes per artifact, default 1024
}

// Artifact is a released artifact and its bytes.
type Artifact struct {
	Target tufrepo.Target
	Data   []byte
}

// Content returns deterministic bytes for a target path.
func Content(path string, size int) []byte {
	var b bytes.Buffer
	seed := sha256.Sum256([]byte(path))
	for b.Len() < size {
		b.Write(seed[:])
		seed = sha256.Sum256(seed[:])
	}
	return b.Bytes()[:size]
}

// Artifacts builds the artifacts of a release without signing anything.
func Artifacts(line string, rel Release) []Artifact {
	if len(rel.HWRevs) == 0 {
		rel.HWRevs = []string{"A"}
	}
	if rel.Component == "" {
		rel.Component = "rootfs"
	}
	if rel.Artifacts == 0 {
		rel.Artifacts = 1
	}
	if rel.Size == 0 {
		rel.Size = 1024
	}
	var out []Artifact
	for i := range rel.Artifacts {
		p := tufmeta.TargetPath(line, rel.Component, rel.Version, fmt.Sprintf("image-%02d.bin", i))
		data := Content(p, rel.Size)
		sum := sha256.Sum256(data)
		out = append(out, Artifact{Data: data, Target: tufrepo.Target{
			Path: p, Length: int64(len(data)), SHA256: hex.EncodeToString(sum[:]),
			Custom: tufmeta.TargetCustom{
				Version: rel.Version, SecurityVersion: rel.SecurityVersion, DeviceType: line,
				HWRevs: slices.Clone(rel.HWRevs), ArtifactType: tufmeta.TypeRawImage, Component: rel.Component,
			},
		}})
	}
	return out
}

// SignRelease returns the line's next role version with the artifacts
// added, signed by signers (default: the line's key), and the upload.
func (r *Repo) SignRelease(line string, arts []Artifact, signers ...tufrepo.Signer) tufrepo.Upload {
	r.t.Helper()
	if len(signers) == 0 {
		signers = []tufrepo.Signer{r.Lines[line]}
	}
	u := tufrepo.Upload{Role: line, Artifacts: map[string]tufrepo.Artifact{}}
	var add []tufrepo.Target
	for _, a := range arts {
		add = append(add, a.Target)
		u.Artifacts[a.Target.Path] = tufrepo.Artifact{Length: a.Target.Length, SHA256: a.Target.SHA256}
	}
	next, err := tufrepo.NextTargets(r.Repo.Targets[line], tufrepo.TargetsEdit{Expires: r.Clock.Now().Add(OfflineLifetime), Add: add})
	if err != nil {
		r.t.Fatal(err)
	}
	if u.Metadata, err = tufrepo.Sign(next, signers...); err != nil {
		r.t.Fatal(err)
	}
	return u
}

// Release signs, uploads and publishes a release and returns its artifacts.
func (r *Repo) Release(line string, rel Release) []Artifact {
	r.t.Helper()
	arts := Artifacts(line, rel)
	r.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{r.SignRelease(line, arts)}})
	return arts
}

// NextCounter returns the device's next director counter.
func (r *Repo) NextCounter(deviceID string) int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counters[deviceID]++
	return r.counters[deviceID]
}

// Assign signs a director document assigning a to the device with the
// next counter; edit may change the assignment before signing.
func (r *Repo) Assign(deviceID string, a Artifact, edit ...func(*tufrepo.Assignment)) []byte {
	r.t.Helper()
	as := tufrepo.Assignment{
		DeviceID: deviceID, AssignmentID: fmt.Sprintf("asg-%s-%s", deviceID, a.Target.Custom.Version),
		CampaignID: "cmp-1", Target: a.Target, Counter: r.NextCounter(deviceID),
		Expires: r.Clock.Now().Add(7 * 24 * time.Hour),
		Gates:   tufmeta.GateOverrides{MinBattery: 30},
	}
	for _, e := range edit {
		e(&as)
	}
	doc, err := tufrepo.SignAssignment(as, r.Director)
	if err != nil {
		r.t.Fatal(err)
	}
	return doc
}

// Finalize signs a finalize document for the device.
func (r *Repo) Finalize(deviceID, version string, securityVersion int64) []byte {
	r.t.Helper()
	doc, err := tufrepo.SignFinalize(tufrepo.Finalize{
		DeviceID: deviceID, Version: version, SecurityVersion: securityVersion,
		Counter: r.NextCounter(deviceID), Expires: r.Clock.Now().Add(7 * 24 * time.Hour),
	}, r.Director)
	if err != nil {
		r.t.Fatal(err)
	}
	return doc
}

// Server serves metadata files by name, like the device API's metadata
// route, and counts what it serves. It implements verifier.Fetcher.
type Server struct {
	mu      sync.Mutex
	files   map[string][]byte
	fetched []string
	bytes   int64
}

// NewServer returns an empty server.
func NewServer() *Server { return &Server{files: map[string][]byte{}} }

// Get returns the named file read up to maxLength bytes, or go-tuf's
// 404 error when there is no such file.
func (s *Server) Get(_ context.Context, name string, maxLength int64) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b, ok := s.files[name]
	if !ok {
		return nil, &metadata.ErrDownloadHTTP{StatusCode: 404, URL: name}
	}
	if int64(len(b)) > maxLength {
		b = b[:maxLength]
	}
	s.fetched = append(s.fetched, name)
	s.bytes += int64(len(b))
	return bytes.Clone(b), nil
}

// Put serves data under name.
func (s *Server) Put(name string, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files[name] = bytes.Clone(data)
}

// File returns what is served under name.
func (s *Server) File(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.files[name])
}

// Delete stops serving name.
func (s *Server) Delete(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.files, name)
}

// Files returns a copy of everything served.
func (s *Server) Files() map[string][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.files)
}

// SetFiles replaces everything served (a frozen or rolled-back mirror).
func (s *Server) SetFiles(files map[string][]byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.files = maps.Clone(files)
}

// Stats reports the files and bytes served since the last ResetStats.
func (s *Server) Stats() (names []string, total int64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.fetched), s.bytes
}

// ResetStats zeroes the counters.
func (s *Server) ResetStats() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fetched, s.bytes = nil, 0
}
