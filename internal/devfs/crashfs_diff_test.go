package devfs_test

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/updraft/updraft/internal/devfs"
)

// The differential tests run the same random program against the real
// filesystem (devfs.OS in a temporary directory) and against a CrashFS that
// never crashes, and require the same results: CrashFS's file semantics are
// only worth something if they are the kernel's.

// chooser yields the program's choices.
type chooser interface{ pick(n int) int }

type rngChooser struct{ r *rand.Rand }

func (c rngChooser) pick(n int) int { return c.r.IntN(n) }

// byteChooser draws choices from fuzz input; it reports done when the
// input is used up.
type byteChooser struct {
	b    []byte
	done bool
}

func (c *byteChooser) pick(n int) int {
	if len(c.b) == 0 {
		c.done = true
		return 0
	}
	v := int(c.b[0])
	c.b = c.b[1:]
	return v % n
}

var (
	diffNames = []string{"a", "b", "d", "d/a", "d/b", "e", "e/f", "d/e", "d/e/g"}
	diffDirs  = []string{".", "d", "e", "d/e"}
	diffFlags = []int{
		os.O_RDONLY,
		os.O_RDWR,
		os.O_WRONLY | os.O_CREATE | os.O_TRUNC,
		os.O_RDWR | os.O_CREATE,
		os.O_WRONLY | os.O_CREATE | os.O_EXCL,
		os.O_WRONLY | os.O_CREATE | os.O_APPEND,
		os.O_RDWR | os.O_TRUNC,
	}
)

// side is one of the two filesystems under test with its open handles.
type side struct {
	fsys  devfs.FS
	root  string // prefix for names ("" for CrashFS)
	files [3]devfs.File
}

func (s *side) name(n string) string {
	if s.root == "" {
		return n
	}
	return filepath.Join(s.root, n)
}

// outcome reduces a result to what both filesystems must agree on.
func outcome(err error, extra ...any) string {
	return fmt.Sprint(append([]any{errClass(err)}, extra...)...)
}

func errClass(err error) string {
	var errno syscall.Errno
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, io.EOF):
		return "EOF"
	case errors.Is(err, os.ErrClosed):
		return "closed"
	case errors.As(err, &errno):
		return errno.Error()
	default:
		return "error"
	}
}

