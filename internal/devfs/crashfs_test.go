package devfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"path"
	"sync"
	"testing"

	"github.com/updraft/updraft/internal/devfs"
)

// must fails the test on error; the durability tests build their scenes
// with it so a broken step is not mistaken for a crash effect.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, fsys devfs.FS, name, data string, syncFile bool) {
	t.Helper()
	f, err := fsys.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	must(t, err)
	_, err = f.Write([]byte(data))
	must(t, err)
	if syncFile {
		must(t, f.Sync())
	}
	must(t, f.Close())
}

// durableFile creates name with data and makes both durable.
func durableFile(t *testing.T, fsys devfs.FS, name, data string) {
	t.Helper()
	writeFile(t, fsys, name, data, true)
	must(t, fsys.SyncDir(path.Dir(name)))
}

const (
	absent = "\x00absent"
	isDir  = "\x00dir"
)

// expect checks each name: absent, a directory, or a file with content.
func expect(t *testing.T, fsys devfs.FS, want map[string]string) {
	t.Helper()
	for name, w := range want {
		fi, err := fsys.Stat(name)
		switch {
		case w == absent:
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("%s: Stat = %v, %v; want not exist", name, fi, err)
			}
		case w == isDir:
			if err != nil || !fi.IsDir() {
				t.Errorf("%s: Stat = %v, %v; want a directory", name, fi, err)
			}
		default:
			b, err := devfs.ReadFile(fsys, name, 0)
			if err != nil || string(b) != w {
				t.Errorf("%s = %q, %v; want %q", name, b, err, w)
			}
		}
	}
}

func TestCrashFSDurability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		scene func(t *testing.T, c *devfs.CrashFS)
		want  map[string]string
	}{
		{
			name:  "unsynced new file vanishes",
			scene: func(t *testing.T, c *devfs.CrashFS) { writeFile(t, c, "a", "x", false) },
			want:  map[string]string{"a": absent},
		},
		{
			name:  "file sync alone does not keep the name",
			scene: func(t *testing.T, c *devfs.CrashFS) { writeFile(t, c, "a", "x", true) },
			want:  map[string]string{"a": absent},
		},
		{
			name: "dir sync alone keeps an empty file",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				writeFile(t, c, "a", "x", false)
				must(t, c.SyncDir("."))
			},
			want: map[string]string{"a": ""},
		},
		{
			name:  "file and dir synced survive",
			scene: func(t *testing.T, c *devfs.CrashFS) { durableFile(t, c, "a", "x") },
			want:  map[string]string{"a": "x"},
		},
		{
			name: "unsynced overwrite rolls back",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "old content")
				writeFile(t, c, "a", "new", false)
			},
			want: map[string]string{"a": "old content"},
		},
		{
			name: "synced overwrite stays",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "old content")
				writeFile(t, c, "a", "new", true)
			},
			want: map[string]string{"a": "new"},
		},
		{
			name: "writes after the last sync are lost",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "aaaa")
				f, err := c.OpenFile("a", os.O_RDWR, 0)
				must(t, err)
				_, err = f.WriteAt([]byte("bb"), 1)
				must(t, err)
				must(t, f.Sync())
				_, err = f.WriteAt([]byte("cccccc"), 2)
				must(t, err)
				must(t, f.Close())
			},
			want: map[string]string{"a": "abba"},
		},
		{
			name: "unsynced truncate rolls back",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "hello")
				f, err := c.OpenFile("a", os.O_RDWR, 0)
				must(t, err)
				must(t, f.Truncate(2))
				must(t, f.Close())
			},
			want: map[string]string{"a": "hello"},
		},
		{
			name: "unsynced rename rolls back",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "1")
				durableFile(t, c, "b", "2")
				must(t, c.Rename("a", "b"))
			},
			want: map[string]string{"a": "1", "b": "2"},
		},
		{
			name: "synced rename replaces",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "1")
				durableFile(t, c, "b", "2")
				must(t, c.Rename("a", "b"))
				must(t, c.SyncDir("/"))
			},
			want: map[string]string{"a": absent, "b": "1"},
		},
		{
			name: "unsynced remove comes back",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "1")
				must(t, c.Remove("a"))
			},
			want: map[string]string{"a": "1"},
		},
		{
			name: "synced remove stays gone",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				durableFile(t, c, "a", "1")
				must(t, c.Remove("a"))
				must(t, c.SyncDir("."))
			},
			want: map[string]string{"a": absent},
		},
		{
			name: "new directory needs its parent synced",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				must(t, c.MkdirAll("d/e", 0o755))
				durableFile(t, c, "d/e/x", "1")
				must(t, c.SyncDir("d"))
			},
			want: map[string]string{"d": absent, "d/e/x": absent},
		},
		{
			name: "fully synced directories survive",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				must(t, c.MkdirAll("d/e", 0o755))
				durableFile(t, c, "d/e/x", "1")
				must(t, c.SyncDir("d"))
				must(t, c.SyncDir("."))
			},
			want: map[string]string{"d": isDir, "d/e": isDir, "d/e/x": "1"},
		},
		{
			name: "cross-directory rename with only the target synced shows both names",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				must(t, c.MkdirAll("d1", 0o755))
				must(t, c.MkdirAll("d2", 0o755))
				must(t, c.SyncDir("."))
				durableFile(t, c, "d1/a", "1")
				must(t, c.Rename("d1/a", "d2/a"))
				must(t, c.SyncDir("d2"))
			},
			want: map[string]string{"d1/a": "1", "d2/a": "1"},
		},
		{
			name: "cross-directory rename with only the source synced loses the file",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				must(t, c.MkdirAll("d1", 0o755))
				must(t, c.MkdirAll("d2", 0o755))
				must(t, c.SyncDir("."))
				durableFile(t, c, "d1/a", "1")
				must(t, c.Rename("d1/a", "d2/a"))
				must(t, c.SyncDir("d1"))
			},
			want: map[string]string{"d1/a": absent, "d2/a": absent},
		},
		{
			name: "syncing a directory handle makes its entries durable",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				writeFile(t, c, "a", "x", true)
				d, err := c.OpenFile(".", os.O_RDONLY, 0)
				must(t, err)
				must(t, d.Sync())
				must(t, d.Close())
			},
			want: map[string]string{"a": "x"},
		},
		{
			name: "SyncAll makes everything durable",
			scene: func(t *testing.T, c *devfs.CrashFS) {
				must(t, c.MkdirAll("d", 0o755))
				writeFile(t, c, "d/a", "x", false)
				c.SyncAll()
				writeFile(t, c, "b", "y", false)
			},
			want: map[string]string{"d/a": "x", "b": absent},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := devfs.NewCrashFS()
			tt.scene(t, c)
			c.Crash()
			expect(t, c, tt.want)
		})
	}
}

