package signing_test

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
)

var (
	t0    = time.Date(2026, 4, 1, 8, 0, 0, 0, time.UTC)
	admin = store.Actor{Kind: store.ActorUser, ID: "u-admin", Name: "admin"}
)

const line = "gw-200"

// rig is a store with a TUF repository set up the way `updraft keys init`
// does it, the offline keys that signed it, and signing services on it.
type rig struct {
	t     *testing.T
	ctx   context.Context
	st    *sqlstore.Store
	clock *clock.Fake
	kek   []byte
	svc   *signing.Service // the first replica
	reg   *prometheus.Registry

	root, targets, line tufrepo.Signer
	n                   int
}

func openStore(t *testing.T, backend string) *sqlstore.Store {
	t.Helper()
	ctx := context.Background()
	var (
		s   *sqlstore.Store
		err error
	)
	switch backend {
	case "sqlite":
		s, err = sqlite.Open(filepath.Join(t.TempDir(), "updraft.db"), nil)
	case "postgres":
		s, err = postgres.Open(ctx, testenv.Postgres(t), nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	return s
}

func newRig(t *testing.T, backend string, opts signing.Options) *rig {
	t.Helper()
	r := &rig{t: t, ctx: context.Background(), st: openStore(t, backend), clock: clock.NewFake(t0),
		kek: make([]byte, 32), root: tufrepotest.Key(t), targets: tufrepotest.Key(t), line: tufrepotest.Key(t)}
	if _, err := rand.Read(r.kek); err != nil {
		t.Fatal(err)
	}
	r.reg = prometheus.NewRegistry()
	r.svc = r.replica("replica-a", opts, r.reg)
	return r
}

// replica is another signing service on the same store and clock.
func (r *rig) replica(holder string, opts signing.Options, reg prometheus.Registerer) *signing.Service {
	r.t.Helper()
	s, err := signing.New(signing.Config{Store: r.st, Clock: r.clock, KeyEncryptionKey: r.kek, Holder: holder,
		Metrics: reg, Logger: slog.New(slog.DiscardHandler), Options: opts})
	if err != nil {
		r.t.Fatal(err)
	}
	return s
}

// onlineKeys generates the server's online keys and returns them by role.
func (r *rig) onlineKeys() map[string]tufrepo.RoleKeys {
	r.t.Helper()
	keys, err := r.svc.GenerateOnlineKeys(r.ctx, signing.OnlineRoles, admin)
	if err != nil {
		r.t.Fatal(err)
	}
	out := map[string]tufrepo.RoleKeys{}
	for _, k := range keys {
		out[k.Role] = tufrepo.RoleKeys{Keys: []*metadata.Key{k.PublicKey}, Threshold: 1}
	}
	return out
}

// init runs the key ceremony and stores root 1 and targets 1.
func (r *rig) init() signing.Result {
	r.t.Helper()
	online := r.onlineKeys()
	now := r.clock.Now()
	root, targets, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{r.root}, RootThreshold: 1, Targets: []tufrepo.Signer{r.targets}, TargetsThreshold: 1,
		Snapshot: online[metadata.SNAPSHOT], Timestamp: online[metadata.TIMESTAMP], Director: online[tufmeta.RoleDirector],
		RootExpires: now.AddDate(1, 0, 0), TargetsExpires: now.AddDate(1, 0, 0),
		Delegations: []tufrepo.Delegation{{Name: line, Paths: tufmeta.DelegationPaths(line), Keys: tufrepotest.Keys(r.t, r.line), Threshold: 1}},
	})
	if err != nil {
		r.t.Fatal(err)
	}
	res, err := r.svc.Apply(r.ctx, tufrepo.Change{Roots: [][]byte{root}, Uploads: []tufrepo.Upload{{Role: metadata.TARGETS, Metadata: targets}}}, admin)
	if err != nil {
		r.t.Fatalf("init: %v", err)
	}
	return res
}

