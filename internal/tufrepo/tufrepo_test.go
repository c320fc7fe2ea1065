package tufrepo_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
)

var start = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func roleKeys(t *testing.T, signers ...tufrepo.Signer) tufrepo.RoleKeys {
	return tufrepo.RoleKeys{Keys: tufrepotest.Keys(t, signers...), Threshold: 1}
}

// initWith runs a ceremony with the given root and targets signers and
// checks the root verifies.
func initWith(t *testing.T, root, targets tufrepo.Signer) error {
	t.Helper()
	r, _, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{root}, RootThreshold: 1, Targets: []tufrepo.Signer{targets}, TargetsThreshold: 1,
		Snapshot: roleKeys(t, tufrepotest.Key(t)), Timestamp: roleKeys(t, tufrepotest.Key(t)), Director: roleKeys(t, tufrepotest.Key(t)),
		RootExpires: start.Add(time.Hour), TargetsExpires: start.Add(time.Hour),
	})
	if err != nil {
		return err
	}
	return tufrepo.VerifyFirstRoot(r, 0)
}

func TestPrivateKeyRoundTrip(t *testing.T) {
	t.Parallel()
	for _, typ := range []tufrepo.KeyType{tufrepo.KeyEd25519, tufrepo.KeyECDSAP256} {
		for _, pass := range []string{"", "correct horse"} {
			t.Run(string(typ)+"/"+pass, func(t *testing.T) {
				t.Parallel()
				k, err := tufrepo.GenerateKey(typ)
				if err != nil {
					t.Fatal(err)
				}
				pemBytes, err := tufrepo.MarshalPrivateKey(k, []byte(pass))
				if err != nil {
					t.Fatal(err)
				}
				if (pass != "") != strings.Contains(string(pemBytes), "ENCRYPTED") {
					t.Fatalf("passphrase %q but PEM header %q", pass, strings.SplitN(string(pemBytes), "\n", 2)[0])
				}
				back, err := tufrepo.ParsePrivateKey(pemBytes, []byte(pass))
				if err != nil {
					t.Fatal(err)
				}
				a, _ := tufrepo.PublicKey(k.Public())
				b, _ := tufrepo.PublicKey(back.Public())
				ida, _ := tufrepo.KeyID(a)
				idb, _ := tufrepo.KeyID(b)
				if ida != idb {
					t.Fatal("parsed key differs")
				}
				if pass != "" {
					if _, err := tufrepo.ParsePrivateKey(pemBytes, []byte("wrong")); err == nil {
						t.Fatal("wrong passphrase accepted")
					}
					if _, err := tufrepo.ParsePrivateKey(pemBytes, nil); err == nil {
						t.Fatal("encrypted key parsed without a passphrase")
					}
				}
				s, err := tufrepo.NewSigner(back)
				if err != nil {
					t.Fatal(err)
				}
				if err := initWith(t, s, s); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
	if _, err := tufrepo.GenerateKey("rsa-1024"); err == nil {
		t.Fatal("unknown key type accepted")
	}
}

// hsmKey hides the concrete key type, as a PKCS#11 or TPM handle does.
type hsmKey struct{ crypto.Signer }

func TestHSMSignerAdapter(t *testing.T) {
	t.Parallel()
	ed, _ := tufrepo.GenerateKey(tufrepo.KeyEd25519)
	ec, _ := tufrepo.GenerateKey(tufrepo.KeyECDSAP256)
	rs, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	for name, k := range map[string]crypto.Signer{"ed25519": ed, "ecdsa-p256": ec, "rsa": rs} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			s, err := tufrepo.NewSigner(hsmKey{k})
			if err != nil {
				t.Fatal(err)
			}
			if err := initWith(t, s, s); err != nil {
				t.Fatalf("metadata signed through the adapter does not verify: %v", err)
			}
		})
	}
	p384, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if _, err := tufrepo.NewSigner(hsmKey{p384}); err == nil {
		t.Fatal("P-384 accepted although TUF's ecdsa scheme is P-256")
	}
}

func TestThresholdSigningCombine(t *testing.T) {
	t.Parallel()
	a, b, c := tufrepotest.Key(t), tufrepotest.Key(t), tufrepotest.Key(t)
	unsigned, err := tufrepo.NewRoot(tufrepo.RootSpec{Expires: start.Add(time.Hour), Roles: map[string]tufrepo.RoleKeys{
		metadata.ROOT:        {Keys: tufrepotest.Keys(t, a, b, c), Threshold: 2},
		metadata.TARGETS:     roleKeys(t, tufrepotest.Key(t)),
		metadata.SNAPSHOT:    roleKeys(t, tufrepotest.Key(t)),
		metadata.TIMESTAMP:   roleKeys(t, tufrepotest.Key(t)),
		tufmeta.RoleDirector: roleKeys(t, tufrepotest.Key(t)),
	}})
	if err != nil {
		t.Fatal(err)
	}
	byA, _ := tufrepo.Sign(unsigned, a)
	byC, _ := tufrepo.Sign(unsigned, c)
	if err := tufrepo.VerifyFirstRoot(byA, 0); !errors.Is(err, tufrepo.ErrBadSignature) {
		t.Fatalf("1 of 2 signatures: %v", err)
	}
	both, err := tufrepo.Combine(byA, byC)
	if err != nil {
		t.Fatal(err)
	}
	if err := tufrepo.VerifyFirstRoot(both, 0); err != nil {
		t.Fatalf("2 of 2 combined: %v", err)
	}
	info, _ := tufrepo.Describe(both)
	if len(info.KeyIDs) != 2 {
		t.Fatalf("%d signatures, want 2", len(info.KeyIDs))
	}
	// Signing twice with the same key does not count twice.
	twice, _ := tufrepo.Sign(byA, a)
	if info, _ := tufrepo.Describe(twice); len(info.KeyIDs) != 1 {
		t.Fatalf("re-signing duplicated the signature: %v", info.KeyIDs)
	}
	other, _ := tufrepo.NextRoot(unsigned, start.Add(2*time.Hour), nil)
	otherByB, _ := tufrepo.Sign(other, b)
	if _, err := tufrepo.Combine(byA, otherByB); err == nil {
		t.Fatal("combined signatures over different content")
	}
}

func TestRootRequiresOldAndNewThresholds(t *testing.T) {
	t.Parallel()
	old1, old2 := tufrepotest.Key(t), tufrepotest.Key(t)
	new1, new2 := tufrepotest.Key(t), tufrepotest.Key(t)
	root, _, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{old1, old2}, RootThreshold: 2, Targets: []tufrepo.Signer{tufrepotest.Key(t)}, TargetsThreshold: 1,
		Snapshot: roleKeys(t, tufrepotest.Key(t)), Timestamp: roleKeys(t, tufrepotest.Key(t)), Director: roleKeys(t, tufrepotest.Key(t)),
		RootExpires: start.Add(time.Hour), TargetsExpires: start.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	next, err := tufrepo.NextRoot(root, start.Add(2*time.Hour), map[string]tufrepo.RoleKeys{
		metadata.ROOT: {Keys: tufrepotest.Keys(t, new1, new2), Threshold: 2},
	})
	if err != nil {
		t.Fatal(err)
	}
	sign := func(b []byte, s ...tufrepo.Signer) []byte {
		out, err := tufrepo.Sign(b, s...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		next []byte
		now  time.Time
		want error
	}{
		{"old and new thresholds", sign(next, old1, old2, new1, new2), start, nil},
		{"old keys only", sign(next, old1, old2), start, tufrepo.ErrBadSignature},
		{"new keys only", sign(next, new1, new2), start, tufrepo.ErrBadSignature},
		{"one old key short", sign(next, old1, new1, new2), start, tufrepo.ErrBadSignature},
		{"expired", sign(next, old1, old2, new1, new2), start.Add(3 * time.Hour), tufrepo.ErrExpired},
		{"version skipped", func() []byte {
			n2, _ := tufrepo.NextRoot(next, start.Add(2*time.Hour), nil)
			return sign(n2, old1, old2, new1, new2)
		}(), start, tufrepo.ErrStaleVersion},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tufrepo.VerifyRoot(root, tc.next, tc.now, 0)
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("VerifyRoot = %v, want %v", err, tc.want)
			}
		})
	}
	if _, err := tufrepo.NextRoot(root, start, map[string]tufrepo.RoleKeys{"mirror": roleKeys(t, new1)}); err == nil {
		t.Fatal("NextRoot accepted an unknown role")
	}
	if _, err := tufrepo.NextRoot(root, start, map[string]tufrepo.RoleKeys{metadata.ROOT: {Keys: tufrepotest.Keys(t, new1), Threshold: 2}}); err == nil {
		t.Fatal("NextRoot accepted a threshold above the number of keys")
	}
}

