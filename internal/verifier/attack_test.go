package verifier_test

import (
	"bytes"
	"context"
	"errors"
	"maps"
	"strconv"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
	"github.com/updraft/updraft/internal/verifier"
)

// forge publishes what an attacker holding the online snapshot and
// timestamp keys (a compromised server) can: any targets role bytes, listed
// in a freshly signed snapshot and timestamp.
func (e *env) forge(roles map[string][]byte) {
	e.t.Helper()
	cur := maps.Clone(e.repo.Repo.Targets)
	maps.Copy(cur, roles)
	now := e.server.Now()
	snap, err := tufrepo.NextSnapshot(e.repo.Repo.Snapshot, cur, now.Add(7*24*time.Hour))
	if err == nil {
		snap, err = tufrepo.Sign(snap, e.repo.Online.Snapshot...)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.forgeTimestamp(snap)
	for role, b := range roles {
		info, err := tufrepo.Describe(b)
		if err != nil {
			e.t.Fatal(err)
		}
		e.repo.Server.Put(strconv.FormatInt(info.Version, 10)+"."+role+".json", b)
	}
	info, _ := tufrepo.Describe(snap)
	e.repo.Server.Put(strconv.FormatInt(info.Version, 10)+".snapshot.json", snap)
}

// forgeTimestamp serves a freshly signed timestamp naming snap.
func (e *env) forgeTimestamp(snap []byte) {
	e.t.Helper()
	ts, err := tufrepo.NextTimestamp(e.repo.Server.File("timestamp.json"), snap, e.server.Now().Add(24*time.Hour))
	if err == nil {
		ts, err = tufrepo.Sign(ts, e.repo.Online.Timestamp...)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.repo.Server.Put("timestamp.json", ts)
}

func (e *env) refreshErr() error { return e.dev.Refresh(context.Background()) }

// release2 publishes gw-200 2.0.0 (security version 2) and refreshes.
func (e *env) release2() []tufrepotest.Artifact {
	e.t.Helper()
	arts := e.repo.Release(deviceType, tufrepotest.Release{Version: "2.0.0", SecurityVersion: 2})
	e.refresh()
	return arts
}

func TestRefusesTamperedArtifact(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tg, err := e.verify(e.repo.Assign(deviceID, e.v1[0]))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"flipped byte": func() []byte { b := bytes.Clone(e.v1[0].Data); b[100] ^= 1; return b }(),
		"truncated":    e.v1[0].Data[:len(e.v1[0].Data)-1],
	} {
		s, err := e.dev.NewStream(tg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Write(data); err != nil {
			t.Fatal(err)
		}
		t.Run(name, func(t *testing.T) { refused(t, s.Finish(), verifier.ReasonHashMismatch) })
	}
}

func TestRefusesArtifactNotInSignedTargets(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// Uploaded to the server but never signed into the line's role.
	unsigned := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "9.0.0", SecurityVersion: 9})[0]
	_, err := e.verify(e.repo.Assign(deviceID, unsigned))
	refused(t, err, verifier.ReasonNotInTargets)
}

func TestRefusesUnsignedRelease(t *testing.T) {
	t.Parallel()
	e := setup(t)
	arts := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "6.6.6", SecurityVersion: 6})
	for name, signers := range map[string][]tufrepo.Signer{
		"no signature":        nil,
		"server's online key": e.repo.Online.Snapshot,
		"unknown key":         {tufrepotest.Key(t)},
	} {
		t.Run(name, func(t *testing.T) {
			u := e.repo.SignRelease(deviceType, arts, tufrepotest.Key(t))
			if signers == nil {
				info, _ := tufrepo.Describe(e.repo.Repo.Targets[deviceType])
				unsigned, err := tufrepo.NextTargets(e.repo.Repo.Targets[deviceType], tufrepo.TargetsEdit{Expires: start.Add(time.Hour * 1000), Add: []tufrepo.Target{arts[0].Target}})
				if err != nil || info.Version == 0 {
					t.Fatal(err)
				}
				u.Metadata = unsigned
			} else {
				var err error
				if u.Metadata, err = tufrepo.Sign(u.Metadata, signers...); err != nil {
					t.Fatal(err)
				}
			}
			// The server refuses the upload…
			if err := e.repo.Repo.Clone().Apply(tufrepo.Change{Uploads: []tufrepo.Upload{u}}, e.server.Now()); !errors.Is(err, tufrepo.ErrBadSignature) {
				t.Fatalf("server accepted unsigned release: %v", err)
			}
			// …and a device refuses it even from a compromised server.
			e.forge(map[string][]byte{deviceType: u.Metadata})
			refused(t, e.refreshErr(), verifier.ReasonBadSignature)
		})
	}
}

