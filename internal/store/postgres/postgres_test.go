package postgres_test

import (
	"context"
	"testing"

	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/store/storetest"
	"github.com/updraft/updraft/internal/testenv"
)

// open gives every call its own, freshly created database, dropped when the
// test ends.
func open(t *testing.T) *sqlstore.Store {
	t.Helper()
	dsn := testenv.Postgres(t)
	s, err := postgres.Open(context.Background(), dsn, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, storetest.Harness{Open: open})
}
