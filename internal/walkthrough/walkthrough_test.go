package walkthrough_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/testenv"
)

// readmeCommands returns the shell lines of the README's walk-through
// that talk to the server: ./updraft … and scripts/try-device.sh …, in
// order, with trailing comments removed. The interactive password change
// and starting the server are left to the test.
func readmeCommands(t *testing.T, readme string) []string {
	t.Helper()
	f, err := os.Open(readme)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	inWalk, inBlock := false, false
	sc := bufio.NewScanner(f)
	comment := regexp.MustCompile(`\s+#\s.*$`)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			inWalk = strings.HasPrefix(line, "## A walk through")
		case inWalk && strings.HasPrefix(line, "```"):
			inBlock = !inBlock
		case inWalk && inBlock:
			cmd := strings.TrimSpace(comment.ReplaceAllString(line, ""))
			if cmd == "./updraft serve &" || cmd == "./updraft user passwd admin" {
				continue
			}
			if strings.HasPrefix(cmd, "./updraft ") || strings.HasPrefix(cmd, "scripts/try-device.sh ") {
				out = append(out, cmd)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("found only %d walk-through commands in the README; did its layout change?", len(out))
	}
	return out
}

func TestREADMEWalkthrough(t *testing.T) {
	bash := testenv.Command(t, "bash", "apt-get install bash")
	testenv.Command(t, "curl", "apt-get install curl")
	testenv.Command(t, "openssl", "apt-get install openssl")
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()

	// The README's binary, built the way it says.
	build := exec.Command("go", "build", "-o", filepath.Join(work, "updraft"), "./cmd/updraft")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	if err := os.Symlink(filepath.Join(root, "scripts"), filepath.Join(work, "scripts")); err != nil {
		t.Fatal(err)
	}
	img := make([]byte, 256<<10)
	if _, err := rand.Read(img); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "rootfs.img"), img, 0o600); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{DataDir: filepath.Join(work, "updraft-data"), Addr: "127.0.0.1:0", Out: &strings.Builder{}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
		srv.Close()
	})
	url := "http://" + srv.Addr()
	init := srv.Initial()

	var script strings.Builder
	fmt.Fprintf(&script, "set -euo pipefail\nexport UPDRAFT_SERVER=%s\n", url)
	script.WriteString("export UPDRAFT_TOKEN=$(sed -n 's/^api_token=//p' updraft-data/initial-admin.txt)\n")
	fmt.Fprintf(&script, "printf '%%s\\n%%s\\n' '%s' 'a-new-long-passphrase' | ./updraft user passwd --current admin\n", init.Password)
	for _, cmd := range readmeCommands(t, filepath.Join(root, "README.md")) {
		cmd = strings.ReplaceAll(cmd, "<device-id>", "$(cat .try-device/SN-0001/device_id)")
		fmt.Fprintf(&script, "echo '+ %s'\n%s\n", strings.ReplaceAll(cmd, "'", `'\''`), cmd)
	}
	run := exec.Command(bash, "-c", script.String())
	run.Dir = work
	run.Env = append(os.Environ(), "UPDRAFT_TOKEN=", "UPDRAFT_SERVER=")
	out, err := run.CombinedOutput()
	if err != nil {
		t.Fatalf("the README walk-through failed: %v\n%s", err, out)
	}
	for _, want := range []string{
		"published release 1.4.0",
		"SHA-256 verified",
		`"outcome":"applied"`,
		"Version:           1.4.0",
		"assignment.create",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("walk-through output lacks %q:\n%s", want, out)
		}
	}
}