func TestRefusesReplayedTimestamp(t *testing.T) {
	t.Parallel()
	e := setup(t)
	old := e.repo.Server.Files()
	e.release2()
	e.repo.Server.SetFiles(old) // a mirror replays yesterday's repository
	refused(t, e.refreshErr(), verifier.ReasonRollback)
	e.restart()
	refused(t, e.refreshErr(), verifier.ReasonRollback)
}

func TestRefusesReplayedSnapshot(t *testing.T) {
	t.Parallel()
	e := setup(t)
	oldSnap := e.repo.Repo.Snapshot
	e.release2()
	// A stolen timestamp key signs a new timestamp naming the old snapshot.
	e.forgeTimestamp(oldSnap)
	refused(t, e.refreshErr(), verifier.ReasonRollback)
}

func TestRefusesReplayedTargets(t *testing.T) {
	t.Parallel()
	e := setup(t)
	oldRole := e.repo.Repo.Targets[deviceType]
	e.release2()
	// Stolen online keys list the line's previous role version again.
	e.forge(map[string][]byte{deviceType: oldRole})
	refused(t, e.refreshErr(), verifier.ReasonRollback)
}

func TestRefusesTargetBelowSecurityFloor(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v2 := e.release2()
	e.install(v2[0], e.repo.Assign(deviceID, v2[0]))
	if err := e.dev.Finalize(context.Background(), e.repo.Finalize(deviceID, "2.0.0", 2), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	_, err := e.verify(e.repo.Assign(deviceID, e.v1[0]))
	refused(t, err, verifier.ReasonBelowFloor)
}

func TestRefusesExpiredTimestampFromFrozenServer(t *testing.T) {
	t.Parallel()
	e := setup(t)
	doc := e.repo.Assign(deviceID, e.v1[0])
	// The server stops re-signing; it keeps serving the same timestamp.
	e.advance(25 * time.Hour)
	refused(t, e.refreshErr(), verifier.ReasonExpired)
	_, err := e.verify(doc)
	refused(t, err, verifier.ReasonExpired)
	// Once the server signs again the device recovers.
	e.repo.Publish()
	e.refresh()
	if _, err := e.verify(doc); err != nil {
		t.Fatal(err)
	}
}

func TestRefusesWhenDeviceClockSetBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	doc := e.repo.Assign(deviceID, e.v1[0])
	// Two days pass on the device; the server is frozen.
	e.clock.Set(start.Add(48 * time.Hour))
	refused(t, e.refreshErr(), verifier.ReasonExpired)
	// The clock is set back (RTC reset, or an attacker with the device's
	// time source), and the device restarts.
	e.clock.Set(start.Add(time.Hour))
	e.restart()
	if got := e.dev.ClockFloor(); got.Before(start.Add(48 * time.Hour)) {
		t.Fatalf("clock floor %v, want ≥ %v", got, start.Add(48*time.Hour))
	}
	refused(t, e.refreshErr(), verifier.ReasonExpired)
	_, err := e.verify(doc)
	refused(t, err, verifier.ReasonExpired)

	// The same metadata is fine for a device that never saw the later time.
	fresh := e.cfg
	fresh.Dir = t.TempDir()
	v, err := verifier.New(fresh)
	if err != nil {
		t.Fatal(err)
	}
	if err := v.Refresh(context.Background()); err != nil {
		t.Fatalf("device without the floor: %v", err)
	}
}

func TestRefusesMixAndMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		mix  func(e *env, oldSnap, oldRole []byte)
	}{
		{"snapshot from an older version", func(e *env, oldSnap, _ []byte) {
			info, _ := tufrepo.Describe(e.repo.Repo.Snapshot)
			if len(oldSnap) > len(e.repo.Repo.Snapshot) {
				e.t.Fatalf("old snapshot is longer than the new one (%d > %d)", len(oldSnap), len(e.repo.Repo.Snapshot))
			}
			e.repo.Server.Put(strconv.FormatInt(info.Version, 10)+".snapshot.json", oldSnap)
		}},
		{"targets from an older version", func(e *env, _, oldRole []byte) {
			info, _ := tufrepo.Describe(e.repo.Repo.Targets[deviceType])
			e.repo.Server.Put(strconv.FormatInt(info.Version, 10)+"."+deviceType+".json", oldRole)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t)
			oldSnap, oldRole := e.repo.Repo.Snapshot, e.repo.Repo.Targets[deviceType]
			e.repo.Release(deviceType, tufrepotest.Release{Version: "2.0.0", SecurityVersion: 2})
			tc.mix(e, oldSnap, oldRole)
			refused(t, e.refreshErr(), verifier.ReasonMixAndMatch)
		})
	}
}

func TestRefusesArtifactLongerThanSigned(t *testing.T) {
	t.Parallel()
	e := setup(t)
	tg, err := e.verify(e.repo.Assign(deviceID, e.v1[0]))
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.dev.NewStream(tg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Write(e.v1[0].Data); err != nil {
		t.Fatal(err)
	}
	n, err := s.Write([]byte{0})
	refused(t, err, verifier.ReasonTooLong)
	if n != 0 || s.Offset() != tg.Length {
		t.Fatalf("consumed %d extra bytes, offset %d", n, s.Offset())
	}
	// A single write running past the end is refused before any of it is consumed.
	s2, _ := e.dev.NewStream(tg, nil)
	n, err = s2.Write(append(bytes.Clone(e.v1[0].Data), 'x'))
	refused(t, err, verifier.ReasonTooLong)
	if n != 0 {
		t.Fatalf("consumed %d bytes of an oversize write", n)
	}
}

func TestRefusesOversizeMetadata(t *testing.T) {
	t.Parallel()
	pad := func(b []byte, n int) []byte { return append(bytes.Clone(b), bytes.Repeat([]byte(" "), n)...) }
	for _, tc := range []struct {
		name   string
		attack func(e *env) error
	}{
		{"timestamp over its limit", func(e *env) error {
			e.repo.Server.Put("timestamp.json", pad(e.repo.Server.File("timestamp.json"), 20<<10))
			return e.refreshErr()
		}},
		{"next root over its limit", func(e *env) error {
			e.repo.Server.Put("2.root.json", pad(e.repo.TrustedRoot(), 70<<10))
			return e.refreshErr()
		}},
		{"role longer than the snapshot says", func(e *env) error {
			e.repo.Release(deviceType, tufrepotest.Release{Version: "2.0.0"})
			info, _ := tufrepo.Describe(e.repo.Repo.Targets[deviceType])
			name := strconv.FormatInt(info.Version, 10) + "." + deviceType + ".json"
			e.repo.Server.Put(name, pad(e.repo.Server.File(name), 1))
			return e.refreshErr()
		}},
		{"director document over its limit", func(e *env) error {
			_, err := e.verify(pad(e.repo.Assign(deviceID, e.v1[0]), 64<<10))
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			refused(t, tc.attack(setup(t)), verifier.ReasonTooLong)
		})
	}
}

func TestRefusesWrongHardware(t *testing.T) {
	t.Parallel()
	e := setup(t)
	revB := e.repo.Release(deviceType, tufrepotest.Release{Version: "1.1.0", SecurityVersion: 1, HWRevs: []string{"B"}})
	other := e.repo.Release("gw-300", tufrepotest.Release{Version: "1.0.0", SecurityVersion: 1})
	e.refresh()
	for name, a := range map[string]tufrepotest.Artifact{"other revision": revB[0], "other device type": other[0]} {
		t.Run(name, func(t *testing.T) {
			_, err := e.verify(e.repo.Assign(deviceID, a))
			refused(t, err, verifier.ReasonWrongHardware)
		})
	}
}

func TestRefusesCompromisedDirector(t *testing.T) {
	t.Parallel()
	e := setup(t)
	evil := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "1.0.0", SecurityVersion: 1, Size: 2048})[0]
	for _, tc := range []struct {
		name string
		doc  func() []byte
		want verifier.Reason
	}{
		{"target not in offline targets", func() []byte {
			a := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "7.0.0", SecurityVersion: 7})[0]
			return e.repo.Assign(deviceID, a)
		}, verifier.ReasonNotInTargets},
		{"signed path with other bytes", func() []byte {
			a := e.v1[0]
			a.Target.Length, a.Target.SHA256 = evil.Target.Length, evil.Target.SHA256
			return e.repo.Assign(deviceID, a)
		}, verifier.ReasonMismatch},
		{"signed target with a forged security version", func() []byte {
			a := e.v1[0]
			a.Target.Custom.SecurityVersion = 99
			return e.repo.Assign(deviceID, a)
		}, verifier.ReasonMismatch},
		{"another device's assignment", func() []byte { return e.repo.Assign("dev-2", e.v1[0]) }, verifier.ReasonWrongDevice},
		{"key not in root", func() []byte {
			doc, err := tufrepo.SignAssignment(tufrepo.Assignment{DeviceID: deviceID, AssignmentID: "x", Target: e.v1[0].Target, Counter: 50, Expires: start.Add(time.Hour)}, tufrepotest.Key(t))
			if err != nil {
				t.Fatal(err)
			}
			return doc
		}, verifier.ReasonBadSignature},
		{"expired assignment", func() []byte {
			return e.repo.Assign(deviceID, e.v1[0], func(a *tufrepo.Assignment) { a.Expires = start.Add(-time.Minute) })
		}, verifier.ReasonExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.verify(tc.doc())
			refused(t, err, tc.want)
		})
	}
}

