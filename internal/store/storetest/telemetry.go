package storetest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// telHourly reads all roll-ups of one device's metric.
func telHourly(t *testing.T, s *sqlstore.Store, device, metric string) []store.HourlyRollup {
	t.Helper()
	r, err := s.TelemetryHourly(context.Background(), store.DefaultTenant, device, metric, time.Time{}, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func telRawCount(t *testing.T, s *sqlstore.Store) int {
	t.Helper()
	var n int
	if err := s.DB().QueryRowContext(context.Background(), `SELECT COUNT(*) FROM telemetry_raw`).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func testTelemetry(t *testing.T, h Harness) {
	t.Run("RollupWithOutOfOrderPoints", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		other, _ := regAccepted(t, s, "SN-2", T0)
		h0, h1 := T0, T0.Add(time.Hour)
		at := func(base time.Time, min int) time.Time { return base.Add(time.Duration(min) * time.Minute) }
		batch := []store.MetricPoint{
			{Name: "cpu", At: at(h0, 30), Value: 3},
			{Name: "cpu", At: at(h1, 20), Value: 7},
			{Name: "cpu", At: at(h0, 50), Value: 1}, // the latest of hour 0
			{Name: "mem", At: at(h0, 1), Value: 100},
			{Name: "cpu", At: at(h0, 5), Value: 9},
			{Name: "cpu", At: at(h0, 10), Value: 5},
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, batch); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, other.ID, []store.MetricPoint{{Name: "cpu", At: at(h0, 59), Value: 1000}}); err != nil {
			t.Fatal(err)
		}
		want := []store.HourlyRollup{
			{Metric: "cpu", Hour: h0, Count: 4, Sum: 18, Min: 1, Max: 9, Last: 1},
			{Metric: "cpu", Hour: h1, Count: 1, Sum: 7, Min: 7, Max: 7, Last: 7},
		}
		if got := telHourly(t, s, d.ID, "cpu"); !slices.Equal(got, want) {
			t.Fatalf("cpu roll-ups = %+v\nwant %+v", got, want)
		}
		all := telHourly(t, s, d.ID, "")
		if len(all) != 3 || all[0].Metric != "cpu" || all[1].Metric != "mem" || all[1].Last != 100 {
			t.Fatalf("all roll-ups = %+v; want cpu and mem of hour 0, then cpu of hour 1", all)
		}

		// A later batch with a newer point, then one with an older point:
		// last follows the time of the points, not their arrival.
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, []store.MetricPoint{{Name: "cpu", At: at(h0, 55), Value: -2}}); err != nil {
			t.Fatal(err)
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, []store.MetricPoint{{Name: "cpu", At: at(h0, 20), Value: 20}}); err != nil {
			t.Fatal(err)
		}
		want[0] = store.HourlyRollup{Metric: "cpu", Hour: h0, Count: 6, Sum: 36, Min: -2, Max: 20, Last: -2}
		if got := telHourly(t, s, d.ID, "cpu"); !slices.Equal(got, want) {
			t.Fatalf("cpu roll-ups after late points = %+v\nwant %+v", got, want)
		}

		// A batch sent again (its response was lost) is counted once.
		raw := telRawCount(t, s)
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, batch); err != nil {
			t.Fatal(err)
		}
		if got := telHourly(t, s, d.ID, "cpu"); !slices.Equal(got, want) || telRawCount(t, s) != raw {
			t.Fatalf("resent batch changed the roll-ups to %+v (raw points %d → %d)", got, raw, telRawCount(t, s))
		}

		points, err := s.TelemetryRaw(ctx, store.DefaultTenant, d.ID, "cpu", time.Time{}, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		var mins []string
		for i, p := range points {
			if i > 0 && p.At.Before(points[i-1].At) {
				t.Fatalf("raw points out of order: %+v", points)
			}
			mins = append(mins, fmt.Sprintf("%s=%g", p.At.Sub(h0), p.Value))
		}
		if wantRaw := []string{"5m0s=9", "10m0s=5", "20m0s=20", "30m0s=3", "50m0s=1", "55m0s=-2", "1h20m0s=7"}; !slices.Equal(mins, wantRaw) {
			t.Fatalf("raw cpu points = %v\nwant %v", mins, wantRaw)
		}
		// Ranges are [from, to).
		points, err = s.TelemetryRaw(ctx, store.DefaultTenant, d.ID, "cpu", at(h0, 10), at(h0, 50))
		if err != nil || len(points) != 3 || !points[0].At.Equal(at(h0, 10)) || !points[2].At.Equal(at(h0, 30)) {
			t.Fatalf("raw cpu points in [0:10, 0:50) = %+v, %v", points, err)
		}
		hourly, err := s.TelemetryHourly(ctx, store.DefaultTenant, d.ID, "cpu", h1, h1.Add(time.Hour))
		if err != nil || len(hourly) != 1 || !hourly[0].Hour.Equal(h1) {
			t.Fatalf("roll-ups of hour 1 = %+v, %v", hourly, err)
		}
		if got := telHourly(t, s, other.ID, "cpu"); len(got) != 1 || got[0].Sum != 1000 {
			t.Fatalf("other device's roll-ups = %+v", got)
		}
	})

	t.Run("BatchValidation", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		full := make([]store.MetricPoint, sqlstore.MaxTelemetryBatch)
		for i := range full {
			full[i] = store.MetricPoint{Name: "uptime", At: T0.Add(time.Duration(i) * time.Minute), Value: float64(i)}
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, full); err != nil {
			t.Fatalf("a full batch: %v", err)
		}
		var count int64
		var sum float64
		for _, r := range telHourly(t, s, d.ID, "uptime") {
			count += r.Count
			sum += r.Sum
			if r.Last != r.Max {
				t.Fatalf("roll-up %+v: uptime grows, so last must be max", r)
			}
		}
		if count != sqlstore.MaxTelemetryBatch || sum != 999*1000/2 {
			t.Fatalf("roll-ups of a full batch: count %d sum %g; want %d and %d", count, sum, sqlstore.MaxTelemetryBatch, 999*1000/2)
		}

		raw := telRawCount(t, s)
		good := store.MetricPoint{Name: "battery", At: T0, Value: 80}
		for _, tc := range []struct {
			name   string
			points []store.MetricPoint
			want   error
		}{
			{"too many", append(slices.Clone(full), good), store.ErrInvalidRequest},
			{"NaN", []store.MetricPoint{good, {Name: "battery", At: T0.Add(time.Second), Value: math.NaN()}}, store.ErrInvalidRequest},
			{"infinity", []store.MetricPoint{good, {Name: "battery", At: T0.Add(time.Second), Value: math.Inf(-1)}}, store.ErrInvalidRequest},
			{"no name", []store.MetricPoint{good, {At: T0, Value: 1}}, store.ErrInvalidRequest},
			{"bad name", []store.MetricPoint{good, {Name: "bat tery", At: T0, Value: 1}}, store.ErrInvalidRequest},
			{"no time", []store.MetricPoint{good, {Name: "battery", Value: 1}}, store.ErrInvalidRequest},
		} {
			if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, tc.points); !errors.Is(err, tc.want) {
				t.Fatalf("%s: %v, want %v", tc.name, err, tc.want)
			}
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, "nope", []store.MetricPoint{good}); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("unknown device: %v, want ErrNotFound", err)
		}
		if n := telRawCount(t, s); n != raw {
			t.Fatalf("refused batches stored %d points", n-raw)
		}
		if got := telHourly(t, s, d.ID, "battery"); len(got) != 0 {
			t.Fatalf("refused batches left roll-ups %+v", got)
		}
		// Two points of one metric at one instant: the first counts.
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, []store.MetricPoint{good, {Name: "battery", At: T0, Value: 10}}); err != nil {
			t.Fatal(err)
		}
		if got := telHourly(t, s, d.ID, "battery"); len(got) != 1 || got[0].Count != 1 || got[0].Last != 80 {
			t.Fatalf("duplicate instants: %+v; want one point of 80", got)
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, nil); err != nil {
			t.Fatalf("empty batch: %v", err)
		}
	})

	t.Run("Prune", func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		d, _ := regAccepted(t, s, "SN-1", T0)
		day := 24 * time.Hour
		var points []store.MetricPoint
		for _, age := range []time.Duration{60 * day, 10 * day, 8 * day, day, 0} {
			points = append(points, store.MetricPoint{Name: "boots", At: T0.Add(-age), Value: 1})
		}
		if err := s.RecordTelemetry(ctx, store.DefaultTenant, d.ID, points); err != nil {
			t.Fatal(err)
		}
		// Raw points older than a week (3) and roll-ups older than 8 weeks (1).
		n, err := s.PruneTelemetry(ctx, T0.Add(-7*day), T0.Add(-56*day))
		if err != nil || n != 4 {
			t.Fatalf("PruneTelemetry = %d, %v; want 4 rows", n, err)
		}
		raw, err := s.TelemetryRaw(ctx, store.DefaultTenant, d.ID, "boots", time.Time{}, time.Time{})
		if err != nil || len(raw) != 2 || !raw[0].At.Equal(T0.Add(-day)) {
			t.Fatalf("raw points after pruning = %+v, %v", raw, err)
		}
		if got := telHourly(t, s, d.ID, "boots"); len(got) != 4 || !got[0].Hour.Equal(T0.Add(-10*day)) {
			t.Fatalf("roll-ups after pruning = %+v; want the four of the last 8 weeks", got)
		}
		if n, err := s.PruneTelemetry(ctx, time.Time{}, time.Time{}); err != nil || n != 0 {
			t.Fatalf("PruneTelemetry with zero cut-offs = %d, %v; want 0", n, err)
		}
	})
}
