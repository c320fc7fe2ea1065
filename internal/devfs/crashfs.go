package devfs

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// CrashFS is an in-memory FS that models a disk behind a page cache, for
// power-cut tests. Every change lands in a volatile layer first:
//
//   - File.Sync makes that file's current content (data and size) durable;
//   - SyncDir makes the current set of names in that directory durable
//     (creations, renames in and out, removals, new subdirectories);
//   - Crash (the power cut) throws away everything that is not durable: file
//     contents roll back to their last synced content (empty if never
//     synced), directories roll back to their last synced entries, and
//     whatever is no longer reachable from the root is gone.
//
// The model is deliberately stricter than a journaling filesystem: nothing
// unsynced survives, and the two directories of a cross-directory rename
// are independent, so after a crash a renamed file may show up under both
// names (sharing one inode) or under neither. Because a real disk may also
// have written back some of the page cache before the cut, CrashWith
// offers the other extremes (unsynced data kept, or unsynced names kept);
// power-safe code survives all of them.
//
// To cut power in the middle of a run, CutAfter(n) lets the next n counted
// operations succeed and fails every operation after them, counted or not,
// with ErrPowerCut until Crash is called; CutWhen cuts at the first
// operation a predicate picks. Counted operations are the ones that change
// state or durability: OpenFile with O_CREATE or O_TRUNC, Write/WriteAt,
// Truncate, Sync, SyncDir, Rename, Remove and MkdirAll. Reads, Stat,
// ReadDir, Seek and Close are not counted. After Crash every File opened
// before it fails with ErrStaleHandle: the process that held it is gone.
//
// Names are slash-separated and relative to the CrashFS root; a leading "/"
// is ignored and ".." may not climb above the root. Permission bits are
// recorded but not enforced, and modification times are always zero (the
// model reads no clock). A CrashFS is safe for concurrent use.
type CrashFS struct {
	mu      sync.Mutex
	root    *node
	gen     int // bumped by Crash; handles of an older generation are stale
	ops     int
	cut     bool
	budget  int // counted ops allowed before the cut; < 0: unlimited
	cutWhen func(Op) bool
}

// ErrPowerCut is returned by every CrashFS operation after a simulated power
// cut, until Crash is called.
var ErrPowerCut = errors.New("devfs: power cut")

// ErrStaleHandle is returned by a CrashFS File that was opened before the
// last Crash.
var ErrStaleHandle = errors.New("devfs: file handle from before a power cut")

// OpKind names a counted CrashFS operation.
type OpKind string

// Counted operations.
const (
	OpCreate   OpKind = "create" // OpenFile with O_CREATE or O_TRUNC
	OpWrite    OpKind = "write"  // Write, WriteAt
	OpTruncate OpKind = "truncate"
	OpSync     OpKind = "sync" // File.Sync
	OpSyncDir  OpKind = "syncdir"
	OpRename   OpKind = "rename"
	OpRemove   OpKind = "remove"
	OpMkdir    OpKind = "mkdir" // one per MkdirAll call
)

// Op describes a counted operation, as passed to a CutWhen predicate.
type Op struct {
	Seq  int    // 1 for the first counted operation of this CrashFS
	Kind OpKind // what it does
	Name string // cleaned name it acts on (the old name of a rename)
	To   string // the new name of a rename
}

func (o Op) String() string {
	if o.Kind == OpRename {
		return fmt.Sprintf("#%d %s %s -> %s", o.Seq, o.Kind, o.Name, o.To)
	}
	return fmt.Sprintf("#%d %s %s", o.Seq, o.Kind, o.Name)
}

const pageSize = 4096

// node is a file or a directory. File content is split into pages shared
// copy-on-write between the volatile and the durable view, so Sync and
// Crash cost one pointer per page rather than a copy of the data.
type node struct {
	dir  bool
	perm fs.FileMode

	// Files. A page covers pageSize bytes of the file; bytes past a page's
	// length (and nil pages) read as zeros. owned[i] says pages[i] is not
	// shared with the durable view (or a clone) and may be written in place.
	pages  [][]byte
	owned  []bool
	size   int64
	dPages [][]byte
	dSize  int64

	// Directories.
	entries  map[string]*node
	dEntries map[string]*node
}

func newDir(perm fs.FileMode) *node {
	return &node{dir: true, perm: perm & fs.ModePerm, entries: map[string]*node{}, dEntries: map[string]*node{}}
}