// release stores a published release with one raw image for revisions
// hw of the line, and returns it with the image bytes.
func (r *rig) release(version string, sec int64, hw ...string) (store.Release, []byte) {
	r.t.Helper()
	if len(hw) == 0 {
		hw = []string{"A"}
	}
	content := []byte(fmt.Sprintf("image %s of %s for %v", version, line, hw))
	sum := sha256.Sum256(content)
	rel, err := r.st.CreateRelease(r.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, SecurityVersion: sec}, admin, r.clock.Now())
	if err != nil {
		r.t.Fatal(err)
	}
	if _, err := r.st.AddArtifact(r.ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: line, HWRevs: hw,
		Type: store.ArtifactRawImage, Component: "rootfs", Name: "rootfs.img", Size: int64(len(content)),
		SHA256: hex.EncodeToString(sum[:]), SHA1: "da39a3ee5e6b4b0d3255bfef95601890afd80709", MD5: "d41d8cd98f00b204e9800998ecf8427e"}, admin, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	if rel, err = r.st.PublishRelease(r.ctx, store.DefaultTenant, rel.ID, admin, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	return rel, content
}

// targetsOf lists rel's artifacts as targets, as `updraft release sign` would.
func targetsOf(rel store.Release) []tufrepo.Target {
	var out []tufrepo.Target
	for _, a := range rel.Artifacts {
		out = append(out, tufrepo.Target{Path: signing.TargetPath(a, rel.Version), Length: a.Size, SHA256: a.SHA256,
			Custom: tufmeta.TargetCustom{Version: rel.Version, SecurityVersion: rel.SecurityVersion, DeviceType: a.DeviceType,
				HWRevs: a.HWRevs, ArtifactType: string(a.Type), Compression: a.Compression, Component: signing.Component(a.Component)}})
	}
	return out
}

// sign uploads the line role's next version with rel's artifacts, through
// svc.
func (r *rig) sign(svc *signing.Service, rel store.Release) (signing.Result, error) {
	r.t.Helper()
	cur, err := svc.Metadata(r.ctx, line+".json")
	if err != nil {
		cur = nil
	}
	b, err := tufrepo.NextTargets(cur, tufrepo.TargetsEdit{Expires: r.clock.Now().AddDate(0, 6, 0), Add: targetsOf(rel)})
	if err != nil {
		r.t.Fatal(err)
	}
	if b, err = tufrepo.Sign(b, r.line); err != nil {
		r.t.Fatal(err)
	}
	return svc.Apply(r.ctx, tufrepo.Change{Uploads: []tufrepo.Upload{{Role: line, Metadata: b}}}, admin)
}

// device enrolls and accepts a device of the line.
func (r *rig) device(hwRev, version string) store.Device {
	r.t.Helper()
	r.n++
	serial := fmt.Sprintf("SN-%d", r.n)
	d, err := r.st.Enroll(r.ctx, store.EnrollParams{TenantID: store.DefaultTenant, Serial: serial, DeviceType: line, HWRev: hwRev,
		Protocol: store.ProtocolNative, Key: store.Credential{Kind: store.CredPublicKey, Algorithm: "ed25519", Fingerprint: "fp-" + serial, Material: "pk"},
		Now: r.clock.Now(), PendingTTL: time.Hour, MaxPending: 100})
	if err != nil {
		r.t.Fatal(err)
	}
	if d, err = r.st.AcceptDevice(r.ctx, store.DefaultTenant, d.ID, admin, r.clock.Now()); err != nil {
		r.t.Fatal(err)
	}
	if version != "" {
		if d, err = r.st.UpdateDeviceReport(r.ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: version, Now: r.clock.Now()}); err != nil {
			r.t.Fatal(err)
		}
	}
	return d
}

// file fetches a metadata file as a device would, through svc.
func (r *rig) file(svc *signing.Service, name string) []byte {
	r.t.Helper()
	b, err := svc.MetadataFile(r.ctx, store.DefaultTenant, name)
	if err != nil {
		r.t.Fatalf("%s: %v", name, err)
	}
	return b
}

func describe(t *testing.T, b []byte) tufrepo.Info {
	t.Helper()
	info, err := tufrepo.Describe(b)
	if err != nil {
		t.Fatal(err)
	}
	return info
}
