package download

import (
	"strings"
	"testing"
)

func TestSanitizeFilename(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"gw-200_v2.4.1+rc1.swu", "gw-200_v2.4.1+rc1.swu"},
		{"", ""},
		{".", ""},
		{"..", ""},
		{"/", ""},
		{"../../etc/passwd", "passwd"},
		{`C:\firmware\update.bin`, "update.bin"},
		{".hidden.img", "hidden.img"},
		{`evil"; filename=x.sh`, "evil___filename_x.sh"},
		{"line\r\nbreak.bin", "line__break.bin"},
		{"nul\x00.bin", "nul_.bin"},
		{"über.raucb", "__ber.raucb"},
		{"___", ""},
		{strings.Repeat("a", 200) + ".img", strings.Repeat("a", 124) + ".img"},
		{strings.Repeat("a", 90) + "." + strings.Repeat("b", 127), strings.Repeat("b", 127)},
	}
	for _, tt := range tests {
		if got := sanitizeFilename(tt.in); got != tt.want {
			t.Errorf("sanitizeFilename(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzSanitizeFilename checks that any client-visible name is a safe header
// value: short, plain ASCII, no separators, no leading dot.
func FuzzSanitizeFilename(f *testing.F) {
	for _, s := range []string{"fw.bin", "../x", "a\\b", "\"", ".\r\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, name string) {
		got := sanitizeFilename(name)
		if len(got) > maxFilenameLen || strings.HasPrefix(got, ".") {
			t.Fatalf("sanitizeFilename(%q) = %q", name, got)
		}
		for i := 0; i < len(got); i++ {
			if c := got[i]; !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-", rune(c)) {
				t.Fatalf("sanitizeFilename(%q) = %q contains %q", name, got, c)
			}
		}
	})
}