// fixture is a repository with lines gw-200 and gw-300.
func fixture(t testing.TB) (*tufrepotest.Repo, *clock.Fake) {
	t.Helper()
	c := clock.NewFake(start)
	return tufrepotest.New(t, tufrepotest.Options{Clock: c, Lines: []string{"gw-200", "gw-300"}}), c
}

func TestVerifyUpload(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	first := r.Release("gw-200", tufrepotest.Release{Version: "1.0.0", Artifacts: 2})
	rel := tufrepotest.Artifacts("gw-200", tufrepotest.Release{Version: "2.0.0"})
	good := func() tufrepo.Upload { return r.SignRelease("gw-200", rel) }
	edit := func(f func(*tufrepo.Upload)) tufrepo.Upload { u := good(); f(&u); return u }
	resign := func(b []byte, e tufrepo.TargetsEdit, s ...tufrepo.Signer) []byte {
		if e.Expires.IsZero() {
			e.Expires = start.Add(time.Hour)
		}
		out, err := tufrepo.NextTargets(b, e)
		if err == nil {
			out, err = tufrepo.Sign(out, s...)
		}
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	stored := r.Repo.Targets["gw-200"]
	for _, tc := range []struct {
		name string
		u    tufrepo.Upload
		want error
	}{
		{"good", good(), nil},
		{"stale version", edit(func(u *tufrepo.Upload) {
			u.Metadata = resign(r.Repo.Targets["gw-200"], tufrepo.TargetsEdit{Add: []tufrepo.Target{rel[0].Target}}, r.Lines["gw-200"])
			u.Metadata = resignVersion(t, u.Metadata, 1, r.Lines["gw-200"])
		}), tufrepo.ErrStaleVersion},
		{"version skipped", edit(func(u *tufrepo.Upload) { u.Metadata = resignVersion(t, u.Metadata, 3, r.Lines["gw-200"]) }), tufrepo.ErrStaleVersion},
		{"signed by another line's key", edit(func(u *tufrepo.Upload) { u.Metadata, _ = tufrepo.Sign(u.Metadata, r.Lines["gw-300"]) }), nil},
		{"only another line's key", r.SignRelease("gw-200", rel, r.Lines["gw-300"]), tufrepo.ErrBadSignature},
		{"outside delegated paths", func() tufrepo.Upload {
			other := tufrepotest.Artifacts("gw-300", tufrepotest.Release{Version: "2.0.0"})
			return r.SignRelease("gw-200", other)
		}(), tufrepo.ErrOutsideDelegation},
		{"length differs from artifact", edit(func(u *tufrepo.Upload) {
			a := u.Artifacts[rel[0].Target.Path]
			a.Length++
			u.Artifacts[rel[0].Target.Path] = a
		}), tufrepo.ErrArtifactMismatch},
		{"hash differs from artifact", edit(func(u *tufrepo.Upload) {
			a := u.Artifacts[rel[0].Target.Path]
			a.SHA256 = first[0].Target.SHA256
			u.Artifacts[rel[0].Target.Path] = a
		}), tufrepo.ErrArtifactMismatch},
		{"artifact not uploaded", edit(func(u *tufrepo.Upload) { delete(u.Artifacts, rel[0].Target.Path) }), tufrepo.ErrArtifactMismatch},
		{"expired", edit(func(u *tufrepo.Upload) {
			u.Metadata = resign(stored, tufrepo.TargetsEdit{Add: []tufrepo.Target{rel[0].Target}, Expires: start.Add(-time.Minute)}, r.Lines["gw-200"])
		}), tufrepo.ErrExpired},
		{"role not delegated", edit(func(u *tufrepo.Upload) { u.Role = "gw-999" }), tufrepo.ErrNotDelegated},
		{"release role delegating further", edit(func(u *tufrepo.Upload) {
			u.Metadata = resign(stored, tufrepo.TargetsEdit{Add: []tufrepo.Target{rel[0].Target}, Delegate: []tufrepo.Delegation{{
				Name: "sub", Paths: []string{"gw-200/*/*/*"}, Keys: tufrepotest.Keys(t, tufrepotest.Key(t)), Threshold: 1,
			}}}, r.Lines["gw-200"])
		}), tufrepo.ErrMalformed},
		{"not json", tufrepo.Upload{Role: "gw-200", Metadata: []byte("{")}, tufrepo.ErrMalformed},
		{"over the size limit", edit(func(u *tufrepo.Upload) {
			u.Metadata = append(u.Metadata, make([]byte, tufmeta.DefaultLimits().Delegated)...)
		}), tufrepo.ErrTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := r.Repo.Clone().Apply(tufrepo.Change{Uploads: []tufrepo.Upload{tc.u}}, c.Now())
			if tc.want == nil && err != nil || tc.want != nil && !errors.Is(err, tc.want) {
				t.Fatalf("Apply = %v, want %v", err, tc.want)
			}
		})
	}
	// Unchanged targets carried over from the stored version need no
	// artifact facts; the stored repository was not modified above.
	u := good()
	for _, a := range first {
		delete(u.Artifacts, a.Target.Path)
	}
	if err := r.Repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{u}}, c.Now()); err != nil {
		t.Fatal(err)
	}
}

