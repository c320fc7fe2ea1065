package mgmtapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
)

// newTestSigning is the signing service every test API gets.
func newTestSigning(t testing.TB, st store.Store, c clock.Clock) *signing.Service {
	t.Helper()
	kek := make([]byte, signing.MinKeyEncryptionKey)
	if _, err := rand.Read(kek); err != nil {
		t.Fatal(err)
	}
	s, err := signing.New(signing.Config{Store: st, Clock: c, KeyEncryptionKey: kek})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// tufFixture is a TUF repository set up the way `updraft keys init` and
// `updraft release sign` would: online keys on the server, offline root,
// targets and gw-200 release keys here, and the fixture's published
// release signed into the gw-200 role.
type tufFixture struct {
	e                   *env
	root, targets, line tufrepo.Signer
}

// tufLine is the product line the fixture delegates.
const tufLine = "gw-200"

func (e *env) tufFixture(fx *fixture) *tufFixture {
	e.t.Helper()
	f := &tufFixture{e: e, root: tufrepotest.Key(e.t), targets: tufrepotest.Key(e.t), line: tufrepotest.Key(e.t)}
	root, targets := f.initial(f.root)
	e.must(200, req{token: e.admin, method: "POST", path: "/tuf/changes", body: map[string]any{
		"roots":   []json.RawMessage{root},
		"targets": []map[string]any{{"role": "targets", "metadata": json.RawMessage(targets)}},
	}})
	f.upload(200, f.release(fx.published), f.line)
	return f
}

// initial builds root version 1 (signed by rootKey) listing the server's
// online keys, and top-level targets delegating gw-200 to the line key.
func (f *tufFixture) initial(rootKey tufrepo.Signer) (root, targets []byte) {
	e := f.e
	e.t.Helper()
	var keys struct{ Items []signing.OnlineKey }
	e.must(201, req{token: e.admin, method: "POST", path: "/tuf/online-keys", body: map[string]any{"roles": signing.OnlineRoles}}).decode(e.t, &keys)
	online := map[string]tufrepo.RoleKeys{}
	for _, k := range keys.Items {
		online[k.Role] = tufrepo.RoleKeys{Keys: []*metadata.Key{k.PublicKey}, Threshold: 1}
	}
	now := e.clock.Now()
	root, targets, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{rootKey}, RootThreshold: 1,
		Targets: []tufrepo.Signer{f.targets}, TargetsThreshold: 1,
		Snapshot: online[metadata.SNAPSHOT], Timestamp: online[metadata.TIMESTAMP], Director: online[tufmeta.RoleDirector],
		RootExpires: now.AddDate(1, 0, 0), TargetsExpires: now.AddDate(1, 0, 0),
		Delegations: []tufrepo.Delegation{{Name: tufLine, Paths: tufmeta.DelegationPaths(tufLine),
			Keys: tufrepotest.Keys(e.t, f.line), Threshold: 1}},
	})
	if err != nil {
		e.t.Fatal(err)
	}
	return root, targets
}

// current fetches a role's current metadata through the API (nil: none).
func (f *tufFixture) current(role string) []byte {
	r := f.e.do(req{token: f.e.viewer, method: "GET", path: "/tuf/metadata/" + role + ".json"})
	if r.status == 404 {
		return nil
	}
	if r.status != 200 {
		f.e.t.Fatalf("metadata %s: %d %s", role, r.status, r.body)
	}
	return r.body
}

// next returns the role's next version with edit applied, signed by keys.
func (f *tufFixture) next(role string, edit tufrepo.TargetsEdit, keys ...tufrepo.Signer) []byte {
	f.e.t.Helper()
	if edit.Expires.IsZero() {
		edit.Expires = f.e.clock.Now().AddDate(0, 3, 0)
	}
	b, err := tufrepo.NextTargets(f.current(role), edit)
	if err != nil {
		f.e.t.Fatal(err)
	}
	if b, err = tufrepo.Sign(b, keys...); err != nil {
		f.e.t.Fatal(err)
	}
	return b
}

