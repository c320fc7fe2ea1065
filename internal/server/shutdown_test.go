package server_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
)

// TestShutdownEndsLongPolls checks that a graceful shutdown does not wait
// for parked long-polls: on a fake clock their deadline never comes, so a
// shutdown that waited for them would hit its own 30 s limit and fail.
func TestShutdownEndsLongPolls(t *testing.T) {
	dir := t.TempDir()
	fake := clock.NewFake(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	b := start(t, server.Config{DataDir: dir, Clock: fake})
	ctx := context.Background()

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pk, err := identity.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	c := pk.Credential()
	if _, err := b.srv.Store().PreauthorizeKey(ctx, store.Credential{
		TenantID: store.DefaultTenant, Kind: store.CredentialKind(c.Kind), Algorithm: c.Algorithm,
		Fingerprint: c.Fingerprint, Material: c.Material,
	}, store.System, fake.Now()); err != nil {
		t.Fatal(err)
	}
	body, sig, err := identity.SignEnrollment(priv, identity.Identity{Serial: "SN-LP", DeviceType: "gw-200", HWRev: "B", Region: "eu-west"}, fake.Now())
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("POST", b.url+"/api/device/v1/enroll", strings.NewReader(string(body)))
	req.Header.Set(identity.SignatureHeader, sig)
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var enrolled struct{ Token string }
	err = json.NewDecoder(resp.Body).Decode(&enrolled)
	resp.Body.Close()
	if err != nil || enrolled.Token == "" {
		t.Fatalf("enroll: status %d, token %q, %v", resp.StatusCode, enrolled.Token, err)
	}

	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", b.url+"/api/device/v1/checkin?wait=60s", strings.NewReader(`{"version":"1.0.0"}`))
		req.Header.Set("Authorization", "Bearer "+enrolled.Token)
		resp, err := b.client.Do(req)
		if err != nil {
			done <- -1
			return
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// Wait until the check-in is parked (a real request crossing a real
	// socket: polling real time is right here).
	for {
		_, metrics := get(t, b, "/metrics", "")
		if strings.Contains(metrics, "updraft_device_long_polls_active 1") {
			break
		}
		<-time.After(5 * time.Millisecond)
	}
	b.stop(t) // fails the test if Serve returns an error (shutdown timed out)
	if code := <-done; code != http.StatusOK {
		t.Fatalf("parked long-poll answered %d during shutdown, want 200", code)
	}
}
