package server

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"github.com/updraft/updraft/internal/atomicfile"
	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
)

// InitialAdminFile is the name, in the data directory, of the file that
// holds the first admin's one-time password and API token (mode 0600).
const InitialAdminFile = "initial-admin.txt"

// InitialAdmin is what the first start creates.
type InitialAdmin struct {
	User     string
	Password string // one-time: must be changed at first sign-in
	Token    string // admin API token
	File     string // where both were written
}

// bootstrap creates the first admin user and an admin API token when the
// database has no users, prints them once and writes them 0600 into the data
// directory. Later starts do nothing, and of servers starting together only
// the one whose transaction creates the admin prints anything. The token
// belongs to the admin, so until the one-time password is changed (updraft
// user passwd admin) it allows nothing else: the one-time password cannot
// linger.
func (s *Server) bootstrap(ctx context.Context) error {
	n, err := s.store.CountUsers(ctx, store.DefaultTenant)
	if err != nil {
		return fmt.Errorf("first start: count users: %w", err)
	}
	if n > 0 {
		return nil
	}
	now := s.cfg.Clock.Now()
	pw, err := auth.GenerateOneTimePassword()
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	hash, err := auth.HashPassword(pw, auth.DefaultArgon2Params())
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	tok, err := auth.GenerateAPIToken()
	if err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	ia := InitialAdmin{User: "admin", Password: pw, Token: tok.Token, File: filepath.Join(s.cfg.DataDir, InitialAdminFile)}
	content := fmt.Sprintf("# Updraft first-start credentials. Change the password at first sign-in,\n"+
		"# then delete this file.\nuser=%s\npassword=%s\napi_token=%s\n", ia.User, ia.Password, ia.Token)
	// Write the credentials before the database, under a name of their own,
	// so that a crash in between leaves them findable rather than an admin
	// nobody knows the password of; only the server whose transaction
	// creates the admin moves them into place (replicas may share the
	// data directory).
	pending := ia.File + "." + tok.ID + ".pending"
	if err := atomicfile.WriteFile(pending, []byte(content), 0o600); err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	// One transaction that first takes the tenant's audit lock: replicas
	// starting together against one database create exactly one admin, and
	// a crash cannot leave an admin without the token.
	created, err := s.store.CreateInitialAdmin(ctx, store.User{
		TenantID: store.DefaultTenant, Name: ia.User, Role: store.RoleAdmin,
		PasswordHash: hash, MustChangePassword: true,
	}, store.APIToken{
		TenantID: store.DefaultTenant, ID: tok.ID, Name: "initial-admin",
		Role: store.RoleAdmin, SecretHash: tok.SecretHash,
	}, now)
	if err != nil {
		return fmt.Errorf("first start: create admin: %w (credentials that were not stored remain in %s)", err, pending)
	}
	if !created {
		os.Remove(pending)
		s.log.Info("first start: another server created the admin user first")
		return nil
	}
	if err := os.Rename(pending, ia.File); err != nil {
		return fmt.Errorf("first start: the admin was created; its credentials are in %s: %w", pending, err)
	}
	if err := atomicfile.SyncDir(s.cfg.DataDir); err != nil {
		return fmt.Errorf("first start: %w", err)
	}
	fmt.Fprintf(s.cfg.Out, "\nUpdraft first start: created the admin user. These are shown once and saved in %s (mode 0600).\n"+
		"  user:      %s\n  password:  %s   (one-time)\n  api token: %s\n\n"+
		"Change the password before anything else; the token works once you have:\n"+
		"  export UPDRAFT_SERVER=%s UPDRAFT_TOKEN=%s\n  updraft user passwd admin\n\n", ia.File, ia.User, ia.Password, ia.Token, s.cfg.PublicURL, ia.Token)
	s.log.Info("first start: created admin user and API token", "user", ia.User, "credentials_file", ia.File)
	s.initial = &ia
	return nil
}

// Initial returns the credentials created at this start, or nil when the
// database already had users.
func (s *Server) Initial() *InitialAdmin { return s.initial }