func TestRefusesDelegatedKeyOutsideItsPaths(t *testing.T) {
	t.Parallel()
	e := setup(t)
	// The modem team's CI key may sign only the modem component.
	modem := tufrepotest.Key(t)
	top, err := tufrepo.NextTargets(e.repo.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{
		Expires: start.Add(tufrepotest.OfflineLifetime),
		Delegate: []tufrepo.Delegation{{
			Name: "gw-200-modem", Paths: []string{deviceType + "/modem/*/*"},
			Keys: tufrepotest.Keys(t, modem), Threshold: 1,
		}},
	})
	if err == nil {
		top, err = tufrepo.Sign(top, e.repo.Targets)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{{Role: metadata.TARGETS, Metadata: top}}})

	// Its leaked key signs a rootfs image.
	evil := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "6.6.6", SecurityVersion: 6})[0]
	role, err := tufrepo.NextTargets(nil, tufrepo.TargetsEdit{Expires: start.Add(time.Hour * 1000), Add: []tufrepo.Target{evil.Target}})
	if err == nil {
		role, err = tufrepo.Sign(role, modem)
	}
	if err != nil {
		t.Fatal(err)
	}
	u := tufrepo.Upload{Role: "gw-200-modem", Metadata: role, Artifacts: map[string]tufrepo.Artifact{evil.Target.Path: {Length: evil.Target.Length, SHA256: evil.Target.SHA256}}}
	if err := e.repo.Repo.Clone().Apply(tufrepo.Change{Uploads: []tufrepo.Upload{u}}, e.server.Now()); !errors.Is(err, tufrepo.ErrOutsideDelegation) {
		t.Fatalf("server upload check: %v, want ErrOutsideDelegation", err)
	}
	e.forge(map[string][]byte{"gw-200-modem": role})
	e.refresh() // the role itself is validly signed
	_, err = e.verify(e.repo.Assign(deviceID, evil))
	refused(t, err, verifier.ReasonUnsafeDelegate)
}

func TestKeyCompromiseBelowThreshold(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *setupOpts) { o.rootKeys, o.rootThreshold = 2, 2 })
	// One of two root keys is stolen; the thief replaces the timestamp key.
	thief := tufrepotest.Key(t)
	next, err := tufrepo.NextRoot(e.repo.Repo.Root(), start.Add(tufrepotest.OfflineLifetime), map[string]tufrepo.RoleKeys{
		metadata.TIMESTAMP: {Keys: tufrepotest.Keys(t, thief), Threshold: 1},
	})
	if err == nil {
		next, err = tufrepo.Sign(next, e.repo.Root[0])
	}
	if err != nil {
		t.Fatal(err)
	}
	if err := e.repo.Repo.Clone().Apply(tufrepo.Change{Roots: [][]byte{next}}, e.server.Now()); !errors.Is(err, tufrepo.ErrBadSignature) {
		t.Fatalf("server accepted a root signed by 1 of 2 keys: %v", err)
	}
	e.repo.Server.Put("2.root.json", next)
	refused(t, e.refreshErr(), verifier.ReasonBadSignature)
	if v := e.dev.RootVersion(); v != 1 {
		t.Fatalf("device root version %d, want 1", v)
	}
}

