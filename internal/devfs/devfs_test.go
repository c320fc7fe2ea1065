package devfs_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/updraft/updraft/internal/devfs"
)

func TestWriteFileAtomicOS(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	name := filepath.ToSlash(filepath.Join(dir, "state.json"))
	fsys := devfs.OS{}
	for _, s := range []string{"one", "two, longer"} {
		if err := devfs.WriteFileAtomic(fsys, name, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := devfs.ReadFile(fsys, name, 100)
		if err != nil || string(b) != s {
			t.Fatalf("read %q, %v; want %q", b, err, s)
		}
	}
	if _, err := devfs.ReadFile(fsys, name, 3); err == nil {
		t.Fatal("ReadFile ignored its limit")
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Fatalf("%d entries left in the directory, want 1", len(entries))
	}
	ok, err := devfs.Exists(fsys, name)
	if !ok || err != nil {
		t.Fatalf("Exists = %v, %v", ok, err)
	}
	ok, err = devfs.Exists(fsys, name+".missing")
	if ok || err != nil {
		t.Fatalf("Exists(missing) = %v, %v", ok, err)
	}
}
