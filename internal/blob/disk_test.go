package blob_test

import (
	"bytes"
	"context"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
)

type bundle struct {
	disk  *blob.Disk
	clock *clock.Fake
	root  string
}

func setup(t *testing.T) bundle {
	t.Helper()
	root := filepath.Join(t.TempDir(), "blobs")
	c := clock.NewFake(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC))
	d, err := blob.NewDisk(root, c)
	if err != nil {
		t.Fatal(err)
	}
	return bundle{disk: d, clock: c, root: root}
}

func randomBytes(t testing.TB, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func wantInfo(b []byte) blob.Info {
	s256 := sha256.Sum256(b)
	s1 := sha1.Sum(b)
	m5 := md5.Sum(b)
	key := hex.EncodeToString(s256[:])
	return blob.Info{
		Key:    key,
		Size:   int64(len(b)),
		SHA256: key,
		SHA1:   hex.EncodeToString(s1[:]),
		MD5:    hex.EncodeToString(m5[:]),
	}
}

// assertClean fails unless no upload or deletion is left in the temp dir.
func assertClean(t *testing.T, root string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, "tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("leftover in temp dir: %s", e.Name())
	}
}

func keys(t *testing.T, d *blob.Disk) []string {
	t.Helper()
	var got []string
	if err := d.Keys(context.Background(), func(k string) error {
		got = append(got, k)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return got
}

func TestPutComputesDigests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		content []byte
		want    blob.Info // zero: computed from content
	}{
		{name: "empty", content: []byte{}},
		{
			name:    "abc",
			content: []byte("abc"),
			want: blob.Info{
				Key:    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
				Size:   3,
				SHA256: "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
				SHA1:   "a9993e364706816aba3e25717850c26c9cd0d89d",
				MD5:    "900150983cd24fb0d6963f7d28e17f72",
			},
		},
		{name: "several copy buffers", content: randomBytes(t, 3<<20+17)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := context.Background()
			want := tt.want
			if want == (blob.Info{}) {
				want = wantInfo(tt.content)
			}
			got, err := s.disk.Put(ctx, bytes.NewReader(tt.content), 1<<30)
			if err != nil {
				t.Fatal(err)
			}
			if got != want {
				t.Fatalf("Put = %+v, want %+v", got, want)
			}
			st, err := s.disk.Stat(ctx, got.Key)
			if err != nil {
				t.Fatal(err)
			}
			if st != want {
				t.Fatalf("Stat = %+v, want %+v", st, want)
			}
			obj, err := s.disk.Open(ctx, got.Key)
			if err != nil {
				t.Fatal(err)
			}
			defer obj.Close()
			if obj.Key() != want.Key || obj.Size() != want.Size {
				t.Fatalf("object key/size = %s/%d, want %s/%d", obj.Key(), obj.Size(), want.Key, want.Size)
			}
			back, err := io.ReadAll(obj)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tt.content) {
				t.Fatal("content read back differs")
			}
			path, err := s.disk.DataPath(got.Key)
			if err != nil {
				t.Fatal(err)
			}
			if want := filepath.Join(s.root, got.Key[:2], got.Key, "data"); path != want {
				t.Fatalf("DataPath = %s, want %s", path, want)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm() != 0o600 {
				t.Errorf("content mode = %v, want 0600", fi.Mode().Perm())
			}
			assertClean(t, s.root)
		})
	}
}

func TestNewDiskCreatesPrivateRoot(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, dir := range []string{s.root, filepath.Join(s.root, "tmp")} {
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s mode = %v, want 0700", dir, fi.Mode().Perm())
		}
	}
	// Opening an existing store keeps its blobs.
	info, err := s.disk.Put(context.Background(), bytes.NewReader([]byte("keep")), 10)
	if err != nil {
		t.Fatal(err)
	}
	again, err := blob.NewDisk(s.root, s.clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Stat(context.Background(), info.Key); err != nil {
		t.Fatal(err)
	}
}

// countingReader serves an endless stream and counts what was read from it.
type countingReader struct{ n int64 }

func (c *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(c.n + int64(i))
	}
	c.n += int64(len(p))
	return len(p), nil
}

