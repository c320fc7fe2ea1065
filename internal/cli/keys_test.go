package cli

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufrepo"
)

// signedServer is a complete server (device API, management API, signing
// service) in-process, and an admin token for it.
type signedServer struct {
	t     *testing.T
	srv   *server.Server
	url   string
	token string
	clock *clock.Fake
}

func newSignedServer(t *testing.T) *signedServer {
	t.Helper()
	fc := clock.NewFake(time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC))
	srv, err := server.New(context.Background(), server.Config{DataDir: t.TempDir(), Clock: fc, Out: io.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	hs := httptest.NewServer(srv.Handler())
	t.Cleanup(hs.Close)
	tok, err := auth.GenerateAPIToken()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Store().CreateAPIToken(context.Background(), store.APIToken{TenantID: store.DefaultTenant, ID: tok.ID,
		Name: "test", Role: store.RoleAdmin, SecretHash: tok.SecretHash}, store.System, fc.Now()); err != nil {
		t.Fatal(err)
	}
	return &signedServer{t: t, srv: srv, url: hs.URL, token: tok.Token, clock: fc}
}

// run runs the command line against the server (env nil) or with env.
func (s *signedServer) run(env map[string]string, args ...string) result {
	s.t.Helper()
	if env == nil {
		env = map[string]string{"UPDRAFT_SERVER": s.url, "UPDRAFT_TOKEN": s.token}
	}
	return runCLI(s.t, runOpts{env: env, clock: s.clock}, args...)
}

// must runs and checks a command.
func (s *signedServer) must(code int, stdout, stderr []string, args ...string) result {
	s.t.Helper()
	r := s.run(nil, args...)
	r.check(s.t, code, stdout, stderr)
	return r
}

func writeFile(t *testing.T, path string, b []byte) string {
	t.Helper()
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestSignedReleaseCommands runs the key ceremony, offline release
// signing, threshold signing, uploads with the server's refusals, finalize
// and every kind of key rotation through the command line against a real
// server.
func TestSignedReleaseCommands(t *testing.T) {
	t.Parallel()
	s := newSignedServer(t)
	tmp := t.TempDir()
	keys := filepath.Join(tmp, "keys")
	offline := map[string]string{} // no server, no token

	s.must(2, nil, []string{"--online-to-server, or --online-keys FILE"}, "keys", "init", "--dir", keys)
	s.must(2, nil, []string{"threshold"}, "keys", "init", "--dir", keys, "--root-keys", "2", "--root-threshold", "3", "--online-to-server")
	s.must(0, []string{"root     " + keys + "/root/1.pem " + keys + "/root/2.pem " + keys + "/root/3.pem  (2 of 3 sign a new root)",
		keys + "/lines/gw-200/1.pem", "Online keys (held by the server): snapshot ", "1.root.json  (ship it with every device",
		"Uploaded root 1, targets 1; devices now see snapshot 1, timestamp 1."}, nil,
		"keys", "init", "--dir", keys, "--root-keys", "3", "--root-threshold", "2", "--line", "gw-200", "--online-to-server")
	for _, p := range []string{"root/1.pem", "root/3.pem", "targets/1.pem", "lines/gw-200/1.pem"} {
		st, err := os.Stat(filepath.Join(keys, p))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v, mode %v; want 0600", p, err, st.Mode())
		}
	}
	s.must(1, nil, []string{"already holds root keys"}, "keys", "init", "--dir", keys, "--online-to-server")
	s.must(0, []string{"ROLE", "snapshot", "timestamp", "director", "true"}, nil, "keys", "online")

	// A release: artifacts on the server, signed offline, metadata uploaded.
	img := writeFile(t, filepath.Join(tmp, "gw200.img"), []byte(strings.Repeat("firmware 1.0.0\n", 1000)))
	s.must(0, nil, nil, "release", "create", "1.0.0", "--security-version", "1")
	s.must(0, nil, nil, "release", "upload", "1.0.0", img, "--device-type", "gw-200", "--hw-rev", "A", "--type", "raw-image", "--component", "rootfs")
	lineKey := filepath.Join(keys, "lines", "gw-200", "1.pem")
	sign := func(key, version, metadata, out string, file string) []string {
		args := []string{"release", "sign", "--role", "gw-200", "--key", key, "--version", version, "--security-version", "1",
			"--hw-rev", "A", "--type", "raw-image", "--component", "rootfs", "--artifact", file, "--out", out}
		if metadata != "" {
			args = append(args, "--metadata", metadata)
		}
		return args
	}
	v1 := filepath.Join(tmp, "1.gw-200.json")
	r := s.run(offline, sign(lineKey, "1.0.0", "", v1, img)...)
	r.check(t, 0, []string{"Wrote " + v1 + ": gw-200 version 1, signed by ", "+ gw-200/rootfs/1.0.0/gw200.img  15.0 kB  sha256 ",
		"Upload with: updraft release upload-metadata " + v1}, []string{"^$"})
	s.must(0, []string{"Uploaded gw-200 1; devices now see snapshot 2, timestamp 2."}, nil, "release", "upload-metadata", v1)
	s.must(1, nil, []string{"uploaded version 1, stored version is 1 (want 2)", "(stale_version)"}, "release", "upload-metadata", v1)

	// The server refuses metadata whose hash is not the artifact's.
	s.must(0, nil, nil, "release", "create", "1.1.0", "--security-version", "1")
	s.must(0, nil, nil, "release", "upload", "1.1.0", img, "--device-type", "gw-200", "--hw-rev", "A", "--type", "raw-image", "--component", "rootfs")
	tampered := filepath.Join(tmp, "tampered.json")
	bad := writeFile(t, filepath.Join(tmp, "gw200-bad.img"), []byte("not the uploaded bytes"))
	s.run(offline, append(sign(lineKey, "1.1.0", v1, tampered, bad), "--name", "gw200.img")...).check(t, 0, nil, nil)
	s.must(1, nil, []string{"metadata says 22 bytes", "(artifact_mismatch)"}, "release", "upload-metadata", "--role", "gw-200", tampered)

	// Threshold signing: a line whose role needs two of two keys.
	k1, k2 := filepath.Join(tmp, "ci1.pem"), filepath.Join(tmp, "ci2.pem")
	var pubs []string
	for _, k := range []string{k1, k2} {
		priv, err := tufrepo.GenerateKey(tufrepo.KeyEd25519)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := tufrepo.MarshalPrivateKey(priv, nil)
		writeFile(t, k, b)
		der, _ := x509.MarshalPKIXPublicKey(priv.Public())
		pubs = append(pubs, writeFile(t, k+".pub", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
	}
	s.must(0, []string{"Delegated gw-300/*/*/* to 2 key(s), threshold 2.", "Uploaded targets 2"}, nil,
		"keys", "delegate", "gw-300", "--dir", keys, "--key-file", pubs[0], "--key-file", pubs[1], "--threshold", "2", "--upload")
	img300 := writeFile(t, filepath.Join(tmp, "gw300.img"), []byte("gw-300 image"))
	s.must(0, nil, nil, "release", "create", "3.0.0")
	s.must(0, nil, nil, "release", "upload", "3.0.0", img300, "--device-type", "gw-300", "--hw-rev", "X", "--type", "file")
	a := filepath.Join(tmp, "a.json")
	s.run(offline, "release", "sign", "--role", "gw-300", "--key", k1, "--version", "3.0.0", "--hw-rev", "X", "--type", "file",
		"--artifact", img300, "--out", a).check(t, 0, nil, nil)
	s.must(1, nil, []string{"(bad_signature)"}, "release", "upload-metadata", "--role", "gw-300", a)
	b := filepath.Join(tmp, "b.json")
	s.run(offline, "release", "sign", "--cosign", a, "--key", k2, "--out", b).check(t, 0, []string{"Wrote " + b + ": targets version 1"}, nil)
	c := filepath.Join(tmp, "1.gw-300.json")
	s.run(offline, "release", "sign", "--combine", a, b, "--out", c).check(t, 0, []string{"combined"}, nil)
	s.must(0, []string{"Uploaded gw-300 1"}, nil, "release", "upload-metadata", c)

	// Finalize.
	s.must(1, nil, []string{"publish it before finalizing"}, "release", "finalize", "1.0.0")
	s.must(0, nil, nil, "release", "publish", "1.0.0")
	s.must(0, []string{"finalized release 1.0.0 (security version 1)"}, nil, "release", "finalize", "1.0.0")

	// Rotations: root (two of three old keys and all new ones sign root 2),
	// the gw-200 release key (its role re-signed by the new key), targets,
	// and the online keys. Devices follow through the root chain.
	s.must(0, []string{"New root keys", "(2 of 3)", "Uploaded root 2"}, nil, "keys", "rotate", "root", "--dir", keys, "--upload")
	s.must(0, []string{"New gw-200 release keys", "Uploaded gw-200 2, targets 3"}, nil, "keys", "rotate", "gw-200", "--dir", keys, "--upload")
	// The retired release key can no longer sign for the line.
	cur := filepath.Join(tmp, "2.gw-200.json")
	writeMetadata(t, s, "gw-200.json", cur)
	retired, _ := filepath.Glob(filepath.Join(keys, "retired", "gw-200-*", "1.pem"))
	if len(retired) != 1 {
		t.Fatalf("retired gw-200 keys %v", retired)
	}
	v3old := filepath.Join(tmp, "3.gw-200.old.json")
	s.run(offline, sign(retired[0], "1.1.0", cur, v3old, img)...).check(t, 0, nil, nil)
	s.must(1, nil, []string{"(bad_signature)"}, "release", "upload-metadata", "--role", "gw-200", v3old)
	v3 := filepath.Join(tmp, "3.gw-200.json")
	s.run(offline, sign(lineKey, "1.1.0", cur, v3, img)...).check(t, 0, nil, nil)
	s.must(0, []string{"Uploaded gw-200 3"}, nil, "release", "upload-metadata", v3)
	s.must(0, []string{"New targets keys", "Uploaded root 3, targets 4"}, nil, "keys", "rotate", "targets", "--dir", keys, "--upload")
	s.must(0, []string{"New online keys: snapshot ", "Uploaded root 4; devices now see snapshot "}, nil,
		"keys", "rotate", "online", "--dir", keys, "--online-to-server", "--upload")
	var st client.SigningStatus
	r = s.run(nil, "-o", "json", "keys", "online")
	var online []client.OnlineKey
	if err := json.Unmarshal([]byte(r.stdout), &online); err != nil || len(online) != 6 {
		t.Fatalf("online keys after rotation: %v %s", err, r.stdout)
	}
	c2, err := client.New(s.url, client.Options{Token: s.token})
	if err != nil {
		t.Fatal(err)
	}
	if st, err = c2.SigningStatus(context.Background()); err != nil {
		t.Fatal(err)
	}
	if st.Health.Degraded || !st.Initialized {
		t.Fatalf("status after the rotations: %+v", st)
	}
	versions := map[string]int64{}
	for _, rs := range st.Roles {
		versions[rs.Role] = rs.Version
	}
	if versions["root"] != 4 || versions["targets"] != 4 || versions["gw-200"] != 3 || versions["gw-300"] != 1 {
		t.Fatalf("role versions %v", versions)
	}
}

// writeMetadata saves the server's current metadata of a role.
func writeMetadata(t *testing.T, s *signedServer, name, path string) {
	t.Helper()
	c, err := client.New(s.url, client.Options{Token: s.token})
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Metadata(context.Background(), name)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, path, b)
}

// TestOfflineCeremony runs keys init without network from a saved online
// key list, with passphrase-encrypted key files.
func TestOfflineCeremony(t *testing.T) {
	t.Parallel()
	s := newSignedServer(t)
	tmp := t.TempDir()
	s.must(0, nil, nil, "keys", "online", "--generate", "snapshot,timestamp,director")
	onlineFile := writeFile(t, filepath.Join(tmp, "online.json"), []byte(s.must(0, nil, nil, "-o", "json", "keys", "online").stdout))
	pass := writeFile(t, filepath.Join(tmp, "pass"), []byte("correct horse battery staple\n"))
	keys := filepath.Join(tmp, "keys")
	r := s.run(map[string]string{}, "keys", "init", "--dir", keys, "--line", "gw-200", "--online-keys", onlineFile, "--passphrase-file", pass)
	r.check(t, 0, []string{"Upload it to the server with:\n  updraft release upload-metadata " + keys + "/metadata/1.root.json " + keys + "/metadata/1.targets.json"}, nil)
	key, err := os.ReadFile(filepath.Join(keys, "lines", "gw-200", "1.pem"))
	if err != nil || !strings.Contains(string(key), "ENCRYPTED") {
		t.Fatalf("release key not encrypted: %v\n%s", err, key)
	}
	s.must(0, []string{"Uploaded root 1, targets 1"}, nil, "release", "upload-metadata",
		filepath.Join(keys, "metadata", "1.targets.json"), filepath.Join(keys, "metadata", "1.root.json"))
	img := writeFile(t, filepath.Join(tmp, "fw.img"), []byte("firmware"))
	args := []string{"release", "sign", "--role", "gw-200", "--key", filepath.Join(keys, "lines", "gw-200", "1.pem"), "--version", "1.0.0",
		"--hw-rev", "A", "--type", "raw-image", "--artifact", img, "--out", filepath.Join(tmp, "1.gw-200.json")}
	s.run(map[string]string{}, args...).check(t, 1, nil, []string{"is encrypted: give --passphrase-file"})
	s.run(map[string]string{}, append(args, "--passphrase-file", pass)...).check(t, 0, []string{"gw-200/main/1.0.0/fw.img"}, nil)
	s.run(map[string]string{}, "release", "sign", "--role", "gw-200", "--key", "k", "--version", "1.0.0", "--hw-rev", "A",
		"--type", "tarball", "--artifact", img).check(t, 2, nil, []string{`unknown artifact_type "tarball"`})
	s.run(map[string]string{}, "release", "sign", "--combine", "only-one.json").check(t, 2, nil, []string{"at least two files"})
}
