package web_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

// Helpers the release and campaign page tests share: they set the server
// up through the management API (with the first admin's token) and the
// store, as an operator's tools would.

// start runs a server with an admin API token not tied to the first
// admin (whose own token works only after a password change, which costs
// two argon2 hashes per test); e.API sends it.
func start(t testing.TB) *webtest.Env {
	t.Helper()
	e := webtest.Start(t)
	nt, err := auth.GenerateAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateAPIToken(context.Background(), store.APIToken{
		TenantID: store.DefaultTenant, ID: nt.ID, Name: "web-test", Role: store.RoleAdmin,
		SecretHash: nt.SecretHash, CreatedAt: e.Clock.Now(),
	}, store.Actor{Kind: store.ActorSystem, Name: "test"}, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.APIToken = nt.Token
	return e
}

// enroll adds an accepted device.
func enroll(t testing.TB, e *webtest.Env, serial, deviceType, hwRev string) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key, err := identity.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	d, err := e.Store.Enroll(ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: hwRev,
		Region: "eu-west", Protocol: store.ProtocolNative,
		Key: store.Credential{TenantID: store.DefaultTenant, Kind: store.CredPublicKey, Algorithm: key.Algorithm,
			Fingerprint: key.Fingerprint, Material: key.PEM},
		Now: e.Clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 1000,
	})
	if err != nil {
		t.Fatalf("enroll %s: %v", serial, err)
	}
	if _, err := e.Store.AcceptDevice(ctx, store.DefaultTenant, d.ID, store.Actor{Kind: store.ActorSystem, Name: "test"}, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	return d.ID
}

// makeRelease creates a release with one raw image per hardware revision
// of deviceType and publishes it unless draft.
func makeRelease(t testing.TB, e *webtest.Env, version, deviceType string, revs []string, draft bool) store.Release {
	t.Helper()
	var rel store.Release
	e.API(t, 201, "POST", "/releases", map[string]any{"version": version, "severity": "high", "cves": []string{"CVE-2026-0101"}}, &rel)
	for _, rev := range revs {
		content := fmt.Sprintf("image %s for %s rev %s", version, deviceType, rev)
		e.API(t, 201, "PUT", fmt.Sprintf("/releases/%s/artifacts?device_type=%s&hw_revs=%s&type=raw-image&component=rootfs&name=rootfs-%s.img",
			rel.ID, deviceType, rev, strings.ToLower(rev)), strings.NewReader(content), nil)
	}
	if !draft {
		e.API(t, 200, "POST", "/releases/"+rel.ID+"/publish", nil, nil)
	}
	e.API(t, 200, "GET", "/releases/"+rel.ID, nil, &rel)
	return rel
}

// campaignFleet enrolls gw-200 devices of revisions B and C, publishes
// release 2.0.0 for them and creates a campaign over them, started unless
// draft. It returns the campaign's id.
func campaignFleet(t testing.TB, e *webtest.Env, draft bool) string {
	t.Helper()
	for i := range 8 {
		rev := "B"
		if i%2 == 1 {
			rev = "C"
		}
		enroll(t, e, fmt.Sprintf("GW-%03d", i), "gw-200", rev)
	}
	makeRelease(t, e, "2.0.0", "gw-200", []string{"B", "C"}, false)
	var created struct {
		Campaign store.Campaign `json:"campaign"`
	}
	e.API(t, 201, "POST", "/campaigns", map[string]any{
		"name": "spring rollout", "release": "2.0.0", "selector": `device_type == "gw-200"`,
		"plan":   map[string]any{"waves": []float64{50, 100}, "no_control": true},
		"health": map[string]any{"preset": "relaxed"}, "seed": 7,
	}, &created)
	if !draft {
		e.API(t, 200, "POST", "/campaigns/"+created.Campaign.ID+"/start", nil, nil)
	}
	return created.Campaign.ID
}

// signIn returns a browser signed in as a new user with the role.
func signIn(t testing.TB, e *webtest.Env, name string, role store.Role) *webtest.Browser {
	t.Helper()
	pw := name + "'s long password 1"
	e.AddUser(t, name, role, pw)
	b := e.Browser(t)
	b.Login(name, pw)
	return b
}

// httpGet fetches a management API path as the first admin; a status
// other than 200 is an error.
func httpGet(e *webtest.Env, path string) ([]byte, error) {
	req, err := http.NewRequest(http.MethodGet, e.URL+path, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+e.Token())
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, b)
	}
	return b, nil
}
