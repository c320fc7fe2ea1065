package reliability_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/reliability"
	"github.com/updraft/updraft/internal/testenv"
)

// binary is ./cmd/updraft, built once for this test binary.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "updraft-reliability-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary, err = reliability.Build(context.Background(), dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// scenario runs the reliability scenario on a small fleet with every
// fault and checks every goal.
func scenario(t *testing.T, database string, seed uint64) {
	t.Helper()
	var progress strings.Builder
	rep, err := reliability.Run(context.Background(), reliability.Config{
		Binary: binary, Dir: t.TempDir(), Database: database, Devices: 120, Seed: seed, TimeScale: 200, MinSoak: 15 * time.Minute,
		Faults:   reliability.StandardFaults(),
		Progress: func(format string, args ...any) { fmt.Fprintf(&progress, format+"\n", args...) },
	})
	if rep != nil {
		var table strings.Builder
		_ = reliability.WriteTable(&table, rep)
		t.Logf("seed %d\n%s%s", seed, table.String(), progress.String())
	}
	if err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
	for _, p := range rep.Problems() {
		t.Errorf("seed %d: %s", seed, p)
	}
	if t.Failed() {
		t.Logf("rerun with seed %d: %s", seed, rep.Summary())
	}
}

func TestReliabilitySQLite(t *testing.T) {
	t.Parallel()
	scenario(t, "", 1)
}

func TestReliabilityPostgres(t *testing.T) {
	t.Parallel()
	scenario(t, testenv.Postgres(t), 2)
}
