package install

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"path"
	"sort"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/updraft/updraft/internal/devfs"
)

type entry struct {
	name string
	typ  byte
	body string
	link string
}

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Typeflag: e.typ, Mode: 0o644, Size: int64(len(e.body)), Linkname: e.link}
		if e.typ == tar.TypeDir {
			h.Mode, h.Size = 0o755, 0
		}
		if e.typ == tar.TypeSymlink {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.body)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, kind string, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch kind {
	case CompressionGzip:
		w := gzip.NewWriter(&buf)
		w.Write(b)
		w.Close()
	case CompressionZstd:
		w, err := zstd.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(b)
		w.Close()
	default:
		return b
	}
	return buf.Bytes()
}

func put(t testing.TB, fsys devfs.FS, name string, b []byte) {
	t.Helper()
	if err := fsys.MkdirAll(path.Dir(name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := devfs.WriteFileAtomic(fsys, name, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// tree lists every file under dir with its content.
func tree(t testing.TB, fsys devfs.FS, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(d, rel string)
	walk = func(d, rel string) {
		ents, err := fsys.ReadDir(d)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			p, r := path.Join(d, e.Name()), path.Join(rel, e.Name())
			if e.IsDir() {
				out[r+"/"] = ""
				walk(p, r)
				continue
			}
			b, err := devfs.ReadFile(fsys, p, 0)
			if err != nil {
				t.Fatal(err)
			}
			out[r] = string(b)
		}
	}
	walk(dir, "")
	return out
}

func keys(m map[string]string) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}

func TestExtractArchive(t *testing.T) {
	t.Parallel()
	good := []entry{
		{name: "./", typ: tar.TypeDir},
		{name: "bin/", typ: tar.TypeDir},
		{name: "bin/app", typ: tar.TypeReg, body: "#!/bin/sh\necho hi\n"},
		{name: "etc/app.conf", typ: tar.TypeReg, body: "level=3\n"},
	}
	for _, comp := range []string{CompressionNone, CompressionGzip, CompressionZstd} {
		for _, declared := range []string{comp, ""} { // "" sniffs
			t.Run(comp+"/"+declared, func(t *testing.T) {
				t.Parallel()
				fsys := devfs.NewCrashFS()
				put(t, fsys, "staging/a.tar", compress(t, comp, makeTar(t, good)))
				if err := ExtractArchive(context.Background(), fsys, "staging/a.tar", declared, "opt/app", ArchiveLimits{}); err != nil {
					t.Fatal(err)
				}
				if err := Promote(fsys, "opt/app"); err != nil {
					t.Fatal(err)
				}
				// Everything extracted must survive a power cut.
				fsys.Crash()
				got := tree(t, fsys, "opt/app")
				if got["bin/app"] != "#!/bin/sh\necho hi\n" || got["etc/app.conf"] != "level=3\n" || len(got) != 4 {
					t.Fatalf("extracted %v", keys(got))
				}
			})
		}
	}
}

func TestExtractArchiveRefusesEscapes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		entries []entry
		want    error
	}{
		{"dot-dot", []entry{{name: "../evil", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"nested dot-dot", []entry{{name: "a/../../evil", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"absolute", []entry{{name: "/etc/passwd", typ: tar.TypeReg, body: "x"}}, ErrUnsafePath},
		{"symlink", []entry{{name: "link", typ: tar.TypeSymlink, link: "/etc"}}, ErrUnsupportedEntry},
		{"hard link", []entry{{name: "link", typ: tar.TypeLink, link: "../../etc/passwd"}}, ErrUnsupportedEntry},
		{"device", []entry{{name: "sda", typ: tar.TypeBlock}}, ErrUnsupportedEntry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fsys := devfs.NewCrashFS()
			put(t, fsys, "s.tar", makeTar(t, tt.entries))
			err := ExtractArchive(context.Background(), fsys, "s.tar", "", "opt/app", ArchiveLimits{})
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if ok, _ := devfs.Exists(fsys, "evil"); ok {
				t.Fatal("a file escaped the destination")
			}
		})
	}
}

func TestExtractArchiveLimits(t *testing.T) {
	t.Parallel()
	fsys := devfs.NewCrashFS()
	put(t, fsys, "s.tar", makeTar(t, []entry{{name: "a", typ: tar.TypeReg, body: "0123456789"}, {name: "b", typ: tar.TypeReg, body: "0123456789"}}))
	if err := ExtractArchive(context.Background(), fsys, "s.tar", "", "d", ArchiveLimits{MaxBytes: 15}); err == nil {
		t.Fatal("20 bytes extracted under a 15-byte limit")
	}
	if err := ExtractArchive(context.Background(), fsys, "s.tar", "", "d", ArchiveLimits{MaxEntries: 1}); err == nil {
		t.Fatal("2 entries extracted under a 1-entry limit")
	}
}

func TestSafePath(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{"a/b": "a/b", "./a//b/": "a/b", ".": "", "./": "", "a/./b": "a/b"} {
		got, err := SafePath(in)
		if err != nil || got != want {
			t.Errorf("SafePath(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, in := range []string{"", "/a", "..", "a/..", "a/../..", "../a", "a\x00b"} {
		if _, err := SafePath(in); err == nil {
			t.Errorf("SafePath(%q) accepted", in)
		}
	}
}

// TestPromoteRestoreCommit walks the swap through every crash point: after
// each counted operation of Promote (and Restore), power is cut; calling
// the same function again must complete it, and the destination must hold
// either the old or the new content at every point.
func TestPromoteRestoreCommit(t *testing.T) {
	t.Parallel()
	setup := func() *devfs.CrashFS {
		fsys := devfs.NewCrashFS()
		put(t, fsys, "etc/app.conf", []byte("old"))
		put(t, fsys, "etc/app.conf.new", []byte("new"))
		fsys.SyncAll()
		return fsys
	}
	read := func(fsys devfs.FS) string {
		b, err := devfs.ReadFile(fsys, "etc/app.conf", 0)
		if err != nil {
			return "<missing>"
		}
		return string(b)
	}
	for cut := 0; ; cut++ {
		fsys := setup()
		fsys.CutAfter(cut)
		err := Promote(fsys, "etc/app.conf")
		fired := fsys.PowerCut()
		fsys.Crash()
		if !fired {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		// The old or the new content, or (between the two renames) the
		// old one kept as .old with .new waiting: the retry finishes it.
		if err := Promote(fsys, "etc/app.conf"); err != nil {
			t.Fatalf("cut %d: promote again: %v", cut, err)
		}
		if got := read(fsys); got != "new" {
			t.Fatalf("cut %d: after promote %q", cut, got)
		}
		if err := Restore(fsys, "etc/app.conf", true); err != nil {
			t.Fatalf("cut %d: restore: %v", cut, err)
		}
		if got := read(fsys); got != "old" {
			t.Fatalf("cut %d: after restore %q", cut, got)
		}
	}
	// Restore interrupted at every point.
	for cut := 0; ; cut++ {
		fsys := setup()
		if err := Promote(fsys, "etc/app.conf"); err != nil {
			t.Fatal(err)
		}
		fsys.CutAfter(cut)
		err := Restore(fsys, "etc/app.conf", true)
		fired := fsys.PowerCut()
		fsys.Crash()
		if !fired {
			if err != nil {
				t.Fatal(err)
			}
			break
		}
		if err := Restore(fsys, "etc/app.conf", true); err != nil {
			t.Fatalf("cut %d: restore again: %v", cut, err)
		}
		if got := read(fsys); got != "old" {
			t.Fatalf("cut %d: after restore %q", cut, got)
		}
	}
	fsys := setup()
	if err := Promote(fsys, "etc/app.conf"); err != nil {
		t.Fatal(err)
	}
	if err := Commit(fsys, "etc/app.conf"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := devfs.Exists(fsys, "etc/app.conf.old"); ok {
		t.Fatal("commit kept the old copy")
	}
	// Nothing before: a rollback removes the new file.
	fsys = devfs.NewCrashFS()
	put(t, fsys, "x.new", []byte("new"))
	if err := Promote(fsys, "x"); err != nil {
		t.Fatal(err)
	}
	if err := Restore(fsys, "x", false); err != nil {
		t.Fatal(err)
	}
	if ok, _ := devfs.Exists(fsys, "x"); ok {
		t.Fatal("restore without a previous file kept the new one")
	}
}

func TestHashFileAndPrepare(t *testing.T) {
	t.Parallel()
	fsys := devfs.NewCrashFS()
	put(t, fsys, "staged", []byte("hello"))
	d, err := HashFile(context.Background(), fsys, "staged", 5)
	if err != nil || d.SHA256 != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" || d.Length != 5 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := HashFile(context.Background(), fsys, "staged", 6); err == nil {
		t.Fatal("short file hashed")
	}
	if err := PrepareFile(context.Background(), fsys, "staged", "new/dir/file", 0o600); err != nil {
		t.Fatal(err)
	}
	fsys.Crash()
	b, err := devfs.ReadFile(fsys, "new/dir/file.new", 0)
	if err != nil || string(b) != "hello" {
		t.Fatalf("prepared %q %v (must survive a power cut)", b, err)
	}
	var h HashOnly
	if n, err := h.WriteAt([]byte("abc"), 10); n != 3 || err != nil || h.Sync() != nil || h.Close() != nil {
		t.Fatal("hash-only sink")
	}
	s, err := OpenSlot(fsys, "dev/slot")
	if err == nil {
		s.Close()
		t.Fatal("opened a slot in a missing directory")
	}
}

// FuzzExtractArchive feeds arbitrary bytes as an archive: extraction must
// fail or succeed without writing outside the destination.
func FuzzExtractArchive(f *testing.F) {
	f.Add(makeTar(f, []entry{{name: "a/b", typ: tar.TypeReg, body: "x"}}))
	f.Add(makeTar(f, []entry{{name: "../x", typ: tar.TypeReg, body: "x"}}))
	f.Add(compress(f, CompressionGzip, makeTar(f, []entry{{name: "d/", typ: tar.TypeDir}})))
	f.Add(compress(f, CompressionZstd, makeTar(f, []entry{{name: "z", typ: tar.TypeReg, body: "zz"}})))
	f.Add([]byte{0x28, 0xb5, 0x2f, 0xfd, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		fsys := devfs.NewCrashFS()
		put(t, fsys, "in/s.bin", b)
		_ = ExtractArchive(context.Background(), fsys, "in/s.bin", "", "out/dest", ArchiveLimits{MaxBytes: 1 << 20, MaxEntries: 100, DecoderMaxMemory: 8 << 20})
		ents, err := fsys.ReadDir(".")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if e.Name() != "in" && e.Name() != "out" {
				t.Fatalf("wrote %q outside the destination", e.Name())
			}
		}
		ents, _ = fsys.ReadDir("out")
		for _, e := range ents {
			if e.Name() != "dest.new" {
				t.Fatalf("wrote out/%s", e.Name())
			}
		}
	})
}