func TestCrashFSModes(t *testing.T) {
	t.Parallel()
	scene := func(t *testing.T) *devfs.CrashFS {
		c := devfs.NewCrashFS()
		durableFile(t, c, "kept", "old")
		durableFile(t, c, "gone", "x")
		writeFile(t, c, "kept", "new", false) // unsynced data
		writeFile(t, c, "fresh", "f", false)  // unsynced name and data
		must(t, c.Remove("gone"))             // unsynced removal
		return c
	}
	tests := []struct {
		mode devfs.CrashMode
		want map[string]string
	}{
		{devfs.DropUnsynced, map[string]string{"kept": "old", "gone": "x", "fresh": absent}},
		{devfs.KeepData, map[string]string{"kept": "new", "gone": "x", "fresh": absent}},
		{devfs.KeepNames, map[string]string{"kept": "old", "gone": absent, "fresh": ""}},
		{devfs.KeepAll, map[string]string{"kept": "new", "gone": absent, "fresh": "f"}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprint("mode", tt.mode), func(t *testing.T) {
			t.Parallel()
			c := scene(t)
			f, err := c.OpenFile("kept", os.O_RDONLY, 0)
			must(t, err)
			c.CrashWith(tt.mode)
			expect(t, c, tt.want)
			if _, err := f.Read(make([]byte, 1)); !errors.Is(err, devfs.ErrStaleHandle) {
				t.Errorf("handle survived the crash: %v", err)
			}
			// What a crash kept is durable: a second crash keeps it too.
			c.Crash()
			expect(t, c, tt.want)
		})
	}
}