// resignVersion rewrites the version of targets metadata and signs it.
func resignVersion(t *testing.T, b []byte, version int64, s tufrepo.Signer) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	m["signed"].(map[string]any)["version"] = version
	m["signatures"] = []any{}
	out, _ := json.Marshal(m)
	out, err := tufrepo.Sign(out, s)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestTwoSignersNeverOverwriteEachOther(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	r.Release("gw-200", tufrepotest.Release{Version: "1.0.0"})
	// Two CI jobs start from the same stored version.
	a := r.SignRelease("gw-200", tufrepotest.Artifacts("gw-200", tufrepotest.Release{Version: "2.0.0"}))
	b := r.SignRelease("gw-200", tufrepotest.Artifacts("gw-200", tufrepotest.Release{Version: "2.1.0"}))
	if err := r.Repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{a}}, c.Now()); err != nil {
		t.Fatal(err)
	}
	err := r.Repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{b}}, c.Now())
	var stale *tufrepo.StaleVersionError
	if !errors.As(err, &stale) || stale.Stored != 2 || stale.Uploaded != 2 || stale.Role != "gw-200" {
		t.Fatalf("second upload: %v, want a stale-version error (stored 2, uploaded 2)", err)
	}
}

func TestApplyIsAllOrNothing(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	r.Release("gw-200", tufrepotest.Release{Version: "1.0.0"})
	before := r.Repo.Clone()
	// Rotating the line's key without re-signing the line's role would
	// leave devices unable to verify it.
	top, err := tufrepo.NextTargets(r.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{
		Expires:  start.Add(time.Hour),
		Delegate: []tufrepo.Delegation{{Name: "gw-200", Paths: tufmeta.DelegationPaths("gw-200"), Keys: tufrepotest.Keys(t, tufrepotest.Key(t)), Threshold: 1}},
	})
	if err == nil {
		top, err = tufrepo.Sign(top, r.Targets)
	}
	if err != nil {
		t.Fatal(err)
	}
	err = r.Repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{{Role: metadata.TARGETS, Metadata: top}}}, c.Now())
	if !errors.Is(err, tufrepo.ErrInconsistent) {
		t.Fatalf("Apply = %v, want ErrInconsistent", err)
	}
	if string(r.Repo.Targets[metadata.TARGETS]) != string(before.Targets[metadata.TARGETS]) {
		t.Fatal("a refused change modified the repository")
	}
}

