package storetest

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func testDecommission(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, key := regAccepted(t, s, "SN-1", T0)
		token, err := s.AddCredential(ctx, store.Credential{TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: store.CredToken,
			Fingerprint: strings.Repeat("ab", 32)}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		// An active assignment, made through the Releases and Assignments API.
		rel, err := s.CreateRelease(ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: "2.0.0", Severity: store.SeverityLow}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddArtifact(ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: d.DeviceType,
			HWRevs: []string{d.HWRev}, Type: store.ArtifactRawImage, Name: "image.bin", Size: 1,
			SHA256: strings.Repeat("1", 64), SHA1: strings.Repeat("2", 40), MD5: strings.Repeat("3", 32)}, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.PublishRelease(ctx, store.DefaultTenant, rel.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		a, _, err := s.Assign(ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.ID, ReleaseID: rel.ID, Now: T0}, Admin)
		if err != nil {
			t.Fatal(err)
		}

		when := T0.Add(time.Hour)
		got, err := s.DecommissionDevice(ctx, store.DefaultTenant, d.ID, Admin, when)
		if err != nil {
			t.Fatal(err)
		}
		if got.State != store.DeviceDecommissioned || got.CredentialEpoch != d.CredentialEpoch+1 {
			t.Fatalf("decommissioned device = %+v; want epoch %d", got, d.CredentialEpoch+1)
		}
		creds, err := s.ListCredentials(ctx, store.DefaultTenant, d.ID)
		if err != nil || len(creds) != 2 {
			t.Fatalf("credentials = %+v, %v", creds, err)
		}
		for _, c := range creds {
			if c.State != store.CredRevoked || c.RevokedAt == nil || !c.RevokedAt.Equal(when) {
				t.Fatalf("credential after decommissioning = %+v; want revoked at %v", c, when)
			}
		}
		for _, c := range []store.Credential{key, token} {
			if _, _, err := s.DeviceByCredential(ctx, store.DefaultTenant, c.Kind, c.Fingerprint); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("%s credential still finds the device: %v", c.Kind, err)
			}
		}
		if _, err := s.ActiveAssignment(ctx, store.DefaultTenant, d.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("active assignment after decommissioning: %v, want ErrNotFound", err)
		}
		if ca, err := s.Assignment(ctx, store.DefaultTenant, a.ID); err != nil || ca.State != store.AssignCanceled || ca.Active || ca.Reason == "" {
			t.Fatalf("assignment after decommissioning = %+v, %v; want canceled with a reason", ca, err)
		}
		if e := regAudits(t, s, "assignment.cancel"); len(e) != 1 || e[0].ObjectID != a.ID || e[0].Actor != Admin {
			t.Fatalf("assignment.cancel entries = %+v; want one for %s by %v", e, a.ID, Admin)
		}
		entries := regAudits(t, s, "device.decommission")
		if len(entries) != 1 || !strings.Contains(string(entries[0].Details), a.ID) || !strings.Contains(string(entries[0].Details), `"revoked_credentials":2`) {
			t.Fatalf("decommission audit = %+v", entries)
		}
		if _, err := s.AddCredential(ctx, store.Credential{TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: store.CredToken,
			Fingerprint: strings.Repeat("cd", 32)}, Admin, when); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("adding a credential to a decommissioned device: %v, want ErrConflict", err)
		}
		regVerifyAudit(t, s)
	}
}

func testCredentials(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		tokenHash := strings.Repeat("ef", 32)
		tok := store.Credential{TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: store.CredToken, Fingerprint: tokenHash}
		added := T0.Add(time.Second)
		c, err := s.AddCredential(ctx, tok, Admin, added)
		if err != nil || c.ID == "" || c.State != store.CredActive || !c.CreatedAt.Equal(added) {
			t.Fatalf("AddCredential = %+v, %v", c, err)
		}
		if got, gc, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredToken, tokenHash); err != nil || got.ID != d.ID || gc.ID != c.ID || !gc.CreatedAt.Equal(c.CreatedAt) {
			t.Fatalf("DeviceByCredential(token) = %+v, %+v, %v; want %+v", got, gc, err, c)
		}
		before := regSnapshot(t, s)
		for name, bad := range map[string]store.Credential{
			"same token twice":    tok,
			"token with material": {TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: store.CredToken, Fingerprint: "x", Material: "secret"},
			"unknown kind":        {TenantID: store.DefaultTenant, DeviceID: d.ID, Kind: "password", Fingerprint: "x"},
			"no device":           {TenantID: store.DefaultTenant, Kind: store.CredToken, Fingerprint: "y"},
			"unknown device":      {TenantID: store.DefaultTenant, DeviceID: "nope", Kind: store.CredToken, Fingerprint: "z"},
		} {
			if _, err := s.AddCredential(ctx, bad, Admin, T0); err == nil {
				t.Fatalf("%s: AddCredential succeeded", name)
			}
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused credentials changed counts %+v → %+v", before, after)
		}
		for _, e := range regAudits(t, s, "") {
			if strings.Contains(string(e.Details), tokenHash) {
				t.Fatalf("audit entry %d holds a token hash: %s", e.Seq, e.Details)
			}
		}
		if err := s.RevokeCredential(ctx, store.DefaultTenant, c.ID, Admin, T0.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		got, err := s.Device(ctx, store.DefaultTenant, d.ID)
		if err != nil || got.CredentialEpoch != d.CredentialEpoch+1 || got.State != store.DeviceAccepted {
			t.Fatalf("device after revoking a credential = %+v, %v; want epoch %d", got, err, d.CredentialEpoch+1)
		}
		if _, _, err := s.DeviceByCredential(ctx, store.DefaultTenant, store.CredToken, tokenHash); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoked token still works: %v", err)
		}
		mid := regSnapshot(t, s)
		if err := s.RevokeCredential(ctx, store.DefaultTenant, c.ID, Admin, T0.Add(time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if after := regSnapshot(t, s); after != mid {
			t.Fatalf("revoking a revoked credential changed counts %+v → %+v", mid, after)
		}
		if err := s.RevokeCredential(ctx, store.DefaultTenant, "no-such-credential", Admin, T0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoking an unknown credential: %v, want ErrNotFound", err)
		}
		// The same token can be added again once the old one is revoked.
		if _, err := s.AddCredential(ctx, tok, Admin, T0.Add(2*time.Hour)); err != nil {
			t.Fatalf("re-adding a revoked token: %v", err)
		}
		creds, err := s.ListCredentials(ctx, store.DefaultTenant, d.ID)
		if err != nil || len(creds) != 3 || creds[1].State != store.CredRevoked || creds[1].RevokedAt == nil {
			t.Fatalf("ListCredentials = %+v, %v; want key, revoked token, new token", creds, err)
		}
		if _, err := s.ListCredentials(ctx, store.DefaultTenant, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("credentials of an unknown device: %v, want ErrNotFound", err)
		}
		if n := len(regAudits(t, s, "credential.revoke")); n != 1 {
			t.Fatalf("%d credential.revoke entries, want 1", n)
		}
		regVerifyAudit(t, s)
	}
}