// release is the gw-200 role's next version listing rel's artifacts as
// stored (the facts `updraft release sign` reads from the files).
func (f *tufFixture) release(rel store.Release) tufrepo.TargetsEdit {
	var edit tufrepo.TargetsEdit
	for _, a := range rel.Artifacts {
		edit.Add = append(edit.Add, tufrepo.Target{
			Path: signing.TargetPath(a, rel.Version), Length: a.Size, SHA256: a.SHA256,
			Custom: tufmeta.TargetCustom{Version: rel.Version, SecurityVersion: rel.SecurityVersion, DeviceType: a.DeviceType,
				HWRevs: a.HWRevs, ArtifactType: string(a.Type), Compression: a.Compression, Component: signing.Component(a.Component)},
		})
	}
	return edit
}

// upload sends the gw-200 role's next version with edit, signed by keys,
// and checks the status.
func (f *tufFixture) upload(status int, edit tufrepo.TargetsEdit, keys ...tufrepo.Signer) resp {
	f.e.t.Helper()
	return f.e.must(status, req{token: f.e.operator, method: "PUT", path: "/tuf/roles/" + tufLine, body: f.next(tufLine, edit, keys...)})
}

// tufRequestFor is requestFor for the signed-update routes: a request
// that succeeds against the fixture when authorized.
func (e *env) tufRequestFor(rt Route, fx fixture) (req, bool) {
	e.t.Helper()
	f := fx.tuf
	switch rt.Method + " " + strings.TrimPrefix(rt.Pattern, Prefix) {
	case "GET /tuf", "GET /tuf/online-keys":
		return req{method: rt.Method, path: strings.TrimPrefix(rt.Pattern, Prefix)}, true
	case "GET /tuf/metadata/{name}":
		return req{method: "GET", path: "/tuf/metadata/1.root.json"}, true
	case "PUT /tuf/roles/{role}":
		// The role re-signed with a later expiry: no new artifacts.
		return req{method: "PUT", path: "/tuf/roles/" + tufLine, body: f.next(tufLine, tufrepo.TargetsEdit{}, f.line)}, true
	case "POST /tuf/changes":
		return req{method: "POST", path: "/tuf/changes", body: map[string]any{
			"targets": []map[string]any{{"role": "targets", "metadata": json.RawMessage(f.next("targets", tufrepo.TargetsEdit{}, f.targets))}},
		}}, true
	case "POST /tuf/online-keys":
		return req{method: "POST", path: "/tuf/online-keys", body: map[string]any{"roles": []string{"director"}}}, true
	case "PUT /tuf/online-keys/{role}":
		return req{method: "PUT", path: "/tuf/online-keys/director", body: string(privatePEM(e.t))}, true
	case "POST /releases/{id}/finalize":
		return req{method: "POST", path: "/releases/" + fx.published.ID + "/finalize"}, true
	}
	return req{}, false
}

// tufPathValues are the fixture's path values of the signed-update routes,
// which TestUnknownIDs replaces with unknown ones.
func (f *tufFixture) tufPathValues() []string { return []string{"1.root.json", tufLine, "director"} }