func TestPublishResignsBeforeExpiry(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	names := func(fs []tufrepo.File) []string {
		var out []string
		for _, f := range fs {
			out = append(out, f.Name)
		}
		return out
	}
	publish := func() []string {
		t.Helper()
		fs, err := r.Repo.Publish(r.Online, c.Now())
		if err != nil {
			t.Fatal(err)
		}
		return names(fs)
	}
	if got := publish(); got != nil {
		t.Fatalf("nothing due, published %v", got)
	}
	c.Advance(11 * time.Hour)
	if got := publish(); got != nil {
		t.Fatalf("timestamp at 11h of 24h, published %v", got)
	}
	c.Advance(2 * time.Hour)
	if got := strings.Join(publish(), ","); got != "timestamp.json" {
		t.Fatalf("timestamp past half its life: published %v", got)
	}
	c.Advance(3*24*time.Hour + time.Hour)
	if got := strings.Join(publish(), ","); got != "2.snapshot.json,timestamp.json" {
		t.Fatalf("snapshot past half its life: published %v", got)
	}
	r.Release("gw-200", tufrepotest.Release{Version: "1.0.0"}) // publishes through the fixture
	if info, _ := tufrepo.Describe(r.Repo.Snapshot); info.Version != 3 {
		t.Fatalf("snapshot version %d after a release, want 3", info.Version)
	}
	var all []string
	for _, f := range r.Repo.Files() {
		all = append(all, f.Name)
	}
	if got := strings.Join(all, ","); got != "1.root.json,1.gw-200.json,1.targets.json,3.snapshot.json,timestamp.json" {
		t.Fatalf("files %s", got)
	}
	if _, ok := r.Repo.File("1.gw-200.json"); !ok {
		t.Fatal("File does not serve a current role")
	}
	exp, err := r.Repo.Expiries()
	if err != nil {
		t.Fatal(err)
	}
	if exp[0].Role != metadata.TIMESTAMP || exp[0].Offline || !exp[len(exp)-1].Offline {
		t.Fatalf("expiries not soonest first: %+v", exp)
	}
}