// NewCrashFS returns an empty CrashFS whose root directory exists durably.
func NewCrashFS() *CrashFS {
	return &CrashFS{root: newDir(0o755), budget: -1}
}

// CutAfter lets the next n counted operations succeed and cuts power at the
// one after them, so CutAfter(0) fails the very next counted operation.
func (c *CrashFS) CutAfter(n int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.budget = max(n, 0)
}

// CutWhen cuts power just before the first counted operation for which
// pick returns true; that operation fails and does nothing. pick runs with
// the CrashFS locked and must not call it. A nil pick removes the hook.
func (c *CrashFS) CutWhen(pick func(Op) bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cutWhen = pick
}

// Cut cuts power now.
func (c *CrashFS) Cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.cut = true
}

// PowerCut reports whether power is cut (and Crash not yet called).
func (c *CrashFS) PowerCut() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cut
}

// Ops returns the number of counted operations performed so far (the
// operation that triggered a cut is not included).
func (c *CrashFS) Ops() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ops
}

// CrashMode says what a disk held at the power cut beyond what was made
// durable. A real disk may have written back any part of the page cache
// before the cut, so code that is safe must survive every mode.
type CrashMode int

// Crash modes.
const (
	// DropUnsynced: nothing that was not synced survives (Crash).
	DropUnsynced CrashMode = iota
	// KeepData: unsynced file data had been written back, unsynced
	// directory changes had not. Exposes in-place rewrites that a cut can
	// leave truncated or half-written.
	KeepData
	// KeepNames: unsynced directory changes had been committed (as a
	// metadata journal does), unsynced file data had not. Exposes renames
	// of files whose data was never synced.
	KeepNames
	// KeepAll: everything survives and only open files are lost, as when
	// the process is killed but the kernel keeps running.
	KeepAll
)

// Crash simulates losing power and coming back: everything not durable is
// discarded, open files become stale, the cut and its hooks are cleared.
// It is CrashWith(DropUnsynced).
func (c *CrashFS) Crash() { c.CrashWith(DropUnsynced) }

// CrashWith is Crash with a choice of what the disk held at the cut.
func (c *CrashFS) CrashWith(mode CrashMode) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if mode != DropUnsynced {
		// Write back the chosen part of the volatile state first, over
		// every node reachable by a current or a durable name.
		seen := map[*node]bool{}
		var flush func(n *node)
		flush = func(n *node) {
			if seen[n] {
				return
			}
			seen[n] = true
			if !n.dir {
				if mode == KeepData || mode == KeepAll {
					n.syncData()
				}
				return
			}
			for _, child := range n.entries {
				flush(child)
			}
			for _, child := range n.dEntries {
				flush(child)
			}
			if mode == KeepNames || mode == KeepAll {
				n.dEntries = maps.Clone(n.entries)
			}
		}
		flush(c.root)
	}
	seen := map[*node]bool{}
	var restore func(n *node)
	restore = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.dir {
			n.pages = slices.Clone(n.dPages)
			n.owned = make([]bool, len(n.pages))
			n.size = n.dSize
			return
		}
		n.entries = maps.Clone(n.dEntries)
		for _, child := range n.dEntries {
			restore(child)
		}
	}
	restore(c.root)
	c.gen++
	c.cut = false
	c.budget = -1
	c.cutWhen = nil
}

// SyncAll makes the whole current tree durable, as sync(1) before a clean
// shutdown would. It is a test hook and not a counted operation.
func (c *CrashFS) SyncAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	seen := map[*node]bool{}
	var walk func(n *node)
	walk = func(n *node) {
		if seen[n] {
			return
		}
		seen[n] = true
		if !n.dir {
			n.syncData()
			return
		}
		n.dEntries = maps.Clone(n.entries)
		for _, child := range n.entries {
			walk(child)
		}
	}
	walk(c.root)
}