func TestCrashFSCutAfter(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	durableFile(t, c, "a", "old")
	base := c.Ops()
	if base != 4 { // create, write, sync, syncdir; Close is not counted
		t.Fatalf("Ops after creating a durable file = %d, want 4", base)
	}
	f, err := c.OpenFile("a", os.O_RDWR, 0) // not counted
	must(t, err)
	c.CutAfter(1)
	if _, err := f.WriteAt([]byte("n"), 0); err != nil {
		t.Fatalf("first write after CutAfter(1): %v", err)
	}
	if _, err := f.WriteAt([]byte("e"), 1); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("second write = %v, want ErrPowerCut", err)
	}
	if !c.PowerCut() || c.Ops() != base+1 {
		t.Fatalf("PowerCut = %v, Ops = %d; want true, %d", c.PowerCut(), c.Ops(), base+1)
	}
	// Everything fails while the power is off, counted or not.
	if _, err := c.Stat("a"); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("Stat after cut = %v", err)
	}
	if _, err := f.Read(make([]byte, 1)); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("Read after cut = %v", err)
	}
	if err := f.Close(); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("Close after cut = %v", err)
	}
	if _, err := c.OpenFile("b", os.O_RDONLY, 0); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("OpenFile after cut = %v", err)
	}
	c.Crash()
	if c.PowerCut() {
		t.Fatal("still cut after Crash")
	}
	expect(t, c, map[string]string{"a": "old"})
	// More operations than before work again: Crash clears the budget.
	durableFile(t, c, "b", "new")
	expect(t, c, map[string]string{"b": "new"})
}

func TestCrashFSCutAfterZeroAndOpCounts(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	c.CutAfter(0)
	if err := c.MkdirAll("d", 0o755); !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("MkdirAll after CutAfter(0) = %v", err)
	}
	c.Crash()
	// Each counted operation adds exactly one.
	steps := []struct {
		name string
		do   func() error
	}{
		{"mkdirall", func() error { return c.MkdirAll("d", 0o755) }},
		{"create", func() error {
			f, err := c.OpenFile("d/a", os.O_WRONLY|os.O_CREATE, 0o644)
			if err == nil {
				err = f.Close()
			}
			return err
		}},
		{"rename", func() error { return c.Rename("d/a", "d/b") }},
		{"syncdir", func() error { return c.SyncDir("d") }},
		{"remove", func() error { return c.Remove("d/b") }},
	}
	for i, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if got := c.Ops(); got != i+1 {
			t.Fatalf("after %s Ops = %d, want %d", s.name, got, i+1)
		}
	}
	// Uncounted operations leave the count alone.
	_, _ = c.Stat("d")
	_, _ = c.ReadDir("d")
	f, err := c.OpenFile("d", os.O_RDONLY, 0)
	must(t, err)
	_, _ = f.Stat()
	must(t, f.Close())
	if got := c.Ops(); got != len(steps) {
		t.Fatalf("uncounted operations changed Ops to %d", got)
	}
}

func TestCrashFSCutWhen(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	durableFile(t, c, "a", "old")
	var seen []devfs.Op
	c.CutWhen(func(op devfs.Op) bool {
		seen = append(seen, op)
		return op.Kind == devfs.OpRename
	})
	writeFile(t, c, "tmp", "new", true)
	err := c.Rename("tmp", "a")
	if !errors.Is(err, devfs.ErrPowerCut) {
		t.Fatalf("Rename = %v, want ErrPowerCut", err)
	}
	last := seen[len(seen)-1]
	if last.Kind != devfs.OpRename || last.Name != "tmp" || last.To != "a" || last.Seq != c.Ops()+1 {
		t.Fatalf("cut at %v (Ops %d)", last, c.Ops())
	}
	c.Crash()
	expect(t, c, map[string]string{"a": "old", "tmp": absent})
	// Crash removed the hook.
	must(t, c.Rename("a", "b"))
}

func TestCrashFSStaleHandles(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	durableFile(t, c, "a", "data")
	f, err := c.OpenFile("a", os.O_RDWR, 0)
	must(t, err)
	c.Crash()
	if _, err := f.Read(make([]byte, 4)); !errors.Is(err, devfs.ErrStaleHandle) {
		t.Fatalf("Read on a handle from before the crash = %v", err)
	}
	if _, err := f.Write([]byte("x")); !errors.Is(err, devfs.ErrStaleHandle) {
		t.Fatalf("Write on a handle from before the crash = %v", err)
	}
	if err := f.Close(); !errors.Is(err, devfs.ErrStaleHandle) {
		t.Fatalf("Close = %v", err)
	}
	if err := f.Close(); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("second Close = %v", err)
	}
	expect(t, c, map[string]string{"a": "data"})
}