func privatePEM(t testing.TB) []byte {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	b, err := tufrepo.MarshalPrivateKey(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestTUFUploadRefusals checks every refusal of signed metadata: the
// status, the code, a message naming the problem, and that nothing changed.
func TestTUFUploadRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	f := fx.tuf
	var rel store.Release
	e.must(200, req{token: e.viewer, method: "GET", path: "/releases/" + e.release("2.0.0", tufLine, []string{"B"}, false).ID}).decode(t, &rel)
	good := f.release(rel)
	tampered := f.release(rel)
	tampered.Add[0].SHA256 = strings.Repeat("ab", 32)
	longer := f.release(rel)
	longer.Add[0].Length++
	otherHW := f.release(rel)
	otherHW.Add[0].Custom.HWRevs = []string{"B", "C"}
	otherLine := f.release(rel)
	otherLine.Add[0].Path = strings.Replace(otherLine.Add[0].Path, tufLine, "gw-300", 1)
	otherLine.Add[0].Custom.DeviceType = "gw-300"
	unknown := f.release(rel)
	unknown.Add[0].Path = strings.Replace(unknown.Add[0].Path, "2.0.0", "2.0.1", 1)
	unknown.Add[0].Custom.Version = "2.0.1"
	thief := tufrepotest.Key(t)

	stale := f.next(tufLine, good, f.line)
	var info struct{ Signed struct{ Version int64 } }
	if err := json.Unmarshal(stale, &info); err != nil {
		t.Fatal(err)
	}
	staleVersion := info.Signed.Version - 1
	stale, err := tufrepo.Sign(mustSetVersion(t, stale, staleVersion), f.line)
	if err != nil {
		t.Fatal(err)
	}

	for _, c := range []struct {
		name   string
		body   []byte
		role   string
		status int
		code   string
		msg    string
	}{
		{"signed by a key the delegation does not name", f.next(tufLine, good, thief), tufLine, 400, "bad_signature", "gw-200"},
		{"hash differs from the artifact", f.next(tufLine, tampered, f.line), tufLine, 400, "artifact_mismatch", "sha256"},
		{"length differs from the artifact", f.next(tufLine, longer, f.line), tufLine, 400, "artifact_mismatch", "bytes"},
		{"hardware differs from the artifact", f.next(tufLine, otherHW, f.line), tufLine, 400, "artifact_mismatch", "hardware revisions"},
		{"path outside the delegation", f.next(tufLine, otherLine, f.line), tufLine, 400, "outside_delegation", "gw-300/"},
		{"no artifact at the path", f.next(tufLine, unknown, f.line), tufLine, 400, "artifact_mismatch", "no artifact"},
		{"stale version", stale, tufLine, 409, "stale_version", "sign again"},
		{"top-level targets signed by a release key", f.next("targets", tufrepo.TargetsEdit{}, f.line), "targets", 400, "bad_signature", "targets"},
		{"not TUF metadata", []byte(`{"signed": 1}`), tufLine, 400, "malformed_json", "signatures"},
		{"signed part not targets metadata", []byte(`{"signed": 1, "signatures": []}`), tufLine, 400, "bad_metadata", "gw-200"},
		{"too large", []byte(`{"x":"` + strings.Repeat("a", int(tufmeta.DefaultLimits().Delegated)) + `"}`), tufLine, 413, "too_large", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := e.snapshot()
			beforeVersion := f.current(tufLine)
			r := e.must(c.status, req{token: e.operator, method: "PUT", path: "/tuf/roles/" + c.role, body: c.body})
			if got := r.errorCode(t); got != c.code {
				t.Fatalf("code %q, want %q: %s", got, c.code, r.body)
			}
			if !strings.Contains(string(r.body), c.msg) {
				t.Fatalf("message does not mention %q: %s", c.msg, r.body)
			}
			e.unchanged(before, c.name)
			if string(f.current(tufLine)) != string(beforeVersion) {
				t.Fatal("the role changed")
			}
		})
	}
	// The good one is accepted and published at once.
	var res signing.Result
	f.upload(200, good, f.line).decode(t, &res)
	if !res.Published || len(res.Stored) != 1 || res.Stored[0].Role != tufLine || res.Stored[0].Version != 2 || res.Timestamp < 2 {
		t.Fatalf("result %+v", res)
	}
	// Unknown roles and online roles are not uploadable.
	e.must(404, req{token: e.operator, method: "PUT", path: "/tuf/roles/gw-300", body: f.next(tufLine, good, f.line)})
	e.must(404, req{token: e.operator, method: "PUT", path: "/tuf/roles/snapshot", body: []byte("{}")})
}

