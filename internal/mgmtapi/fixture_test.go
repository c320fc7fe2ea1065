package mgmtapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/store"
)

// fixture holds one object of every kind a route can act on, so that a
// request built for any route would succeed if it were authorized.
type fixture struct {
	pending    string // a pending device
	accepted   string // an accepted device with an active assignment
	credential string // the accepted device's public key credential
	published  store.Release
	draft      store.Release // a draft with one artifact
	assignment string        // the accepted device's active assignment
	user       string
	token      string           // an API token id
	tuf        *tufFixture      // a TUF repository with the published release signed
	cmp        *campaignFixture // campaigns in each state a command needs, and a webhook
}

func (e *env) fixture() fixture {
	e.t.Helper()
	ctx := context.Background()
	var fx fixture
	fx.pending = e.enroll("PENDING-1", "gw-200", "B", false)
	fx.accepted = e.enroll("ACCEPTED-1", "gw-200", "B", true)
	creds, err := e.st.ListCredentials(ctx, store.DefaultTenant, fx.accepted)
	if err != nil || len(creds) != 1 {
		e.t.Fatalf("credentials: %v %v", creds, err)
	}
	fx.credential = creds[0].ID
	fx.published = e.release("1.0.0", "gw-200", []string{"B"}, true)
	fx.draft = e.release("1.1.0-rc.1", "gw-200", []string{"B"}, false)
	var ar assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + fx.accepted + "/assignments", body: map[string]any{"release": "1.0.0"}}).decode(e.t, &ar)
	fx.assignment = ar.Assignment.ID
	var u newUserBody
	e.must(201, req{token: e.admin, method: "POST", path: "/users", body: map[string]any{"name": "dora", "role": "viewer", "password": "dora's long password"}}).decode(e.t, &u)
	fx.user = u.ID
	var nt newTokenBody
	e.must(201, req{token: e.admin, method: "POST", path: "/tokens", body: map[string]any{"name": "spare", "role": "viewer"}}).decode(e.t, &nt)
	fx.token = nt.ID
	fx.tuf = e.tufFixture(&fx)
	fx.cmp = e.campaignFixture(fx)
	return fx
}

func newPublicKeyPEM(t testing.TB) string {
	t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
}

// requestFor builds a request for rt that succeeds for a caller whose role
// allows it. Every route must be covered, so a new route cannot escape the
// role and bad-input tests.
func (e *env) requestFor(rt Route, fx fixture) req {
	e.t.Helper()
	ids := map[string]string{"{cid}": fx.credential}
	var body any
	query := ""
	switch rt.Method + " " + strings.TrimPrefix(rt.Pattern, Prefix) {
	case "GET /openapi.yaml", "GET /devices", "GET /devices/count", "GET /releases", "GET /users",
		"GET /tokens", "GET /audit", "GET /audit/verify", "GET /fleet/summary":
	case "POST /devices/preauthorize":
		body = map[string]any{"public_key": newPublicKeyPEM(e.t)}
	case "GET /devices/{id}", "GET /devices/{id}/assignments", "GET /devices/{id}/report-gaps",
		"POST /devices/{id}/decommission", "POST /devices/{id}/target-token":
		ids["{id}"] = fx.accepted
	case "GET /devices/{id}/telemetry":
		ids["{id}"] = fx.accepted
		query = "?metric=crashes"
	case "POST /devices/{id}/accept", "POST /devices/{id}/reject":
		ids["{id}"] = fx.pending
	case "POST /devices/{id}/tags", "POST /devices/{id}/groups":
		ids["{id}"] = fx.accepted
		body = map[string]any{"add": []string{"x"}}
	case "DELETE /devices/{id}/credentials/{cid}":
		ids["{id}"] = fx.accepted
	case "POST /devices/{id}/assignments":
		ids["{id}"] = fx.accepted
		body = map[string]any{"release": fx.published.Version}
	case "GET /assignments/{id}", "POST /assignments/{id}/cancel":
		ids["{id}"] = fx.assignment
	case "POST /releases":
		body = map[string]any{"version": "9.9.9"}
	case "GET /releases/{id}", "DELETE /releases/{id}", "POST /releases/{id}/publish":
		ids["{id}"] = fx.draft.ID
	case "PUT /releases/{id}/artifacts":
		ids["{id}"] = fx.draft.ID
		query = "?device_type=gw-200&hw_revs=C&type=raw-image&name=c.img"
		body = strings.NewReader("rev C image")
	case "POST /releases/{id}/mark-bad":
		ids["{id}"] = fx.published.ID
		body = map[string]any{"bad": true, "reason": "test"}
	case "POST /releases/{id}/mark-affected":
		ids["{id}"] = fx.published.ID
		body = map[string]any{"cves": []string{"CVE-2026-1111"}}
	case "POST /users":
		body = map[string]any{"name": "carol", "role": "viewer"}
	case "POST /users/{id}/password":
		ids["{id}"] = fx.user
		body = map[string]any{"password": "a brand new password"}
	case "POST /tokens":
		body = map[string]any{"name": "new", "role": "viewer"}
	case "DELETE /tokens/{id}":
		ids["{id}"] = fx.token
	default:
		if rq, ok := e.campaignRequestFor(rt, fx); ok {
			return rq
		}
		if rq, ok := e.tufRequestFor(rt, fx); ok {
			return rq
		}
		if rq, ok := e.preflightRequestFor(rt, fx); ok {
			return rq
		}
		if rq, ok := e.reportRequestFor(rt, fx); ok {
			return rq
		}
		e.t.Fatalf("no test request for route %s %s: add one to requestFor", rt.Method, rt.Pattern)
	}
	path := strings.TrimPrefix(rt.Pattern, Prefix)
	for k, v := range ids {
		path = strings.ReplaceAll(path, k, v)
	}
	return req{method: rt.Method, path: path + query, body: body}
}
