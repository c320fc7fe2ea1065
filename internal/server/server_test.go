package server_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/testenv"
)

type bundle struct {
	srv    *server.Server
	url    string
	out    *bytes.Buffer
	client *http.Client
	cancel context.CancelFunc
	done   chan error
}

// start runs a server on a free loopback port until the test ends.
func start(t *testing.T, cfg server.Config) *bundle {
	t.Helper()
	out := &bytes.Buffer{}
	cfg.Addr = "127.0.0.1:0"
	cfg.Out = out
	if cfg.Clock == nil {
		cfg.Clock = clock.NewFake(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC))
	}
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	b := &bundle{srv: srv, out: out, cancel: cancel, done: make(chan error, 1), client: &http.Client{Timeout: 10 * time.Second}}
	scheme := "http"
	if cfg.TLSCert != "" {
		scheme = "https"
		b.client.Transport = &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}
	}
	b.url = scheme + "://" + srv.Addr()
	go func() { b.done <- srv.Serve(ctx) }()
	t.Cleanup(func() { b.stop(t) })
	waitReady(t, b)
	return b
}

func (b *bundle) stop(t *testing.T) {
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	if err := <-b.done; err != nil {
		t.Errorf("serve: %v", err)
	}
	b.srv.Close()
}

func waitReady(t *testing.T, b *bundle) {
	t.Helper()
	for range 200 {
		resp, err := b.client.Get(b.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		// A real listener coming up: waiting on real time is right here.
		<-time.After(10 * time.Millisecond)
	}
	t.Fatal("server never became ready")
}

func get(t *testing.T, b *bundle, path, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", b.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func post(t *testing.T, b *bundle, path, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", b.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(out)
}

// adminToken returns the first-start admin token after changing the
// one-time password, which the token needs before it may do anything else.
func adminToken(t *testing.T, b *bundle, dir string) string {
	t.Helper()
	token := readToken(t, dir)
	pw := b.srv.Initial().Password
	if code, body := post(t, b, "/api/v1/users/admin/password", token, `{"current_password":"`+pw+`","password":"a-new-long-passphrase"}`); code != 204 {
		t.Fatalf("change the one-time password: %d %s", code, body)
	}
	return token
}

func readToken(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, server.InitialAdminFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "api_token="); ok {
			return v
		}
	}
	t.Fatal("no api_token in the credentials file")
	return ""
}

