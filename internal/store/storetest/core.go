package storetest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

func testMigrations(t *testing.T, h Harness) {
	t.Run("DryRunChangesNothing", func(t *testing.T) {
		s := h.Open(t)
		ctx := context.Background()
		st, err := s.Migrate(ctx, sqlstore.MigrateOptions{DryRun: true, Now: T0})
		if err != nil {
			t.Fatal(err)
		}
		if st.Current != 0 || len(st.Pending) != st.Latest || st.Latest < 2 {
			t.Fatalf("dry run status = %+v, want all %d pending at version 0", st, st.Latest)
		}
		again, err := s.Migrate(ctx, sqlstore.MigrateOptions{DryRun: true, Now: T0})
		if err != nil || again.Current != 0 {
			t.Fatalf("after dry run: current=%d err=%v; want 0", again.Current, err)
		}
	})
	t.Run("UpgradeFromPreviousSet", func(t *testing.T) {
		// A database created by the previous migration set, holding data,
		// upgrades to the latest schema and keeps the data.
		s := h.Open(t)
		ctx := context.Background()
		all, err := sqlstore.Migrations(s.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		prev := len(all) - 1
		if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{To: prev, Now: T0}); err != nil {
			t.Fatalf("migrate to %d: %v", prev, err)
		}
		if err := s.AppendAudit(ctx, store.DefaultTenant, Admin, "test.before_upgrade", "test", "x", nil, T0); err != nil {
			t.Fatalf("write at version %d: %v", prev, err)
		}
		st, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: T0})
		if err != nil {
			t.Fatalf("upgrade: %v", err)
		}
		if st.Current != len(all) {
			t.Fatalf("upgraded to %d, want %d", st.Current, len(all))
		}
		entries, _, err := s.ListAudit(ctx, store.DefaultTenant, store.AuditQuery{Action: "test.before_upgrade"})
		if err != nil || len(entries) != 1 {
			t.Fatalf("data written before the upgrade: %d entries, err %v", len(entries), err)
		}
	})
	t.Run("RefusesNewerSchema", func(t *testing.T) {
		s := h.NewStore(t)
		ctx := context.Background()
		if _, err := s.DB().ExecContext(ctx, s.Dialect().Rebind(`INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, 'from_the_future', 0)`), 9999); err != nil {
			t.Fatal(err)
		}
		_, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: T0})
		if !errors.Is(err, store.ErrSchemaTooNew) {
			t.Fatalf("migrate on a newer schema: err = %v, want ErrSchemaTooNew", err)
		}
	})
	t.Run("ConcurrentMigratorsAgree", func(t *testing.T) {
		s := h.Open(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.Migrate(ctx, sqlstore.MigrateOptions{Now: T0})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("concurrent migrate: %v", err)
			}
		}
	})
}

