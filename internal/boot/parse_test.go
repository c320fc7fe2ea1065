package boot

import (
	"context"
	"errors"
	"maps"
	"os"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/devfs"
)

func TestCmdlineValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		cmdline, want string
		found         bool
	}{
		{"console=ttyS0 root=/dev/mmcblk0p2 rauc.slot=A rootwait\n", "A", true},
		{"rauc.slot=A rauc.slot=B", "B", true},
		{"rauc.slotx=A rauc.slo=B xrauc.slot=C", "", false},
		{`quiet dyndbg="file x.c +p" rauc.slot=B`, "B", true},
		{`"rauc.slot=system 1"`, "system 1", true},
		{"rauc.slot=\trauc.slot=A", "A", true},
		{"rauc.slot=", "", true},
		{"", "", false},
	}
	for _, tt := range tests {
		got, found := cmdlineValue(tt.cmdline, "rauc.slot")
		if got != tt.want || found != tt.found {
			t.Errorf("cmdlineValue(%q) = %q, %v; want %q, %v", tt.cmdline, got, found, tt.want, tt.found)
		}
	}
}

func TestKernelCmdline(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	fsys := devfs.NewCrashFS()
	if err := fsys.MkdirAll("proc", 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(s string) {
		if err := devfs.WriteFileAtomic(fsys, "proc/cmdline", []byte(s), 0o444); err != nil {
			t.Fatal(err)
		}
	}
	write("root=/dev/sda2 updraft.slot=B rauc.slot=A\n")
	if got, err := KernelCmdline(fsys, "proc/cmdline", "")(ctx); err != nil || got != "A" {
		t.Fatalf("default key = %q, %v", got, err)
	}
	if got, err := KernelCmdline(fsys, "proc/cmdline", "updraft.slot")(ctx); err != nil || got != "B" {
		t.Fatalf("custom key = %q, %v", got, err)
	}
	write("root=/dev/sda2\n")
	if _, err := KernelCmdline(fsys, "proc/cmdline", "")(ctx); err == nil {
		t.Fatal("a command line without the key was accepted")
	}
	write(`rauc.slot="A;reboot"`)
	if _, err := KernelCmdline(fsys, "proc/cmdline", "")(ctx); !errors.Is(err, ErrInvalidSlotName) {
		t.Fatalf("unsafe slot name: %v", err)
	}
	if _, err := KernelCmdline(fsys, "missing", "")(ctx); err == nil {
		t.Fatal("a missing command line file was accepted")
	}
}

func FuzzCmdline(f *testing.F) {
	f.Add("console=ttyS0 rauc.slot=A rootwait")
	f.Add(`a="b c" rauc.slot="x y"`)
	f.Fuzz(func(t *testing.T, s string) {
		v, found := cmdlineValue(s, "rauc.slot")
		if !found && v != "" || strings.Contains(v, `"`) {
			t.Fatalf("cmdlineValue(%q) = %q, %v", s, v, found)
		}
		// A parameter appended after complete input always wins.
		if strings.Count(s, `"`)%2 == 0 {
			if v, found := cmdlineValue(s+" rauc.slot=Z", "rauc.slot"); !found || v != "Z" {
				t.Fatalf("appended parameter lost: %q, %v", v, found)
			}
		}
	})
}

func FuzzParseEnvFile(f *testing.F) {
	f.Add([]byte("BOOT_ORDER=A B\nBOOT_A_LEFT=3\n"))
	f.Add([]byte("a=\nb==c\n\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parseEnvFile(b)
		if err != nil {
			return
		}
		out, err := formatEnvFile(v)
		if err != nil {
			t.Fatalf("cannot format what was parsed: %v", err)
		}
		again, err := parseEnvFile(out)
		if err != nil {
			t.Fatalf("cannot parse what was formatted: %v", err)
		}
		maps.DeleteFunc(v, func(_, value string) bool { return value == "" })
		if !maps.Equal(v, again) {
			t.Fatalf("round trip changed %v into %v", v, again)
		}
	})
}

func FuzzParsePrintenv(f *testing.F) {
	f.Add([]byte("BOOT_ORDER=A B\nBOOT_A_LEFT=3\nBOOT_B_LEFT=\n"))
	f.Add([]byte("BOOT_ORDER=A\nevil=1\n"))
	names := []string{"BOOT_ORDER", "BOOT_A_LEFT", "BOOT_B_LEFT"}
	f.Fuzz(func(t *testing.T, b []byte) {
		v, err := parsePrintenv(b, names)
		if err != nil {
			return
		}
		for k := range v {
			if !strings.HasPrefix(k, "BOOT_") {
				t.Fatalf("kept a variable that was not asked for: %q", k)
			}
		}
	})
}

func FuzzParseEditenvList(f *testing.F) {
	f.Add([]byte("ORDER=A B\nA_OK=1\nA_TRY=0\nsaved_entry=1\n"))
	names := raucGRUB{slotSet{"A", "B"}}.names()
	f.Fuzz(func(t *testing.T, b []byte) {
		for k := range parseEditenvList(b, names) {
			if k != "ORDER" && !strings.HasSuffix(k, "_OK") && !strings.HasSuffix(k, "_TRY") {
				t.Fatalf("kept a variable that was not asked for: %q", k)
			}
		}
	})
}

func TestParseEnvFileRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"noequals\n", "a b=1\n", "=1\n", "a=1\na=2\n", "a=\x00\n"} {
		if _, err := parseEnvFile([]byte(in)); err == nil {
			t.Errorf("parseEnvFile(%q) succeeded", in)
		}
	}
	if _, err := formatEnvFile(vars{"a": "x\ny"}); err == nil {
		t.Error("formatEnvFile stored a newline")
	}
	if _, err := setenvScript([]change{{"BOOT_ORDER", "A\nbootcmd=evil"}}); err == nil {
		t.Error("setenvScript passed a newline to fw_setenv")
	}
}

func TestExecRunner(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	sh := "/bin/sh"
	if _, err := os.Stat(sh); err != nil {
		t.Skip("no /bin/sh")
	}
	out, err := ExecRunner{}.Run(ctx, []byte("hello"), sh, "-c", "cat; echo ' world'")
	if err != nil || string(out) != "hello world\n" {
		t.Fatalf("Run = %q, %v", out, err)
	}
	_, err = ExecRunner{}.Run(ctx, nil, sh, "-c", "echo oops >&2; exit 3")
	var ce *CommandError
	if !errors.As(err, &ce) || ce.ExitCode() != 3 || ce.Stderr != "oops" ||
		err.Error() != "/bin/sh -c echo oops >&2; exit 3: exit status 3: oops" {
		t.Fatalf("failing command: %v", err)
	}
	_, err = ExecRunner{MaxOutput: 1000}.Run(ctx, nil, sh, "-c", "head -c 100000 /dev/zero")
	if err == nil || !strings.Contains(err.Error(), "larger than 1000 bytes") {
		t.Fatalf("oversized output: %v", err)
	}
	out, err = ExecRunner{Env: []string{"X=42"}}.Run(ctx, nil, sh, "-c", "echo $X")
	if err != nil || string(out) != "42\n" {
		t.Fatalf("environment: %q, %v", out, err)
	}
}
