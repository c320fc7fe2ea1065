package cli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/client/clienttest"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
)

// fixture is a real management API in-process and a way to run the
// command line against it.
type fixture struct {
	t   *testing.T
	srv *clienttest.Server
}

func setup(t *testing.T) *fixture {
	t.Helper()
	return &fixture{t: t, srv: clienttest.NewServer(t)}
}

// run runs the command line as the admin token against the server.
func (f *fixture) run(o runOpts, args ...string) result {
	f.t.Helper()
	env := map[string]string{"UPDRAFT_SERVER": f.srv.URL, "UPDRAFT_TOKEN": f.srv.Admin}
	for k, v := range o.env {
		env[k] = v
	}
	o.env = env
	if o.clock == nil {
		o.clock = f.srv.Clock
	}
	return runCLI(f.t, o, args...)
}

// tickingClock moves a quarter second each time it is read, so that
// progress bars have an elapsed time to compute rates from.
type tickingClock struct{ *clock.Fake }

func (c *tickingClock) Now() time.Time {
	c.Advance(250 * time.Millisecond)
	return c.Fake.Now()
}

// step is one command of a scenario and what it must print.
type step struct {
	args   []string
	stdin  string
	env    map[string]string
	code   int
	stdout []string
	stderr []string
	// notOut lists substrings stdout must not contain.
	notOut []string
}

// steps runs a scenario's commands in order; each sees the previous ones'
// effects.
func (f *fixture) steps(steps []step) {
	f.t.Helper()
	for _, s := range steps {
		r := f.run(runOpts{env: s.env, stdin: s.stdin}, s.args...)
		f.t.Run(strings.Join(s.args, " "), func(t *testing.T) {
			r.check(t, s.code, s.stdout, s.stderr)
			for _, n := range s.notOut {
				if strings.Contains(r.stdout, n) {
					t.Errorf("stdout contains %q:\n%s", n, r.stdout)
				}
			}
		})
	}
}

// decode runs a command with -o json and decodes its output.
func (f *fixture) decode(v any, args ...string) {
	f.t.Helper()
	r := f.run(runOpts{}, append([]string{"-o", "json"}, args...)...)
	if r.code != 0 {
		f.t.Fatalf("%v: exit %d: %s", args, r.code, r.stderr)
	}
	if err := json.Unmarshal([]byte(r.stdout), v); err != nil {
		f.t.Fatalf("%v: output is not JSON: %v\n%s", args, err, r.stdout)
	}
}

func TestDeviceCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	a := f.srv.Enroll(clienttest.Device{Serial: "SN-A", DeviceType: "gw-200", HWRev: "B", Region: "eu-west"})
	b := f.srv.Enroll(clienttest.Device{Serial: "SN-B", DeviceType: "gw-200", HWRev: "C", Region: "eu-west", Accept: true})
	c := f.srv.Enroll(clienttest.Device{Serial: "SN-C", DeviceType: "sensor-1", HWRev: "A", Region: "us-east"})

	f.steps([]step{
		{args: []string{"device", "list"}, stdout: []string{"ID", "SERIAL", "STATE", "LAST SEEN", a.ID, "SN-A", "SN-B", "SN-C", "pending", "accepted", "gw-200", "sensor-1"}, stderr: []string{"^$"}},
		{args: []string{"device", "list", "--state", "pending"}, stdout: []string{"SN-A", "SN-C"}, notOut: []string{"SN-B"}},
		{args: []string{"device", "list", "--filter", `device_type == "gw-200" and hw_rev in ("C")`}, stdout: []string{"SN-B"}, notOut: []string{"SN-A", "SN-C"}},
		{args: []string{"device", "list", "--limit", "1"}, stdout: []string{"SN-"}, stderr: []string{"more devices: use --all, or --after "}},
		{args: []string{"device", "list", "--limit", "1", "--all"}, stdout: []string{"SN-A", "SN-B", "SN-C"}, stderr: []string{"^$"}},
		{args: []string{"device", "show", a.ID}, stdout: []string{"ID:", a.ID, "Serial:", "SN-A", "State:", "pending", "HW revision:", "Region:", "eu-west", "Assignment:", "Credentials:", "pubkey", "ed25519"}},
		{args: []string{"device", "accept", a.ID}, stdout: []string{"device " + a.ID + " (SN-A) accepted"}},
		{args: []string{"device", "reject", c.ID}, stdout: []string{"device " + c.ID + " (SN-C) rejected"}},
		{args: []string{"device", "list", "--state", "pending"}, stdout: []string{"ID"}, notOut: []string{"SN-"}},
		{args: []string{"device", "tag", b.ID, "--add", "lab,canary", "--add", "night"}, stdout: []string{"device " + b.ID + " tags: canary, lab, night"}},
		{args: []string{"device", "tag", b.ID, "--remove", "canary,night"}, stdout: []string{"tags: lab\n"}},
		{args: []string{"device", "list", "--filter", "tag:lab"}, stdout: []string{"SN-B", "lab"}, notOut: []string{"SN-A", "SN-C"}},
		{args: []string{"device", "show", "no-such-device"}, code: 1, stdout: []string{"^$"}, stderr: []string{"updraft: ", "no-such-device", "(not_found)\n"}},
		{args: []string{"device", "accept", "no-such-device"}, code: 1, stderr: []string{"(not_found)"}},
		{args: []string{"device", "list", "--filter", `hw_rev in ("B" "C")`}, code: 2, stderr: []string{"bad --filter: column ", "column 16: expected \",\" or \")\"", "\n  hw_rev in (\"B\" \"C\")\n" + strings.Repeat(" ", 2+15) + "^\n"}},
		{args: []string{"device", "decommission", c.ID}, stdout: []string{"device " + c.ID + " (SN-C) decommissioned"}},
	})

	// JSON output is the API's object.
	var l client.List[store.Device]
	f.decode(&l, "device", "list", "--state", "accepted")
	if len(l.Items) != 2 || l.Next != "" {
		t.Fatalf("device list -o json: %+v", l)
	}
	var d client.DeviceDetail
	f.decode(&d, "device", "show", b.ID)
	if d.ID != b.ID || strings.Join(d.Tags, ",") != "lab" || len(d.Credentials) != 1 {
		t.Fatalf("device show -o json: %+v", d)
	}
	// The store agrees with what the commands said.
	got, err := f.srv.Store.Device(context.Background(), store.DefaultTenant, a.ID)
	if err != nil || got.State != store.DeviceAccepted {
		t.Fatalf("device A in the store: %+v, %v", got, err)
	}
}

func TestReleaseCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	dev := f.srv.Enroll(clienttest.Device{Serial: "SN-1", DeviceType: "gw-200", HWRev: "B", Accept: true})
	dir := t.TempDir()
	img := filepath.Join(dir, "gw200-1.2.0.img")
	content := []byte(strings.Repeat("firmware image bytes\n", 50_000))
	if err := os.WriteFile(img, content, 0o644); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(content)
	hexSum := hex.EncodeToString(sum[:])
	upload := []string{"release", "upload", "1.2.0", img, "--device-type", "gw-200", "--hw-rev", "B,C", "--type", "raw-image", "--component", "rootfs"}

	f.steps([]step{
		{args: []string{"release", "create", "1.2.0", "--notes", "Fixes the watchdog\nand the LEDs", "--security-version", "3", "--severity", "high", "--cve", "CVE-2026-0001,CVE-2026-0002", "--cve", "CVE-2026-0003"},
			stdout: []string{"created draft release 1.2.0 (id "}},
		{args: []string{"release", "create", "1.2.0"}, code: 1, stderr: []string{"updraft: ", "(conflict)"}},
		{args: []string{"release", "publish", "1.2.0"}, code: 1, stderr: []string{"updraft: "}},
		{args: []string{"release", "upload", "9.9.9", img, "--device-type", "gw-200", "--hw-rev", "B", "--type", "raw-image"}, code: 1, stderr: []string{`release "9.9.9" not found`, "(not_found)"}},
	})

	// Upload on a "terminal" whose clock moves: the progress bars go to
	// stderr, show a rate and end at 100% once each.
	r := f.run(runOpts{terminal: true, clock: &tickingClock{Fake: clock.NewFake(clienttest.Start())}}, upload...)
	r.check(t, 0, []string{"uploaded gw200-1.2.0.img to release 1.2.0: 1.1 MB, gw-200 rev B,C, sha256 " + hexSum + "\n"},
		[]string{"sha256 100% [########################]", "upload 100% [########################] 1.1 MB / 1.1 MB", "\r"})
	if n := strings.Count(r.stderr, "upload 100%"); n != 1 {
		t.Errorf("the upload bar reached 100%% %d times:\n%q", n, r.stderr)
	}
	if !regexp.MustCompile(`upload +\d+% \[[#.]+\] [0-9.]+ [kM]?B / 1\.1 MB  [0-9]+\.[0-9] [kM]B/s  ETA \d`).MatchString(r.stderr) {
		t.Errorf("no rate and ETA in the progress bar:\n%q", r.stderr)
	}
	ups := f.srv.Uploads()
	if len(ups) != 1 || ups[0].Header.Get("X-Updraft-SHA256") != hexSum || ups[0].ContentLength != int64(len(content)) {
		t.Fatalf("the server saw uploads %+v; want one with X-Updraft-SHA256 %s and length %d", ups, hexSum, len(content))
	}
	if info, err := f.srv.Blobs.Stat(context.Background(), hexSum); err != nil || info.Size != int64(len(content)) {
		t.Fatalf("blob after upload: %+v, %v", info, err)
	}

	f.steps([]step{
		// Not a terminal: no progress bar at all.
		{args: append(append([]string{}, upload...), "--name", "again.img"), code: 1, stderr: []string{"(conflict)"}, notOut: []string{"%"}},
		{args: []string{"release", "show", "1.2.0"}, stdout: []string{"Version:", "1.2.0", "State:", "draft", "Severity:", "high", "Security version:", "3",
			"Fixes:", "CVE-2026-0001, CVE-2026-0002, CVE-2026-0003", "Notes:\n  Fixes the watchdog\n  and the LEDs\n", "Artifacts:", "gw200-1.2.0.img", "raw-image", "rootfs", "B,C", hexSum}},
		{args: []string{"release", "publish", "1.2.0"}, stdout: []string{"published release 1.2.0 with 1 artifact(s)"}},
		{args: upload, code: 1, stderr: []string{"(immutable)"}},
		{args: []string{"release", "create", "1.3.0-rc.1"}, stdout: []string{"created draft release 1.3.0-rc.1"}},
		{args: []string{"release", "list"}, stdout: []string{"VERSION", "SECURITY VERSION", "1.2.0", "published", "high", "1.3.0-rc.1", "draft"}},
		{args: []string{"release", "list", "--limit", "1"}, stderr: []string{"more releases: use --all, or --after "}},
		{args: []string{"release", "mark-bad", "1.2.0", "--reason", "boot loop on rev C"}, stdout: []string{"release 1.2.0 marked bad: boot loop on rev C"}},
		{args: []string{"release", "list"}, stdout: []string{"bad"}},
		{args: []string{"device", "assign", dev.ID, "1.2.0"}, code: 1, stderr: []string{"updraft: ", "(conflict)"}},
		{args: []string{"device", "assign", dev.ID, "1.2.0", "--allow-bad"}, stdout: []string{"assigned release 1.2.0 to device " + dev.ID + " (assignment "}},
		{args: []string{"device", "show", dev.ID}, stdout: []string{"Assignment:", "1.2.0 pending"}},
		{args: []string{"release", "mark-bad", "1.2.0", "--undo"}, stdout: []string{"release 1.2.0 is no longer marked bad"}},
		{args: []string{"device", "assign", dev.ID, "1.2.0"}, stdout: []string{"assigned release 1.2.0", "superseded assignment "}},
		{args: []string{"release", "mark-affected", "1.2.0", "--cve", "CVE-2026-1111", "--cve", "CVE-2026-2222"}, stdout: []string{"release 1.2.0 affected by: CVE-2026-1111, CVE-2026-2222"}},
		{args: []string{"release", "show", "1.2.0"}, stdout: []string{"Affected by:", "CVE-2026-1111, CVE-2026-2222", "Bad:", "no"}},
		{args: []string{"audit", "list", "--object-type", "release"}, stdout: []string{"SEQ", "ACTION", "release"}},
	})

	var rel store.Release
	f.decode(&rel, "release", "show", "1.2.0")
	if rel.Version != "1.2.0" || rel.State != store.ReleasePublished || len(rel.Artifacts) != 1 || rel.Artifacts[0].SHA256 != hexSum ||
		strings.Join(rel.AffectedBy, ",") != "CVE-2026-1111,CVE-2026-2222" || rel.Bad {
		t.Fatalf("release show -o json: %+v", rel)
	}
	var byID store.Release
	f.decode(&byID, "release", "show", rel.ID)
	if byID.ID != rel.ID {
		t.Fatalf("release show by id: %+v", byID)
	}
}

func TestTokenCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	tokenLine := regexp.MustCompile(`^updraft_[a-z0-9]{8}_[A-Za-z0-9]{32}\n$`)

	r := f.run(runOpts{}, "token", "create", "ci-upload", "--role", "operator", "--expires", "720h")
	r.check(t, 0, nil, []string{"created operator token ci-upload (id ", "expires 2026-03-31 12:00:00Z", "shown only now"})
	if !tokenLine.MatchString(r.stdout) {
		t.Fatalf("token create printed %q; want the token alone", r.stdout)
	}
	ci := strings.TrimSpace(r.stdout)
	id := strings.Split(ci, "_")[1]
	asCI := map[string]string{"UPDRAFT_TOKEN": ci}
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(ci+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	f.steps([]step{
		{args: []string{"token", "list"}, stdout: []string{"ID", "NAME", "ROLE", "STATUS", "EXPIRES", id, "ci-upload", "operator", "active", "2026-03-31 12:00:00Z"}},
		// The new token works, with the operator's rights only.
		{args: []string{"release", "create", "2.0.0"}, env: asCI, stdout: []string{"created draft release 2.0.0"}},
		{args: []string{"token", "list"}, env: asCI, code: 1, stderr: []string{"(forbidden)"}},
		// UPDRAFT_TOKEN_FILE is read when UPDRAFT_TOKEN is not set.
		{args: []string{"release", "list"}, env: map[string]string{"UPDRAFT_TOKEN": "", "UPDRAFT_TOKEN_FILE": tokenFile}, stdout: []string{"2.0.0"}},
		{args: []string{"token", "revoke", id}, stdout: []string{"token " + id + " revoked"}},
		{args: []string{"token", "list"}, stdout: []string{"revoked"}},
		{args: []string{"release", "list"}, env: asCI, code: 1, stderr: []string{"updraft: ", "revoked", "(unauthorized)"}},
		{args: []string{"release", "list"}, env: map[string]string{"UPDRAFT_TOKEN": "updraft_nonsense"}, code: 1, stderr: []string{"(unauthorized)"}},
		{args: []string{"token", "revoke", "zzzzzzzz"}, code: 1, stderr: []string{"(not_found)"}},
	})

	var created client.CreatedToken
	f.decode(&created, "token", "create", "viewer-bot", "--role", "viewer")
	if created.Name != "viewer-bot" || created.Role != store.RoleViewer || !strings.HasPrefix(created.Token, "updraft_"+created.ID+"_") || created.ExpiresAt != nil {
		t.Fatalf("token create -o json: %+v", created)
	}
	var l client.List[store.APIToken]
	f.decode(&l, "token", "list")
	if len(l.Items) != 3 { // the fixture's admin token, ci-upload, viewer-bot
		t.Fatalf("token list -o json has %d tokens: %+v", len(l.Items), l)
	}
}

func TestUserCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	checkPassword := func(name, pw string) store.User {
		t.Helper()
		u, err := f.srv.Store.UserByName(ctx, store.DefaultTenant, name)
		if err != nil {
			t.Fatal(err)
		}
		if err := auth.VerifyPassword(pw, u.PasswordHash); err != nil {
			t.Fatalf("password of %s is not %q: %v", name, pw, err)
		}
		return u
	}

	// A generated one-time password is printed alone on stdout.
	r := f.run(runOpts{}, "user", "create", "alice", "--role", "operator")
	r.check(t, 0, nil, []string{"created operator user alice (id ", "one-time password, shown only now"})
	onetime := strings.TrimSpace(r.stdout)
	if onetime == "" || strings.Contains(onetime, "\n") {
		t.Fatalf("user create printed %q; want the password alone", r.stdout)
	}
	if u := checkPassword("alice", onetime); !u.MustChangePassword {
		t.Fatal("a generated password must be changed at first use")
	}

	// carol owns a token; with it she changes her own password.
	carol := f.srv.User("carol", store.RoleAdmin, "carol's first password", false)
	asCarol := map[string]string{"UPDRAFT_TOKEN": f.srv.Token(store.RoleAdmin, carol.ID)}

	f.steps([]step{
		{args: []string{"user", "create", "bob", "--role", "viewer", "--password-stdin"}, stdin: "bob's long password\n", stdout: []string{"created viewer user bob (id "}, stderr: []string{"^$"}},
		{args: []string{"user", "create", "bob", "--role", "viewer"}, code: 1, stderr: []string{"(conflict)"}},
		{args: []string{"user", "create", "dave", "--role", "viewer", "--password-stdin"}, stdin: "short\n", code: 1, stderr: []string{"(weak_password)"}},
		{args: []string{"user", "list"}, stdout: []string{"NAME", "alice", "operator", "must change password", "bob", "viewer", "carol", "active"}, notOut: []string{"dave"}},
		// An admin resets alice's password; she must change it at next use.
		{args: []string{"user", "passwd", "alice"}, stdin: "a new password for alice\n", stdout: []string{"password of alice changed"}},
		{args: []string{"user", "passwd", "nobody"}, stdin: "whatever password\n", code: 1, stderr: []string{`no user with name or id "nobody"`}},
		{args: []string{"user", "passwd", "alice"}, stdin: "", code: 1, stderr: []string{"no password on stdin"}},
		// Her own password: without --current the CLI explains what to do.
		{args: []string{"user", "passwd", "carol"}, env: asCarol, stdin: "carol's second password\n", code: 1, stderr: []string{"carol is your own account: pass --current"}},
		{args: []string{"user", "passwd", "--current", "carol"}, env: asCarol, stdin: "wrong password here\ncarol's second password\n", code: 1, stderr: []string{"(wrong_password)"}},
		{args: []string{"user", "passwd", "--current", "carol"}, env: asCarol, stdin: "carol's first password\ncarol's second password\n", stdout: []string{"password of carol changed"}},
	})
	checkPassword("alice", "a new password for alice")
	checkPassword("bob", "bob's long password")
	if u := checkPassword("carol", "carol's second password"); u.MustChangePassword {
		t.Fatal("a password changed by its owner need not be changed again")
	}
}

// TestMustChangePassword is the first-start flow: the admin's token belongs
// to a user with a one-time password, and the server refuses everything
// until it is changed.
func TestMustChangePassword(t *testing.T) {
	t.Parallel()
	f := setup(t)
	admin := f.srv.User("admin", store.RoleAdmin, "one-time-password-1", true)
	asAdmin := map[string]string{"UPDRAFT_TOKEN": f.srv.Token(store.RoleAdmin, admin.ID)}
	f.steps([]step{
		{args: []string{"release", "list"}, env: asAdmin, code: 1, stderr: []string{"the password must be changed first", "(password_change_required)"}},
		{args: []string{"user", "passwd", "--current", admin.ID}, env: asAdmin, stdin: "one-time-password-1\nmy own admin password\n", stdout: []string{"password of " + admin.ID + " changed"}},
		{args: []string{"release", "list"}, env: asAdmin, stdout: []string{"VERSION"}},
	})
}

func TestServerErrors(t *testing.T) {
	t.Parallel()
	f := setup(t)
	f.steps([]step{
		{args: []string{"release", "list"}, env: map[string]string{"UPDRAFT_TOKEN": f.srv.Token(store.RoleViewer, "")}, stdout: []string{"VERSION"}},
		{args: []string{"release", "create", "1.0.0"}, env: map[string]string{"UPDRAFT_TOKEN": f.srv.Token(store.RoleViewer, "")}, code: 1, stderr: []string{"updraft: role viewer may not write here (needs operator) (forbidden)\n"}},
		{args: []string{"--server", f.srv.URL + "/prefix", "release", "list"}, code: 1, stderr: []string{"(HTTP 404)"}},
	})
}
