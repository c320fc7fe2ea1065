package signing_test

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/cli"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/testenv"
	"github.com/updraft/updraft/internal/tuffetch"
	"github.com/updraft/updraft/internal/verifier"
)

// e2eServer is a real Updraft server listening on loopback, driven by the
// real command line, on a fake clock.
type e2eServer struct {
	t      *testing.T
	srv    *server.Server
	url    string
	token  string
	clock  *clock.Fake
	cancel context.CancelFunc
	done   chan error
}

func startServer(t *testing.T, cfg server.Config, fc *clock.Fake) *e2eServer {
	t.Helper()
	cfg.Addr, cfg.Clock, cfg.Out = "127.0.0.1:0", fc, io.Discard
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, cfg)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		srv.Close()
		t.Fatal(err)
	}
	s := &e2eServer{t: t, srv: srv, url: "http://" + srv.Addr(), clock: fc, cancel: cancel, done: make(chan error, 1)}
	go func() { s.done <- srv.Serve(ctx) }()
	t.Cleanup(s.stop)
	for i := 0; ; i++ {
		resp, err := http.Get(s.url + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		if i == 500 {
			t.Fatal("server never became ready")
		}
		<-time.After(10 * time.Millisecond) // a real listener coming up
	}
	tok, err := auth.GenerateAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store().CreateAPIToken(ctx, store.APIToken{TenantID: store.DefaultTenant, ID: tok.ID, Name: "e2e",
		Role: store.RoleAdmin, SecretHash: tok.SecretHash}, store.System, fc.Now()); err != nil {
		t.Fatal(err)
	}
	s.token = tok.Token
	return s
}

func (s *e2eServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	s.cancel = nil
	if err := <-s.done; err != nil {
		s.t.Errorf("serve: %v", err)
	}
	s.srv.Close()
}