func TestPutLimit(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		size    int
		limit   int64
		wantErr error
	}{
		{name: "under", size: 99, limit: 100},
		{name: "exactly", size: 100, limit: 100},
		{name: "one over", size: 101, limit: 100, wantErr: blob.ErrTooLarge},
		{name: "far over", size: 5 << 20, limit: 1 << 20, wantErr: blob.ErrTooLarge},
		{name: "empty with tiny limit", size: 0, limit: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			content := randomBytes(t, tt.size)
			_, err := s.disk.Put(context.Background(), bytes.NewReader(content), tt.limit)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Put error = %v, want %v", err, tt.wantErr)
			}
			wantKeys := 1
			if tt.wantErr != nil {
				wantKeys = 0
			}
			if got := keys(t, s.disk); len(got) != wantKeys {
				t.Fatalf("stored %d blobs, want %d", len(got), wantKeys)
			}
			assertClean(t, s.root)
		})
	}
}

func TestPutReadsAtMostLimitPlusOne(t *testing.T) {
	t.Parallel()
	s := setup(t)
	src := &countingReader{}
	const limit = 3 << 20
	_, err := s.disk.Put(context.Background(), src, limit)
	if !errors.Is(err, blob.ErrTooLarge) {
		t.Fatalf("Put error = %v, want ErrTooLarge", err)
	}
	if src.n != limit+1 {
		t.Fatalf("read %d bytes from an endless source, want %d", src.n, limit+1)
	}
	assertClean(t, s.root)
}

func TestPutRejectsNonPositiveLimit(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for _, limit := range []int64{0, -1} {
		if _, err := s.disk.Put(context.Background(), bytes.NewReader(nil), limit); err == nil {
			t.Errorf("Put with limit %d succeeded", limit)
		}
	}
	assertClean(t, s.root)
}

func TestPutIsIdempotent(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	content := randomBytes(t, 1000)
	first, err := s.disk.Put(ctx, bytes.NewReader(content), 1000)
	if err != nil {
		t.Fatal(err)
	}
	second, err := s.disk.Put(ctx, bytes.NewReader(content), 1000)
	if err != nil {
		t.Fatal(err)
	}
	if first != second {
		t.Fatalf("second Put = %+v, first %+v", second, first)
	}
	if got := keys(t, s.disk); len(got) != 1 || got[0] != first.Key {
		t.Fatalf("keys = %v, want [%s]", got, first.Key)
	}
	assertClean(t, s.root)
}

func TestPutConcurrentSameContent(t *testing.T) {
	t.Parallel()
	s := setup(t)
	content := randomBytes(t, 256<<10)
	want := wantInfo(content)
	const n = 16
	var wg sync.WaitGroup
	errs := make([]error, n)
	infos := make([]blob.Info, n)
	for i := range n {
		wg.Go(func() {
			infos[i], errs[i] = s.disk.Put(context.Background(), bytes.NewReader(content), int64(len(content)))
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("put %d: %v", i, errs[i])
		}
		if infos[i] != want {
			t.Fatalf("put %d = %+v, want %+v", i, infos[i], want)
		}
	}
	if got := keys(t, s.disk); len(got) != 1 {
		t.Fatalf("stored %d blobs, want 1", len(got))
	}
	obj, err := s.disk.Open(context.Background(), want.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	back, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, content) {
		t.Fatal("content differs after concurrent puts")
	}
	assertClean(t, s.root)
}

// stepReader serves chunks and runs hook before serving chunk number at.
type stepReader struct {
	chunk []byte
	reads int
	at    int
	hook  func()
	err   error // returned instead of data once hook ran, if set
}

func (r *stepReader) Read(p []byte) (int, error) {
	r.reads++
	if r.reads == r.at {
		r.hook()
		if r.err != nil {
			return 0, r.err
		}
	}
	return copy(p, r.chunk), nil
}

func TestPutCancelledMidStream(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	src := &stepReader{chunk: make([]byte, 64<<10), at: 5, hook: cancel}
	_, err := s.disk.Put(ctx, src, 1<<30)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put error = %v, want context.Canceled", err)
	}
	if src.reads > src.at+1 {
		t.Fatalf("Put kept reading after cancel: %d reads", src.reads)
	}
	if got := keys(t, s.disk); len(got) != 0 {
		t.Fatalf("cancelled Put stored %v", got)
	}
	assertClean(t, s.root)
}

func TestPutCancelledAfterLastByte(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The reader reports EOF only after the context is cancelled: the whole
	// content arrived, but the caller has already given up.
	src := io.MultiReader(bytes.NewReader([]byte("late")), readerFunc(func([]byte) (int, error) {
		cancel()
		return 0, io.EOF
	}))
	if _, err := s.disk.Put(ctx, src, 100); !errors.Is(err, context.Canceled) {
		t.Fatalf("Put error = %v, want context.Canceled", err)
	}
	if got := keys(t, s.disk); len(got) != 0 {
		t.Fatalf("cancelled Put stored %v", got)
	}
	assertClean(t, s.root)
}