// rotateRoot signs and applies root N+1 with changes, signed by the
// current root keys and newRootKeys (when root keys change).
func (e *env) rotateRoot(changes map[string]tufrepo.RoleKeys, newRootKeys []tufrepo.Signer, uploads ...tufrepo.Upload) {
	e.t.Helper()
	next, err := tufrepo.NextRoot(e.repo.Repo.Root(), e.server.Now().Add(tufrepotest.OfflineLifetime), changes)
	if err == nil {
		next, err = tufrepo.Sign(next, append(append([]tufrepo.Signer{}, e.repo.Root...), newRootKeys...)...)
	}
	if err != nil {
		e.t.Fatal(err)
	}
	e.repo.Apply(tufrepo.Change{Roots: [][]byte{next}, Uploads: uploads})
	if newRootKeys != nil {
		e.repo.Root = newRootKeys
	}
}

func TestRootRotationFollowed(t *testing.T) {
	t.Parallel()
	e := setup(t, func(o *setupOpts) { o.rootKeys, o.rootThreshold = 2, 2 })
	oldRoot := e.repo.Root
	newRoot := []tufrepo.Signer{tufrepotest.Key(t), tufrepotest.Key(t), tufrepotest.Key(t)}
	e.rotateRoot(map[string]tufrepo.RoleKeys{metadata.ROOT: {Keys: tufrepotest.Keys(t, newRoot...), Threshold: 2}}, newRoot)
	// Version 3 is signed by the new keys alone (2 of 3).
	e.repo.Root = newRoot[:2]
	e.rotateRoot(map[string]tufrepo.RoleKeys{}, nil)
	e.refresh()
	if v := e.dev.RootVersion(); v != 3 {
		t.Fatalf("device root version %d, want 3", v)
	}
	// The retired keys can no longer sign a root.
	next, err := tufrepo.NextRoot(e.repo.Repo.Root(), start.Add(tufrepotest.OfflineLifetime), nil)
	if err == nil {
		next, err = tufrepo.Sign(next, oldRoot...)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.repo.Server.Put("4.root.json", next)
	refused(t, e.refreshErr(), verifier.ReasonBadSignature)
	if _, err := e.verify(e.repo.Assign(deviceID, e.v1[0])); err != nil {
		t.Fatalf("after refusing root 4: %v", err)
	}
}

func TestTargetsKeyRotationFollowed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	oldKey, newKey := e.repo.Targets, tufrepotest.Key(t)
	top, err := tufrepo.NextTargets(e.repo.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{Expires: start.Add(tufrepotest.OfflineLifetime)})
	if err != nil {
		t.Fatal(err)
	}
	signedNew, err := tufrepo.Sign(top, newKey)
	if err != nil {
		t.Fatal(err)
	}
	e.rotateRoot(map[string]tufrepo.RoleKeys{metadata.TARGETS: {Keys: tufrepotest.Keys(t, newKey), Threshold: 1}}, nil,
		tufrepo.Upload{Role: metadata.TARGETS, Metadata: signedNew})
	e.repo.Targets = newKey
	e.refresh()
	v2 := e.repo.Release(deviceType, tufrepotest.Release{Version: "2.0.0", SecurityVersion: 2})
	e.refresh()
	if _, err := e.verify(e.repo.Assign(deviceID, v2[0])); err != nil {
		t.Fatal(err)
	}
	// Top-level targets signed by the retired key is refused.
	stale, err := tufrepo.NextTargets(e.repo.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{Expires: start.Add(tufrepotest.OfflineLifetime)})
	if err == nil {
		stale, err = tufrepo.Sign(stale, oldKey)
	}
	if err != nil {
		t.Fatal(err)
	}
	e.forge(map[string][]byte{metadata.TARGETS: stale})
	refused(t, e.refreshErr(), verifier.ReasonBadSignature)
}