func TestFirstStartCreatesAdminOnce(t *testing.T) {
	dir := t.TempDir()
	b := start(t, server.Config{DataDir: dir})
	init := b.srv.Initial()
	if init == nil {
		t.Fatal("first start created no admin")
	}
	if !strings.Contains(b.out.String(), init.Password) || !strings.Contains(b.out.String(), init.Token) {
		t.Fatalf("first start did not print the credentials:\n%s", b.out)
	}
	fi, err := os.Stat(filepath.Join(dir, server.InitialAdminFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("credentials file mode %v, want 0600", fi.Mode().Perm())
	}
	if left, _ := filepath.Glob(filepath.Join(dir, "*.pending")); len(left) != 0 {
		t.Fatalf("pending credential files left behind: %v", left)
	}
	token := readToken(t, dir)
	u, err := b.srv.Store().UserByName(context.Background(), store.DefaultTenant, "admin")
	if err != nil || !u.MustChangePassword || u.Role != store.RoleAdmin {
		t.Fatalf("admin user = %+v, %v; want an admin who must change the password", u, err)
	}
	// The one-time password must be changed before the token does anything else.
	if code, body := get(t, b, "/api/v1/devices", token); code != 403 || !strings.Contains(body, "password_change_required") {
		t.Fatalf("before the password change: GET /api/v1/devices = %d %s, want 403 password_change_required", code, body)
	}
	change := `{"current_password":"` + init.Password + `","password":"a-new-long-passphrase"}`
	if code, body := post(t, b, "/api/v1/users/admin/password", token, change); code != 204 {
		t.Fatalf("changing the one-time password = %d %s", code, body)
	}
	if code, body := get(t, b, "/api/v1/devices", token); code != 200 {
		t.Fatalf("after the password change: GET /api/v1/devices = %d %s", code, body)
	}
	b.stop(t)

	again := start(t, server.Config{DataDir: dir})
	if again.srv.Initial() != nil || strings.Contains(again.out.String(), "password") {
		t.Fatalf("second start created credentials again:\n%s", again.out)
	}
	if code, _ := get(t, again, "/api/v1/devices", token); code != 200 {
		t.Fatalf("token from the first start refused after restart: %d", code)
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	dir := t.TempDir()
	b := start(t, server.Config{DataDir: dir})
	if code, body := get(t, b, "/healthz", ""); code != 200 || !strings.Contains(body, "ok") {
		t.Fatalf("/healthz = %d %s", code, body)
	}
	if code, body := get(t, b, "/readyz", ""); code != 200 || !strings.Contains(body, `"ready":true`) {
		t.Fatalf("/readyz = %d %s", code, body)
	}
	token := adminToken(t, b, dir)
	get(t, b, "/api/v1/devices", token)
	get(t, b, "/api/v1/devices/does-not-exist", token)
	if code, _ := get(t, b, "/nowhere", ""); code != 404 {
		t.Fatalf("unknown path: %d, want 404", code)
	}
	_, metrics := get(t, b, "/metrics", "")
	for _, want := range []string{
		`updraft_http_requests_total{code="200",method="GET",route="GET /api/v1/devices"}`,
		`updraft_http_requests_total{code="404",method="GET",route="GET /api/v1/devices/{id}"}`,
		`updraft_http_request_duration_seconds_bucket{method="GET",route="GET /api/v1/devices"`,
		"updraft_blob_gc_collected_total 0", // the blob collector runs
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if strings.Contains(metrics, `route="/nowhere"`) {
		t.Error("raw paths leak into metric labels")
	}
}

func TestRefusesBadConfig(t *testing.T) {
	t.Parallel()
	for _, cfg := range []server.Config{
		{DataDir: t.TempDir(), TLSCert: "cert.pem"},
		{DataDir: t.TempDir(), Database: "mysql://x"},
		{DataDir: t.TempDir(), PublicURL: "updates.example.com"},
		{DataDir: t.TempDir(), TelemetryHourlyRetention: 24 * time.Hour},
	} {
		if _, err := server.New(context.Background(), cfg); err == nil {
			t.Errorf("New(%+v) succeeded", cfg)
		}
	}
}

func writeCert(t *testing.T, dir, cn string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Date(2020, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2040, 1, 1, 0, 0, 0, 0, time.UTC),
		DNSNames: []string{"localhost"}, IPAddresses: nil,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestTLSAndReload(t *testing.T) {
	dir := t.TempDir()
	certDir := t.TempDir()
	certFile, keyFile := writeCert(t, certDir, "first")
	b := start(t, server.Config{DataDir: dir, TLSCert: certFile, TLSKey: keyFile, PublicURL: "https://updates.example.test"})
	peerCN := func() string {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
		resp, err := c.Get(b.url + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.TLS.PeerCertificates[0].Subject.CommonName
	}
	if cn := peerCN(); cn != "first" {
		t.Fatalf("served certificate %q, want first", cn)
	}
	writeCert(t, certDir, "second")
	if err := b.srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if cn := peerCN(); cn != "second" {
		t.Fatalf("after reload served %q, want second", cn)
	}
	if err := os.WriteFile(certFile, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := b.srv.ReloadTLS(); err == nil {
		t.Fatal("reload of a broken certificate succeeded")
	}
	if cn := peerCN(); cn != "second" {
		t.Fatalf("a failed reload replaced the certificate: %q", cn)
	}
}

func TestPostgresBackend(t *testing.T) {
	dsn := testenv.Postgres(t)
	dir := t.TempDir()
	b := start(t, server.Config{DataDir: dir, Database: dsn})
	token := adminToken(t, b, dir)
	if code, body := get(t, b, "/api/v1/devices", token); code != 200 {
		t.Fatalf("GET /api/v1/devices on PostgreSQL = %d %s", code, body)
	}
	if _, err := os.Stat(filepath.Join(dir, "updraft.db")); err == nil {
		t.Fatal("an SQLite file was created although PostgreSQL was configured")
	}
}