type readerFunc func([]byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

func TestPutReaderError(t *testing.T) {
	t.Parallel()
	s := setup(t)
	boom := errors.New("connection reset")
	src := &stepReader{chunk: make([]byte, 1000), at: 3, hook: func() {}, err: boom}
	_, err := s.disk.Put(context.Background(), src, 1<<20)
	if !errors.Is(err, boom) {
		t.Fatalf("Put error = %v, want %v", err, boom)
	}
	if got := keys(t, s.disk); len(got) != 0 {
		t.Fatalf("failed Put stored %v", got)
	}
	assertClean(t, s.root)
}

func TestInvalidKeys(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	bad := []string{
		"",
		"../../etc/passwd",
		"BA7816BF8F01CFEA414140DE5DAE2223B00361A396177A9CB410FF61F20015AD",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015a",
		"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0",
		"ba/816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
		"tmp",
	}
	for _, key := range bad {
		if blob.ValidKey(key) {
			t.Errorf("ValidKey(%q) = true", key)
		}
		if _, err := s.disk.Open(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Open(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.disk.Stat(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Stat(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if err := s.disk.Delete(ctx, key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("Delete(%q) error = %v, want ErrInvalidKey", key, err)
		}
		if _, err := s.disk.DataPath(key); !errors.Is(err, blob.ErrInvalidKey) {
			t.Errorf("DataPath(%q) error = %v, want ErrInvalidKey", key, err)
		}
	}
}

func TestMissingBlob(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	key := wantInfo([]byte("never stored")).Key
	if _, err := s.disk.Open(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Open error = %v, want ErrNotFound", err)
	}
	if _, err := s.disk.Stat(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Stat error = %v, want ErrNotFound", err)
	}
	if err := s.disk.Delete(ctx, key); !errors.Is(err, blob.ErrNotFound) {
		t.Errorf("Delete error = %v, want ErrNotFound", err)
	}
	assertClean(t, s.root)
}

func TestDeleteKeepsOpenReaders(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	content := randomBytes(t, 10000)
	info, err := s.disk.Put(ctx, bytes.NewReader(content), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.disk.Open(ctx, info.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	if err := s.disk.Delete(ctx, info.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.disk.Stat(ctx, info.Key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("Stat after Delete = %v, want ErrNotFound", err)
	}
	back, err := io.ReadAll(obj)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(back, content) {
		t.Fatal("open reader lost content after Delete")
	}
	// The same content can be stored again.
	if _, err := s.disk.Put(ctx, bytes.NewReader(content), 1<<20); err != nil {
		t.Fatal(err)
	}
	assertClean(t, s.root)
}

func TestObjectExposesFile(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	info, err := s.disk.Put(ctx, bytes.NewReader([]byte("0123456789")), 100)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.disk.Open(ctx, info.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	f, ok := obj.(blob.File)
	if !ok {
		t.Fatal("disk object does not implement blob.File")
	}
	// The file shares the object's offset.
	if _, err := obj.Seek(4, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	rest, err := io.ReadAll(f.File())
	if err != nil {
		t.Fatal(err)
	}
	if string(rest) != "456789" {
		t.Fatalf("read %q through File after Seek(4), want %q", rest, "456789")
	}
}

func TestStatDetectsCorruption(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
	}{
		{"truncated content", func(t *testing.T, dir string) {
			if err := os.Truncate(filepath.Join(dir, "data"), 3); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing digests", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "sums.json")); err != nil {
				t.Fatal(err)
			}
		}},
		{"garbled digests", func(t *testing.T, dir string) {
			if err := os.WriteFile(filepath.Join(dir, "sums.json"), []byte("{not json"), 0o600); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing content", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "data")); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := context.Background()
			content := []byte("some firmware bytes")
			info, err := s.disk.Put(ctx, bytes.NewReader(content), 100)
			if err != nil {
				t.Fatal(err)
			}
			tt.damage(t, filepath.Join(s.root, info.Key[:2], info.Key))
			if _, err := s.disk.Stat(ctx, info.Key); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("Stat error = %v, want ErrCorrupt", err)
			}
			// Put must not report success on top of a damaged copy.
			if _, err := s.disk.Put(ctx, bytes.NewReader(content), 100); !errors.Is(err, blob.ErrCorrupt) {
				t.Fatalf("Put over damaged copy: error = %v, want ErrCorrupt", err)
			}
			assertClean(t, s.root)
			// Deleting the damaged blob and storing it again repairs it.
			if err := s.disk.Delete(ctx, info.Key); err != nil {
				t.Fatal(err)
			}
			if _, err := s.disk.Put(ctx, bytes.NewReader(content), 100); err != nil {
				t.Fatal(err)
			}
			if _, err := s.disk.Stat(ctx, info.Key); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestKeysListsOnlyBlobs(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	var want []string
	for _, c := range []string{"a", "b", "c", "d"} {
		info, err := s.disk.Put(ctx, bytes.NewReader([]byte(c)), 10)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, info.Key)
	}
	// Junk that is not a blob.
	for _, p := range []string{"zz/x", "README", "ab/not-a-key"} {
		path := filepath.Join(s.root, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	got := keys(t, s.disk)
	if len(got) != len(want) {
		t.Fatalf("Keys = %v, want %d keys", got, len(want))
	}
	for i := 1; i < len(got); i++ {
		if got[i-1] >= got[i] {
			t.Fatalf("Keys not in order: %v", got)
		}
	}
	seen := map[string]bool{}
	for _, k := range got {
		seen[k] = true
	}
	for _, k := range want {
		if !seen[k] {
			t.Errorf("Keys missed %s", k)
		}
	}
	stop := errors.New("stop")
	calls := 0
	err := s.disk.Keys(ctx, func(string) error { calls++; return stop })
	if !errors.Is(err, stop) || calls != 1 {
		t.Fatalf("Keys with failing callback: err=%v calls=%d", err, calls)
	}
}

func TestSweepRemovesCrashLeftovers(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	now := s.clock.Now()
	tmp := filepath.Join(s.root, "tmp")

	// What a crash in the middle of Put or Delete leaves behind.
	mk := func(name string, mtime time.Time) string {
		dir := filepath.Join(tmp, name)
		if err := os.MkdirAll(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(dir, "data")
		if err := os.WriteFile(file, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{file, dir} {
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	old := mk("put-old", now.Add(-3*time.Hour))
	fresh := mk("put-fresh", now.Add(-10*time.Minute))
	del := mk("del-any", now) // an unfinished delete goes regardless of age
	// A directory whose own mtime is old but whose content was written
	// recently is an upload still in progress.
	active := mk("put-active", now.Add(-3*time.Hour))
	if err := os.Chtimes(filepath.Join(active, "data"), now, now); err != nil {
		t.Fatal(err)
	}

	// A finished blob is never touched.
	info, err := s.disk.Put(ctx, bytes.NewReader([]byte("kept")), 10)
	if err != nil {
		t.Fatal(err)
	}

	n, err := s.disk.Sweep(ctx, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("Sweep removed %d entries, want 2", n)
	}
	for _, p := range []string{old, del} {
		if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("%s still there after Sweep (err %v)", p, err)
		}
	}
	for _, p := range []string{fresh, active} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s removed by Sweep: %v", p, err)
		}
	}
	if _, err := s.disk.Stat(ctx, info.Key); err != nil {
		t.Fatalf("Sweep damaged a stored blob: %v", err)
	}

	// Once the clock passes the fresh upload's age too, it goes as well.
	s.clock.Advance(2 * time.Hour)
	if n, err := s.disk.Sweep(ctx, time.Hour); err != nil || n != 2 {
		t.Fatalf("second Sweep = %d, %v; want 2, nil", n, err)
	}
	assertClean(t, s.root)
}

// BenchmarkPut measures the upload path: one pass through three hashes and
// the disk, including the final fsync.
func BenchmarkPut(b *testing.B) {
	root := b.TempDir()
	d, err := blob.NewDisk(root, clock.NewFake(time.Unix(0, 0)))
	if err != nil {
		b.Fatal(err)
	}
	content := randomBytes(b, 64<<20)
	b.SetBytes(int64(len(content)))
	ctx := context.Background()
	for b.Loop() {
		// Change the content so every round stores a new blob.
		content[0]++
		info, err := d.Put(ctx, bytes.NewReader(content), int64(len(content)))
		if err != nil {
			b.Fatal(err)
		}
		if err := d.Delete(ctx, info.Key); err != nil {
			b.Fatal(err)
		}
	}
}

func TestPutRefreshesLastUse(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	content := []byte("firmware")
	first := s.clock.Now()
	info, err := s.disk.Put(ctx, bytes.NewReader(content), 100)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := s.disk.LastUsed(ctx, info.Key); err != nil || !got.Equal(first) {
		t.Fatalf("LastUsed after first Put = %v, %v; want %v", got, err, first)
	}

	s.clock.Advance(48 * time.Hour)
	again := s.clock.Now()
	if _, err := s.disk.Put(ctx, bytes.NewReader(content), 100); err != nil {
		t.Fatal(err)
	}
	if got, err := s.disk.LastUsed(ctx, info.Key); err != nil || !got.Equal(again) {
		t.Fatalf("LastUsed after second Put = %v, %v; want %v", got, err, again)
	}
	// Reading is not a use that keeps an unreferenced blob.
	obj, err := s.disk.Open(ctx, info.Key)
	if err != nil {
		t.Fatal(err)
	}
	obj.Close()
	s.clock.Advance(time.Hour)
	if got, err := s.disk.LastUsed(ctx, info.Key); err != nil || !got.Equal(again) {
		t.Fatalf("LastUsed after Open = %v, %v; want %v", got, err, again)
	}
	if _, err := s.disk.LastUsed(ctx, wantInfo([]byte("other")).Key); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("LastUsed of a missing blob: %v, want ErrNotFound", err)
	}
	assertClean(t, s.root)
}

func TestDeleteIdle(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		idle    time.Duration // since the last Put
		reput   bool          // a Put of the same content after the idle time
		deleted bool
	}{
		{name: "idle past cutoff", idle: 25 * time.Hour, deleted: true},
		{name: "used within cutoff", idle: 23 * time.Hour},
		{name: "exactly at cutoff", idle: 24 * time.Hour},
		{name: "re-uploaded", idle: 25 * time.Hour, reput: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := context.Background()
			content := []byte("image " + tt.name)
			info, err := s.disk.Put(ctx, bytes.NewReader(content), 100)
			if err != nil {
				t.Fatal(err)
			}
			s.clock.Advance(tt.idle)
			if tt.reput {
				if _, err := s.disk.Put(ctx, bytes.NewReader(content), 100); err != nil {
					t.Fatal(err)
				}
			}
			deleted, err := s.disk.DeleteIdle(ctx, info.Key, s.clock.Now().Add(-24*time.Hour))
			if err != nil || deleted != tt.deleted {
				t.Fatalf("DeleteIdle = %v, %v; want %v", deleted, err, tt.deleted)
			}
			_, err = s.disk.Stat(ctx, info.Key)
			if tt.deleted != errors.Is(err, blob.ErrNotFound) {
				t.Fatalf("Stat after DeleteIdle: %v (deleted %v)", err, tt.deleted)
			}
			assertClean(t, s.root)
			// The same content can always be stored again.
			if _, err := s.disk.Put(ctx, bytes.NewReader(content), 100); err != nil {
				t.Fatal(err)
			}
			if _, err := s.disk.Stat(ctx, info.Key); err != nil {
				t.Fatal(err)
			}
		})
	}
	s := setup(t)
	if _, err := s.disk.DeleteIdle(context.Background(), wantInfo([]byte("x")).Key, s.clock.Now()); !errors.Is(err, blob.ErrNotFound) {
		t.Fatalf("DeleteIdle of a missing blob: %v, want ErrNotFound", err)
	}
}

// TestDeleteIdleRacingPut runs collection and re-uploads of the same blob
// at once: every Put that succeeds must leave the blob readable.
func TestDeleteIdleRacingPut(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := context.Background()
	content := randomBytes(t, 4096)
	info, err := s.disk.Put(ctx, bytes.NewReader(content), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	s.clock.Advance(48 * time.Hour)
	cutoff := s.clock.Now().Add(-24 * time.Hour)
	for i := 0; i < 50; i++ {
		var wg sync.WaitGroup
		wg.Add(2)
		var putErr error
		go func() {
			defer wg.Done()
			_, putErr = s.disk.Put(ctx, bytes.NewReader(content), 1<<20)
		}()
		go func() {
			defer wg.Done()
			if _, err := s.disk.DeleteIdle(ctx, info.Key, cutoff); err != nil && !errors.Is(err, blob.ErrNotFound) {
				t.Error(err)
			}
		}()
		wg.Wait()
		if putErr != nil {
			t.Fatal(putErr)
		}
		if _, err := s.disk.Stat(ctx, info.Key); err != nil {
			t.Fatalf("round %d: blob gone after a successful Put: %v", i, err)
		}
		// Make it idle again for the next round.
		if err := os.Chtimes(filepath.Join(s.root, info.Key[:2], info.Key, "sums.json"), cutoff.Add(-time.Hour), cutoff.Add(-time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
}