// step performs one random operation on both sides and returns the two
// outcomes and a description.
func step(ch chooser, sides [2]*side) (string, [2]string) {
	name := diffNames[ch.pick(len(diffNames))]
	other := diffNames[ch.pick(len(diffNames))]
	dir := diffDirs[ch.pick(len(diffDirs))]
	slot := ch.pick(3)
	size := ch.pick(3*4096 + 50)
	off := int64(ch.pick(3*4096 + 50))
	data := make([]byte, size)
	for i := range data {
		data[i] = byte(i*7 + size)
	}
	var out [2]string
	var what string
	switch op := ch.pick(16); op {
	case 0, 1:
		flag := diffFlags[ch.pick(len(diffFlags))]
		what = fmt.Sprintf("open %s %#x in %d", name, flag, slot)
		for i, s := range sides {
			if s.files[slot] != nil {
				s.files[slot].Close()
			}
			f, err := s.fsys.OpenFile(s.name(name), flag, 0o644)
			s.files[slot] = f
			out[i] = outcome(err)
		}
	case 2, 3:
		what = fmt.Sprintf("write %d bytes to %d", size, slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			n, err := s.files[slot].Write(data)
			out[i] = outcome(err, n)
		}
	case 4:
		what = fmt.Sprintf("writeat %d bytes at %d to %d", size, off, slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			n, err := s.files[slot].WriteAt(data, off)
			out[i] = outcome(err, n)
		}
	case 5:
		what = fmt.Sprintf("read %d from %d", size, slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			buf := make([]byte, size)
			n, err := s.files[slot].Read(buf)
			out[i] = outcome(err, n, buf[:max(n, 0)])
		}
	case 6:
		what = fmt.Sprintf("readat %d at %d from %d", size, off, slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			buf := make([]byte, size)
			n, err := s.files[slot].ReadAt(buf, off)
			out[i] = outcome(err, n, buf[:max(n, 0)])
		}
	case 7:
		whence := ch.pick(3)
		what = fmt.Sprintf("seek %d/%d in %d", off, whence, slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			if fi, err := s.files[slot].Stat(); err == nil && fi.IsDir() {
				out[i] = "directory" // seeking one is filesystem-specific
				continue
			}
			pos, err := s.files[slot].Seek(off-int64(whence*60), whence)
			out[i] = outcome(err, pos)
		}
	case 8:
		what = fmt.Sprintf("truncate %d to %d", slot, off)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			out[i] = outcome(s.files[slot].Truncate(off))
		}
	case 9:
		what = fmt.Sprintf("sync and stat %d", slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			serr := s.files[slot].Sync()
			fi, err := s.files[slot].Stat()
			if err != nil {
				out[i] = outcome(serr, outcome(err))
				continue
			}
			size := fi.Size()
			if fi.IsDir() {
				size = -1 // directory sizes are filesystem-specific
			}
			out[i] = outcome(serr, fi.Name(), size, fi.IsDir())
		}
	case 10:
		what = fmt.Sprintf("close %d", slot)
		for i, s := range sides {
			if s.files[slot] == nil {
				out[i] = "no file"
				continue
			}
			out[i] = outcome(s.files[slot].Close())
			s.files[slot] = nil
		}
	case 11:
		what = fmt.Sprintf("rename %s %s", name, other)
		for i, s := range sides {
			out[i] = outcome(s.fsys.Rename(s.name(name), s.name(other)))
		}
	case 12:
		what = "remove " + name
		for i, s := range sides {
			out[i] = outcome(s.fsys.Remove(s.name(name)))
		}
	case 13:
		what = "mkdirall " + name
		for i, s := range sides {
			out[i] = outcome(s.fsys.MkdirAll(s.name(name), 0o755))
		}
	case 14:
		what = "stat and readdir " + name
		for i, s := range sides {
			fi, err := s.fsys.Stat(s.name(name))
			var desc string
			if err == nil {
				size := fi.Size()
				if fi.IsDir() {
					size = -1
				}
				desc = fmt.Sprint(fi.Name(), size, fi.IsDir())
			}
			entries, derr := s.fsys.ReadDir(s.name(name))
			var names []string
			for _, e := range entries {
				names = append(names, fmt.Sprint(e.Name(), e.IsDir()))
			}
			out[i] = outcome(err, desc, outcome(derr, strings.Join(names, ",")))
		}
	case 15:
		what = "syncdir " + dir
		for i, s := range sides {
			var err error
			if fi, serr := s.fsys.Stat(s.name(dir)); serr == nil && fi.IsDir() {
				err = s.fsys.SyncDir(s.name(dir))
			} else {
				err = serr
			}
			out[i] = outcome(err)
		}
	}
	return what, out
}

func newSides(t *testing.T) [2]*side {
	return [2]*side{{fsys: devfs.OS{}, root: t.TempDir()}, {fsys: devfs.NewCrashFS()}}
}

func closeSides(sides [2]*side) {
	for _, s := range sides {
		for _, f := range s.files {
			if f != nil {
				f.Close()
			}
		}
	}
}

func TestCrashFSMatchesOS(t *testing.T) {
	t.Parallel()
	for seed := range uint64(12) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			t.Parallel()
			sides := newSides(t)
			defer closeSides(sides)
			ch := rngChooser{rand.New(rand.NewPCG(seed, 0x5eed))}
			var trace []string
			for range 400 {
				what, out := step(ch, sides)
				trace = append(trace, what)
				if out[0] != out[1] {
					t.Fatalf("after\n  %s\nlast: %s\nOS: %.300s\nCrashFS: %.300s", strings.Join(trace, "\n  "), what, out[0], out[1])
				}
			}
		})
	}
}

func FuzzCrashFSMatchesOS(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x00\x10\x00\x02\x00\x03"))
	f.Add([]byte("\x02\x01\x01\x01\x01\x01\x03\x03\x03\x01\x07\x05\x05\x05\x05\x05\x05\x05\x05\x04\x04\x04\x04\x04\x04\x04\x06\x06"))
	f.Fuzz(func(t *testing.T, prog []byte) {
		sides := newSides(t)
		defer closeSides(sides)
		ch := &byteChooser{b: prog}
		var trace []string
		for !ch.done {
			what, out := step(ch, sides)
			trace = append(trace, what)
			if out[0] != out[1] {
				t.Fatalf("after\n  %s\nlast: %s\nOS: %.300s\nCrashFS: %.300s", strings.Join(trace, "\n  "), what, out[0], out[1])
			}
		}
	})
}