func TestDirectorKeyRotationFollowed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	oldKey, newKey := e.repo.Director, tufrepotest.Key(t)
	e.rotateRoot(map[string]tufrepo.RoleKeys{tufmeta.RoleDirector: {Keys: tufrepotest.Keys(t, newKey), Threshold: 1}}, nil)
	if err := e.repo.Repo.CheckSigners(tufmeta.RoleDirector, oldKey); err == nil {
		t.Fatal("server still accepts the retired director key")
	}
	if err := e.repo.Repo.CheckSigners(tufmeta.RoleDirector, newKey); err != nil {
		t.Fatal(err)
	}
	oldDoc := e.repo.Assign(deviceID, e.v1[0])
	e.repo.Director = newKey
	newDoc := e.repo.Assign(deviceID, e.v1[0])
	e.refresh()
	refused(t, func() error { _, err := e.verify(oldDoc); return err }(), verifier.ReasonBadSignature)
	if _, err := e.verify(newDoc); err != nil {
		t.Fatal(err)
	}
}

func TestRevokedKeyRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	revoked, replacement := e.repo.Lines[deviceType], tufrepotest.Key(t)
	// Top-level targets swaps the line's key; the role is re-signed by the
	// new key in the same change.
	top, err := tufrepo.NextTargets(e.repo.Repo.Targets[metadata.TARGETS], tufrepo.TargetsEdit{
		Expires:  start.Add(tufrepotest.OfflineLifetime),
		Delegate: []tufrepo.Delegation{{Name: deviceType, Paths: tufmeta.DelegationPaths(deviceType), Keys: tufrepotest.Keys(t, replacement), Threshold: 1}},
	})
	if err == nil {
		top, err = tufrepo.Sign(top, e.repo.Targets)
	}
	if err != nil {
		t.Fatal(err)
	}
	resigned := e.repo.SignRelease(deviceType, nil, replacement)
	e.repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{{Role: metadata.TARGETS, Metadata: top}, resigned}})
	e.repo.Lines[deviceType] = replacement
	e.refresh()

	arts := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "6.6.6", SecurityVersion: 6})
	u := e.repo.SignRelease(deviceType, arts, revoked)
	if err := e.repo.Repo.Clone().Apply(tufrepo.Change{Uploads: []tufrepo.Upload{u}}, e.server.Now()); !errors.Is(err, tufrepo.ErrBadSignature) {
		t.Fatalf("server accepted metadata signed by a revoked key: %v", err)
	}
	e.forge(map[string][]byte{deviceType: u.Metadata})
	refused(t, e.refreshErr(), verifier.ReasonBadSignature)
	if _, err := e.verify(e.repo.Assign(deviceID, arts[0])); verifier.ReasonOf(err) == "" {
		t.Fatalf("assignment of the revoked key's release: %v", err)
	}
}

// The security-floor story of issue item 6: a release with a higher
// security version is installed and committed, found bad hours later and
// rolled back fleet-wide — possible because the floor rises only on a
// finalize, never at commit.
func TestRollbackBeforeFinalizeAllowed(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.install(e.v1[0], e.repo.Assign(deviceID, e.v1[0]))
	if err := e.dev.Finalize(context.Background(), e.repo.Finalize(deviceID, "1.0.0", 1), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	v2 := e.release2()
	e.install(v2[0], e.repo.Assign(deviceID, v2[0])) // installed and committed: no finalize yet
	e.advance(6 * time.Hour)                         // crash loops found hours later
	e.repo.Publish()
	e.refresh()
	e.restart()
	if e.dev.Floor() != 1 {
		t.Fatalf("floor %d, want 1 (commit must not raise it)", e.dev.Floor())
	}
	e.install(e.v1[0], e.repo.Assign(deviceID, e.v1[0]))
}

func TestRollbackAfterFinalizeRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v2 := e.release2()
	e.install(v2[0], e.repo.Assign(deviceID, v2[0]))
	ctx := context.Background()
	// A finalize for a version the device does not run changes nothing.
	refused(t, e.dev.Finalize(ctx, e.repo.Finalize(deviceID, "2.0.0", 2), "1.0.0"), verifier.ReasonMismatch)
	// A compromised director cannot raise the floor beyond what was signed.
	refused(t, e.dev.Finalize(ctx, e.repo.Finalize(deviceID, "2.0.0", 99), "2.0.0"), verifier.ReasonNotInTargets)
	refused(t, e.dev.Finalize(ctx, e.repo.Finalize("dev-2", "2.0.0", 2), "2.0.0"), verifier.ReasonWrongDevice)
	if e.dev.Floor() != 0 {
		t.Fatalf("floor %d after refused finalizes", e.dev.Floor())
	}
	if err := e.dev.Finalize(ctx, e.repo.Finalize(deviceID, "2.0.0", 2), "2.0.0"); err != nil {
		t.Fatal(err)
	}
	e.restart()
	_, err := e.verify(e.repo.Assign(deviceID, e.v1[0]))
	refused(t, err, verifier.ReasonBelowFloor)
	// The floor never goes down.
	if err := e.dev.Finalize(ctx, e.repo.Finalize(deviceID, "1.0.0", 1), "1.0.0"); err != nil {
		t.Fatal(err)
	}
	if e.dev.Floor() != 2 {
		t.Fatalf("floor %d, want 2", e.dev.Floor())
	}
}

