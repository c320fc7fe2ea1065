package storetest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
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
		if tables := tableNames(t, s); len(tables) != 0 {
			t.Fatalf("after a dry run the database has tables %v, want none", tables)
		}
		again, err := s.Migrate(ctx, sqlstore.MigrateOptions{DryRun: true, Now: T0})
		if err != nil || again.Current != 0 {
			t.Fatalf("after dry run: current=%d err=%v; want 0", again.Current, err)
		}
		// On a partly migrated database a dry run reads the applied
		// versions and still changes nothing.
		if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{To: 1, Now: T0}); err != nil {
			t.Fatal(err)
		}
		before := tableNames(t, s)
		st, err = s.Migrate(ctx, sqlstore.MigrateOptions{DryRun: true, Now: T0})
		if err != nil || st.Current != 1 || len(st.Pending) != st.Latest-1 {
			t.Fatalf("dry run at version 1: %+v, %v", st, err)
		}
		if after := tableNames(t, s); !slices.Equal(before, after) {
			t.Fatalf("dry run at version 1 changed the tables from %v to %v", before, after)
		}
	})
	t.Run("TableExists", func(t *testing.T) {
		s := h.NewStore(t)
		ctx := context.Background()
		conn, err := s.DB().Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		for name, want := range map[string]bool{"schema_migrations": true, "devices": true, "no_such_table": false} {
			if got, err := s.Dialect().TableExists(ctx, conn, name); err != nil || got != want {
				t.Errorf("TableExists(%s) = %v, %v; want %v", name, got, err, want)
			}
		}
	})
	t.Run("ChecksumsRecordedAndVerified", func(t *testing.T) {
		s := h.NewStore(t)
		ctx := context.Background()
		all, err := sqlstore.Migrations(s.Dialect())
		if err != nil {
			t.Fatal(err)
		}
		var recorded string
		if err := s.DB().QueryRowContext(ctx, `SELECT checksum FROM schema_migrations WHERE version = 2`).Scan(&recorded); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(all[1].SQL))
		if want := hex.EncodeToString(sum[:]); recorded != want {
			t.Fatalf("recorded checksum of %04d_%s = %s, want the SHA-256 of its SQL %s", all[1].Version, all[1].Name, recorded, want)
		}
		if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: T0}); err != nil {
			t.Fatalf("migrate an untouched database again: %v", err)
		}
		// As if 0002 had been edited after it was applied.
		if _, err := s.DB().ExecContext(ctx, `UPDATE schema_migrations SET checksum = 'deadbeef' WHERE version = 2`); err != nil {
			t.Fatal(err)
		}
		for _, dry := range []bool{false, true} {
			_, err := s.Migrate(ctx, sqlstore.MigrateOptions{DryRun: dry, Now: T0})
			var changed *sqlstore.MigrationChangedError
			if !errors.As(err, &changed) || changed.Version != 2 || changed.Recorded != "deadbeef" || changed.Current != recorded {
				t.Fatalf("migrate (dry run %v) after tampering: err = %v, want a *sqlstore.MigrationChangedError for version 2", dry, err)
			}
			want := fmt.Sprintf("migration 0002_%s was changed after it was applied", all[1].Name)
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("error %q does not say %q", err, want)
			}
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
		if _, err := s.DB().ExecContext(ctx, s.Dialect().Rebind(`INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES (?, 'from_the_future', 'unknown', 0)`), 9999); err != nil {
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

// tableNames lists the tables in the store's database (its current schema on
// PostgreSQL), sorted.
func tableNames(t *testing.T, s *sqlstore.Store) []string {
	t.Helper()
	q := `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name`
	if s.Dialect().Name() == "postgres" {
		q = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() ORDER BY table_name`
	}
	rows, err := s.DB().QueryContext(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
		out = append(out, n)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
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
