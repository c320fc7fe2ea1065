package blobgc_test

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/blobgc"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

const grace = 24 * time.Hour

var admin = store.Actor{Kind: store.ActorUser, ID: "u-gc", Name: "gc test"}

type bundle struct {
	ctx   context.Context
	st    *sqlstore.Store
	blobs *blob.Disk
	clock *clock.Fake
	reg   *prometheus.Registry
	gc    *blobgc.Collector
}

func setup(t *testing.T) bundle {
	t.Helper()
	ctx := context.Background()
	fc := clock.NewFake(time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC))
	dir := t.TempDir()
	st, err := sqlite.Open(filepath.Join(dir, "updraft.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: fc.Now()}); err != nil {
		t.Fatal(err)
	}
	blobs, err := blob.NewDisk(filepath.Join(dir, "blobs"), fc)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	gc, err := blobgc.New(blobgc.Config{Store: st, Blobs: blobs, Clock: fc, Holder: "replica-a", Grace: grace, Metrics: reg})
	if err != nil {
		t.Fatal(err)
	}
	return bundle{ctx: ctx, st: st, blobs: blobs, clock: fc, reg: reg, gc: gc}
}

func (b bundle) put(t *testing.T, content string) blob.Info {
	t.Helper()
	info, err := b.blobs.Put(b.ctx, bytes.NewReader([]byte(content)), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// reference records a draft release with an artifact of info and returns
// the release id.
func (b bundle) reference(t *testing.T, version string, info blob.Info) string {
	t.Helper()
	now := b.clock.Now()
	rel, err := b.st.CreateRelease(b.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version}, admin, now)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.AddArtifact(b.ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "gateway",
		HWRevs: []string{"a"}, Type: store.ArtifactRawImage, Component: "rootfs", Name: "image-" + version + ".bin",
		Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5}, admin, now); err != nil {
		t.Fatal(err)
	}
	return rel.ID
}