// Clone returns an independent CrashFS with the same volatile and durable
// state (and operation count), without open files, cut or hooks. Tests use
// it to prepare a device once and replay a run from it many times.
func (c *CrashFS) Clone() *CrashFS {
	c.mu.Lock()
	defer c.mu.Unlock()
	copies := map[*node]*node{}
	var cp func(n *node) *node
	cp = func(n *node) *node {
		if m, ok := copies[n]; ok {
			return m
		}
		m := &node{dir: n.dir, perm: n.perm}
		copies[n] = m
		if !n.dir {
			// Pages become shared by both trees, so neither may write
			// them in place any more.
			clear(n.owned)
			m.pages = slices.Clone(n.pages)
			m.owned = make([]bool, len(m.pages))
			m.size = n.size
			m.dPages = slices.Clone(n.dPages)
			m.dSize = n.dSize
			return m
		}
		m.entries = make(map[string]*node, len(n.entries))
		m.dEntries = make(map[string]*node, len(n.dEntries))
		for name, child := range n.entries {
			m.entries[name] = cp(child)
		}
		for name, child := range n.dEntries {
			m.dEntries[name] = cp(child)
		}
		return m
	}
	return &CrashFS{root: cp(c.root), ops: c.ops, budget: -1}
}

// begin admits an operation; c.mu must be held. A counted operation (kind
// not empty) may trigger the cut, in which case it must do nothing.
func (c *CrashFS) begin(kind OpKind, name, to string) error {
	if c.cut {
		return ErrPowerCut
	}
	if kind == "" {
		return nil
	}
	op := Op{Seq: c.ops + 1, Kind: kind, Name: name, To: to}
	if c.budget == 0 || (c.cutWhen != nil && c.cutWhen(op)) {
		c.cut = true
		return ErrPowerCut
	}
	c.ops++
	if c.budget > 0 {
		c.budget--
	}
	return nil
}

// clean turns a name into a root-relative cleaned path; "." is the root.
func clean(name string) (string, error) {
	if name == "" {
		return "", fs.ErrInvalid
	}
	p := path.Clean(strings.TrimLeft(name, "/"))
	if p == ".." || strings.HasPrefix(p, "../") {
		return "", fs.ErrInvalid
	}
	return p, nil
}