// mustSetVersion rewrites the version of unsigned-equivalent metadata
// (signatures dropped).
func mustSetVersion(t *testing.T, b []byte, v int64) []byte {
	t.Helper()
	m, err := metadata.Targets().FromBytes(b)
	if err != nil {
		t.Fatal(err)
	}
	m.Signed.Version = v
	m.ClearSignatures()
	out, err := m.ToBytes(false)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestTUFSetup covers the first change: nothing is uploadable before it,
// it must hold root 1 and targets, and its root must list online keys the
// server holds.
func TestTUFSetup(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	f := &tufFixture{e: e, root: tufrepotest.Key(t), targets: tufrepotest.Key(t), line: tufrepotest.Key(t)}
	var st signing.Status
	e.must(200, req{token: e.viewer, method: "GET", path: "/tuf"}).decode(t, &st)
	if st.Initialized || st.Health.Initialized || len(st.Roles) != 0 {
		t.Fatalf("status before setup: %+v", st)
	}
	e.must(404, req{token: e.viewer, method: "GET", path: "/tuf/metadata/root.json"})
	e.must(404, req{token: e.operator, method: "PUT", path: "/tuf/roles/targets", body: []byte("{}")})
	root, targets := f.initial(f.root)
	before := e.snapshot()
	r := e.must(400, req{token: e.operator, method: "POST", path: "/tuf/changes", body: map[string]any{"roots": []json.RawMessage{root}}})
	if r.errorCode(t) != "not_initialized" {
		t.Fatalf("root alone: %s", r.body)
	}
	// A root whose online keys the server does not hold would stop every
	// device: refused.
	foreign := tufrepotest.Key(t)
	now := e.clock.Now()
	other := tufrepo.RoleKeys{Keys: tufrepotest.Keys(t, foreign), Threshold: 1}
	badRoot, badTargets, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{f.root}, RootThreshold: 1, Targets: []tufrepo.Signer{f.targets}, TargetsThreshold: 1,
		Snapshot: other, Timestamp: other, Director: other, RootExpires: now.AddDate(1, 0, 0), TargetsExpires: now.AddDate(1, 0, 0),
	})
	if err != nil {
		t.Fatal(err)
	}
	r = e.must(400, req{token: e.operator, method: "POST", path: "/tuf/changes", body: map[string]any{
		"roots": []json.RawMessage{badRoot}, "targets": []map[string]any{{"role": "targets", "metadata": json.RawMessage(badTargets)}}}})
	if r.errorCode(t) != "online_keys" || !strings.Contains(string(r.body), "snapshot") {
		t.Fatalf("foreign online keys: %s", r.body)
	}
	e.unchanged(before, "refused setup")
	var res signing.Result
	e.must(200, req{token: e.operator, method: "POST", path: "/tuf/changes", body: map[string]any{
		"roots": []json.RawMessage{root}, "targets": []map[string]any{{"role": "targets", "metadata": json.RawMessage(targets)}}}}).decode(t, &res)
	if !res.Published || res.Snapshot != 1 || res.Timestamp != 1 || len(res.Stored) != 2 {
		t.Fatalf("setup result %+v", res)
	}
	e.must(200, req{token: e.viewer, method: "GET", path: "/tuf"}).decode(t, &st)
	if !st.Initialized || len(st.Roles) != 4 || len(st.OnlineKeys) != 3 {
		t.Fatalf("status after setup: %+v", st)
	}
	for _, k := range st.OnlineKeys {
		if !k.InRoot || !k.Usable {
			t.Fatalf("online key %+v", k)
		}
	}
	if got := e.must(200, req{token: e.viewer, method: "GET", path: "/tuf/metadata/root.json"}).body; string(got) != string(root) {
		t.Fatal("root.json is not the uploaded root")
	}
	if r := e.must(200, req{token: e.viewer, method: "GET", path: "/tuf/metadata/timestamp.json"}); r.header.Get("Content-Length") == "" {
		t.Fatal("no Content-Length")
	}
	e.must(404, req{token: e.viewer, method: "GET", path: "/tuf/metadata/2.root.json"})
	e.must(404, req{token: e.viewer, method: "GET", path: "/tuf/metadata/..%2Fetc.json"})
	// A second first change is just a stale root.
	r = e.must(409, req{token: e.operator, method: "POST", path: "/tuf/changes", body: map[string]any{"roots": []json.RawMessage{root}}})
	if r.errorCode(t) != "stale_version" {
		t.Fatalf("root 1 again: %s", r.body)
	}
}