func TestCrashFSUnlinkedFileKeepsWorking(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	durableFile(t, c, "a", "data")
	f, err := c.OpenFile("a", os.O_RDWR, 0)
	must(t, err)
	must(t, c.Remove("a"))
	_, err = f.WriteAt([]byte("D"), 0)
	must(t, err)
	buf := make([]byte, 4)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "Data" {
		t.Fatalf("ReadAt = %q, %v", buf, err)
	}
	must(t, f.Sync())
	must(t, f.Close())
	c.Crash()
	// The removal was never made durable, and the synced write went to the
	// same inode.
	expect(t, c, map[string]string{"a": "Data"})
}

func TestCrashFSBadNames(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	for _, name := range []string{"", "..", "../x", "a/../../x"} {
		if _, err := c.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644); !errors.Is(err, fs.ErrInvalid) {
			t.Errorf("OpenFile(%q) = %v, want ErrInvalid", name, err)
		}
	}
	// Leading slashes and inner dot segments name the same file.
	durableFile(t, c, "/x/../a", "1")
	expect(t, c, map[string]string{"a": "1", "/a": "1", "./a": "1"})
}

// TestCrashFSContentModel checks the copy-on-write pages against a plain
// byte-slice model through random writes, truncates, syncs, crashes and
// clones that cross page boundaries.
func TestCrashFSContentModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(20) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			r := rand.New(rand.NewPCG(seed, 7))
			c := devfs.NewCrashFS()
			durableFile(t, c, "f", "")
			var cur, durable []byte
			f, err := c.OpenFile("f", os.O_RDWR, 0)
			must(t, err)
			var clones []*devfs.CrashFS
			var cloneWant [][]byte
			for i := range 300 {
				switch r.IntN(8) {
				case 0, 1, 2:
					off := r.IntN(5 * 4096)
					data := make([]byte, r.IntN(6000)+1)
					for j := range data {
						data[j] = byte(r.Uint32())
					}
					_, err := f.WriteAt(data, int64(off))
					must(t, err)
					if end := off + len(data); end > len(cur) {
						cur = append(cur, make([]byte, end-len(cur))...)
					}
					copy(cur[off:], data)
				case 3:
					size := r.IntN(5 * 4096)
					must(t, f.Truncate(int64(size)))
					if size < len(cur) {
						cur = cur[:size]
					} else {
						cur = append(cur, make([]byte, size-len(cur))...)
					}
				case 4:
					must(t, f.Sync())
					durable = bytes.Clone(cur)
				case 5:
					c.Crash()
					cur = bytes.Clone(durable)
					f, err = c.OpenFile("f", os.O_RDWR, 0)
					must(t, err)
				case 6:
					clones = append(clones, c.Clone())
					cloneWant = append(cloneWant, bytes.Clone(cur))
				case 7:
					got, err := devfs.ReadFile(c, "f", 0)
					must(t, err)
					if !bytes.Equal(got, cur) {
						t.Fatalf("step %d: content differs from the model (len %d vs %d)", i, len(got), len(cur))
					}
				}
			}
			got, err := devfs.ReadFile(c, "f", 0)
			must(t, err)
			if !bytes.Equal(got, cur) {
				t.Fatalf("final content differs from the model (len %d vs %d)", len(got), len(cur))
			}
			// Writes to the original after cloning must not leak into clones.
			for i, cl := range clones {
				got, err := devfs.ReadFile(cl, "f", 0)
				must(t, err)
				if !bytes.Equal(got, cloneWant[i]) {
					t.Fatalf("clone %d changed after it was taken", i)
				}
			}
		})
	}
}

func TestCrashFSCloneIsIndependent(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	durableFile(t, c, "a", "durable")
	writeFile(t, c, "a", "volatile", false)
	cl := c.Clone()
	if cl.Ops() != c.Ops() {
		t.Fatalf("clone Ops = %d, want %d", cl.Ops(), c.Ops())
	}
	writeFile(t, cl, "a", "changed in clone", true)
	must(t, cl.Remove("a"))
	expect(t, c, map[string]string{"a": "volatile"})
	c.Crash()
	expect(t, c, map[string]string{"a": "durable"})
	cl.Crash()
	expect(t, cl, map[string]string{"a": "changed in clone"})
}

