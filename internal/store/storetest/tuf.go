package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// tufFile is a stand-in metadata file: the store treats the bytes as
// opaque, so they need not be real TUF.
func tufFile(role string, version int64) store.TUFFile {
	return store.TUFFile{Role: role, Version: version, Data: fmt.Appendf(nil, `{"role":%q,"version":%d}`, role, version),
		Expires: T0.Add(time.Duration(version) * time.Hour)}
}

func names(fs []store.TUFFile) []string {
	var out []string
	for _, f := range fs {
		out = append(out, f.Name())
	}
	return out
}

func testTUF(t *testing.T, h Harness) {
	t.Run("FilesGenerationsAndPruning", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		if _, err := s.TUFState(ctx, tn); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("state before any write: %v, want ErrNotFound", err)
		}
		if g, err := s.TUFGeneration(ctx, tn); err != nil || g != 0 {
			t.Fatalf("generation before any write = %d, %v; want 0", g, err)
		}
		g1, err := s.WriteTUF(ctx, tn, store.TUFWrite{Files: []store.TUFFile{tufFile("root", 1), tufFile("targets", 1)},
			Action: "tuf.init", By: Admin, Details: map[string]any{"roles": []string{"root", "targets"}}, Now: T0})
		if err != nil || g1 != 1 {
			t.Fatalf("create = %d, %v; want generation 1", g1, err)
		}
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Files: []store.TUFFile{tufFile("root", 1)}, Now: T0}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("second create: %v, want ErrConflict", err)
		}
		t1 := T0.Add(time.Minute)
		g2, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g1, Files: []store.TUFFile{tufFile("snapshot", 1), tufFile("timestamp", 1)}, Now: t1})
		if err != nil || g2 != 2 {
			t.Fatalf("publish = %d, %v; want generation 2", g2, err)
		}
		// A writer that read generation 1 lost the race: nothing of it lands.
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g1, Files: []store.TUFFile{tufFile("snapshot", 2)}, Now: t1}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("write on a stale generation: %v, want ErrConflict", err)
		}
		if _, err := s.TUFFile(ctx, tn, "snapshot", 2); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("file of the refused write: %v, want ErrNotFound", err)
		}
		t2 := T0.Add(2 * time.Minute)
		g3, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g2,
			Files: []store.TUFFile{tufFile("root", 2), tufFile("targets", 2), tufFile("gw-200", 1), tufFile("snapshot", 2), tufFile("timestamp", 2)}, Now: t2})
		if err != nil || g3 != 3 {
			t.Fatalf("upload = %d, %v; want generation 3", g3, err)
		}
		// An existing version is refused even on the current generation.
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g3, Files: []store.TUFFile{tufFile("targets", 2)}, Now: t2}); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate version: %v, want ErrConflict", err)
		}
		if g, _ := s.TUFGeneration(ctx, tn); g != 3 {
			t.Fatalf("generation after refused writes = %d, want 3", g)
		}
		st, err := s.TUFState(ctx, tn)
		if err != nil {
			t.Fatal(err)
		}
		if st.Generation != 3 || !st.UpdatedAt.Equal(t2) {
			t.Fatalf("state generation %d at %s, want 3 at %s", st.Generation, st.UpdatedAt, t2)
		}
		if got, want := names(st.Roots), []string{"1.root.json", "2.root.json"}; !slices.Equal(got, want) {
			t.Fatalf("roots %v, want %v", got, want)
		}
		if got, want := names(st.Current), []string{"1.gw-200.json", "2.snapshot.json", "2.targets.json", "2.timestamp.json"}; !slices.Equal(got, want) {
			t.Fatalf("current files %v, want %v", got, want)
		}
		for _, f := range append(st.Roots, st.Current...) {
			want := tufFile(f.Role, f.Version)
			if !bytes.Equal(f.Data, want.Data) || !f.Expires.Equal(want.Expires) {
				t.Fatalf("%s read back as %q expiring %s", f.Name(), f.Data, f.Expires)
			}
		}
		cur, err := s.TUFFile(ctx, tn, "targets", 0)
		if err != nil || cur.Version != 2 || cur.SupersededAt != nil {
			t.Fatalf("current targets = %+v, %v", cur, err)
		}
		old, err := s.TUFFile(ctx, tn, "targets", 1)
		if err != nil || old.SupersededAt == nil || !old.SupersededAt.Equal(t2) {
			t.Fatalf("old targets = %+v, %v; want superseded at %s", old, err, t2)
		}
		if _, err := s.TUFFile(ctx, tn, "gw-300", 0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown role: %v, want ErrNotFound", err)
		}
		// Superseded files go after their grace period; roots never do.
		n, err := s.PruneTUFFiles(ctx, tn, t2)
		if err != nil || n != 0 {
			t.Fatalf("prune at the moment of superseding = %d, %v; want 0", n, err)
		}
		n, err = s.PruneTUFFiles(ctx, tn, t2.Add(time.Second))
		if err != nil || n != 3 { // targets 1, snapshot 1, timestamp 1
			t.Fatalf("prune = %d, %v; want 3", n, err)
		}
		if _, err := s.TUFFile(ctx, tn, "snapshot", 1); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("pruned snapshot: %v, want ErrNotFound", err)
		}
		if r, err := s.TUFFile(ctx, tn, "root", 1); err != nil || r.SupersededAt == nil {
			t.Fatalf("root 1 after pruning = %+v, %v; want kept and superseded", r, err)
		}
		if acts := e.auditActions(tn); !slices.Equal(acts, []string{"tuf.init"}) {
			t.Fatalf("audit %v, want the one audited write", acts)
		}
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g3, Now: t2}); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("empty write: %v, want ErrInvalidRequest", err)
		}
		e.verifyAudit()
	})

	t.Run("LeaseFencesPublishing", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		g, err := s.WriteTUF(ctx, tn, store.TUFWrite{Files: []store.TUFFile{tufFile("root", 1), tufFile("targets", 1)}, Now: T0})
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.AcquireLease(ctx, "tuf-publisher", "replica-a", 30*time.Second, T0)
		if err != nil || !a.Held("replica-a", T0) {
			t.Fatalf("acquire = %+v, %v", a, err)
		}
		if g, err = s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g, Lease: &a, Files: []store.TUFFile{tufFile("timestamp", 1)}, Now: T0}); err != nil {
			t.Fatalf("fenced write while holding the lease: %v", err)
		}
		// a pauses past its lease; b takes over and publishes.
		late := T0.Add(time.Minute)
		b, err := s.AcquireLease(ctx, "tuf-publisher", "replica-b", 30*time.Second, late)
		if err != nil || !b.Held("replica-b", late) {
			t.Fatalf("takeover = %+v, %v", b, err)
		}
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g, Lease: &a, Files: []store.TUFFile{tufFile("timestamp", 2)}, Now: late}); !errors.Is(err, store.ErrLeaseLost) {
			t.Fatalf("write by the old leader: %v, want ErrLeaseLost", err)
		}
		if _, err := s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g, Lease: &b, Files: []store.TUFFile{tufFile("timestamp", 2)}, Now: late}); err != nil {
			t.Fatalf("write by the new leader: %v", err)
		}
	})

	t.Run("ConcurrentWritersOneWins", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		g, err := s.WriteTUF(ctx, tn, store.TUFWrite{Files: []store.TUFFile{tufFile("root", 1), tufFile("targets", 1)}, Now: T0})
		if err != nil {
			t.Fatal(err)
		}
		// Every writer read generation g and tries a different next
		// snapshot; exactly one may commit.
		const writers = 8
		var wg sync.WaitGroup
		errs := make([]error, writers)
		for i := range writers {
			wg.Go(func() {
				f := tufFile("snapshot", 1)
				f.Data = fmt.Appendf(nil, `{"writer":%d}`, i)
				_, errs[i] = s.WriteTUF(ctx, tn, store.TUFWrite{Generation: g, Files: []store.TUFFile{f}, Now: T0})
			})
		}
		wg.Wait()
		won := 0
		for i, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("writer %d: %v, want success or ErrConflict", i, err)
			}
		}
		if won != 1 {
			t.Fatalf("%d writers committed on the same generation, want 1", won)
		}
		if g2, _ := s.TUFGeneration(ctx, tn); g2 != g+1 {
			t.Fatalf("generation %d, want %d", g2, g+1)
		}
	})

	t.Run("OnlineKeys", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		if ks, err := s.OnlineKeys(ctx, tn); err != nil || len(ks) != 0 {
			t.Fatalf("keys of a new store = %v, %v", ks, err)
		}
		sealed := []byte{0, 1, 2, 0xff, 'x'}
		k1 := store.OnlineKey{TenantID: tn, KeyID: "k1", Role: "snapshot", PublicKey: `{"keytype":"ed25519"}`, Sealed: sealed}
		if _, err := s.AddOnlineKey(ctx, k1, Admin, T0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddOnlineKey(ctx, store.OnlineKey{TenantID: tn, KeyID: "k2", Role: "director", PublicKey: "{}", Sealed: []byte("s")}, Admin, T0.Add(time.Second)); err != nil {
			t.Fatal(err)
		}
		if _, err := s.AddOnlineKey(ctx, k1, Admin, T0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("duplicate key id: %v, want ErrConflict", err)
		}
		if _, err := s.AddOnlineKey(ctx, store.OnlineKey{TenantID: tn, KeyID: "k3", Role: "timestamp"}, Admin, T0); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("key without material: %v, want ErrInvalidRequest", err)
		}
		ks, err := s.OnlineKeys(ctx, tn)
		if err != nil || len(ks) != 2 || ks[0].KeyID != "k1" || ks[1].KeyID != "k2" {
			t.Fatalf("keys = %+v, %v; want k1, k2", ks, err)
		}
		if !bytes.Equal(ks[0].Sealed, sealed) || ks[0].Role != "snapshot" || ks[0].PublicKey != k1.PublicKey || !ks[0].CreatedAt.Equal(T0) {
			t.Fatalf("k1 read back as %+v", ks[0])
		}
		if acts := e.auditActions("k1"); !slices.Equal(acts, []string{"tuf.online_key.add"}) {
			t.Fatalf("audit of k1: %v", acts)
		}
	})

	t.Run("DirectorDocumentsAndCounters", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		signer := func(subject string) func(int64) (store.DirectorDocument, error) {
			return func(c int64) (store.DirectorDocument, error) {
				return store.DirectorDocument{Subject: subject, Counter: c, Expires: T0.Add(time.Hour), Doc: fmt.Appendf(nil, "doc %s #%d", subject, c)}, nil
			}
		}
		never := func(store.DirectorDocument) bool { return false }
		always := func(store.DirectorDocument) bool { return true }
		if _, err := s.DirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("document before signing: %v, want ErrNotFound", err)
		}
		d1, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1", always, signer("gw/x/1/a"), T0)
		if err != nil || d1.Counter != 1 || string(d1.Doc) != "doc gw/x/1/a #1" {
			t.Fatalf("first document = %+v, %v; want counter 1", d1, err)
		}
		got, err := s.DirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1")
		if err != nil || got.Counter != 1 || !bytes.Equal(got.Doc, d1.Doc) || got.Subject != "gw/x/1/a" || !got.Expires.Equal(T0.Add(time.Hour)) {
			t.Fatalf("stored document = %+v, %v", got, err)
		}
		// A usable stored document is returned as is; nothing is signed.
		again, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1", always,
			func(int64) (store.DirectorDocument, error) {
				t.Fatal("signed although a document was reusable")
				return store.DirectorDocument{}, nil
			}, T0)
		if err != nil || !bytes.Equal(again.Doc, d1.Doc) {
			t.Fatalf("reuse = %+v, %v", again, err)
		}
		if c, _ := s.DirectorCounter(ctx, tn, "dev-1"); c != 1 {
			t.Fatalf("counter after reuse = %d, want 1", c)
		}
		d2, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1", never, signer("gw/x/1/b"), T0)
		if err != nil || d2.Counter != 2 {
			t.Fatalf("replacement = %+v, %v; want counter 2", d2, err)
		}
		fin, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorFinalize, "1.0.0", never, signer("5"), T0)
		if err != nil || fin.Counter != 3 {
			t.Fatalf("finalize = %+v, %v; want counter 3 from the same counter", fin, err)
		}
		// A failed signature stores nothing and spends no counter value.
		boom := errors.New("hsm unavailable")
		if _, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1", never,
			func(int64) (store.DirectorDocument, error) { return store.DirectorDocument{}, boom }, T0); !errors.Is(err, boom) {
			t.Fatalf("failed signing: %v, want the signer's error", err)
		}
		if c, _ := s.DirectorCounter(ctx, tn, "dev-1"); c != 3 {
			t.Fatalf("counter after a failed signature = %d, want 3", c)
		}
		if got, _ := s.DirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1"); got.Counter != 2 {
			t.Fatalf("document after a failed signature has counter %d, want 2", got.Counter)
		}
		// A signer must use the counter it was given.
		if _, err := s.SignDirectorDocument(ctx, tn, "dev-1", store.DirectorAssignment, "a1", never,
			func(c int64) (store.DirectorDocument, error) {
				return store.DirectorDocument{Counter: c - 1, Doc: []byte("x")}, nil
			}, T0); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("document with another counter: %v, want ErrInvalidRequest", err)
		}
		if c, _ := s.DirectorCounter(ctx, tn, "dev-2"); c != 0 {
			t.Fatalf("counter of an unknown device = %d, want 0", c)
		}
		// Concurrent signers for one device never share a counter value.
		const signers = 8
		var (
			wg       sync.WaitGroup
			mu       sync.Mutex
			counters []int64
		)
		for i := range signers {
			wg.Go(func() {
				d, err := s.SignDirectorDocument(ctx, tn, "dev-2", store.DirectorAssignment, "a"+strconv.Itoa(i), never, signer("p"), T0)
				if err != nil {
					t.Errorf("signer %d: %v", i, err)
					return
				}
				mu.Lock()
				counters = append(counters, d.Counter)
				mu.Unlock()
			})
		}
		wg.Wait()
		slices.Sort(counters)
		if want := []int64{1, 2, 3, 4, 5, 6, 7, 8}; !slices.Equal(counters, want) {
			t.Fatalf("concurrent counters %v, want %v", counters, want)
		}
	})

	t.Run("FinalizeRelease", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		s, ctx, tn := e.s, e.ctx, store.DefaultTenant
		draft := e.draft("1.0.0")
		if _, err := s.FinalizeRelease(ctx, tn, draft.ID, Admin, T0); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("finalize a draft: %v, want ErrConflict", err)
		}
		if _, err := s.FinalizeRelease(ctx, tn, "no-such-release", Admin, T0); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("finalize an unknown release: %v, want ErrNotFound", err)
		}
		r, err := s.CreateRelease(ctx, store.NewRelease{TenantID: tn, Version: "2.0.0", SecurityVersion: 7}, Admin, T0)
		if err != nil {
			t.Fatal(err)
		}
		e.addArtifact(rawImage(r.ID, "gw-200", "A"))
		if _, err := s.PublishRelease(ctx, tn, r.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		f, err := s.FinalizeRelease(ctx, tn, r.ID, Admin, T0.Add(time.Hour))
		if err != nil || f.Version != "2.0.0" || f.SecurityVersion != 7 || !f.FinalizedAt.Equal(T0.Add(time.Hour)) {
			t.Fatalf("finalize = %+v, %v", f, err)
		}
		again, err := s.FinalizeRelease(ctx, tn, r.ID, Admin, T0.Add(2*time.Hour))
		if err != nil || again != f {
			t.Fatalf("finalize again = %+v, %v; want the first record %+v", again, err, f)
		}
		list, err := s.FinalizedReleases(ctx, tn)
		if err != nil || len(list) != 1 || list[0] != f {
			t.Fatalf("finalized releases = %+v, %v", list, err)
		}
		if acts := e.auditActions(r.ID); !slices.Equal(acts, []string{"release.create", "release.add_artifact", "release.publish", "release.finalize"}) {
			t.Fatalf("audit of the release: %v", acts)
		}
		e.verifyAudit()
	})
}
