package tufrepotest_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
)

func TestServer(t *testing.T) {
	t.Parallel()
	s := tufrepotest.NewServer()
	_, err := s.Get(context.Background(), "2.root.json", 10)
	var nf *metadata.ErrDownloadHTTP
	if !errors.As(err, &nf) || nf.StatusCode != 404 {
		t.Fatalf("missing file: %v, want go-tuf's 404", err)
	}
	s.Put("timestamp.json", []byte("0123456789"))
	b, err := s.Get(context.Background(), "timestamp.json", 4)
	if err != nil || string(b) != "0123" {
		t.Fatalf("Get with a limit = %q, %v", b, err)
	}
	names, n := s.Stats()
	if len(names) != 1 || n != 4 {
		t.Fatalf("stats %v %d", names, n)
	}
}

func TestRepoPublishesAVerifiableRepository(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	r := tufrepotest.New(t, tufrepotest.Options{Clock: c, Lines: []string{"gw-200"}, RootKeys: 3, RootThreshold: 2})
	arts := r.Release("gw-200", tufrepotest.Release{Version: "1.0.0", Artifacts: 2, Size: 10})
	if len(arts) != 2 || len(arts[0].Data) != 10 || string(arts[0].Data) == string(arts[1].Data) {
		t.Fatalf("artifacts %+v", arts)
	}
	for _, name := range []string{"1.root.json", "timestamp.json", "2.snapshot.json", "1.targets.json", "1.gw-200.json"} {
		if r.Server.File(name) == nil {
			t.Errorf("%s not served", name)
		}
	}
	if err := tufrepo.VerifyFirstRoot(r.TrustedRoot(), 0); err != nil {
		t.Fatal(err)
	}
	if r.NextCounter("d") != 1 || r.NextCounter("d") != 2 || r.NextCounter("e") != 1 {
		t.Fatal("counters are not per device")
	}
}
