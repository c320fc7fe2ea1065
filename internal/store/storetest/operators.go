package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// opAddTenant creates a second tenant directly in the database; the store
// has no API for tenants yet.
func opAddTenant(t *testing.T, s *sqlstore.Store, id string) {
	t.Helper()
	ctx := context.Background()
	for _, q := range []string{
		`INSERT INTO tenants (id, name, created_at) VALUES (?, ?, 0)`,
		`INSERT INTO audit_heads (tenant_id, seq, hash) VALUES (?, 0, '')`,
	} {
		args := []any{id, id}[:strings.Count(q, "?")]
		if _, err := s.DB().ExecContext(ctx, s.Dialect().Rebind(q), args...); err != nil {
			t.Fatal(err)
		}
	}
}

// opNoSecrets fails if any audit entry of the tenant contains one of secrets.
func opNoSecrets(t *testing.T, s *sqlstore.Store, tenant string, secrets ...string) {
	t.Helper()
	entries, _, err := s.ListAudit(context.Background(), tenant, store.AuditQuery{Page: store.Page{Limit: store.MaxPageLimit}})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		for _, sec := range secrets {
			if strings.Contains(string(e.Details), sec) {
				t.Fatalf("audit entry %d (%s) holds a secret hash: %s", e.Seq, e.Action, e.Details)
			}
		}
	}
}

