package server_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

// TestConcurrentFirstStartsCreateOneAdmin starts replicas on one fresh
// PostgreSQL database at once: all must start, exactly one creates and
// prints the admin, and the others print nothing.
func TestConcurrentFirstStartsCreateOneAdmin(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	// Replicas sharing a database share the key-encryption key.
	kek := filepath.Join(t.TempDir(), "signing.key")
	if err := os.WriteFile(kek, []byte(strings.Repeat("5a", 32)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// Migrate first: the race under test is the first-start bootstrap.
	st, err := server.OpenStore(context.Background(), server.Config{Database: dsn})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Migrate(context.Background(), sqlstore.MigrateOptions{Now: time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	st.Close()

	const n = 3
	srvs := make([]*server.Server, n)
	outs := make([]*bytes.Buffer, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		outs[i] = &bytes.Buffer{}
		cfg := server.Config{
			DataDir: t.TempDir(), Database: dsn, SigningKeyFile: kek, Addr: "127.0.0.1:0", Out: outs[i],
			Clock: clock.NewFake(time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)),
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			srvs[i], errs[i] = server.New(context.Background(), cfg)
		}()
	}
	wg.Wait()
	created := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("replica %d: %v", i, errs[i])
		}
		defer srvs[i].Close()
		if srvs[i].Initial() != nil {
			created++
			if !strings.Contains(outs[i].String(), srvs[i].Initial().Password) {
				t.Errorf("replica %d created the admin but did not print it", i)
			}
		} else if outs[i].Len() != 0 {
			t.Errorf("replica %d created nothing but printed:\n%s", i, outs[i])
		}
	}
	if created != 1 {
		t.Fatalf("%d replicas created the admin, want exactly 1", created)
	}
	if n, err := srvs[0].Store().CountUsers(context.Background(), store.DefaultTenant); err != nil || n != 1 {
		t.Fatalf("CountUsers = %d, %v; want 1", n, err)
	}
}