var crashModes = []devfs.CrashMode{devfs.DropUnsynced, devfs.KeepData, devfs.KeepNames}

// atomicCheck runs write against a fresh CrashFS holding old (absent when
// empty) once per possible cut point and crash mode, crashes, and returns a
// description of the first cut after which name holds neither old nor new
// content, or holds old although write reported success.
func atomicCheck(t *testing.T, old, new string, write func(devfs.FS) error) (string, int) {
	t.Helper()
	setup := func() *devfs.CrashFS {
		c := devfs.NewCrashFS()
		must(t, c.MkdirAll("etc", 0o755))
		must(t, c.SyncDir("."))
		if old != "" {
			durableFile(t, c, "etc/state", old)
		}
		return c
	}
	dry := setup()
	before := dry.Ops()
	if err := write(dry); err != nil {
		t.Fatalf("write without a cut: %v", err)
	}
	total := dry.Ops() - before
	for n := 0; n <= total; n++ {
		for _, mode := range crashModes {
			c := setup()
			c.CutAfter(n)
			err := write(c)
			if (err == nil) != (n == total) {
				t.Fatalf("cut after %d of %d operations: write returned %v", n, total, err)
			}
			c.CrashWith(mode)
			got, rerr := devfs.ReadFile(c, "etc/state", 0)
			switch {
			case errors.Is(rerr, fs.ErrNotExist) && old == "" && err != nil:
			case rerr == nil && string(got) == new:
			case rerr == nil && string(got) == old && err != nil:
			default:
				return fmt.Sprintf("crash mode %d, cut after %d of %d operations (write error %v): got %q, %v",
					mode, n, total, err, got, rerr), total
			}
		}
	}
	return "", total
}

func TestWriteFileAtomicSurvivesEveryCut(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, old, new string }{
		{"replace longer", "the old state, longer than the new", "new state"},
		{"replace shorter", "old", "a new state that is longer than the old one"},
		{"create", "", "first state"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			bad, total := atomicCheck(t, tt.old, tt.new, func(fsys devfs.FS) error {
				return devfs.WriteFileAtomic(fsys, "etc/state", []byte(tt.new), 0o600)
			})
			if bad != "" {
				t.Fatal(bad)
			}
			if total < 4 {
				t.Fatalf("WriteFileAtomic used only %d counted operations", total)
			}
		})
	}
}

// TestCrashFSCatchesUnsafeWrites shows the model fails writers that skip a
// step of the durable-replace recipe, so passing it means something.
func TestCrashFSCatchesUnsafeWrites(t *testing.T) {
	t.Parallel()
	writers := map[string]func(devfs.FS) error{
		"in place": func(fsys devfs.FS) error {
			f, err := fsys.OpenFile("etc/state", os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("new")); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			return f.Close()
		},
		"rename without file sync": func(fsys devfs.FS) error {
			f, err := fsys.OpenFile("etc/.state.tmp", os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("new")); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			if err := fsys.Rename("etc/.state.tmp", "etc/state"); err != nil {
				return err
			}
			return fsys.SyncDir("etc")
		},
		"no directory sync": func(fsys devfs.FS) error {
			f, err := fsys.OpenFile("etc/.state.tmp", os.O_WRONLY|os.O_TRUNC|os.O_CREATE, 0o600)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("new")); err != nil {
				return err
			}
			if err := f.Sync(); err != nil {
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
			return fsys.Rename("etc/.state.tmp", "etc/state")
		},
	}
	for name, w := range writers {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if bad, _ := atomicCheck(t, "old", "new", w); bad == "" {
				t.Fatal("an unsafe writer passed the power-cut check")
			}
		})
	}
}

func TestCrashFSConcurrentUse(t *testing.T) {
	t.Parallel()
	c := devfs.NewCrashFS()
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			name := fmt.Sprintf("f%d", i)
			for j := range 50 {
				if err := devfs.WriteFileAtomic(c, name, []byte(fmt.Sprint(j)), 0o600); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	c.Crash()
	for i := range 8 {
		expect(t, c, map[string]string{fmt.Sprintf("f%d", i): "49"})
	}
}