// TestTUFOnlineKeys covers generating and importing online keys.
func TestTUFOnlineKeys(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var gen struct{ Items []signing.OnlineKey }
	e.must(201, req{token: e.admin, method: "POST", path: "/tuf/online-keys", body: map[string]any{"roles": []string{"snapshot", "director"}}}).decode(t, &gen)
	if len(gen.Items) != 2 || gen.Items[0].Role != "snapshot" || gen.Items[1].Role != "director" || gen.Items[0].InRoot {
		t.Fatalf("generated %+v", gen.Items)
	}
	for _, bad := range []map[string]any{{"roles": []string{"targets"}}, {"roles": []string{}}} {
		if r := e.must(400, req{token: e.admin, method: "POST", path: "/tuf/online-keys", body: bad}); r.errorCode(t) != "bad_role" {
			t.Fatalf("%v: %s", bad, r.body)
		}
	}
	pemKey := privatePEM(t)
	e.clock.Advance(time.Second)
	var imp signing.OnlineKey
	e.must(201, req{token: e.admin, method: "PUT", path: "/tuf/online-keys/timestamp", body: string(pemKey)}).decode(t, &imp)
	e.must(409, req{token: e.admin, method: "PUT", path: "/tuf/online-keys/timestamp", body: string(pemKey)})
	if r := e.must(400, req{token: e.admin, method: "PUT", path: "/tuf/online-keys/timestamp", body: "not a key"}); r.errorCode(t) != "bad_key" {
		t.Fatalf("garbage key: %s", r.body)
	}
	var list struct{ Items []signing.OnlineKey }
	e.must(200, req{token: e.viewer, method: "GET", path: "/tuf/online-keys"}).decode(t, &list)
	if len(list.Items) != 3 || list.Items[2].KeyID != imp.KeyID || !list.Items[2].Usable {
		t.Fatalf("listed %+v", list.Items)
	}
	// The private halves never appear.
	r := e.must(200, req{token: e.viewer, method: "GET", path: "/tuf"})
	if strings.Contains(string(r.body), "PRIVATE") || strings.Contains(string(r.body), "sealed") {
		t.Fatalf("status shows private material: %s", r.body)
	}
}

// TestFinalizeRoute covers POST /releases/{id}/finalize.
func TestFinalizeRoute(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	fx := e.fixture()
	before := e.snapshot()
	e.must(409, req{token: e.operator, method: "POST", path: "/releases/" + fx.draft.ID + "/finalize"})
	e.unchanged(before, "finalize a draft")
	var f1, f2 store.FinalizedRelease
	e.must(200, req{token: e.operator, method: "POST", path: "/releases/" + fx.published.Version + "/finalize"}).decode(t, &f1)
	e.clock.Advance(time.Hour)
	e.must(200, req{token: e.operator, method: "POST", path: "/releases/" + fx.published.ID + "/finalize"}).decode(t, &f2)
	if f1.ReleaseID != fx.published.ID || f1.Version != "1.0.0" || !f1.FinalizedAt.Equal(f2.FinalizedAt) {
		t.Fatalf("finalize %+v then %+v", f1, f2)
	}
	entries, _, err := e.st.ListAudit(context.Background(), store.DefaultTenant, store.AuditQuery{Action: "release.finalize"})
	if err != nil || len(entries) != 1 {
		t.Fatalf("audit: %d entries, %v", len(entries), err)
	}
}