func TestDirectorCounterReplayRefused(t *testing.T) {
	t.Parallel()
	e := setup(t)
	v2 := e.release2()
	doc1 := e.repo.Assign(deviceID, e.v1[0])
	doc2 := e.repo.Assign(deviceID, v2[0])
	e.install(e.v1[0], doc1)
	e.install(v2[0], doc2)
	_, err := e.verify(doc1)
	refused(t, err, verifier.ReasonRollback)
	// The accepted document itself still verifies (resume after restart)…
	e.restart()
	if _, err := e.verify(doc2); err != nil {
		t.Fatalf("resuming the accepted document: %v", err)
	}
	// …but no other document with its counter, nor an older one.
	same := e.repo.Assign(deviceID, e.v1[0], func(a *tufrepo.Assignment) { a.Counter = 2 })
	_, err = e.verify(same)
	refused(t, err, verifier.ReasonRollback)
	_, err = e.verify(doc1)
	refused(t, err, verifier.ReasonRollback)
	tg, err := e.verify(e.repo.Assign(deviceID, e.v1[0]))
	if err != nil {
		t.Fatal(err)
	}
	if tg.Counter != 4 {
		t.Fatalf("counter %d, want 4", tg.Counter)
	}
}

func TestResumeStreamAfterRestart(t *testing.T) {
	t.Parallel()
	e := setup(t)
	a := tufrepotest.Artifacts(deviceType, tufrepotest.Release{Version: "3.0.0", SecurityVersion: 3, Size: 1 << 20})[0]
	e.repo.Apply(tufrepo.Change{Uploads: []tufrepo.Upload{e.repo.SignRelease(deviceType, []tufrepotest.Artifact{a})}})
	e.refresh()
	doc := e.repo.Assign(deviceID, a)
	tg, err := e.verify(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.dev.Accept(tg); err != nil {
		t.Fatal(err)
	}
	s, _ := e.dev.NewStream(tg, nil)
	half := 300_001
	if _, err := s.Write(a.Data[:half]); err != nil {
		t.Fatal(err)
	}
	state, err := s.State()
	if err != nil {
		t.Fatal(err)
	}

	e.restart() // power cut; the agent kept the document and the state
	tg, err = e.verify(doc)
	if err != nil {
		t.Fatal(err)
	}
	s, err = e.dev.NewStream(tg, state)
	if err != nil {
		t.Fatal(err)
	}
	if s.Offset() != int64(half) {
		t.Fatalf("resumed at %d, want %d", s.Offset(), half)
	}
	if _, err := s.Write(a.Data[half:]); err != nil {
		t.Fatal(err)
	}
	if err := s.Finish(); err != nil {
		t.Fatal(err)
	}

	// A state for another target, or with a forged offset, is refused.
	other := *tg
	other.SHA256 = e.v1[0].Target.SHA256
	if _, err := e.dev.NewStream(&other, state); err == nil {
		t.Fatal("resumed another target's state")
	}
	forged := bytes.Replace(state, []byte(`"offset":300001`), []byte(`"offset":300000`), 1)
	if bytes.Equal(forged, state) {
		t.Fatal("test did not change the offset")
	}
	if _, err := e.dev.NewStream(tg, forged); err == nil {
		t.Fatal("resumed a state whose offset disagrees with its hash")
	}
}