// cli runs the updraft command line against the server; it fails the
// test unless the exit code is code, and returns stdout and stderr.
func (s *e2eServer) cli(code int, args ...string) (string, string) {
	s.t.Helper()
	var out, errb bytes.Buffer
	env := map[string]string{"UPDRAFT_SERVER": s.url, "UPDRAFT_TOKEN": s.token}
	got := cli.Main(context.Background(), args, cli.Env{Stdout: &out, Stderr: &errb, Clock: s.clock,
		Getenv: func(k string) string { return env[k] }})
	if got != code {
		s.t.Fatalf("updraft %s: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), got, code, out.String(), errb.String())
	}
	return out.String(), errb.String()
}

// e2eDevice is a device with its own key, token and real verifier.
type e2eDevice struct {
	t      *testing.T
	srv    *e2eServer
	key    ed25519.PrivateKey
	id     string
	tok    atomic.Value // string
	v      *verifier.Client
	dir    string
	fetch  verifier.Fetcher
	hwRev  string
	floor  *int64
	asgmt  string
	runVer string
}

func (d *e2eDevice) token() string { s, _ := d.tok.Load().(string); return s }

func (d *e2eDevice) post(path string, hdr http.Header, body []byte) (int, []byte) {
	d.t.Helper()
	req, _ := http.NewRequest("POST", d.srv.url+path, bytes.NewReader(body))
	for k, v := range hdr {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// enroll enrolls the device, has an operator accept it with the command
// line, and opens its verifier with the root shipped in its image.
func enroll(t *testing.T, s *e2eServer, serial, hwRev string, trustedRoot []byte) *e2eDevice {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	d := &e2eDevice{t: t, srv: s, key: key, hwRev: hwRev, dir: t.TempDir(), runVer: "0.9.0"}
	id := identity.Identity{Serial: serial, DeviceType: line, HWRev: hwRev, Region: "eu"}
	enrollOnce := func() (int, []byte) {
		body, sig, err := identity.SignEnrollment(key, id, s.clock.Now())
		if err != nil {
			t.Fatal(err)
		}
		return d.post(wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, body)
	}
	code, b := enrollOnce()
	var pending wire.PendingResponse
	if code != http.StatusAccepted || json.Unmarshal(b, &pending) != nil {
		t.Fatalf("enroll: %d %s", code, b)
	}
	s.cli(0, "device", "accept", pending.DeviceID)
	code, b = enrollOnce()
	var tr wire.TokenResponse
	if code != http.StatusOK || json.Unmarshal(b, &tr) != nil {
		t.Fatalf("enroll after accept: %d %s", code, b)
	}
	d.id = tr.DeviceID
	d.tok.Store(tr.Token)
	d.fetch = &tuffetch.Fetcher{BaseURL: s.url, Token: func(context.Context) (string, error) { return d.token(), nil }, UserAgent: "updraft-agent/e2e"}
	d.open(trustedRoot)
	return d
}

// renew gets a fresh device token with a signed renewal, as the agent
// does before its token expires.
func (d *e2eDevice) renew() {
	d.t.Helper()
	body, sig, err := identity.SignRenewal(d.key, d.id, d.srv.clock.Now())
	if err != nil {
		d.t.Fatal(err)
	}
	code, b := d.post(wire.PathToken, http.Header{identity.SignatureHeader: {sig}}, body)
	var tr wire.TokenResponse
	if code != http.StatusOK || json.Unmarshal(b, &tr) != nil {
		d.t.Fatalf("renew: %d %s", code, b)
	}
	d.tok.Store(tr.Token)
}

func (d *e2eDevice) open(trustedRoot []byte) {
	d.t.Helper()
	v, err := verifier.New(verifier.Config{FS: devfs.OS{}, Dir: d.dir, Clock: d.srv.clock, Fetcher: d.fetch,
		DeviceID: d.id, DeviceType: line, HWRev: d.hwRev, TrustedRoot: trustedRoot})
	if err != nil {
		d.t.Fatal(err)
	}
	d.v = v
}

// checkIn reports the running version (and the floor when it verifies)
// and returns the server's answer.
func (d *e2eDevice) checkIn() wire.CheckInResponse {
	d.t.Helper()
	req := wire.CheckInRequest{Version: d.runVer, AssignmentID: d.asgmt, SecurityFloor: d.floor}
	body, _ := json.Marshal(req)
	code, b := d.post(wire.PathCheckIn, http.Header{"Authorization": {"Bearer " + d.token()}}, body)
	var resp wire.CheckInResponse
	if code != http.StatusOK || json.Unmarshal(b, &resp) != nil {
		d.t.Fatalf("check-in: %d %s", code, b)
	}
	return resp
}

// download streams the assigned artifact through the verifier's stream.
func (d *e2eDevice) download(tgt *verifier.Target, url string, corrupt bool) error {
	d.t.Helper()
	// The public URL was derived from the configured address, port 0.
	url = strings.Replace(url, "http://127.0.0.1:0", d.srv.url, 1)
	resp, err := http.Get(url)
	if err != nil {
		d.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		d.t.Fatalf("download: %d", resp.StatusCode)
	}
	st, err := d.v.NewStream(tgt, nil)
	if err != nil {
		d.t.Fatal(err)
	}
	var r io.Reader = resp.Body
	if corrupt {
		b, _ := io.ReadAll(resp.Body)
		b[len(b)/2] ^= 1
		r = bytes.NewReader(b)
	}
	if _, err := io.Copy(st, r); err != nil {
		return err
	}
	return st.Finish()
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// offlineRelease creates a release on the server with one artifact, signs
// it offline with the line key into the role's next version (from
// current, "" for the first), uploads the metadata and publishes.
func offlineRelease(t *testing.T, s *e2eServer, work, keys, version string, sec int, current string) (string, []byte) {
	t.Helper()
	img := []byte(strings.Repeat("firmware "+version+"\n", 4096))
	file := writeFile(t, filepath.Join(work, version, "rootfs.img"), img)
	s.cli(0, "release", "create", version, "--security-version", fmt.Sprint(sec))
	s.cli(0, "release", "upload", version, file, "--device-type", line, "--hw-rev", "A", "--type", "raw-image", "--component", "rootfs")
	out := filepath.Join(work, "metadata", version+".json")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		t.Fatal(err)
	}
	args := []string{"release", "sign", "--role", line, "--key", filepath.Join(keys, "lines", line, "1.pem"), "--version", version,
		"--security-version", fmt.Sprint(sec), "--hw-rev", "A", "--type", "raw-image", "--component", "rootfs", "--artifact", file, "--out", out}
	if current != "" {
		args = append(args, "--metadata", current)
	}
	// Offline: no server, no token in the environment.
	var o, e bytes.Buffer
	if code := cli.Main(context.Background(), args, cli.Env{Stdout: &o, Stderr: &e, Clock: s.clock}); code != 0 {
		t.Fatalf("release sign: %d %s", code, e.String())
	}
	s.cli(0, "release", "upload-metadata", "--role", line, out)
	s.cli(0, "release", "publish", version)
	return out, img
}

// TestSignedUpdateEndToEnd runs signed updates through everything real:
// the server with its signing service on SQLite, the command line for the
// key ceremony, offline signing and uploads, a device enrolled with its
// own key, and the device-side verifier refreshing over the device API
// with the HTTP fetcher, verifying the check-in's director document and
// streaming the download through the signed hash. Then the security floor
// story, key rotations followed by the device, and a restart.
func TestSignedUpdateEndToEnd(t *testing.T) {
	t.Parallel()
	fc := clock.NewFake(time.Date(2026, 7, 1, 6, 0, 0, 0, time.UTC))
	dataDir := t.TempDir()
	s := startServer(t, server.Config{DataDir: dataDir}, fc)
	work := t.TempDir()
	keys := filepath.Join(work, "keys")

	if r := readyz(t, s); r.Checks["signing"] != "not set up" || !r.Ready || r.Degraded {
		t.Fatalf("readyz before setup: %+v", r)
	}
	// Key ceremony: root 2-of-2, targets, the gw-200 release key; online
	// keys generated on the server.
	out, _ := s.cli(0, "keys", "init", "--dir", keys, "--root-keys", "2", "--root-threshold", "2", "--line", line, "--online-to-server")
	if !strings.Contains(out, "devices now see snapshot 1, timestamp 1") {
		t.Fatalf("keys init:\n%s", out)
	}
	trustedRoot, err := os.ReadFile(filepath.Join(keys, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	if r := readyz(t, s); r.Checks["signing"] != "ok" || !r.Ready || r.Degraded {
		t.Fatalf("readyz after setup: %+v", r)
	}
	v1meta, _ := offlineRelease(t, s, work, keys, "1.0.0", 1, "")
	v2meta, img2 := offlineRelease(t, s, work, keys, "2.0.0", 5, v1meta)

	// Server-side refusals through the command line.
	bogus := writeFile(t, filepath.Join(work, "bogus", "rootfs.img"), []byte("not what was uploaded"))
	s.cli(0, "release", "create", "2.1.0", "--security-version", "5")
	s.cli(0, "release", "upload", "2.1.0", filepath.Join(work, "2.0.0", "rootfs.img"), "--device-type", line, "--hw-rev", "A", "--type", "raw-image", "--component", "rootfs")
	refused := func(code string, extra ...string) {
		t.Helper()
		f := filepath.Join(work, "refused-"+code+".json")
		args := append([]string{"release", "sign", "--role", line, "--version", "2.1.0", "--security-version", "5", "--hw-rev", "A",
			"--type", "raw-image", "--component", "rootfs", "--metadata", v2meta, "--out", f}, extra...)
		var o, e bytes.Buffer
		if c := cli.Main(context.Background(), args, cli.Env{Stdout: &o, Stderr: &e, Clock: s.clock}); c != 0 {
			t.Fatalf("sign for %s: %s", code, e.String())
		}
		_, stderr := s.cli(1, "release", "upload-metadata", "--role", line, f)
		if !strings.Contains(stderr, "("+code+")") {
			t.Fatalf("upload expecting %s: %s", code, stderr)
		}
	}
	lineKey := filepath.Join(keys, "lines", line, "1.pem")
	refused("artifact_mismatch", "--key", lineKey, "--artifact", bogus)
	refused("bad_signature", "--key", filepath.Join(keys, "root", "1.pem"), "--artifact", filepath.Join(work, "2.0.0", "rootfs.img"))
	refused("outside_delegation", "--key", lineKey, "--device-type", "gw-300", "--artifact", filepath.Join(work, "2.0.0", "rootfs.img"))
	if _, stderr := s.cli(1, "release", "upload-metadata", "--role", line, v2meta); !strings.Contains(stderr, "(stale_version)") {
		t.Fatalf("re-upload: %s", stderr)
	}

	// A device enrolls, is accepted and assigned 2.0.0.
	d := enroll(t, s, "SN-E2E-1", "A", trustedRoot)
	s.cli(0, "device", "assign", d.id, "2.0.0")
	ci := d.checkIn()
	if ci.Assignment == nil || len(ci.Assignment.Signed) == 0 || ci.Finalize != nil {
		t.Fatalf("check-in: %+v", ci)
	}
	ctx := context.Background()
	if err := d.v.Refresh(ctx); err != nil {
		t.Fatalf("refresh: %v", err)
	}
	tgt, err := d.v.VerifyAssignment(ctx, ci.Assignment.Signed)
	if err != nil {
		t.Fatalf("verify assignment: %v", err)
	}
	if tgt.Custom.Version != "2.0.0" || tgt.Custom.SecurityVersion != 5 || tgt.AssignmentID != ci.Assignment.ID || tgt.Length != int64(len(img2)) ||
		tgt.SHA256 != ci.Assignment.Artifact.SHA256 {
		t.Fatalf("verified target %+v", tgt)
	}
	if err := d.v.Accept(tgt); err != nil {
		t.Fatal(err)
	}
	if err := d.download(tgt, ci.Assignment.Artifact.URL, true); verifier.ReasonOf(err) != verifier.ReasonHashMismatch {
		t.Fatalf("corrupted download: %v, want hash-mismatch", err)
	}
	if err := d.download(tgt, ci.Assignment.Artifact.URL, false); err != nil {
		t.Fatalf("download: %v", err)
	}
	// A restarted agent resumes with the same document.
	d.asgmt = ci.Assignment.ID
	again := d.checkIn()
	if !bytes.Equal(again.Assignment.Signed, ci.Assignment.Signed) {
		t.Fatal("the director document changed between check-ins")
	}
	if _, err := d.v.VerifyAssignment(ctx, again.Assignment.Signed); err != nil {
		t.Fatalf("resumed document: %v", err)
	}

	// The device now runs 2.0.0 (security version 5) but has not raised
	// its floor: the release can still be rolled back fleet-wide.
	d.runVer, d.asgmt = "2.0.0", ""
	s.cli(0, "device", "assign", d.id, "1.0.0")
	ci = d.checkIn()
	back, err := d.v.VerifyAssignment(ctx, ci.Assignment.Signed)
	if err != nil || back.Custom.Version != "1.0.0" {
		t.Fatalf("rollback before finalize: %+v, %v", back, err)
	}
	// The operator finalizes 2.0.0; the next check-in carries the finalize
	// and the device's floor rises.
	s.cli(0, "device", "assign", d.id, "2.0.0")
	s.cli(0, "release", "finalize", "2.0.0")
	ci = d.checkIn()
	if ci.Finalize == nil {
		t.Fatal("no finalize in the check-in after the release was finalized")
	}
	if err := d.v.Finalize(ctx, ci.Finalize, d.runVer); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	if d.v.Floor() != 5 {
		t.Fatalf("floor %d, want 5", d.v.Floor())
	}
	floor := d.v.Floor()
	d.floor = &floor
	if ci = d.checkIn(); ci.Finalize != nil {
		t.Fatal("a device at the floor still gets the finalize")
	}
	// A rollback below the floor is now refused, and the reason says why.
	s.cli(0, "device", "assign", d.id, "1.0.0")
	ci = d.checkIn()
	if _, err := d.v.VerifyAssignment(ctx, ci.Assignment.Signed); verifier.ReasonOf(err) != verifier.ReasonBelowFloor {
		t.Fatalf("rollback after finalize: %v, want below-floor", err)
	}

	// Root and online key rotations: the device follows the root chain and
	// accepts documents from the new director key.
	s.cli(0, "keys", "rotate", "root", "--dir", keys, "--upload")
	s.cli(0, "keys", "rotate", "online", "--dir", keys, "--online-to-server", "--upload")
	s.cli(0, "device", "assign", d.id, "2.0.0")
	ci = d.checkIn()
	if err := d.v.Refresh(ctx); err != nil {
		t.Fatalf("refresh after rotations: %v", err)
	}
	if d.v.RootVersion() != 3 {
		t.Fatalf("device trusts root %d, want 3", d.v.RootVersion())
	}
	if _, err := d.v.VerifyAssignment(ctx, ci.Assignment.Signed); err != nil {
		t.Fatalf("document from the rotated director key: %v", err)
	}

	// Time passes: the publisher keeps the timestamp fresh, so the device
	// never sees expired metadata.
	for range 6 {
		fc.Advance(13 * time.Hour)
		d.renew()
		if _, err := s.srv.Signing().PublishNow(ctx); err != nil {
			t.Fatal(err)
		}
		if err := d.v.Refresh(ctx); err != nil {
			t.Fatalf("refresh at %s: %v", fc.Now(), err)
		}
	}

	// A restart loses nothing: same repository, same document for the
	// same assignment, and the device refreshes without a rollback.
	ci = d.checkIn()
	s.stop()
	s2 := startServer(t, server.Config{DataDir: dataDir}, fc)
	d.srv = s2
	d.fetch.(*tuffetch.Fetcher).BaseURL = s2.url
	ci2 := d.checkIn()
	if !bytes.Equal(ci.Assignment.Signed, ci2.Assignment.Signed) {
		t.Fatal("the director document changed across the restart")
	}
	if err := d.v.Refresh(ctx); err != nil {
		t.Fatalf("refresh after restart: %v", err)
	}
	fc.Advance(13 * time.Hour)
	d.renew()
	if _, err := s2.srv.Signing().PublishNow(ctx); err != nil {
		t.Fatal(err)
	}
	if err := d.v.Refresh(ctx); err != nil {
		t.Fatalf("refresh after the restarted server re-signed: %v", err)
	}
	// The device-facing route: 404 JSON for a missing root, immutable
	// caching for versioned files, the token required.
	for _, c := range []struct {
		name, token string
		status      int
		cache       string
	}{
		{"99.root.json", d.token(), 404, ""},
		{"1.root.json", d.token(), 200, "immutable"},
		{"timestamp.json", d.token(), 200, "no-cache"},
		{"timestamp.json", "", 401, ""},
		{"..%2Froot.json", d.token(), 404, ""},
	} {
		req, _ := http.NewRequest("GET", s2.url+wire.MetadataPrefix+c.name, nil)
		if c.token != "" {
			req.Header.Set("Authorization", "Bearer "+c.token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != c.status || !strings.Contains(resp.Header.Get("Cache-Control"), c.cache) ||
			(c.status == 200 && resp.Header.Get("Content-Length") != fmt.Sprint(len(b))) ||
			(c.status != 200 && !json.Valid(b)) {
			t.Errorf("GET %s: %d %q %s", c.name, resp.StatusCode, resp.Header.Get("Cache-Control"), b)
		}
	}
	// Eleven months on, with the publisher working, the offline roles need
	// a person: readiness says so (and stays ready), metrics count down.
	for range 10 {
		fc.Advance(34 * 24 * time.Hour)
		if _, err := s2.srv.Signing().PublishNow(ctx); err != nil {
			t.Fatal(err)
		}
	}
	r := readyz(t, s2)
	if !r.Ready || !r.Degraded || r.Checks["signing"] != "degraded" || !strings.Contains(strings.Join(r.Warnings, "\n"), "targets version") {
		t.Fatalf("readyz near offline expiry: %+v", r)
	}
	resp, err := http.Get(s2.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`updraft_tuf_metadata_expiry_seconds{offline="true",role="targets"}`, `updraft_tuf_metadata_version{role="root"} 3`,
		`updraft_tuf_publisher_leader 1`, `updraft_tuf_publish_total{result="published"}`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}
}

type readiness struct {
	Ready    bool              `json:"ready"`
	Degraded bool              `json:"degraded"`
	Checks   map[string]string `json:"checks"`
	Warnings []string          `json:"warnings"`
}

func readyz(t *testing.T, s *e2eServer) readiness {
	t.Helper()
	resp, err := http.Get(s.url + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var r readiness
	if err := json.NewDecoder(resp.Body).Decode(&r); err != nil {
		t.Fatal(err)
	}
	return r
}

// alternating fetches each file from the next server in turn, like a
// device behind a load balancer.
type alternating struct {
	mu    sync.Mutex
	n     int
	peers []verifier.Fetcher
}

func (a *alternating) Get(ctx context.Context, name string, maxLength int64) ([]byte, error) {
	a.mu.Lock()
	f := a.peers[a.n%len(a.peers)]
	a.n++
	a.mu.Unlock()
	return f.Get(ctx, name, maxLength)
}

// TestTwoServersOnOnePostgres runs two complete servers on one PostgreSQL
// database with the same key-encryption key. Uploads land on either, both
// race to re-sign online metadata, and a device whose every request goes
// to the other server refreshes without ever seeing a version go back or
// a conflicting version.
func TestTwoServersOnOnePostgres(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	fc := clock.NewFake(time.Date(2026, 7, 1, 6, 0, 0, 0, time.UTC))
	kek := writeFile(t, filepath.Join(t.TempDir(), "kek"), []byte(strings.Repeat("ab", 32)))
	cfg := func() server.Config {
		return server.Config{DataDir: t.TempDir(), Database: dsn, SigningKeyFile: kek}
	}
	a := startServer(t, cfg(), fc)
	b := startServer(t, cfg(), fc)
	work := t.TempDir()
	keys := filepath.Join(work, "keys")
	a.cli(0, "keys", "init", "--dir", keys, "--line", line, "--online-to-server")
	trustedRoot, err := os.ReadFile(filepath.Join(keys, "metadata", "1.root.json"))
	if err != nil {
		t.Fatal(err)
	}
	d := enroll(t, a, "SN-PG-1", "A", trustedRoot)
	d.fetch = &alternating{peers: []verifier.Fetcher{
		&tuffetch.Fetcher{BaseURL: a.url, Token: func(context.Context) (string, error) { return d.token(), nil }},
		&tuffetch.Fetcher{BaseURL: b.url, Token: func(context.Context) (string, error) { return d.token(), nil }},
	}}
	d.open(trustedRoot)
	ctx := context.Background()
	current := ""
	for round := range 6 {
		srv := []*e2eServer{a, b}[round%2]
		current, _ = offlineRelease(t, srv, work, keys, fmt.Sprintf("1.%d.0", round), round, current)
		fc.Advance(13 * time.Hour)
		d.renew()
		var wg sync.WaitGroup
		leaders := make([]bool, 2)
		for i, s := range []*e2eServer{a, b} {
			wg.Go(func() {
				var err error
				if leaders[i], err = s.srv.Signing().PublishNow(ctx); err != nil {
					t.Errorf("round %d: publish on %d: %v", round, i, err)
				}
			})
		}
		wg.Wait()
		if leaders[0] == leaders[1] {
			t.Fatalf("round %d: leaders %v", round, leaders)
		}
		for range 3 {
			if err := d.v.Refresh(ctx); err != nil {
				t.Fatalf("round %d: refresh across both servers: %v", round, err)
			}
		}
		srv.cli(0, "device", "assign", d.id, fmt.Sprintf("1.%d.0", round))
		ci := d.checkIn()
		if _, err := d.v.VerifyAssignment(ctx, ci.Assignment.Signed); err != nil {
			t.Fatalf("round %d: assignment: %v", round, err)
		}
	}
}
