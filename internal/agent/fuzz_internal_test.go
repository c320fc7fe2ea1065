package agent

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/devfs"
	"github.com/updraft/updraft/internal/deviceapi/wire"
)

func FuzzParseContentRange(f *testing.F) {
	for _, s := range []string{"bytes 0-99/100", "bytes 100-199/*", "bytes -1-2/3", "bytes 5-", "items 1-2/3", "bytes 9223372036854775807-1/2"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		start, total, ok := parseContentRange(s)
		if ok && (start < 0 || total < -1) {
			t.Fatalf("%q: start %d total %d", s, start, total)
		}
	})
}

// FuzzLoadState feeds arbitrary bytes as the state file: the agent must
// refuse or load them without panicking, and what it loads must save.
func FuzzLoadState(f *testing.F) {
	good, _ := json.Marshal(persisted{Format: stateFormat, NextSeq: 7, Phase: PhaseDownloading,
		Job:    &job{AssignmentID: "a1", Kind: kindSlot, ToSlot: "B"},
		Outbox: []wire.Report{{AssignmentID: "a1", Seq: 6, State: "downloading"}}})
	f.Add(good)
	f.Add([]byte(`{"format":1}`))
	f.Add([]byte(`{"format":2,"next_seq":-5}`))
	f.Add([]byte(`{"format":1,"phase":"rebooting"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := devfs.NewCrashFS()
		a := &Agent{cfg: Config{FS: fsys, Dir: "s", Version: "1.0.0"}, clock: clock.NewFake(testT0)}
		a.log = discardLogger()
		if err := fsys.MkdirAll("s", 0o700); err != nil {
			t.Fatal(err)
		}
		if err := devfs.WriteFileAtomic(fsys, "s/state.json", b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.loadState(); err != nil {
			return
		}
		if a.st.NextSeq < 1 || a.st.Phase == "" {
			t.Fatalf("loaded next_seq %d phase %q", a.st.NextSeq, a.st.Phase)
		}
		if err := a.save(); err != nil {
			t.Fatal(err)
		}
		p := a.loadProgress("x")
		if p.AssignmentID != "x" || p.Offset < 0 {
			t.Fatalf("progress %+v", p)
		}
	})
}

func FuzzParseKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIBzGH5h6p8Vdhy4ssYH8rN8s3S6m9rHbf8v0pYfXIk1b\n-----END PRIVATE KEY-----\n"))
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ParseKeyPEM(b)
		if err == nil && k == nil {
			t.Fatal("nil key without error")
		}
	})
}

func TestCleanTextAndCodes(t *testing.T) {
	t.Parallel()
	if got := cleanText("a\x00b\x1bc\nd", false); got != "a?b c\nd" {
		t.Fatalf("message %q", got)
	}
	if got := cleanText("a\x00b\x1b[31m", true); got != "a?b\x1b[31m" {
		t.Fatalf("log %q", got)
	}
	if got := sanitizeCode("boot fallback/x"); got != "boot-fallback-x" {
		t.Fatalf("code %q", got)
	}
	long := strings.Repeat("é", 1000)
	if got := truncate(long, 1023); len(got) > 1023 || !strings.HasPrefix(long, got) {
		t.Fatalf("truncate cut a rune: %d", len(got))
	}
	if got := tail(long, 1023); len(got) > 1023 || !strings.HasSuffix(long, got) {
		t.Fatalf("tail cut a rune: %d", len(got))
	}
}
