package ddi_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/ddi"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/testenv"
)

const swupdateHint = "run scripts/install-swupdate.sh"

// request is one request the server answered.
type request struct {
	method, path string
	status       int
}

// swuEnv runs Debian's real swupdate (suricatta, hawkBit mode) against the
// in-process DDI API.
type swuEnv struct {
	*env
	dir      string
	swupdate string
	cert     string
	reqs     chan request
}

// buildSWU builds a CMS-signed .swu whose sw-description writes payload to
// target with the rawfile handler.
func buildSWU(t *testing.T, dir, target string, payload []byte) []byte {
	t.Helper()
	openssl := testenv.Command(t, "openssl", swupdateHint)
	cpio := testenv.Command(t, "cpio", swupdateHint)
	run := func(name string, stdin []byte, args ...string) {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Stdin = bytes.NewReader(stdin)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
	}
	run(openssl, nil, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "key.pem", "-out", "cert.pem",
		"-days", "2", "-subj", "/CN=updraft ddi test", "-addext", "extendedKeyUsage=emailProtection")
	sum := sha256.Sum256(payload)
	desc := fmt.Sprintf(`software = {
	version = "2.0.0";
	hardware-compatibility: [ "1.0" ];
	files: (
		{
			filename = "payload.txt";
			path = "%s";
			sha256 = "%s";
		}
	);
}
`, target, hex.EncodeToString(sum[:]))
	if err := os.WriteFile(filepath.Join(dir, "sw-description"), []byte(desc), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "payload.txt"), payload, 0o600); err != nil {
		t.Fatal(err)
	}
	run(openssl, nil, "cms", "-sign", "-in", "sw-description", "-out", "sw-description.sig", "-signer", "cert.pem",
		"-inkey", "key.pem", "-outform", "DER", "-nosmimecap", "-binary")
	cmd := exec.Command(cpio, "-o", "-H", "crc", "--quiet")
	cmd.Dir = dir
	cmd.Stdin = strings.NewReader("sw-description\nsw-description.sig\npayload.txt\n")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("cpio: %v", err)
	}
	return out
}

// start runs swupdate for controller cid until stop is called; state is
// the -c value ("" for none).
func (s *swuEnv) start(cid, token, state string) (stop func() string) {
	s.t.Helper()
	args := fmt.Sprintf("-t DEFAULT -u %s -i %s -k %s -r 1 -w 1", s.srv.URL, cid, token)
	if state != "" {
		args += " -c " + state
	}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, s.swupdate, "-v", "-k", s.cert, "-H", "board:1.0", "-p", "/bin/true", "-u", args)
	cmd.Dir = s.dir
	cmd.Env = append(os.Environ(), "TMPDIR="+s.dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		s.t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	var once sync.Once
	stop = func() string {
		once.Do(func() { cancel(); <-done })
		return out.String()
	}
	s.t.Cleanup(func() { stop() })
	return stop
}

// await waits for a request that matches, failing after a real-time limit
// (swupdate is a real process).
func (s *swuEnv) await(what string, stop func() string, match func(request) bool) {
	s.t.Helper()
	limit := time.NewTimer(60 * time.Second)
	defer limit.Stop()
	for {
		select {
		case r := <-s.reqs:
			if match(r) {
				return
			}
		case <-limit.C:
			s.t.Fatalf("swupdate: no %s within 60s; its output:\n%s", what, stop())
		}
	}
}

func isFeedback(r request) bool {
	return r.method == "POST" && strings.Contains(r.path, "/deploymentBase/") && strings.HasSuffix(r.path, "/feedback")
}