func pathErr(op, name string, err error) error {
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// lookup resolves a cleaned path in the current tree.
func (c *CrashFS) lookup(p string) (*node, error) {
	n := c.root
	if p == "." {
		return n, nil
	}
	for _, part := range strings.Split(p, "/") {
		if !n.dir {
			return nil, syscall.ENOTDIR
		}
		child, ok := n.entries[part]
		if !ok {
			return nil, syscall.ENOENT
		}
		n = child
	}
	return n, nil
}

// parent resolves the directory that holds a cleaned, non-root path.
func (c *CrashFS) parent(p string) (*node, string, error) {
	dir, base := path.Split(p)
	if dir == "" {
		return c.root, base, nil
	}
	d, err := c.lookup(strings.TrimSuffix(dir, "/"))
	if err != nil {
		return nil, "", err
	}
	if !d.dir {
		return nil, "", syscall.ENOTDIR
	}
	return d, base, nil
}

// OpenFile implements FS. Directories can be opened read-only (to Stat
// them); reading one fails with EISDIR.
func (c *CrashFS) OpenFile(name string, flag int, perm fs.FileMode) (File, error) {
	p, err := clean(name)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	var kind OpKind
	if flag&(os.O_CREATE|os.O_TRUNC) != 0 {
		kind = OpCreate
	}
	if err := c.begin(kind, p, ""); err != nil {
		return nil, pathErr("open", name, err)
	}
	acc := flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	writable := acc == os.O_WRONLY || acc == os.O_RDWR
	var n *node
	if p == "." {
		if flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0 {
			return nil, pathErr("open", name, syscall.EEXIST)
		}
		n = c.root
	} else {
		d, base, err := c.parent(p)
		if err != nil {
			return nil, pathErr("open", name, err)
		}
		n = d.entries[base]
		switch {
		case n == nil && flag&os.O_CREATE == 0:
			return nil, pathErr("open", name, syscall.ENOENT)
		case n == nil:
			n = &node{perm: perm & fs.ModePerm}
			d.entries[base] = n
		case flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
			return nil, pathErr("open", name, syscall.EEXIST)
		}
	}
	if n.dir && (writable || flag&os.O_TRUNC != 0) {
		return nil, pathErr("open", name, syscall.EISDIR)
	}
	if !n.dir && flag&os.O_TRUNC != 0 && writable {
		n.truncate(0)
	}
	return &crashFile{c: c, n: n, name: name, gen: c.gen, flag: flag}, nil
}

// Rename implements FS like os.Rename on Unix: it replaces an existing file
// but never a directory.
func (c *CrashFS) Rename(oldname, newname string) error {
	op, np, err := clean2(oldname, newname)
	if err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(OpRename, op, np); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	if err := c.rename(op, np); err != nil {
		return &os.LinkError{Op: "rename", Old: oldname, New: newname, Err: err}
	}
	return nil
}

func clean2(a, b string) (string, string, error) {
	pa, err := clean(a)
	if err != nil {
		return "", "", err
	}
	pb, err := clean(b)
	if err != nil {
		return "", "", err
	}
	return pa, pb, nil
}

// rename follows os.Rename on Unix, which refuses to replace a directory
// (EEXIST) before it asks the kernel, and rename(2) otherwise.
func (c *CrashFS) rename(op, np string) error {
	if target, err := c.lookup(np); err == nil && target.dir {
		if _, err := c.lookup(op); err != nil {
			return err
		}
		return syscall.EEXIST
	}
	if op == "." || np == "." {
		return syscall.EBUSY
	}
	// Like the kernel, resolve both parents before the old entry.
	od, obase, err := c.parent(op)
	if err != nil {
		return err
	}
	nd, nbase, err := c.parent(np)
	if err != nil {
		return err
	}
	n, ok := od.entries[obase]
	if !ok {
		return syscall.ENOENT
	}
	if n.dir && strings.HasPrefix(np, op+"/") {
		return syscall.EINVAL
	}
	if old, ok := nd.entries[nbase]; ok {
		switch {
		case old == n:
			return nil
		case n.dir:
			return syscall.ENOTDIR
		}
	}
	delete(od.entries, obase)
	nd.entries[nbase] = n
	return nil
}

// Remove implements FS; a directory must be empty.
func (c *CrashFS) Remove(name string) error {
	p, err := clean(name)
	if err != nil {
		return pathErr("remove", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(OpRemove, p, ""); err != nil {
		return pathErr("remove", name, err)
	}
	if p == "." {
		return pathErr("remove", name, syscall.EBUSY)
	}
	d, base, err := c.parent(p)
	if err != nil {
		return pathErr("remove", name, err)
	}
	n, ok := d.entries[base]
	if !ok {
		return pathErr("remove", name, syscall.ENOENT)
	}
	if n.dir && len(n.entries) > 0 {
		return pathErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(d.entries, base)
	return nil
}

// MkdirAll implements FS. Each directory it creates is durable only once
// its parent is synced.
func (c *CrashFS) MkdirAll(name string, perm fs.FileMode) error {
	p, err := clean(name)
	if err != nil {
		return pathErr("mkdir", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(OpMkdir, p, ""); err != nil {
		return pathErr("mkdir", name, err)
	}
	if p == "." {
		return nil
	}
	d := c.root
	for _, part := range strings.Split(p, "/") {
		child, ok := d.entries[part]
		if !ok {
			child = newDir(perm)
			d.entries[part] = child
		}
		if !child.dir {
			return pathErr("mkdir", name, syscall.ENOTDIR)
		}
		d = child
	}
	return nil
}

// Stat implements FS.
func (c *CrashFS) Stat(name string) (fs.FileInfo, error) {
	p, err := clean(name)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("", p, ""); err != nil {
		return nil, pathErr("stat", name, err)
	}
	n, err := c.lookup(p)
	if err != nil {
		return nil, pathErr("stat", name, err)
	}
	return n.info(path.Base(p)), nil
}

// ReadDir implements FS; entries are sorted by name.
func (c *CrashFS) ReadDir(name string) ([]fs.DirEntry, error) {
	p, err := clean(name)
	if err != nil {
		return nil, pathErr("readdirent", name, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin("", p, ""); err != nil {
		return nil, pathErr("readdirent", name, err)
	}
	n, err := c.lookup(p)
	if err != nil {
		return nil, pathErr("open", name, err)
	}
	if !n.dir {
		return nil, pathErr("readdirent", name, syscall.ENOTDIR)
	}
	names := slices.Sorted(maps.Keys(n.entries))
	out := make([]fs.DirEntry, len(names))
	for i, base := range names {
		out[i] = fs.FileInfoToDirEntry(n.entries[base].info(base))
	}
	return out, nil
}

// SyncDir implements FS: the directory's current entries become durable.
func (c *CrashFS) SyncDir(dir string) error {
	p, err := clean(dir)
	if err != nil {
		return pathErr("sync", dir, err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.begin(OpSyncDir, p, ""); err != nil {
		return pathErr("sync", dir, err)
	}
	n, err := c.lookup(p)
	if err != nil {
		return pathErr("open", dir, err)
	}
	if !n.dir {
		return pathErr("sync", dir, syscall.ENOTDIR)
	}
	n.dEntries = maps.Clone(n.entries)
	return nil
}

func (n *node) info(name string) fs.FileInfo {
	if n.dir {
		return fileInfo{name: name, mode: fs.ModeDir | n.perm}
	}
	return fileInfo{name: name, size: n.size, mode: n.perm}
}

func (n *node) syncData() {
	n.dPages = slices.Clone(n.pages)
	n.dSize = n.size
	clear(n.owned)
}

// readAt copies file bytes at off into p and returns how many it copied.
func (n *node) readAt(p []byte, off int64) int {
	if off >= n.size {
		return 0
	}
	p = p[:min(int64(len(p)), n.size-off)]
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		idx, in := int(pos/pageSize), int(pos%pageSize)
		chunk := p[done:min(len(p), done+pageSize-in)]
		var pg []byte
		if idx < len(n.pages) {
			pg = n.pages[idx]
		}
		k := 0
		if in < len(pg) {
			k = copy(chunk, pg[in:])
		}
		clear(chunk[k:])
		done += len(chunk)
	}
	return done
}

// writeAt writes p at off, growing the file as needed.
func (n *node) writeAt(p []byte, off int64) {
	if len(p) == 0 {
		return // an empty write never extends a file
	}
	end := off + int64(len(p))
	if need := int((end + pageSize - 1) / pageSize); need > len(n.pages) {
		n.pages = append(n.pages, make([][]byte, need-len(n.pages))...)
		n.owned = append(n.owned, make([]bool, need-len(n.owned))...)
	}
	done := 0
	for done < len(p) {
		pos := off + int64(done)
		idx, in := int(pos/pageSize), int(pos%pageSize)
		chunk := p[done:min(len(p), done+pageSize-in)]
		pg := n.pages[idx]
		if !n.owned[idx] {
			fresh := make([]byte, len(pg), pageSize)
			copy(fresh, pg)
			pg = fresh
			n.owned[idx] = true
		}
		if want := in + len(chunk); want > len(pg) {
			// Grow within the page's own capacity; a gap between the old
			// end and the write may hold stale bytes from before a
			// truncate, and must read as zeros.
			old := len(pg)
			pg = pg[:want]
			if in > old {
				clear(pg[old:in])
			}
		}
		copy(pg[in:], chunk)
		n.pages[idx] = pg
		done += len(chunk)
	}
	n.size = max(n.size, end)
}

// truncate sets the file size; bytes past the old end read as zeros.
func (n *node) truncate(size int64) {
	if size < n.size {
		keep := min(int((size+pageSize-1)/pageSize), len(n.pages))
		clear(n.pages[keep:])
		n.pages = n.pages[:keep]
		n.owned = n.owned[:keep]
		if in := int(size % pageSize); in != 0 && keep == int(size/pageSize)+1 && len(n.pages[keep-1]) > in {
			// Shortening a slice never writes, so a shared page may be
			// trimmed; a later write copies it first.
			n.pages[keep-1] = n.pages[keep-1][:in]
		}
	}
	n.size = size
}

type fileInfo struct {
	name string
	size int64
	mode fs.FileMode
}

func (i fileInfo) Name() string       { return i.name }
func (i fileInfo) Size() int64        { return i.size }
func (i fileInfo) Mode() fs.FileMode  { return i.mode }
func (i fileInfo) ModTime() time.Time { return time.Time{} }
func (i fileInfo) IsDir() bool        { return i.mode.IsDir() }
func (i fileInfo) Sys() any           { return nil }

// crashFile is an open CrashFS file. Its state is guarded by c.mu.
type crashFile struct {
	c      *CrashFS
	n      *node
	name   string
	gen    int
	flag   int
	off    int64
	closed bool
}

// enter locks the CrashFS and admits an operation on the handle; on
// success the caller must unlock c.mu.
func (f *crashFile) enter(op string, kind OpKind) error {
	f.c.mu.Lock()
	var err error
	switch {
	case f.closed:
		err = os.ErrClosed
	case f.gen != f.c.gen:
		err = ErrStaleHandle
	default:
		var p string
		if p, err = clean(f.name); err == nil {
			err = f.c.begin(kind, p, "")
		}
	}
	if err != nil {
		f.c.mu.Unlock()
		return pathErr(op, f.name, err)
	}
	return nil
}

func (f *crashFile) readable() bool {
	acc := f.flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	return acc == os.O_RDONLY || acc == os.O_RDWR
}

func (f *crashFile) writable() bool {
	acc := f.flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	return acc == os.O_WRONLY || acc == os.O_RDWR
}

func (f *crashFile) Read(p []byte) (int, error) {
	if err := f.enter("read", ""); err != nil {
		return 0, err
	}
	defer f.c.mu.Unlock()
	if len(p) == 0 {
		return 0, nil // like os.File, without asking the filesystem
	}
	if err := f.checkRead("read"); err != nil {
		return 0, err
	}
	n := f.n.readAt(p, f.off)
	f.off += int64(n)
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

func (f *crashFile) ReadAt(p []byte, off int64) (int, error) {
	if err := f.enter("read", ""); err != nil {
		return 0, err
	}
	defer f.c.mu.Unlock()
	if off < 0 {
		return 0, pathErr("readat", f.name, errors.New("negative offset"))
	}
	if len(p) == 0 {
		return 0, nil
	}
	if err := f.checkRead("read"); err != nil {
		return 0, err
	}
	n := f.n.readAt(p, off)
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}

func (f *crashFile) checkRead(op string) error {
	if f.n.dir {
		return pathErr(op, f.name, syscall.EISDIR)
	}
	if !f.readable() {
		return pathErr(op, f.name, syscall.EBADF)
	}
	return nil
}

func (f *crashFile) Write(p []byte) (int, error) {
	if err := f.enter("write", OpWrite); err != nil {
		return 0, err
	}
	defer f.c.mu.Unlock()
	if !f.writable() {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	if f.flag&os.O_APPEND != 0 {
		f.off = f.n.size
	}
	f.n.writeAt(p, f.off)
	f.off += int64(len(p))
	return len(p), nil
}

func (f *crashFile) WriteAt(p []byte, off int64) (int, error) {
	if err := f.enter("write", OpWrite); err != nil {
		return 0, err
	}
	defer f.c.mu.Unlock()
	if f.flag&os.O_APPEND != 0 {
		return 0, errors.New("os: invalid use of WriteAt on file opened with O_APPEND")
	}
	if !f.writable() {
		return 0, pathErr("write", f.name, syscall.EBADF)
	}
	if off < 0 {
		return 0, pathErr("writeat", f.name, errors.New("negative offset"))
	}
	f.n.writeAt(p, off)
	return len(p), nil
}

func (f *crashFile) Seek(offset int64, whence int) (int64, error) {
	if err := f.enter("seek", ""); err != nil {
		return 0, err
	}
	defer f.c.mu.Unlock()
	if f.n.dir {
		// Directory offsets are filesystem-specific cookies.
		return 0, pathErr("seek", f.name, syscall.EISDIR)
	}
	var abs int64
	switch whence {
	case io.SeekStart:
		abs = offset
	case io.SeekCurrent:
		abs = f.off + offset
	case io.SeekEnd:
		abs = f.n.size + offset
	default:
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	if abs < 0 {
		return 0, pathErr("seek", f.name, syscall.EINVAL)
	}
	f.off = abs
	return abs, nil
}

func (f *crashFile) Truncate(size int64) error {
	if err := f.enter("truncate", OpTruncate); err != nil {
		return err
	}
	defer f.c.mu.Unlock()
	if f.n.dir || !f.writable() || size < 0 {
		return pathErr("truncate", f.name, syscall.EINVAL)
	}
	f.n.truncate(size)
	return nil
}

func (f *crashFile) Sync() error {
	if err := f.enter("sync", OpSync); err != nil {
		return err
	}
	defer f.c.mu.Unlock()
	if f.n.dir {
		f.n.dEntries = maps.Clone(f.n.entries)
		return nil
	}
	f.n.syncData()
	return nil
}

func (f *crashFile) Stat() (fs.FileInfo, error) {
	if err := f.enter("stat", ""); err != nil {
		return nil, err
	}
	defer f.c.mu.Unlock()
	return f.n.info(path.Base(f.name)), nil
}

func (f *crashFile) Close() error {
	f.c.mu.Lock()
	defer f.c.mu.Unlock()
	switch {
	case f.closed:
		return pathErr("close", f.name, os.ErrClosed)
	case f.gen != f.c.gen:
		f.closed = true
		return pathErr("close", f.name, ErrStaleHandle)
	case f.c.cut:
		f.closed = true
		return pathErr("close", f.name, ErrPowerCut)
	}
	f.closed = true
	return nil
}