func (b bundle) exists(t *testing.T, key string) bool {
	t.Helper()
	_, err := b.blobs.Stat(b.ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

func (b bundle) run(t *testing.T) blobgc.Result {
	t.Helper()
	res, err := b.gc.Run(b.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func (b bundle) counter(t *testing.T, name string) float64 {
	t.Helper()
	mfs, err := b.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

func TestRunCollectsOnlyIdleUnreferencedBlobs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		age        time.Duration // since the blob's Put
		referenced bool
		reputAfter time.Duration // >0: Put the same content again this long after the first
		collected  bool
	}{
		{name: "unused and old", age: grace + time.Hour, collected: true},
		{name: "unused and fresh", age: grace - time.Hour},
		{name: "unused at exactly the grace period", age: grace},
		{name: "referenced and old", age: 10 * grace, referenced: true},
		{name: "re-uploaded recently", age: grace + time.Hour, reputAfter: 2 * time.Hour},
		{name: "re-uploaded long ago", age: 3 * grace, reputAfter: time.Hour, collected: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := setup(t)
			info := b.put(t, "image "+tt.name)
			if tt.referenced {
				b.reference(t, "1.0.0", info)
			}
			if tt.reputAfter > 0 {
				b.clock.Advance(tt.reputAfter)
				b.put(t, "image "+tt.name)
				b.clock.Advance(tt.age - tt.reputAfter)
			} else {
				b.clock.Advance(tt.age)
			}
			res := b.run(t)
			if !res.Led {
				t.Fatal("the only replica did not lead")
			}
			want := 0
			if tt.collected {
				want = 1
			}
			if res.Collected != want {
				t.Errorf("Collected = %d, want %d", res.Collected, want)
			}
			if got := b.exists(t, info.Key); got == tt.collected {
				t.Errorf("blob exists = %v after the run, want %v", got, !tt.collected)
			}
			if got := b.counter(t, "updraft_blob_gc_collected_total"); got != float64(want) {
				t.Errorf("collected counter = %v, want %d", got, want)
			}
		})
	}
}

// TestDeletedDraftBlobIsCollectedAfterGrace follows a blob whose only
// artifact goes away with its draft: it stays for the grace period after
// its last upload, then goes.
func TestDeletedDraftBlobIsCollectedAfterGrace(t *testing.T) {
	t.Parallel()
	b := setup(t)
	info := b.put(t, "draft image")
	relID := b.reference(t, "2.0.0", info)
	b.clock.Advance(grace - time.Hour)
	if err := b.st.DeleteDraft(b.ctx, store.DefaultTenant, relID, admin, b.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if res := b.run(t); res.Collected != 0 || !b.exists(t, info.Key) {
		t.Fatalf("collected %d within the grace period", res.Collected)
	}
	b.clock.Advance(2 * time.Hour)
	if res := b.run(t); res.Collected != 1 || b.exists(t, info.Key) {
		t.Fatalf("collected %d after the grace period; blob still there: %v", res.Collected, b.exists(t, info.Key))
	}
	// Nothing left to do on the next run.
	if res := b.run(t); res.Collected != 0 {
		t.Fatalf("second run collected %d", res.Collected)
	}
}

func TestRunSweepsOldTempLeftovers(t *testing.T) {
	t.Parallel()
	b := setup(t)
	mk := func(name string, mtime time.Time) string {
		dir := filepath.Join(b.blobs.Root(), "tmp", name)
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
	now := b.clock.Now()
	old := mk("put-crashed", now.Add(-grace-time.Minute))
	fresh := mk("put-running", now.Add(-grace+time.Minute))
	res := b.run(t)
	if res.Swept != 1 {
		t.Errorf("Swept = %d, want 1", res.Swept)
	}
	if _, err := os.Stat(old); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("crashed upload still there: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("running upload removed: %v", err)
	}
	if got := b.counter(t, "updraft_blob_gc_swept_total"); got != 1 {
		t.Errorf("swept counter = %v, want 1", got)
	}
}

func TestNonLeaderSkips(t *testing.T) {
	t.Parallel()
	b := setup(t)
	info := b.put(t, "shared image")
	b.clock.Advance(2 * grace)
	// Another replica holds the duty.
	other, err := b.st.AcquireLease(b.ctx, blobgc.LeaseName, "replica-b", time.Hour, b.clock.Now())
	if err != nil || !other.Held("replica-b", b.clock.Now()) {
		t.Fatalf("other replica's lease: %+v, %v", other, err)
	}
	old := filepath.Join(b.blobs.Root(), "tmp", "put-crashed")
	if err := os.Mkdir(old, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(old, b.clock.Now().Add(-2*grace), b.clock.Now().Add(-2*grace)); err != nil {
		t.Fatal(err)
	}
	if res := b.run(t); res.Led || res.Collected != 0 || res.Swept != 0 {
		t.Fatalf("non-leader run = %+v, want nothing done", res)
	}
	if !b.exists(t, info.Key) {
		t.Fatal("non-leader deleted a blob")
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatalf("non-leader swept: %v", err)
	}
	// Once the other replica's lease lapses, this one takes over.
	b.clock.Advance(time.Hour)
	if res := b.run(t); !res.Led || res.Collected != 1 || res.Swept != 1 {
		t.Fatalf("run after the lease lapsed = %+v, want led, 1 collected, 1 swept", res)
	}
}

func TestStartRunsAndStopReleasesLease(t *testing.T) {
	t.Parallel()
	b := setup(t)
	info := b.put(t, "old image")
	b.clock.Advance(2 * grace)
	if err := b.gc.Start(b.ctx); err != nil {
		t.Fatal(err)
	}
	if err := b.gc.Start(b.ctx); err == nil {
		t.Error("second Start succeeded")
	}
	// The loop runs once, then waits on the clock for the next interval.
	for b.clock.Waiters() == 0 {
		runtime.Gosched()
	}
	if b.exists(t, info.Key) {
		t.Error("first run did not collect the idle blob")
	}
	second := b.put(t, "second image")
	b.clock.Advance(2 * grace) // fires the timer: one more run
	for b.exists(t, second.Key) {
		runtime.Gosched()
	}
	b.gc.Stop()
	b.gc.Stop() // idempotent
	l, err := b.st.AcquireLease(b.ctx, blobgc.LeaseName, "replica-b", time.Hour, b.clock.Now())
	if err != nil || !l.Held("replica-b", b.clock.Now()) {
		t.Fatalf("lease not free after Stop: %+v, %v", l, err)
	}
}

func TestNewChecksConfig(t *testing.T) {
	t.Parallel()
	b := setup(t)
	tests := []struct {
		name string
		cfg  blobgc.Config
	}{
		{"no store", blobgc.Config{Blobs: b.blobs, Clock: b.clock}},
		{"no blobs", blobgc.Config{Store: b.st, Clock: b.clock}},
		{"no clock", blobgc.Config{Store: b.st, Blobs: b.blobs}},
	}
	for _, tt := range tests {
		if _, err := blobgc.New(tt.cfg); err == nil {
			t.Errorf("%s: New succeeded", tt.name)
		}
	}
	// The same registry cannot take a second collector's metrics.
	if _, err := blobgc.New(blobgc.Config{Store: b.st, Blobs: b.blobs, Clock: b.clock, Metrics: b.reg}); err == nil {
		t.Error("second registration succeeded")
	}
}
