package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
	"github.com/updraft/updraft/internal/web/webtest"
)

func TestReleaseListEmptyAndPaginated(t *testing.T) {
	t.Parallel()
	e := start(t)
	b := signIn(t, e, "vera", store.RoleViewer)
	r := b.Get("/ui/releases")
	r.MustContain(t, "No releases yet.", "updraft release create", "updraft release upload", "updraft release publish")

	for i := range 52 {
		if _, err := e.Store.CreateRelease(context.Background(), store.NewRelease{TenantID: store.DefaultTenant, Version: fmt.Sprintf("1.0.%d", i)},
			store.Actor{Kind: store.ActorSystem, Name: "test"}, e.Clock.Now().Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	rel := makeRelease(t, e, "2.0.0", "gw-200", []string{"B"}, false)
	e.API(t, 200, "POST", "/releases/"+rel.ID+"/mark-bad", map[string]any{"bad": true, "reason": "boot loop on rev C"}, nil)
	e.API(t, 200, "POST", "/releases/"+rel.ID+"/mark-affected", map[string]any{"cves": []string{"CVE-2026-2001"}}, nil)
	r = b.Get("/ui/releases")
	if n := strings.Count(r.Body, `<tr id="release-`); n != 50 {
		t.Fatalf("first page lists %d releases, want 50", n)
	}
	r.MustContain(t, `href="/ui/releases/`+rel.ID+`"`, "2.0.0", "sev-high", "CVE-2026-0101", `title="boot loop on rev C">bad<`, "affected by 1 CVE")
	m := regexp.MustCompile(`rel="next" href="([^"]+)"`).FindStringSubmatch(r.Body)
	if m == nil {
		t.Fatal("no next page link")
	}
	r = b.Get(strings.ReplaceAll(m[1], "&amp;", "&"))
	if n := strings.Count(r.Body, `<tr id="release-`); n != 3 {
		t.Fatalf("second page lists %d releases, want 3", n)
	}
}

// signingKeys sets up the server's TUF repository through the management
// API as `updraft keys init` would: online keys on the server, offline
// root and targets keys, and a gw-200 product line delegated to line.
func signingKeys(t *testing.T, e *webtest.Env, line tufrepo.Signer) {
	t.Helper()
	var keys struct{ Items []signing.OnlineKey }
	e.API(t, 201, "POST", "/tuf/online-keys", map[string]any{"roles": signing.OnlineRoles}, &keys)
	online := map[string]tufrepo.RoleKeys{}
	for _, k := range keys.Items {
		online[k.Role] = tufrepo.RoleKeys{Keys: []*metadata.Key{k.PublicKey}, Threshold: 1}
	}
	now := e.Clock.Now()
	root, targets, err := tufrepo.Init(tufrepo.InitSpec{
		Root: []tufrepo.Signer{tufrepotest.Key(t)}, RootThreshold: 1,
		Targets: []tufrepo.Signer{tufrepotest.Key(t)}, TargetsThreshold: 1,
		Snapshot: online[metadata.SNAPSHOT], Timestamp: online[metadata.TIMESTAMP], Director: online[tufmeta.RoleDirector],
		RootExpires: now.AddDate(1, 0, 0), TargetsExpires: now.AddDate(1, 0, 0),
		Delegations: []tufrepo.Delegation{{Name: "gw-200", Paths: tufmeta.DelegationPaths("gw-200"),
			Keys: tufrepotest.Keys(t, line), Threshold: 1}},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.API(t, 200, "POST", "/tuf/changes", map[string]any{
		"roots":   []json.RawMessage{root},
		"targets": []map[string]any{{"role": "targets", "metadata": json.RawMessage(targets)}},
	}, nil)
}

// signRelease signs rel's artifacts into the gw-200 role, as `updraft
// release sign` and `upload-metadata` would, expiring in months.
func signRelease(t *testing.T, e *webtest.Env, rel store.Release, months int, line tufrepo.Signer) {
	t.Helper()
	edit := tufrepo.TargetsEdit{Expires: e.Clock.Now().AddDate(0, months, 0)}
	for _, a := range rel.Artifacts {
		edit.Add = append(edit.Add, tufrepo.Target{
			Path: signing.TargetPath(a, rel.Version), Length: a.Size, SHA256: a.SHA256,
			Custom: tufmeta.TargetCustom{Version: rel.Version, SecurityVersion: rel.SecurityVersion, DeviceType: a.DeviceType,
				HWRevs: a.HWRevs, ArtifactType: string(a.Type), Compression: a.Compression, Component: signing.Component(a.Component)},
		})
	}
	var current []byte
	if resp, err := httpGet(e, "/api/v1/tuf/metadata/gw-200.json"); err == nil {
		current = resp
	}
	b, err := tufrepo.NextTargets(current, edit)
	if err != nil {
		t.Fatal(err)
	}
	if b, err = tufrepo.Sign(b, line); err != nil {
		t.Fatal(err)
	}
	e.API(t, 200, "PUT", "/tuf/roles/gw-200", strings.NewReader(string(b)), nil)
}

func TestReleaseDetailArtifactsAndSignatures(t *testing.T) {
	t.Parallel()
	e := start(t)
	rel := makeRelease(t, e, "2.0.0", "gw-200", []string{"B", "C"}, false)
	other := makeRelease(t, e, "2.1.0", "gw-200", []string{"B"}, false)
	var draft store.Release
	e.API(t, 201, "POST", "/releases", map[string]any{"version": "3.0.0-rc.1"}, &draft)
	b := signIn(t, e, "olga", store.RoleOperator)

	r := b.Get("/ui/releases/" + draft.ID)
	r.MustContain(t, `id="btn-publish"`, "No artifacts yet.", "updraft release upload 3.0.0-rc.1 FILE", "updraft release publish 3.0.0-rc.1",
		"A draft cannot be rolled out")
	if strings.Contains(r.Body, `id="btn-new-campaign"`) {
		t.Fatal("a draft offers a campaign")
	}
	// Publishing a draft without artifacts is refused by the API.
	r = b.Post("/ui/releases/"+draft.ID+"/publish", url.Values{})
	if r.Status/100 != 4 {
		t.Fatalf("publish an empty draft: %d", r.Status)
	}
	r.MustContain(t, `id="release-error"`)

	// Before any key exists the page says how to set signing up.
	r = b.Get("/ui/releases/" + rel.ID)
	r.MustContain(t, `id="btn-new-campaign"`, "Not rolled out yet.", "Release 2.0.0", `id="artifacts"`, "gw-200", "rootfs-b.img", "rootfs-c.img", "raw-image", "rootfs",
		rel.Artifacts[0].SHA256[:12], `title="`+rel.Artifacts[0].SHA256+`"`, "sev-high", "CVE-2026-0101",
		`id="signatures"`, "No signing keys yet", "updraft keys init", `id="release-finalized"`, "no: devices can still be rolled back")

	line := tufrepotest.Key(t)
	signingKeys(t, e, line)
	signRelease(t, e, rel, 3, line)
	lineID := keyID(t, line)

	r = b.Get("/ui/releases/" + rel.ID)
	r.MustContain(t, "Every artifact is signed", `<span class="sig-ok">signed</span> by gw-200`, `id="role-gw-200"`,
		`id="role-targets"`, `id="role-root"`, "<code>"+lineID[:12]+"</code>", ">met<", "(1 of 1 needed, 1 keys authorized)",
		"2026-09-01 09:00 UTC")
	if strings.Contains(r.Body, "not signed") {
		t.Fatal("a signed release shows an unsigned artifact")
	}
	// The other release is in no signed metadata.
	r = b.Get("/ui/releases/" + other.ID)
	r.MustContain(t, "1 of 1 artifacts are not validly signed", `<span class="sig-bad">not signed</span>`, "not in role gw-200")

	// Finalizing and flags show; operators act from the page.
	r.MustContain(t, `id="btn-finalize"`, `id="btn-mark-bad"`)
	r = b.Post("/ui/releases/"+rel.ID+"/mark-bad", url.Values{})
	if r.Status != http.StatusBadRequest {
		t.Fatalf("mark bad without a reason: %d", r.Status)
	}
	r.MustContain(t, `id="release-error"`, "reason is required")
	if r = b.Post("/ui/releases/"+rel.ID+"/finalize", url.Values{}); r.Status != http.StatusSeeOther {
		t.Fatalf("finalize: %d\n%s", r.Status, r.Body)
	}
	e.API(t, 200, "POST", "/releases/"+rel.ID+"/mark-affected", map[string]any{"cves": []string{"CVE-2026-2001"}}, nil)
	if r = b.Post("/ui/releases/"+rel.ID+"/mark-bad", url.Values{"reason": {"boot loop on rev C"}}); r.Status != http.StatusSeeOther {
		t.Fatalf("mark bad: %d\n%s", r.Status, r.Body)
	}
	r = b.Get(r.Location)
	r.MustContain(t, "Marked bad. No new campaign", "yes, 2026-06-01 09:00 UTC by olga", `id="release-bad"`, "Marked bad: boot loop on rev C",
		`id="release-affected"`, "CVE-2026-2001", `id="btn-clear-bad"`)
	if strings.Contains(r.Body, `id="btn-finalize"`) {
		t.Fatal("a finalized release offers Finalize")
	}
	viewer := signIn(t, e, "vera", store.RoleViewer)
	r = viewer.Get("/ui/releases/" + rel.ID)
	if strings.Contains(r.Body, `id="release-actions"`) {
		t.Fatal("a viewer is offered release actions")
	}
	if r := viewer.Post("/ui/releases/"+rel.ID+"/clear-bad", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("viewer clears the bad mark: %d", r.Status)
	}
	if r := b.PostWithoutCSRF("/ui/releases/"+rel.ID+"/clear-bad", url.Values{}); r.Status != http.StatusForbidden {
		t.Fatalf("clear the bad mark without the CSRF token: %d", r.Status)
	}

	// Three months on, the role has expired and the page says so.
	e.Clock.Advance(100 * 24 * time.Hour)
	b = signIn(t, e, "walt", store.RoleViewer) // the earlier session expired
	r = b.Get("/ui/releases/" + rel.ID)
	r.MustContain(t, `<span class="sig-bad">expired</span>`, "devices refuse it until it is re-signed")

	if r := b.Get("/ui/releases/9.9.9"); r.Status != 404 {
		t.Fatalf("unknown release: %d", r.Status)
	}
}

func keyID(t *testing.T, s tufrepo.Signer) string {
	t.Helper()
	k, err := tufrepo.SignerKey(s)
	if err != nil {
		t.Fatal(err)
	}
	id, err := tufrepo.KeyID(k)
	if err != nil {
		t.Fatal(err)
	}
	return id
}
