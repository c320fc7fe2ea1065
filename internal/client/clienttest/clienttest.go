// Package clienttest starts a real management API in-process for tests of
// the client and the command line: the mgmtapi handler over a migrated
// SQLite store and a disk blob store in the test's temporary directory,
// served by httptest on a fake clock, with an admin API token minted
// through the store as the server's first start does.
//
// Nothing here is a fake of the server; tests observe the real store to
// check what a command changed.
package clienttest

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/mgmtapi"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// Start is when every server's fake clock starts.
func Start() time.Time { return time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC) }

// cheapArgon2 keeps password hashing fast in tests; the parameters are
// still within auth's accepted bounds.
func cheapArgon2() auth.Argon2Params {
	return auth.Argon2Params{Memory: 64, Time: 1, Threads: 1, SaltLen: 16, KeyLen: 32}
}

// Setup is the actor of changes tests make directly through the store.
func Setup() store.Actor { return store.Actor{Kind: store.ActorSystem, ID: "test", Name: "test setup"} }

// Server is one running management API.
type Server struct {
	URL   string // base URL for client.New and --server
	Admin string // an admin API token, not owned by a user
	Store *sqlstore.Store
	Blobs *blob.Disk
	Clock *clock.Fake

	t       testing.TB
	mu      sync.Mutex
	uploads []Upload
}

// Upload is what the server saw of one artifact upload request.
type Upload struct {
	Header        http.Header
	ContentLength int64 // -1: unknown (chunked)
}

// NewServer starts a server that stops when the test ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "updraft.db"), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(context.Background(), sqlstore.MigrateOptions{Now: Start()}); err != nil {
		t.Fatalf("migrate: %v", err)
	}
	fc := clock.NewFake(Start())
	blobs, err := blob.NewDisk(filepath.Join(dir, "blobs"), fc)
	if err != nil {
		t.Fatalf("blob store: %v", err)
	}
	api, err := mgmtapi.New(mgmtapi.Config{
		Store:          st,
		Blobs:          blobs,
		Clock:          fc,
		Logger:         slog.New(slog.DiscardHandler),
		PasswordParams: cheapArgon2(),
	})
	if err != nil {
		t.Fatalf("mgmtapi: %v", err)
	}
	s := &Server{Store: st, Blobs: blobs, Clock: fc, t: t}
	mux := http.NewServeMux()
	handler := api.Handler()
	mux.Handle(mgmtapi.Prefix+"/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			s.mu.Lock()
			s.uploads = append(s.uploads, Upload{Header: r.Header.Clone(), ContentLength: r.ContentLength})
			s.mu.Unlock()
		}
		handler.ServeHTTP(w, r)
	}))
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	s.URL = srv.URL
	s.Admin = s.Token(store.RoleAdmin, "")
	return s
}

// Uploads returns what the server saw of the PUT requests (artifact
// uploads) served so far, in order.
func (s *Server) Uploads() []Upload {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Upload(nil), s.uploads...)
}

// Token mints an API token with role through the store, owned by userID
// when it is not empty, and returns its text.
func (s *Server) Token(role store.Role, userID string) string {
	s.t.Helper()
	tok, err := auth.GenerateAPIToken()
	if err != nil {
		s.t.Fatal(err)
	}
	_, err = s.Store.CreateAPIToken(context.Background(), store.APIToken{
		TenantID: store.DefaultTenant, ID: tok.ID, Name: "test-" + string(role), UserID: userID,
		Role: role, SecretHash: tok.SecretHash,
	}, Setup(), s.Clock.Now())
	if err != nil {
		s.t.Fatalf("create api token: %v", err)
	}
	return tok.Token
}

// User creates a user with a known password through the store.
func (s *Server) User(name string, role store.Role, password string, mustChange bool) store.User {
	s.t.Helper()
	hash, err := auth.HashPassword(password, cheapArgon2())
	if err != nil {
		s.t.Fatal(err)
	}
	u, err := s.Store.CreateUser(context.Background(), store.User{
		TenantID: store.DefaultTenant, Name: name, Role: role, PasswordHash: hash, MustChangePassword: mustChange,
	}, Setup(), s.Clock.Now())
	if err != nil {
		s.t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

// Device describes a device to enroll.
type Device struct {
	Serial, DeviceType, HWRev, Region string
	Accept                            bool
}

// Enroll registers a device through the store as the device API would
// after verifying its signed enrollment, and accepts it if asked.
func (s *Server) Enroll(d Device) store.Device {
	s.t.Helper()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		s.t.Fatal(err)
	}
	key, err := identity.NewPublicKey(pub)
	if err != nil {
		s.t.Fatal(err)
	}
	ctx := context.Background()
	dev, err := s.Store.Enroll(ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: d.Serial, DeviceType: d.DeviceType, HWRev: d.HWRev,
		Region: d.Region, Protocol: store.ProtocolNative,
		Key: store.Credential{
			TenantID: store.DefaultTenant, Kind: store.CredPublicKey, Algorithm: key.Algorithm,
			Fingerprint: key.Fingerprint, Material: key.PEM,
		},
		Now: s.Clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 1000,
	})
	if err != nil {
		s.t.Fatalf("enroll %s: %v", d.Serial, err)
	}
	if d.Accept {
		if dev, err = s.Store.AcceptDevice(ctx, store.DefaultTenant, dev.ID, Setup(), s.Clock.Now()); err != nil {
			s.t.Fatalf("accept %s: %v", d.Serial, err)
		}
	}
	return dev
}
