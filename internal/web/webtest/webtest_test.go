package webtest_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/web/webtest"
)

// TestEnvAPI checks the management API helper: a value goes as JSON, bytes
// as an upload, the answer is decoded, and APIToken replaces the first
// admin's token when set.
func TestEnvAPI(t *testing.T) {
	t.Parallel()
	e := webtest.Start(t)
	nt, err := auth.GenerateAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.CreateAPIToken(context.Background(), store.APIToken{
		TenantID: store.DefaultTenant, ID: nt.ID, Name: "api-test", Role: store.RoleAdmin,
		SecretHash: nt.SecretHash, CreatedAt: e.Clock.Now(),
	}, store.Actor{Kind: store.ActorSystem, Name: "test"}, e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if e.Token() != e.AdminToken {
		t.Fatal("Token is not the first admin's without APIToken")
	}
	e.APIToken = nt.Token
	var rel store.Release
	e.API(t, http.StatusCreated, "POST", "/releases", map[string]any{"version": "1.0.0", "severity": "high"}, &rel)
	if rel.ID == "" || rel.Version != "1.0.0" || rel.Severity != store.SeverityHigh {
		t.Fatalf("created %+v", rel)
	}
	e.API(t, http.StatusCreated, "PUT", "/releases/"+rel.ID+"/artifacts?device_type=gw-200&hw_revs=B&type=raw-image&name=rootfs.img", []byte("image"), nil)
	var got store.Release
	e.API(t, http.StatusOK, "GET", "/releases/"+rel.ID, nil, &got)
	if len(got.Artifacts) != 1 || got.Artifacts[0].Size != int64(len("image")) {
		t.Fatalf("artifacts %+v", got.Artifacts)
	}
	entries, _, err := e.Store.ListAudit(context.Background(), store.DefaultTenant, store.AuditQuery{Action: "release.create", Page: store.Page{Limit: 10}})
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Actor.Name != "api-test" {
		t.Fatalf("release.create audited as %+v, want the api-test token", entries)
	}
}
