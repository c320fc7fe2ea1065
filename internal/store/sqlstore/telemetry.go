package sqlstore

import (
	"cmp"
	"context"
	"fmt"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Telemetry: raw points keyed by (device, metric, at) and hourly roll-ups
// per (device, metric, UTC hour). A point that is already stored (a batch
// sent again after a lost response) is ignored, so it is counted once; the
// roll-up's last value is that of the latest point, whatever order points
// arrive in.

// MaxTelemetryBatch is the most points RecordTelemetry takes in one call.
const MaxTelemetryBatch = 1000

var metricPattern = regexp.MustCompile(`^[A-Za-z0-9._:/-]{1,128}$`)

// Rows per multi-row statement: 5 or 10 parameters each, well below the
// parameter limits of both databases.
const (
	rawInsertRows = 200
	rollupRows    = 100
)

type metricHour struct {
	metric string
	hour   int64
}

type rollup struct {
	metric        string
	hour          int64
	count         int64
	sum, min, max float64
	last          float64
	lastAt        int64
}

func newRollup(mh metricHour, at int64, v float64) *rollup {
	return &rollup{metric: mh.metric, hour: mh.hour, count: 1, sum: v, min: v, max: v, last: v, lastAt: at}
}

func (r *rollup) add(at int64, v float64) {
	r.count++
	r.sum += v
	r.min = min(r.min, v)
	r.max = max(r.max, v)
	if at > r.lastAt {
		r.last, r.lastAt = v, at
	}
}

// RecordTelemetry implements store.Telemetry: the new raw points and their
// hourly roll-ups in one transaction, for an existing device. Batches over
// MaxTelemetryBatch points, bad metric names, zero times and non-finite
// values are refused with ErrInvalidRequest and store nothing.
func (s *Store) RecordTelemetry(ctx context.Context, tenant, deviceID string, points []store.MetricPoint) error {
	if len(points) == 0 {
		return nil
	}
	if len(points) > MaxTelemetryBatch {
		return fmt.Errorf("record telemetry: %w: %d points, at most %d per batch", store.ErrInvalidRequest, len(points), MaxTelemetryBatch)
	}
	type key struct {
		metric string
		at     int64
	}
	values := make(map[key]float64, len(points))
	var order []key
	for _, p := range points {
		if !metricPattern.MatchString(p.Name) {
			return fmt.Errorf("record telemetry: %w: metric name %q: want 1 to 128 of A-Z a-z 0-9 . _ : / -", store.ErrInvalidRequest, p.Name)
		}
		if p.At.IsZero() {
			return fmt.Errorf("record telemetry: %w: metric %s point without time", store.ErrInvalidRequest, p.Name)
		}
		if math.IsNaN(p.Value) || math.IsInf(p.Value, 0) {
			return fmt.Errorf("record telemetry: %w: metric %s value %v is not a finite number", store.ErrInvalidRequest, p.Name, p.Value)
		}
		k := key{p.Name, micros(p.At)}
		if _, dup := values[k]; dup {
			continue // the first of two points at the same instant wins, as in the table
		}
		values[k] = p.Value
		order = append(order, k)
	}
	err := s.tx(ctx, func(t *txn) error {
		var one int
		if err := t.queryRow(ctx, `SELECT 1 FROM devices WHERE tenant_id = ? AND id = ?`, tenant, deviceID).Scan(&one); err != nil {
			return notFound(err, "device "+deviceID)
		}
		rollups := map[metricHour]*rollup{}
		for chunk := range slices.Chunk(order, rawInsertRows) {
			args := make([]any, 0, 5*len(chunk))
			for _, k := range chunk {
				args = append(args, tenant, deviceID, k.metric, k.at, values[k])
			}
			rows, err := t.query(ctx, `INSERT INTO telemetry_raw (tenant_id, device_id, metric, at, value) VALUES `+
				rowsOf(5, len(chunk))+` ON CONFLICT (tenant_id, device_id, metric, at) DO NOTHING RETURNING metric, at`, args...)
			if err != nil {
				return fmt.Errorf("insert raw points: %w", err)
			}
			for rows.Next() {
				var k key
				if err := rows.Scan(&k.metric, &k.at); err != nil {
					rows.Close()
					return fmt.Errorf("insert raw points: %w", err)
				}
				mh := metricHour{k.metric, hourOf(k.at)}
				if r := rollups[mh]; r != nil {
					r.add(k.at, values[k])
				} else {
					rollups[mh] = newRollup(mh, k.at, values[k])
				}
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return fmt.Errorf("insert raw points: %w", err)
			}
		}
		// A fixed order keeps concurrent batches of one device from
		// deadlocking on PostgreSQL.
		sorted := slices.SortedFunc(maps.Values(rollups), func(a, b *rollup) int {
			return cmp.Or(strings.Compare(a.metric, b.metric), cmp.Compare(a.hour, b.hour))
		})
		for chunk := range slices.Chunk(sorted, rollupRows) {
			args := make([]any, 0, 10*len(chunk))
			for _, r := range chunk {
				args = append(args, tenant, deviceID, r.metric, r.hour, r.count, r.sum, r.min, r.max, r.last, r.lastAt)
			}
			if _, err := t.exec(ctx, `INSERT INTO telemetry_hourly (tenant_id, device_id, metric, hour, count, sum, min, max, last, last_at)
				VALUES `+rowsOf(10, len(chunk))+`
				ON CONFLICT (tenant_id, device_id, metric, hour) DO UPDATE SET
					count = telemetry_hourly.count + excluded.count,
					sum = telemetry_hourly.sum + excluded.sum,
					min = CASE WHEN excluded.min < telemetry_hourly.min THEN excluded.min ELSE telemetry_hourly.min END,
					max = CASE WHEN excluded.max > telemetry_hourly.max THEN excluded.max ELSE telemetry_hourly.max END,
					last = CASE WHEN excluded.last_at > telemetry_hourly.last_at THEN excluded.last ELSE telemetry_hourly.last END,
					last_at = CASE WHEN excluded.last_at > telemetry_hourly.last_at THEN excluded.last_at ELSE telemetry_hourly.last_at END`,
				args...); err != nil {
				return fmt.Errorf("update hourly roll-ups: %w", err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("record telemetry of device %s: %w", deviceID, err)
	}
	return nil
}

// rowsOf returns n parenthesised rows of width placeholders each.
func rowsOf(width, n int) string {
	row := "(" + placeholders(width) + ")"
	return strings.TrimSuffix(strings.Repeat(row+", ", n), ", ")
}

// hourOf truncates a stored time to the start of its UTC hour.
func hourOf(us int64) int64 {
	const hour = int64(time.Hour / time.Microsecond)
	h := us / hour * hour
	if us < 0 && us%hour != 0 {
		h -= hour // floor, not truncation toward zero
	}
	return h
}

// timeRange adds "col >= from AND col < to" to a query; a zero bound is open.
func timeRange(where string, args []any, col string, from, to time.Time) (string, []any) {
	if !from.IsZero() {
		where += ` AND ` + col + ` >= ?`
		args = append(args, micros(from))
	}
	if !to.IsZero() {
		where += ` AND ` + col + ` < ?`
		args = append(args, micros(to))
	}
	return where, args
}

// TelemetryRaw implements store.Telemetry: the device's points with
// from <= at < to, by time; an empty metric means every metric, and a zero
// bound is open.
func (s *Store) TelemetryRaw(ctx context.Context, tenant, deviceID, metric string, from, to time.Time) ([]store.MetricPoint, error) {
	where := `tenant_id = ? AND device_id = ?`
	args := []any{tenant, deviceID}
	if metric != "" {
		where += ` AND metric = ?`
		args = append(args, metric)
	}
	where, args = timeRange(where, args, "at", from, to)
	rows, err := s.query(ctx, `SELECT metric, at, value FROM telemetry_raw WHERE `+where+` ORDER BY at, metric`, args...)
	if err != nil {
		return nil, fmt.Errorf("read telemetry: %w", err)
	}
	defer rows.Close()
	out := []store.MetricPoint{}
	for rows.Next() {
		var p store.MetricPoint
		var at int64
		if err := rows.Scan(&p.Name, &at, &p.Value); err != nil {
			return nil, fmt.Errorf("read telemetry: %w", err)
		}
		p.At = fromMicros(at)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read telemetry: %w", err)
	}
	return out, nil
}

// TelemetryHourly implements store.Telemetry: the device's roll-ups of the
// hours that start in [from, to), by hour; an empty metric means every
// metric, and a zero bound is open.
func (s *Store) TelemetryHourly(ctx context.Context, tenant, deviceID, metric string, from, to time.Time) ([]store.HourlyRollup, error) {
	where := `tenant_id = ? AND device_id = ?`
	args := []any{tenant, deviceID}
	if metric != "" {
		where += ` AND metric = ?`
		args = append(args, metric)
	}
	where, args = timeRange(where, args, "hour", from, to)
	rows, err := s.query(ctx, `SELECT metric, hour, count, sum, min, max, last FROM telemetry_hourly WHERE `+where+` ORDER BY hour, metric`, args...)
	if err != nil {
		return nil, fmt.Errorf("read telemetry roll-ups: %w", err)
	}
	defer rows.Close()
	out := []store.HourlyRollup{}
	for rows.Next() {
		var r store.HourlyRollup
		var hour int64
		if err := rows.Scan(&r.Metric, &hour, &r.Count, &r.Sum, &r.Min, &r.Max, &r.Last); err != nil {
			return nil, fmt.Errorf("read telemetry roll-ups: %w", err)
		}
		r.Hour = fromMicros(hour)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read telemetry roll-ups: %w", err)
	}
	return out, nil
}

// PruneTelemetry implements store.Telemetry for every tenant: raw points
// before rawBefore and roll-ups of hours starting before hourlyBefore. A
// zero time prunes nothing from its table.
func (s *Store) PruneTelemetry(ctx context.Context, rawBefore, hourlyBefore time.Time) (int64, error) {
	var total int64
	for _, p := range []struct {
		table, col string
		before     time.Time
	}{
		{"telemetry_raw", "at", rawBefore},
		{"telemetry_hourly", "hour", hourlyBefore},
	} {
		if p.before.IsZero() {
			continue
		}
		res, err := s.write.ExecContext(ctx, s.d.Rebind(`DELETE FROM `+p.table+` WHERE `+p.col+` < ?`), micros(p.before))
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", p.table, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune %s: %w", p.table, err)
		}
		total += n
	}
	return total, nil
}