func testOperators(t *testing.T, h Harness) {
	t.Run("Users", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		if n, err := s.CountUsers(ctx, store.DefaultTenant); err != nil || n != 0 {
			t.Fatalf("CountUsers on a fresh store = %d, %v", n, err)
		}
		const hash = "$argon2id$v=19$m=65536,t=3,p=4$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA"
		admin, err := s.CreateUser(ctx, store.User{TenantID: store.DefaultTenant, Name: "admin", Role: store.RoleAdmin,
			PasswordHash: hash, MustChangePassword: true}, store.System, T0)
		if err != nil || admin.ID == "" || !admin.CreatedAt.Equal(T0) || !admin.MustChangePassword {
			t.Fatalf("CreateUser = %+v, %v", admin, err)
		}
		got, err := s.User(ctx, store.DefaultTenant, admin.ID)
		if err != nil || got != admin {
			t.Fatalf("User = %+v, %v; want %+v", got, err, admin)
		}
		if got, err := s.UserByName(ctx, store.DefaultTenant, "admin"); err != nil || got.ID != admin.ID || got.PasswordHash != hash {
			t.Fatalf("UserByName = %+v, %v", got, err)
		}

		before := regSnapshot(t, s)
		_, err = s.CreateUser(ctx, store.User{TenantID: store.DefaultTenant, Name: "admin", Role: store.RoleViewer, PasswordHash: "x"}, Admin, T0)
		var ce *store.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("duplicate user name: %v, want a *store.ConflictError", err)
		}
		for name, u := range map[string]store.User{
			"bad role":     {TenantID: store.DefaultTenant, Name: "eve", Role: "root", PasswordHash: "x"},
			"bad name":     {TenantID: store.DefaultTenant, Name: "eve smith", Role: store.RoleViewer, PasswordHash: "x"},
			"empty name":   {TenantID: store.DefaultTenant, Role: store.RoleViewer, PasswordHash: "x"},
			"no hash":      {TenantID: store.DefaultTenant, Name: "eve", Role: store.RoleViewer},
			"no tenant":    {Name: "eve", Role: store.RoleViewer, PasswordHash: "x"},
			"malformed id": {TenantID: store.DefaultTenant, ID: "a/b", Name: "eve", Role: store.RoleViewer, PasswordHash: "x"},
		} {
			if _, err := s.CreateUser(ctx, u, Admin, T0); !errors.Is(err, store.ErrInvalidRequest) {
				t.Fatalf("%s: %v, want ErrInvalidRequest", name, err)
			}
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused users changed the audit log %+v → %+v", before, after)
		}

		names := []string{"carol", "bob", "dave", "alice", "erin"}
		for _, n := range names {
			if _, err := s.CreateUser(ctx, store.User{TenantID: store.DefaultTenant, Name: n, Role: store.RoleOperator, PasswordHash: "h-" + n}, Admin, T0); err != nil {
				t.Fatal(err)
			}
		}
		var listed []string
		after := ""
		for {
			page, next, err := s.ListUsers(ctx, store.DefaultTenant, store.Page{Limit: 4, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, u := range page {
				listed = append(listed, u.Name)
			}
			if next == "" {
				break
			}
			after = next
		}
		if want := []string{"admin", "alice", "bob", "carol", "dave", "erin"}; !slices.Equal(listed, want) {
			t.Fatalf("ListUsers = %v, want %v", listed, want)
		}
		if n, err := s.CountUsers(ctx, store.DefaultTenant); err != nil || n != 6 {
			t.Fatalf("CountUsers = %d, %v; want 6", n, err)
		}

		const newHash = "$argon2id$v=19$m=65536,t=3,p=4$bmV3c2FsdA$bmV3aGFzaG5ld2hhc2g"
		if err := s.SetPassword(ctx, store.DefaultTenant, admin.ID, newHash, false, Admin, T0.Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		got, err = s.User(ctx, store.DefaultTenant, admin.ID)
		if err != nil || got.PasswordHash != newHash || got.MustChangePassword || !got.UpdatedAt.Equal(T0.Add(time.Hour)) {
			t.Fatalf("user after SetPassword = %+v, %v", got, err)
		}
		if err := s.SetPassword(ctx, store.DefaultTenant, "nope", newHash, false, Admin, T0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("SetPassword of an unknown user: %v, want ErrNotFound", err)
		}
		if _, err := s.User(ctx, store.DefaultTenant, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user: %v, want ErrNotFound", err)
		}
		if _, err := s.UserByName(ctx, store.DefaultTenant, "nobody"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown user name: %v, want ErrNotFound", err)
		}
		if n := len(regAudits(t, s, "user.create")); n != 6 {
			t.Fatalf("%d user.create entries, want 6", n)
		}
		if e := regAudits(t, s, "user.password"); len(e) != 1 || e[0].ObjectID != admin.ID || e[0].Actor != Admin {
			t.Fatalf("user.password entries = %+v", e)
		}
		opNoSecrets(t, s, store.DefaultTenant, hash, newHash, "h-alice")
		regVerifyAudit(t, s)
	})

	t.Run("UsersPerTenant", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		opAddTenant(t, s, "acme")
		for _, tenant := range []string{store.DefaultTenant, "acme"} {
			if _, err := s.CreateUser(ctx, store.User{TenantID: tenant, Name: "admin", Role: store.RoleAdmin, PasswordHash: "x"}, Admin, T0); err != nil {
				t.Fatalf("user admin in tenant %s: %v", tenant, err)
			}
		}
		if n, err := s.CountUsers(ctx, "acme"); err != nil || n != 1 {
			t.Fatalf("CountUsers(acme) = %d, %v", n, err)
		}
		for _, tenant := range []string{store.DefaultTenant, "acme"} {
			if n, err := s.VerifyAudit(ctx, tenant); err != nil || n != 1 {
				t.Fatalf("audit of %s: %d entries, %v; want 1", tenant, n, err)
			}
		}
	})

	t.Run("APITokens", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		opAddTenant(t, s, "acme")
		u, err := s.CreateUser(ctx, store.User{TenantID: store.DefaultTenant, Name: "ci", Role: store.RoleOperator, PasswordHash: "x"}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		secret := strings.Repeat("5e", 32)
		exp := T0.Add(30 * 24 * time.Hour)
		tk, err := s.CreateAPIToken(ctx, store.APIToken{TenantID: store.DefaultTenant, ID: "tok_chosen-1", Name: "ci deploy",
			UserID: u.ID, Role: store.RoleOperator, SecretHash: secret, ExpiresAt: &exp}, Admin, T0)
		if err != nil || tk.ID != "tok_chosen-1" || !tk.CreatedAt.Equal(T0) || tk.ExpiresAt == nil || !tk.ExpiresAt.Equal(exp) {
			t.Fatalf("CreateAPIToken = %+v, %v", tk, err)
		}
		gen, err := s.CreateAPIToken(ctx, store.APIToken{TenantID: "acme", Name: "monitoring", Role: store.RoleViewer, SecretHash: "hash-of-the-monitoring-secret"}, Admin, T0)
		if err != nil || gen.ID == "" || gen.ExpiresAt != nil {
			t.Fatalf("CreateAPIToken with a generated id = %+v, %v", gen, err)
		}
		for _, tc := range []struct {
			tenant, id string
			want       string
		}{
			{store.DefaultTenant, tk.ID, tk.ID},
			{"acme", gen.ID, gen.ID},
			{store.DefaultTenant, gen.ID, ""}, // another tenant's token
		} {
			got, err := s.APIToken(ctx, tc.tenant, tc.id)
			if tc.want == "" {
				if !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("APIToken(%s, %s): %v, want ErrNotFound", tc.tenant, tc.id, err)
				}
				continue
			}
			if err != nil || got.ID != tc.want || got.RevokedAt != nil {
				t.Fatalf("APIToken(%s, %s) = %+v, %v", tc.tenant, tc.id, got, err)
			}
		}
		// Token ids are global: the tenant follows from the id.
		if got, err := s.APITokenByID(ctx, gen.ID); err != nil || got.TenantID != "acme" || got.SecretHash != "hash-of-the-monitoring-secret" || got.Role != store.RoleViewer {
			t.Fatalf("APITokenByID = %+v, %v", got, err)
		}
		if got, err := s.APITokenByID(ctx, tk.ID); err != nil || got.UserID != u.ID || got.Name != "ci deploy" || got.SecretHash != secret {
			t.Fatalf("APITokenByID = %+v, %v", got, err)
		}
		if _, err := s.APITokenByID(ctx, "nope"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown token id: %v, want ErrNotFound", err)
		}

		before := regSnapshot(t, s)
		past := T0.Add(-time.Second)
		for _, tc := range []struct {
			name string
			tk   store.APIToken
			want error
		}{
			{"taken id", store.APIToken{TenantID: "acme", ID: tk.ID, Name: "x", Role: store.RoleViewer, SecretHash: "h"}, store.ErrConflict},
			{"unknown user", store.APIToken{TenantID: store.DefaultTenant, Name: "x", UserID: "nope", Role: store.RoleViewer, SecretHash: "h"}, store.ErrInvalidRequest},
			{"other tenant's user", store.APIToken{TenantID: "acme", Name: "x", UserID: u.ID, Role: store.RoleViewer, SecretHash: "h"}, store.ErrInvalidRequest},
			{"bad role", store.APIToken{TenantID: store.DefaultTenant, Name: "x", Role: "god", SecretHash: "h"}, store.ErrInvalidRequest},
			{"no name", store.APIToken{TenantID: store.DefaultTenant, Role: store.RoleViewer, SecretHash: "h"}, store.ErrInvalidRequest},
			{"no hash", store.APIToken{TenantID: store.DefaultTenant, Name: "x", Role: store.RoleViewer}, store.ErrInvalidRequest},
			{"expired", store.APIToken{TenantID: store.DefaultTenant, Name: "x", Role: store.RoleViewer, SecretHash: "h", ExpiresAt: &past}, store.ErrInvalidRequest},
		} {
			if _, err := s.CreateAPIToken(ctx, tc.tk, Admin, T0); !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused tokens changed the audit log %+v → %+v", before, after)
		}

		// Listing pages in creation order, per tenant.
		var want []string
		want = append(want, tk.ID)
		for i := range 4 {
			extra, err := s.CreateAPIToken(ctx, store.APIToken{TenantID: store.DefaultTenant, Name: fmt.Sprintf("t%d", i), Role: store.RoleViewer, SecretHash: "h"}, Admin, T0.Add(time.Duration(i+1)*time.Minute))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, extra.ID)
		}
		var listed []string
		after := ""
		for {
			page, next, err := s.ListAPITokens(ctx, store.DefaultTenant, store.Page{Limit: 2, After: after})
			if err != nil {
				t.Fatal(err)
			}
			for _, x := range page {
				listed = append(listed, x.ID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if !slices.Equal(listed, want) {
			t.Fatalf("ListAPITokens = %v, want %v", listed, want)
		}

		revokedAt := T0.Add(time.Hour)
		if err := s.RevokeAPIToken(ctx, store.DefaultTenant, tk.ID, Admin, revokedAt); err != nil {
			t.Fatal(err)
		}
		if got, err := s.APITokenByID(ctx, tk.ID); err != nil || got.RevokedAt == nil || !got.RevokedAt.Equal(revokedAt) {
			t.Fatalf("revoked token = %+v, %v", got, err)
		}
		mid := regSnapshot(t, s)
		if err := s.RevokeAPIToken(ctx, store.DefaultTenant, tk.ID, Admin, revokedAt.Add(time.Hour)); err != nil {
			t.Fatalf("revoking twice: %v", err)
		}
		if got, _ := s.APITokenByID(ctx, tk.ID); !got.RevokedAt.Equal(revokedAt) || regSnapshot(t, s) != mid {
			t.Fatalf("revoking a revoked token changed it: %+v", got)
		}
		if err := s.RevokeAPIToken(ctx, store.DefaultTenant, gen.ID, Admin, revokedAt); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("revoking another tenant's token: %v, want ErrNotFound", err)
		}
		if e := regAudits(t, s, "token.revoke"); len(e) != 1 || e[0].ObjectID != tk.ID {
			t.Fatalf("token.revoke entries = %+v", e)
		}
		if n := len(regAudits(t, s, "token.create")); n != 5 {
			t.Fatalf("%d token.create entries in the default tenant, want 5", n)
		}
		opNoSecrets(t, s, store.DefaultTenant, secret)
		opNoSecrets(t, s, "acme", "hash-of-the-monitoring-secret")
		regVerifyAudit(t, s)
		if _, err := s.VerifyAudit(ctx, "acme"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("InitialAdmin", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		opAddTenant(t, s, "acme")
		const hash = "$argon2id$v=19$m=65536,t=3,p=4$aW5pdHNhbHQ$aW5pdGhhc2hpbml0aGFzaA"
		secret := strings.Repeat("a1", 32)
		admin := store.User{TenantID: store.DefaultTenant, Name: "admin", Role: store.RoleAdmin, PasswordHash: hash, MustChangePassword: true}
		token := store.APIToken{ID: "tok_initial", Name: "initial-admin", Role: store.RoleAdmin, SecretHash: secret}

		before := regSnapshot(t, s)
		for _, tc := range []struct {
			name string
			u    store.User
			tk   store.APIToken
			want error
		}{
			{"bad role", store.User{TenantID: store.DefaultTenant, Name: "admin", Role: "root", PasswordHash: hash}, token, store.ErrInvalidRequest},
			{"token without hash", admin, store.APIToken{Name: "initial-admin", Role: store.RoleAdmin}, store.ErrInvalidRequest},
			{"token of another tenant", admin, store.APIToken{TenantID: "acme", Name: "x", Role: store.RoleAdmin, SecretHash: "h"}, store.ErrInvalidRequest},
			{"token of another user", admin, store.APIToken{UserID: "someone-else", Name: "x", Role: store.RoleAdmin, SecretHash: "h"}, store.ErrInvalidRequest},
			{"unknown tenant", store.User{TenantID: "nope", Name: "admin", Role: store.RoleAdmin, PasswordHash: hash}, token, store.ErrNotFound},
		} {
			if created, err := s.CreateInitialAdmin(ctx, tc.u, tc.tk, T0); created || !errors.Is(err, tc.want) {
				t.Fatalf("%s: created=%v err=%v, want %v", tc.name, created, err, tc.want)
			}
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("refused initial admins changed the store %+v → %+v", before, after)
		}

		created, err := s.CreateInitialAdmin(ctx, admin, token, T0)
		if err != nil || !created {
			t.Fatalf("CreateInitialAdmin on a store without users = %v, %v; want created", created, err)
		}
		u, err := s.UserByName(ctx, store.DefaultTenant, "admin")
		if err != nil || u.Role != store.RoleAdmin || !u.MustChangePassword || u.PasswordHash != hash || !u.CreatedAt.Equal(T0) {
			t.Fatalf("initial admin = %+v, %v", u, err)
		}
		tk, err := s.APITokenByID(ctx, "tok_initial")
		if err != nil || tk.TenantID != store.DefaultTenant || tk.UserID != u.ID || tk.Role != store.RoleAdmin || tk.SecretHash != secret {
			t.Fatalf("initial admin token = %+v, %v; want the admin's", tk, err)
		}
		for _, action := range []string{"user.create", "token.create"} {
			if e := regAudits(t, s, action); len(e) != 1 || e[0].Actor != store.System {
				t.Fatalf("%s entries = %+v, want one by the system", action, e)
			}
		}
		opNoSecrets(t, s, store.DefaultTenant, hash, secret)
		regVerifyAudit(t, s)

		// A later start finds the admin and changes nothing.
		before = regSnapshot(t, s)
		again := store.APIToken{ID: "tok_again", Name: "initial-admin", Role: store.RoleAdmin, SecretHash: "other"}
		created, err = s.CreateInitialAdmin(ctx, store.User{TenantID: store.DefaultTenant, Name: "root", Role: store.RoleAdmin, PasswordHash: "x"}, again, T0.Add(time.Hour))
		if err != nil || created {
			t.Fatalf("CreateInitialAdmin with users present = %v, %v; want not created", created, err)
		}
		if after := regSnapshot(t, s); after != before {
			t.Fatalf("a second first start changed the store %+v → %+v", before, after)
		}
		if n, err := s.CountUsers(ctx, store.DefaultTenant); err != nil || n != 1 {
			t.Fatalf("CountUsers = %d, %v; want 1", n, err)
		}
		if _, err := s.APITokenByID(ctx, "tok_again"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("token of the second first start: %v, want ErrNotFound", err)
		}
		// Another tenant's first admin is independent.
		if created, err := s.CreateInitialAdmin(ctx, store.User{TenantID: "acme", Name: "admin", Role: store.RoleAdmin, PasswordHash: "x"},
			store.APIToken{Name: "initial-admin", Role: store.RoleAdmin, SecretHash: "h"}, T0); err != nil || !created {
			t.Fatalf("first admin of tenant acme = %v, %v; want created", created, err)
		}
	})

	t.Run("InitialAdminConcurrentStarts", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		const n = 8
		created := make([]bool, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		start := make(chan struct{})
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				created[i], errs[i] = s.CreateInitialAdmin(ctx,
					store.User{TenantID: store.DefaultTenant, Name: fmt.Sprintf("admin%d", i), Role: store.RoleAdmin, PasswordHash: "x", MustChangePassword: true},
					store.APIToken{ID: fmt.Sprintf("tok_%d", i), Name: "initial-admin", Role: store.RoleAdmin, SecretHash: "h"}, T0)
			}()
		}
		close(start)
		wg.Wait()
		winners := 0
		for i := range n {
			if errs[i] != nil {
				t.Fatalf("caller %d: %v", i, errs[i])
			}
			if created[i] {
				winners++
			}
		}
		if winners != 1 {
			t.Fatalf("%d concurrent first starts created an admin, want exactly 1", winners)
		}
		users, _, err := s.ListUsers(ctx, store.DefaultTenant, store.Page{})
		if err != nil || len(users) != 1 {
			t.Fatalf("users after concurrent first starts: %+v, %v; want 1", users, err)
		}
		tokens, _, err := s.ListAPITokens(ctx, store.DefaultTenant, store.Page{})
		if err != nil || len(tokens) != 1 || tokens[0].UserID != users[0].ID {
			t.Fatalf("tokens after concurrent first starts: %+v, %v; want 1 of user %s", tokens, err, users[0].ID)
		}
		regVerifyAudit(t, s)
	})

}
