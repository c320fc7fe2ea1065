package storetest

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// releaseEnv is the bundle the release, assignment and report tests share:
// a migrated store and helpers that build devices and releases through the
// store's own methods.
type releaseEnv struct {
	t   *testing.T
	s   *sqlstore.Store
	ctx context.Context
	n   int // makes serials and keys unique
}

func newReleaseEnv(t *testing.T, h Harness) *releaseEnv {
	t.Helper()
	return &releaseEnv{t: t, s: h.NewStore(t), ctx: context.Background()}
}

// device enrolls a device and accepts it.
func (e *releaseEnv) device(deviceType, hwRev string) store.Device {
	e.t.Helper()
	d := e.pendingDevice(deviceType, hwRev)
	d, err := e.s.AcceptDevice(e.ctx, store.DefaultTenant, d.ID, Admin, T0)
	if err != nil {
		e.t.Fatalf("accept device: %v", err)
	}
	return d
}

// pendingDevice enrolls a device and leaves it pending.
func (e *releaseEnv) pendingDevice(deviceType, hwRev string) store.Device {
	e.t.Helper()
	e.n++
	serial := fmt.Sprintf("SN-%04d", e.n)
	d, err := e.s.Enroll(e.ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: hwRev,
		Protocol: store.ProtocolNative,
		Key: store.Credential{
			Kind: store.CredPublicKey, Algorithm: "ed25519",
			Fingerprint: "fp-" + serial, Material: "public key of " + serial,
		},
		Now: T0, PendingTTL: 24 * time.Hour, MaxPending: 1000,
	})
	if err != nil {
		e.t.Fatalf("enroll %s: %v", serial, err)
	}
	return d
}

// draft creates a draft release.
func (e *releaseEnv) draft(version string) store.Release {
	e.t.Helper()
	r, err := e.s.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, Severity: store.SeverityMedium}, Admin, T0)
	if err != nil {
		e.t.Fatalf("create release %s: %v", version, err)
	}
	return r
}

// addArtifact adds an artifact and fails the test on error.
func (e *releaseEnv) addArtifact(a store.Artifact) store.Artifact {
	e.t.Helper()
	got, err := e.s.AddArtifact(e.ctx, a, Admin, T0)
	if err != nil {
		e.t.Fatalf("add artifact %s %v: %v", a.DeviceType, a.HWRevs, err)
	}
	return got
}

// published creates and publishes a release with a raw image for the
// device type and revisions given.
func (e *releaseEnv) published(version, deviceType string, revs ...string) store.Release {
	e.t.Helper()
	r := e.draft(version)
	e.addArtifact(rawImage(r.ID, deviceType, revs...))
	r, err := e.s.PublishRelease(e.ctx, store.DefaultTenant, r.ID, Admin, T0)
	if err != nil {
		e.t.Fatalf("publish %s: %v", version, err)
	}
	return r
}

// auditSeq is the sequence number of the newest audit entry (0: none).
func (e *releaseEnv) auditSeq() int64 {
	e.t.Helper()
	entries, _, err := e.s.ListAudit(e.ctx, store.DefaultTenant, store.AuditQuery{Page: store.Page{Limit: 1}})
	if err != nil {
		e.t.Fatalf("list audit: %v", err)
	}
	if len(entries) == 0 {
		return 0
	}
	return entries[0].Seq
}

// auditActions lists the actions recorded about one object, oldest first.
func (e *releaseEnv) auditActions(objectID string) []string {
	e.t.Helper()
	entries, _, err := e.s.ListAudit(e.ctx, store.DefaultTenant, store.AuditQuery{ObjectID: objectID})
	if err != nil {
		e.t.Fatalf("list audit: %v", err)
	}
	var out []string
	for _, en := range slices.Backward(entries) {
		out = append(out, en.Action)
	}
	return out
}

// verifyAudit checks the audit chain after a test's changes.
func (e *releaseEnv) verifyAudit() {
	e.t.Helper()
	if n, err := e.s.VerifyAudit(e.ctx, store.DefaultTenant); err != nil || n == 0 {
		e.t.Fatalf("verify audit: checked %d, err %v", n, err)
	}
}

// rawImage describes a raw-image artifact whose digests derive from its
// hardware, so that different artifacts have different blobs.
func rawImage(releaseID, deviceType string, revs ...string) store.Artifact {
	return artifactOf(releaseID, deviceType, store.ArtifactRawImage, "rootfs", revs...)
}

