package storetest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func testTouchAPITokens(t *testing.T, h Harness) {
	t.Parallel()
	s := h.NewStore(t)
	ctx := context.Background()
	opAddTenant(t, s, "acme")
	mk := func(tenant, id string) store.APIToken {
		t.Helper()
		tk, err := s.CreateAPIToken(ctx, store.APIToken{TenantID: tenant, ID: id, Name: id, Role: store.RoleViewer, SecretHash: "hash-" + id}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		return tk
	}
	a, b, c := mk(store.DefaultTenant, "tok-a"), mk("acme", "tok-b"), mk(store.DefaultTenant, "tok-c")
	before := regSnapshot(t, s)
	check := func(id string, want *time.Time) {
		t.Helper()
		tk, err := s.APITokenByID(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if (want == nil) != (tk.LastUsedAt == nil) || want != nil && !tk.LastUsedAt.Equal(*want) {
			t.Fatalf("token %s last used %v, want %v", id, tk.LastUsedAt, want)
		}
	}
	check(a.ID, nil)

	// Unknown ids, ignored, that sort between the real ones spread those
	// over several statements of the batch; tokens of two tenants go in
	// one call, since token ids are global.
	t1, t2 := T0.Add(time.Minute+time.Microsecond), T0.Add(2*time.Minute)
	used := map[string]time.Time{a.ID: t1, b.ID: t2, c.ID: {}}
	for i := range 1200 {
		used[fmt.Sprintf("tok-a-%04d", i)] = t2
	}
	if err := s.TouchAPITokens(ctx, used); err != nil {
		t.Fatal(err)
	}
	check(a.ID, &t1)
	check(b.ID, &t2)
	check(c.ID, nil) // a zero time is no use

	// Never backwards: a late flush from another replica with older times.
	if err := s.TouchAPITokens(ctx, map[string]time.Time{a.ID: t2, b.ID: t1}); err != nil {
		t.Fatal(err)
	}
	check(a.ID, &t2)
	check(b.ID, &t2)
	if err := s.TouchAPITokens(ctx, nil); err != nil {
		t.Fatal(err)
	}

	// The lists show it.
	toks, _, err := s.ListAPITokens(ctx, store.DefaultTenant, store.Page{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range toks {
		if tk.ID == a.ID && (tk.LastUsedAt == nil || !tk.LastUsedAt.Equal(t2)) {
			t.Fatalf("listed token %s last used %v, want %v", tk.ID, tk.LastUsedAt, t2)
		}
	}
	if after := regSnapshot(t, s); after != before {
		t.Fatalf("token use flushes changed counts %+v → %+v; they are not audited", before, after)
	}
	if n, err := s.VerifyAudit(ctx, "acme"); err != nil || n != 1 {
		t.Fatalf("acme's audit chain: %d entries, %v; want only the token's creation", n, err)
	}
}