func TestPublishFollowsOnlineKeyRotation(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	newTS := tufrepotest.Key(t)
	next, err := tufrepo.NextRoot(r.Repo.Root(), start.Add(time.Hour*1000), map[string]tufrepo.RoleKeys{metadata.TIMESTAMP: roleKeys(t, newTS)})
	if err == nil {
		next, err = tufrepo.Sign(next, r.Root...)
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := r.Repo.Apply(tufrepo.Change{Roots: [][]byte{next}}, c.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Repo.Publish(r.Online, c.Now()); !errors.Is(err, tufrepo.ErrBadSignature) {
		t.Fatalf("publishing with the retired timestamp key: %v", err)
	}
	r.Online.Timestamp = []tufrepo.Signer{newTS}
	fs, err := r.Repo.Publish(r.Online, c.Now())
	if err != nil || len(fs) != 1 || fs[0].Name != "timestamp.json" {
		t.Fatalf("Publish after rotation = %v, %v; want a new timestamp", fs, err)
	}
}

func TestPublishSizeCap(t *testing.T) {
	t.Parallel()
	r, c := fixture(t)
	r.Release("gw-200", tufrepotest.Release{Version: "1.0.0"})
	r.Repo.Limits.Snapshot = 200
	r.Repo.Snapshot = nil
	if _, err := r.Repo.Publish(r.Online, c.Now()); !errors.Is(err, tufrepo.ErrTooLarge) {
		t.Fatalf("Publish over the snapshot limit: %v", err)
	}
}

func TestDirectorDocuments(t *testing.T) {
	t.Parallel()
	r, _ := fixture(t)
	a := r.Release("gw-200", tufrepotest.Release{Version: "1.0.0", SecurityVersion: 4})[0]
	doc := r.Assign("dev-1", a, func(as *tufrepo.Assignment) {
		as.Counter = 7
		as.Forced = true
		as.Windows = []tufmeta.Window{{Days: []time.Weekday{time.Saturday}, Start: "02:00", Duration: tufmeta.Duration(2 * time.Hour)}}
	})
	m, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(doc)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := new(metadata.Metadata[metadata.RootType]).FromBytes(r.Repo.Root())
	if err := root.VerifyDelegate(tufmeta.RoleDirector, m); err != nil {
		t.Fatalf("director document does not verify under root's director role: %v", err)
	}
	f := m.Signed.Targets[a.Target.Path]
	if m.Signed.Version != 7 || len(m.Signed.Targets) != 1 || f == nil || f.Length != a.Target.Length {
		t.Fatalf("document %s", doc)
	}
	var ac tufmeta.AssignmentCustom
	if err := json.Unmarshal(*f.Custom, &ac); err != nil {
		t.Fatal(err)
	}
	if ac.DeviceID != "dev-1" || !ac.Forced || !ac.Target.Equal(a.Target.Custom) || len(ac.Windows) != 1 || ac.Windows[0].Duration != tufmeta.Duration(2*time.Hour) {
		t.Fatalf("custom %+v", ac)
	}

	fin, err := tufrepo.SignFinalize(tufrepo.Finalize{DeviceID: "dev-1", Version: "1.0.0", SecurityVersion: 4, Counter: 8, Expires: start.Add(time.Hour)}, r.Director)
	if err != nil {
		t.Fatal(err)
	}
	fm, err := new(metadata.Metadata[metadata.TargetsType]).FromBytes(fin)
	if err != nil {
		t.Fatal(err)
	}
	if err := root.VerifyDelegate(tufmeta.RoleDirector, fm); err != nil {
		t.Fatalf("finalize does not verify after a round trip: %v", err)
	}
	custom, _ := json.Marshal(fm.Signed.UnrecognizedFields["custom"])
	var fc tufmeta.FinalizeCustom
	if err := json.Unmarshal(custom, &fc); err != nil || fc.Type != tufmeta.FinalizeType || fc.SecurityVersion != 4 || len(fm.Signed.Targets) != 0 {
		t.Fatalf("finalize custom %s (%v)", custom, err)
	}

	for name, as := range map[string]tufrepo.Assignment{
		"no counter":     {DeviceID: "d", AssignmentID: "a", Target: a.Target, Expires: start},
		"no device":      {AssignmentID: "a", Target: a.Target, Counter: 1, Expires: start},
		"invalid target": {DeviceID: "d", AssignmentID: "a", Target: tufrepo.Target{Path: "x"}, Counter: 1, Expires: start},
	} {
		if _, err := tufrepo.SignAssignment(as, r.Director); err == nil {
			t.Errorf("%s: signed", name)
		}
	}
	if _, err := tufrepo.SignAssignment(tufrepo.Assignment{DeviceID: "d", AssignmentID: "a", Target: a.Target, Counter: 1, Expires: start}); err == nil {
		t.Error("signed without a director key")
	}
}

func TestTargetValidate(t *testing.T) {
	t.Parallel()
	good := tufrepotest.Artifacts("gw-200", tufrepotest.Release{Version: "1.0.0"})[0].Target
	for name, edit := range map[string]func(*tufrepo.Target){
		"path device type differs": func(t *tufrepo.Target) { t.Custom.DeviceType = "gw-300" },
		"path version differs":     func(t *tufrepo.Target) { t.Custom.Version = "1.0.1" },
		"short path":               func(t *tufrepo.Target) { t.Path = "gw-200/rootfs/1.0.0" },
		"dot segment":              func(t *tufrepo.Target) { t.Path = "gw-200/rootfs/1.0.0/.." },
		"uppercase hash":           func(t *tufrepo.Target) { t.SHA256 = strings.ToUpper(t.SHA256) },
		"short hash":               func(t *tufrepo.Target) { t.SHA256 = t.SHA256[:10] },
		"negative length":          func(t *tufrepo.Target) { t.Length = -1 },
		"no hardware":              func(t *tufrepo.Target) { t.Custom.HWRevs = nil },
	} {
		tg := good
		tg.Custom.HWRevs = append([]string(nil), good.Custom.HWRevs...)
		edit(&tg)
		if err := tg.Validate(); !errors.Is(err, tufrepo.ErrBadTarget) {
			t.Errorf("%s: Validate = %v", name, err)
		}
	}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDelegationsAndTargetsListing(t *testing.T) {
	t.Parallel()
	r, _ := fixture(t)
	arts := r.Release("gw-200", tufrepotest.Release{Version: "1.0.0", Artifacts: 3})
	ds, err := tufrepo.Delegations(r.Repo.Targets[metadata.TARGETS])
	if err != nil || len(ds) != 2 || ds[0].Name != "gw-200" || ds[0].Paths[0] != "gw-200/*/*/*" || len(ds[0].Keys) != 1 {
		t.Fatalf("Delegations = %+v, %v", ds, err)
	}
	ts, err := tufrepo.Targets(r.Repo.Targets["gw-200"])
	if err != nil || len(ts) != 3 || ts[0].Path != arts[0].Target.Path || !ts[0].Custom.Equal(arts[0].Target.Custom) {
		t.Fatalf("Targets = %+v, %v", ts, err)
	}
	// Removing a release and a delegation.
	next, err := tufrepo.NextTargets(r.Repo.Targets["gw-200"], tufrepo.TargetsEdit{Expires: start.Add(time.Hour), Remove: []string{arts[0].Target.Path}})
	if err != nil {
		t.Fatal(err)
	}
	if ts, _ := tufrepo.Targets(next); len(ts) != 2 {
		t.Fatalf("%d targets after removing one of 3", len(ts))
	}
	top, err := tufrepo.NextTargets(r.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{Expires: start.Add(time.Hour), Undelegate: []string{"gw-300"}})
	if err != nil {
		t.Fatal(err)
	}
	if ds, _ := tufrepo.Delegations(top); len(ds) != 1 {
		t.Fatalf("%d delegations after removing one of 2", len(ds))
	}
	if _, err := tufrepo.NextTargets(top, tufrepo.TargetsEdit{Expires: start, Delegate: []tufrepo.Delegation{{Name: "../x", Paths: []string{"x"}, Keys: tufrepotest.Keys(t, r.Targets), Threshold: 1}}}); err == nil {
		t.Fatal("accepted a role name that is not a safe file name")
	}
}