func artifactOf(releaseID, deviceType string, typ store.ArtifactType, component string, revs ...string) store.Artifact {
	content := []byte(fmt.Sprint(releaseID, deviceType, typ, component, revs))
	s256, s1, m5 := sha256.Sum256(content), sha1.Sum(content), md5.Sum(content)
	return store.Artifact{
		TenantID: store.DefaultTenant, ReleaseID: releaseID, DeviceType: deviceType, HWRevs: revs,
		Type: typ, Component: component, Name: deviceType + "-" + strings.Join(revs, "") + ".img",
		Size: int64(len(content)), SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: hex.EncodeToString(m5[:]),
	}
}

func wantErr(t *testing.T, what string, err, target error, msgParts ...string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: err = %v, want %v", what, err, target)
	}
	for _, p := range msgParts {
		if !strings.Contains(err.Error(), p) {
			t.Fatalf("%s: error %q does not mention %q", what, err, p)
		}
	}
}

func testReleases(t *testing.T, h Harness) {
	t.Run("CreateValidates", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		cases := []struct {
			name string
			r    store.NewRelease
			want string
		}{
			{"NotSemver", store.NewRelease{Version: "1.2"}, "not a semantic version"},
			{"LeadingV", store.NewRelease{Version: "v1.2.0"}, "v1.2.0"},
			{"Empty", store.NewRelease{Version: ""}, "semantic version"},
			{"Severity", store.NewRelease{Version: "1.0.0", Severity: "urgent"}, "severity"},
			{"CVE", store.NewRelease{Version: "1.0.0", CVEs: []string{"CVE-2024-1"}}, "CVE-2024-1"},
			{"CVEGarbage", store.NewRelease{Version: "1.0.0", CVEs: []string{"heartbleed"}}, "heartbleed"},
			{"NegativeSecurityVersion", store.NewRelease{Version: "1.0.0", SecurityVersion: -1}, "security version"},
			{"NotesNUL", store.NewRelease{Version: "1.0.0", Notes: "a\x00b"}, "NUL"},
			{"NotesUTF8", store.NewRelease{Version: "1.0.0", Notes: "\xff"}, "UTF-8"},
		}
		before := e.auditSeq()
		for _, c := range cases {
			c.r.TenantID = store.DefaultTenant
			_, err := e.s.CreateRelease(e.ctx, c.r, Admin, T0)
			wantErr(t, c.name, err, store.ErrInvalidRequest, c.want)
		}
		rels, _, err := e.s.ListReleases(e.ctx, store.DefaultTenant, store.Page{})
		if err != nil || len(rels) != 0 {
			t.Fatalf("after refused creates: %d releases, err %v", len(rels), err)
		}
		if got := e.auditSeq(); got != before {
			t.Fatalf("refused creates wrote audit entries (%d -> %d)", before, got)
		}
	})

	t.Run("CreateNormalizesAndRoundTrips", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		r, err := e.s.CreateRelease(e.ctx, store.NewRelease{
			TenantID: store.DefaultTenant, Version: "2.0.0-rc.1+build.7", Notes: "fixes", SecurityVersion: 3,
			CVEs: []string{"cve-2024-12345", "CVE-2024-12345", "CVE-2023-0001"},
		}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		if r.Severity != store.SeverityLow || r.State != store.ReleaseDraft || r.Bad || len(r.AffectedBy) != 0 {
			t.Fatalf("new release = %+v; want a low-severity draft, not bad, no affected_by", r)
		}
		if !slices.Equal(r.CVEs, []string{"CVE-2024-12345", "CVE-2023-0001"}) {
			t.Fatalf("CVEs = %v, want upper-cased without repeats", r.CVEs)
		}
		got, err := e.s.Release(e.ctx, store.DefaultTenant, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(got) != fmt.Sprint(r) {
			t.Fatalf("stored release differs:\n got %+v\nwant %+v", got, r)
		}
		byVersion, err := e.s.ReleaseByVersion(e.ctx, store.DefaultTenant, "2.0.0-rc.1+build.7")
		if err != nil || byVersion.ID != r.ID {
			t.Fatalf("release by version: %v, %v", byVersion.ID, err)
		}
		for _, v := range []string{"2.0.0", "not-a-version"} {
			_, err := e.s.ReleaseByVersion(e.ctx, store.DefaultTenant, v)
			wantErr(t, "release by version "+v, err, store.ErrNotFound)
		}
		_, err = e.s.Release(e.ctx, store.DefaultTenant, "nope")
		wantErr(t, "unknown release", err, store.ErrNotFound)
		_, err = e.s.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: "2.0.0-rc.1+build.7"}, Admin, T0)
		wantErr(t, "duplicate version", err, store.ErrConflict, "2.0.0-rc.1+build.7", "already exists")
		if got := e.auditActions(r.ID); !slices.Equal(got, []string{"release.create"}) {
			t.Fatalf("audit of release = %v", got)
		}
		e.verifyAudit()
	})

	t.Run("ArtifactKeyUniqueness", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		r := e.draft("1.0.0")
		e.addArtifact(rawImage(r.ID, "gw-200", "A", "B"))
		delta := artifactOf(r.ID, "gw-200", store.ArtifactDelta, "rootfs", "A")
		delta.FromVersion = "0.9.0"
		cases := []struct {
			name  string
			a     store.Artifact
			clash string // "" when the artifact must be accepted
		}{
			{"OverlappingRevisions", rawImage(r.ID, "gw-200", "C", "B"), "rev B"},
			{"SameRevisionSet", rawImage(r.ID, "gw-200", "A", "B"), "rev A"},
			{"OtherRevision", rawImage(r.ID, "gw-200", "C"), ""},
			{"OtherType", artifactOf(r.ID, "gw-200", store.ArtifactFile, "rootfs", "A"), ""},
			{"OtherComponent", artifactOf(r.ID, "gw-200", store.ArtifactRawImage, "bootloader", "A", "B"), ""},
			{"OtherDeviceType", rawImage(r.ID, "gw-300", "A"), ""},
			{"Delta", delta, ""},
			{"SameDelta", delta, "from 0.9.0"},
			{"OverlapAfterOtherRevision", rawImage(r.ID, "gw-200", "D", "C"), "rev C"},
		}
		for _, c := range cases {
			before := e.auditSeq()
			got, err := e.s.AddArtifact(e.ctx, c.a, Admin, T0)
			if c.clash == "" {
				if err != nil {
					t.Fatalf("%s: %v", c.name, err)
				}
				if got.ID == "" || !got.CreatedAt.Equal(T0) {
					t.Fatalf("%s: added artifact = %+v", c.name, got)
				}
				continue
			}
			wantErr(t, c.name, err, store.ErrConflict, c.clash, "1.0.0")
			if e.auditSeq() != before {
				t.Fatalf("%s: refused artifact was audited", c.name)
			}
		}
		// The refused {D, C} left no row for D behind.
		e.addArtifact(rawImage(r.ID, "gw-200", "D"))
		got, err := e.s.Release(e.ctx, store.DefaultTenant, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Artifacts) != 7 {
			t.Fatalf("release has %d artifacts, want 7", len(got.Artifacts))
		}
		a, err := e.s.Artifact(e.ctx, store.DefaultTenant, got.Artifacts[0].ID)
		if err != nil || fmt.Sprint(a) != fmt.Sprint(got.Artifacts[0]) {
			t.Fatalf("artifact by id = %+v, %v; want %+v", a, err, got.Artifacts[0])
		}
		e.verifyAudit()
	})

	t.Run("ArtifactValidation", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		r := e.draft("1.0.0")
		mod := func(f func(*store.Artifact)) store.Artifact {
			a := rawImage(r.ID, "gw-200", "A")
			f(&a)
			return a
		}
		cases := []struct {
			name string
			a    store.Artifact
			want string
		}{
			{"NoRevisions", mod(func(a *store.Artifact) { a.HWRevs = nil }), "hardware revisions"},
			{"EmptyRevision", mod(func(a *store.Artifact) { a.HWRevs = []string{"A", ""} }), "hardware revision"},
			{"NoDeviceType", mod(func(a *store.Artifact) { a.DeviceType = "" }), "device type"},
			{"UnknownType", mod(func(a *store.Artifact) { a.Type = "exe" }), `"exe"`},
			{"ShortSHA256", mod(func(a *store.Artifact) { a.SHA256 = a.SHA256[:60] }), "sha256"},
			{"SHA1Length", mod(func(a *store.Artifact) { a.SHA1 += "00" }), "sha1"},
			{"MD5NotHex", mod(func(a *store.Artifact) { a.MD5 = strings.Repeat("z", 32) }), "md5"},
			{"DeltaWithoutFrom", mod(func(a *store.Artifact) { a.Type = store.ArtifactDelta }), "from_version"},
			{"DeltaFromNotSemver", mod(func(a *store.Artifact) { a.Type = store.ArtifactDelta; a.FromVersion = "1.0" }), "1.0"},
			{"FromOnFullImage", mod(func(a *store.Artifact) { a.FromVersion = "0.9.0" }), "from_version"},
			{"NameWithPath", mod(func(a *store.Artifact) { a.Name = "../etc/passwd" }), "file name"},
			{"NoName", mod(func(a *store.Artifact) { a.Name = "" }), "name"},
			{"NegativeSize", mod(func(a *store.Artifact) { a.Size = -1 }), "size"},
		}
		for _, c := range cases {
			_, err := e.s.AddArtifact(e.ctx, c.a, Admin, T0)
			wantErr(t, c.name, err, store.ErrInvalidRequest, c.want)
		}
		_, err := e.s.AddArtifact(e.ctx, rawImage("no-such-release", "gw-200", "A"), Admin, T0)
		wantErr(t, "unknown release", err, store.ErrNotFound)
		// Upper-case digests are stored lower-case, as the blob store names them.
		a := e.addArtifact(mod(func(a *store.Artifact) { a.SHA256 = strings.ToUpper(a.SHA256) }))
		if a.SHA256 != strings.ToLower(a.SHA256) {
			t.Fatalf("sha256 stored as %s", a.SHA256)
		}
		if in, err := e.s.BlobInUse(e.ctx, strings.ToUpper(a.SHA256)); err != nil || !in {
			t.Fatalf("blob in use = %v, %v; want true", in, err)
		}
		got, err := e.s.Release(e.ctx, store.DefaultTenant, r.ID)
		if err != nil || len(got.Artifacts) != 1 {
			t.Fatalf("release has %d artifacts (err %v), want only the valid one", len(got.Artifacts), err)
		}
	})

	t.Run("ImmutableAfterPublish", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		r := e.draft("1.0.0")
		_, err := e.s.PublishRelease(e.ctx, store.DefaultTenant, r.ID, Admin, T0)
		wantErr(t, "publish without artifacts", err, store.ErrConflict, "no artifacts")
		e.addArtifact(rawImage(r.ID, "gw-200", "A"))
		at := T0.Add(time.Minute)
		p, err := e.s.PublishRelease(e.ctx, store.DefaultTenant, r.ID, Admin, at)
		if err != nil {
			t.Fatal(err)
		}
		if p.State != store.ReleasePublished || p.PublishedAt == nil || !p.PublishedAt.Equal(at) || len(p.Artifacts) != 1 {
			t.Fatalf("published release = %+v", p)
		}
		before := e.auditSeq()
		_, err = e.s.AddArtifact(e.ctx, rawImage(r.ID, "gw-200", "B"), Admin, T0)
		wantErr(t, "add artifact after publish", err, store.ErrImmutable, "1.0.0")
		err = e.s.DeleteDraft(e.ctx, store.DefaultTenant, r.ID, Admin, T0)
		wantErr(t, "delete published", err, store.ErrImmutable)
		_, err = e.s.PublishRelease(e.ctx, store.DefaultTenant, r.ID, Admin, T0)
		wantErr(t, "publish twice", err, store.ErrImmutable)
		if e.auditSeq() != before {
			t.Fatal("refused changes were audited")
		}

		// The audited flags stay changeable.
		bad, err := e.s.MarkBad(e.ctx, store.DefaultTenant, r.ID, true, "bricks rev A", Admin, T0)
		if err != nil || !bad.Bad || bad.BadReason != "bricks rev A" {
			t.Fatalf("mark bad = %+v, %v", bad, err)
		}
		aff, err := e.s.MarkAffected(e.ctx, store.DefaultTenant, r.ID, []string{"cve-2025-1111", "CVE-2025-2222"}, Admin, T0)
		if err != nil || !slices.Equal(aff.AffectedBy, []string{"CVE-2025-1111", "CVE-2025-2222"}) {
			t.Fatalf("mark affected = %v, %v", aff.AffectedBy, err)
		}
		aff, err = e.s.MarkAffected(e.ctx, store.DefaultTenant, r.ID, []string{"CVE-2025-2222"}, Admin, T0)
		if err != nil || !slices.Equal(aff.AffectedBy, []string{"CVE-2025-2222"}) {
			t.Fatalf("mark affected replaces the list: %v, %v", aff.AffectedBy, err)
		}
		_, err = e.s.MarkAffected(e.ctx, store.DefaultTenant, r.ID, []string{"CVE-25-1"}, Admin, T0)
		wantErr(t, "bad CVE", err, store.ErrInvalidRequest, "CVE-25-1")
		cleared, err := e.s.MarkBad(e.ctx, store.DefaultTenant, r.ID, false, "ignored", Admin, T0)
		if err != nil || cleared.Bad || cleared.BadReason != "" {
			t.Fatalf("clear bad = %+v, %v", cleared, err)
		}
		_, err = e.s.MarkBad(e.ctx, store.DefaultTenant, "nope", true, "", Admin, T0)
		wantErr(t, "mark unknown release", err, store.ErrNotFound)

		got, err := e.s.Release(e.ctx, store.DefaultTenant, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.Version != "1.0.0" || len(got.Artifacts) != 1 || got.Artifacts[0].HWRevs[0] != "A" || got.State != store.ReleasePublished {
			t.Fatalf("release changed beyond its flags: %+v", got)
		}
		want := []string{"release.create", "release.add_artifact", "release.publish", "release.mark_bad",
			"release.mark_affected", "release.mark_affected", "release.mark_bad"}
		if got := e.auditActions(r.ID); !slices.Equal(got, want) {
			t.Fatalf("audit of release = %v, want %v", got, want)
		}
		e.verifyAudit()
	})

	t.Run("DeleteDraft", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		r := e.draft("1.0.0")
		a := e.addArtifact(rawImage(r.ID, "gw-200", "A"))
		if in, err := e.s.BlobInUse(e.ctx, a.SHA256); err != nil || !in {
			t.Fatalf("blob in use = %v, %v; want true", in, err)
		}
		if err := e.s.DeleteDraft(e.ctx, store.DefaultTenant, r.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		_, err := e.s.Release(e.ctx, store.DefaultTenant, r.ID)
		wantErr(t, "deleted release", err, store.ErrNotFound)
		_, err = e.s.Artifact(e.ctx, store.DefaultTenant, a.ID)
		wantErr(t, "deleted artifact", err, store.ErrNotFound)
		if in, err := e.s.BlobInUse(e.ctx, a.SHA256); err != nil || in {
			t.Fatalf("blob in use after delete = %v, %v; want false", in, err)
		}
		err = e.s.DeleteDraft(e.ctx, store.DefaultTenant, r.ID, Admin, T0)
		wantErr(t, "delete twice", err, store.ErrNotFound)
		// The version and the artifact key are free again.
		r2 := e.draft("1.0.0")
		e.addArtifact(rawImage(r2.ID, "gw-200", "A"))
		if got := e.auditActions(r.ID); !slices.Equal(got, []string{"release.create", "release.add_artifact", "release.delete_draft"}) {
			t.Fatalf("audit of deleted release = %v", got)
		}
		e.verifyAudit()
	})

	t.Run("ListNewestFirst", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		var want []string
		for i := range 5 {
			v := fmt.Sprintf("1.%d.0", i)
			r, err := e.s.CreateRelease(e.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: v}, Admin, T0.Add(time.Duration(i)*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			e.addArtifact(rawImage(r.ID, "gw-200", "A"))
			want = append([]string{v}, want...)
		}
		var got []string
		after := ""
		for pages := 0; ; pages++ {
			if pages > 5 {
				t.Fatal("pagination does not end")
			}
			page, next, err := e.s.ListReleases(e.ctx, store.DefaultTenant, store.Page{Limit: 2, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page {
				if len(r.Artifacts) != 1 {
					t.Fatalf("listed release %s has %d artifacts, want 1", r.Version, len(r.Artifacts))
				}
				got = append(got, r.Version)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(got, want) {
			t.Fatalf("listed %v, want %v", got, want)
		}
		_, _, err := e.s.ListReleases(e.ctx, store.DefaultTenant, store.Page{After: "%%%"})
		wantErr(t, "bad cursor", err, store.ErrInvalidRequest)
	})
}