// TestSWUpdateEndToEnd lets Debian's swupdate 2022.12 install a signed
// .swu that a campaign rolls out: the file lands on disk, the device
// reports proceeding, a restart with -c 2 reports success and, on a second
// device, -c 3 failure, which the campaign counts; a cancel of a single
// assignment is acknowledged.
func TestSWUpdateEndToEnd(t *testing.T) {
	bin := testenv.Command(t, "swupdate", swupdateHint)
	dir := t.TempDir()
	reqs := make(chan request, 1024)
	e := setup(t, options{
		cfg: func(c *ddi.Config) { c.PollInterval = 30 * time.Second },
		observe: func(r *http.Request, status int) {
			select {
			case reqs <- request{r.Method, r.URL.Path, status}:
			default:
			}
		},
	})
	s := &swuEnv{env: e, dir: dir, swupdate: bin, cert: filepath.Join(dir, "cert.pem"), reqs: reqs}
	targetDir := filepath.Join(dir, "target")
	if err := os.MkdirAll(targetDir, 0o755); err != nil {
		t.Fatal(err)
	}
	payload := []byte("installed by swupdate from updraft\n")
	target := filepath.Join(targetDir, "payload.txt")
	image := buildSWU(t, dir, target, payload)
	rel := e.release("2.0.0", store.SeverityHigh, art{name: "update.swu", typ: store.ArtifactSWU, data: image})

	// A campaign rolls the release out to devices 1 and 2.
	d1, tok1 := e.device("swu-dev01")
	d2, tok2 := e.device("swu-dev02")
	camp, eng := e.runCampaign(rel.Version)
	active := func(d store.Device) store.Assignment {
		a, err := e.store.ActiveAssignment(e.ctx, store.DefaultTenant, d.ID)
		if err != nil || a.CampaignID != camp.ID {
			t.Fatalf("campaign assignment of %s: %+v %v", d.Serial, a, err)
		}
		return a
	}
	as1, as2 := active(d1), active(d2)

	// Device 1 installs, then reports the tested state (-c 2): succeeded.
	stop := s.start("swu-dev01", tok1, "")
	s.await("install feedback", stop, func(r request) bool {
		return isFeedback(r) && e.assignment(as1.ID).State == store.AssignInstalling && fileIs(target, payload)
	})
	out := stop()
	if got := e.assignment(as1.ID); got.State != store.AssignInstalling {
		t.Fatalf("after the install: %s, want installing (proceeding); output:\n%s", got.State, out)
	}
	evs := must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as1.ID))
	if len(evs) == 0 || !strings.HasPrefix(evs[0].Message, "ddi proceeding/") {
		t.Fatalf("history %+v", evs)
	}
	for _, ev := range evs {
		t.Logf("swupdate feedback %d: %s %d%% %q", ev.Seq, ev.State, ev.Progress, ev.Message)
	}
	if err := os.Remove(target); err != nil {
		t.Fatal(err)
	}
	stop = s.start("swu-dev01", tok1, "2")
	s.await("success feedback", stop, func(r request) bool { return isFeedback(r) && e.assignment(as1.ID).State.Terminal() })
	stop()
	if got := e.assignment(as1.ID); got.State != store.AssignSucceeded {
		t.Fatalf("after -c 2: %s, want succeeded", got.State)
	}
	if v := must(e.store.Device(e.ctx, store.DefaultTenant, d1.ID)).Version; v != "2.0.0" {
		t.Fatalf("device version %q", v)
	}

	// Device 2 installs, then reports failure (-c 3): failed.
	stop = s.start("swu-dev02", tok2, "")
	s.await("install feedback", stop, func(r request) bool {
		return isFeedback(r) && e.assignment(as2.ID).State == store.AssignInstalling && fileIs(target, payload)
	})
	stop()
	stop = s.start("swu-dev02", tok2, "3")
	s.await("failure feedback", stop, func(r request) bool { return isFeedback(r) && e.assignment(as2.ID).State.Terminal() })
	stop()
	if got := e.assignment(as2.ID); got.State != store.AssignFailed {
		t.Fatalf("after -c 3: %s, want failed", got.State)
	}
	e.tick(eng)
	if got := e.campaignDevice(camp, d1).State; got != store.CDSucceeded {
		t.Fatalf("campaign counts device 1 as %s, want succeeded", got)
	}
	if got := e.campaignDevice(camp, d2).State; got != store.CDFailed {
		t.Fatalf("campaign counts device 2 as %s, want failed", got)
	}

	// Device 3's assignment is canceled before it polls: it acknowledges.
	d3, tok3 := e.device("swu-dev03")
	as3 := e.assign(d3, rel, "")
	if _, err := e.store.CancelAssignment(e.ctx, store.DefaultTenant, as3.ID, "test cancel", admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	stop = s.start("swu-dev03", tok3, "")
	s.await("cancel acknowledgement", stop, func(r request) bool {
		return r.method == "POST" && strings.Contains(r.path, "/cancelAction/") && r.status == 200
	})
	stop()
	evs = must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as3.ID))
	if len(evs) != 1 || evs[0].ErrorCode != "ddi_cancel_acknowledged" {
		t.Fatalf("cancel history %+v", evs)
	}
}

func fileIs(path string, want []byte) bool {
	got, err := os.ReadFile(path)
	return err == nil && bytes.Equal(got, want)
}