func testAudit(t *testing.T, h Harness) {
	t.Run("ChainVerifiesAndDetectsTampering", func(t *testing.T) {
		// Each case tampers with a fresh chain of five test entries; seqs
		// maps their object ids to sequence numbers.
		setup := func(t *testing.T) (s *sqlstore.Store, seqs map[string]int64, last int64) {
			s = h.NewStore(t)
			ctx := context.Background()
			for i := range 5 {
				if err := s.AppendAudit(ctx, store.DefaultTenant, Admin, "test.action", "thing", fmt.Sprint(i), map[string]int{"i": i}, T0); err != nil {
					t.Fatal(err)
				}
			}
			n, err := s.VerifyAudit(ctx, store.DefaultTenant)
			if err != nil || n < 5 {
				t.Fatalf("verify the untouched chain: n=%d err=%v", n, err)
			}
			entries, _, err := s.ListAudit(ctx, store.DefaultTenant, store.AuditQuery{Action: "test.action"})
			if err != nil || len(entries) != 5 {
				t.Fatalf("list: %d entries, %v", len(entries), err)
			}
			seqs = map[string]int64{}
			for _, e := range entries {
				seqs[e.ObjectID] = e.Seq
			}
			if seqs["4"] != int64(n) {
				t.Fatalf("the last test entry is %d of %d", seqs["4"], n)
			}
			return s, seqs, int64(n)
		}
		for _, tc := range []struct {
			name    string
			tamper  string // SQL; its one parameter is the sequence number of the entry with object id "2"
			seq     func(mid, last int64) int64
			checked func(mid, last int64) int64
			problem string
		}{
			{"AlteredEntry", `UPDATE audit_log SET object_id = 'forged' WHERE seq = ?`,
				func(mid, _ int64) int64 { return mid }, func(mid, _ int64) int64 { return mid - 1 }, "altered"},
			{"AlteredDetailsNotJSON", `UPDATE audit_log SET details = '{"i":' WHERE seq = ?`,
				func(mid, _ int64) int64 { return mid }, func(mid, _ int64) int64 { return mid - 1 }, "not valid JSON"},
			{"RewrittenPrevHash", `UPDATE audit_log SET prev_hash = 'f00d' WHERE seq = ?`,
				func(mid, _ int64) int64 { return mid }, func(mid, _ int64) int64 { return mid - 1 }, "previous hash"},
			{"Gap", `DELETE FROM audit_log WHERE seq = ?`,
				func(mid, _ int64) int64 { return mid }, func(mid, _ int64) int64 { return mid - 1 }, "missing"},
			{"RemovedTail", `DELETE FROM audit_log WHERE seq > ?`,
				func(mid, _ int64) int64 { return mid + 1 }, func(mid, _ int64) int64 { return mid }, "removed"},
			{"HeadMovedBack", `UPDATE audit_heads SET seq = ?`,
				func(mid, _ int64) int64 { return mid + 1 }, func(_, last int64) int64 { return last }, "chain head"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				t.Parallel()
				s, seqs, last := setup(t)
				ctx := context.Background()
				mid := seqs["2"]
				if _, err := s.DB().ExecContext(ctx, s.Dialect().Rebind(tc.tamper), mid); err != nil {
					t.Fatal(err)
				}
				n, err := s.VerifyAudit(ctx, store.DefaultTenant)
				var broken *store.AuditBrokenError
				if !errors.As(err, &broken) || !errors.Is(err, store.ErrAuditBroken) {
					t.Fatalf("verify after tampering: err = %v, want a *store.AuditBrokenError", err)
				}
				if broken.Seq != tc.seq(mid, last) || !strings.Contains(broken.Problem, tc.problem) {
					t.Fatalf("broken at %d (%q), want %d with %q", broken.Seq, broken.Problem, tc.seq(mid, last), tc.problem)
				}
				if int64(n) != tc.checked(mid, last) {
					t.Fatalf("checked %d entries before the break, want %d", n, tc.checked(mid, last))
				}
				if !strings.Contains(err.Error(), fmt.Sprint(broken.Seq)) {
					t.Fatalf("error %q does not name entry %d", err, broken.Seq)
				}
			})
		}
	})
	t.Run("DatabaseFailureIsNotTampering", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		if err := s.AppendAudit(context.Background(), store.DefaultTenant, Admin, "test.action", "thing", "x", nil, T0); err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		_, err := s.VerifyAudit(ctx, store.DefaultTenant)
		if err == nil || errors.Is(err, store.ErrAuditBroken) {
			t.Fatalf("verify with a canceled context: err = %v, want a failure that is not ErrAuditBroken", err)
		}
		if n, err := s.VerifyAudit(context.Background(), "no-such-tenant"); err != nil || n != 0 {
			t.Fatalf("verify an empty chain: n=%d err=%v, want 0 and nil", n, err)
		}
	})
	t.Run("PaginatesNewestFirstWithFilters", func(t *testing.T) {
		s := h.NewStore(t)
		ctx := context.Background()
		for i := range 7 {
			action := "a.even"
			if i%2 == 1 {
				action = "a.odd"
			}
			if err := s.AppendAudit(ctx, store.DefaultTenant, Admin, action, "thing", fmt.Sprint(i), nil, T0); err != nil {
				t.Fatal(err)
			}
		}
		var got []string
		after := ""
		for {
			page, next, err := s.ListAudit(ctx, store.DefaultTenant, store.AuditQuery{Action: "a.even", Page: store.Page{Limit: 2, After: after}})
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range page {
				got = append(got, e.ObjectID)
			}
			if next == "" {
				break
			}
			after = next
		}
		if strings.Join(got, ",") != "6,4,2,0" {
			t.Fatalf("paged even entries = %v, want 6,4,2,0", got)
		}
		if _, _, err := s.ListAudit(ctx, store.DefaultTenant, store.AuditQuery{Page: store.Page{After: "!!not-a-cursor"}}); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("bad cursor: err = %v, want ErrInvalidRequest", err)
		}
	})
	t.Run("ConcurrentAppendsKeepOneChain", func(t *testing.T) {
		s := h.NewStore(t)
		ctx := context.Background()
		var wg sync.WaitGroup
		errs := make(chan error, 40)
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs <- s.AppendAudit(ctx, store.DefaultTenant, Admin, "test.concurrent", "thing", fmt.Sprint(i), nil, T0)
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n, err := s.VerifyAudit(ctx, store.DefaultTenant); err != nil || n < 40 {
			t.Fatalf("verify: n=%d err=%v", n, err)
		}
	})
}

func testSecrets(t *testing.T, h Harness) {
	s := h.NewStore(t)
	ctx := context.Background()
	calls := 0
	gen := func() ([]byte, error) { calls++; return []byte{1, 2, 3, byte(calls)}, nil }
	a, err := s.Secret(ctx, "k", gen)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Secret(ctx, "k", gen)
	if err != nil {
		t.Fatal(err)
	}
	if string(a) != string(b) || calls != 1 {
		t.Fatalf("secret changed between calls (%x, %x) or generated %d times", a, b, calls)
	}
}
