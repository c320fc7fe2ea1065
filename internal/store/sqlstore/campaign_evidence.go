package sqlstore

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Evidence queries: telemetry of one hour split into the campaign's canary
// and control arms, and a release's install outcomes. Each reads only the
// rows it reports on (one hour of roll-ups, one release's assignments).

// armCase classifies a campaign device in the hour [?, ?): canary when its
// soak started by the hour's start and it still runs the release, control
// while it had no assignment of the campaign before the hour's end.
const armCase = `CASE
	WHEN cd.state = 'succeeded' AND cd.soak_started_at IS NOT NULL AND cd.soak_started_at <= ? THEN 1
	WHEN cd.state IN ('queued', 'assigned') AND (cd.assigned_at IS NULL OR cd.assigned_at >= ?) THEN 2
	ELSE 0 END`

// CampaignHourCounts implements store.Campaigns.
func (s *Store) CampaignHourCounts(ctx context.Context, tenant, campaignID string, metrics []string, hour time.Time) ([]store.HourlyCount, []store.ArmExposure, error) {
	if len(metrics) == 0 {
		return nil, nil, nil
	}
	h := hourOf(micros(hour))
	end := h + int64(time.Hour/time.Microsecond)
	// Parameters in query order: the CASE's two, the join's campaign,
	// the tenant, the metrics and the hour.
	args := []any{h, end, campaignID, tenant}
	for _, m := range metrics {
		args = append(args, m)
	}
	args = append(args, h)
	from := ` FROM telemetry_hourly th JOIN campaign_devices cd ON cd.tenant_id = th.tenant_id AND cd.device_id = th.device_id AND cd.campaign_id = ?
		WHERE th.tenant_id = ? AND th.metric IN (` + placeholders(len(metrics)) + `) AND th.hour = ?`
	rows, err := s.query(ctx, `SELECT arm, stratum, metric, COUNT(*) FROM (SELECT `+armCase+` AS arm, cd.stratum, th.metric`+from+`) x
		WHERE arm > 0 GROUP BY arm, stratum, metric`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("campaign exposure: %w", err)
	}
	var exp []store.ArmExposure
	for rows.Next() {
		var e store.ArmExposure
		if err := rows.Scan(&e.Arm, &e.Stratum, &e.Metric, &e.Hours); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("campaign exposure: %w", err)
		}
		exp = append(exp, e)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("campaign exposure: %w", err)
	}
	rows, err = s.query(ctx, `SELECT arm, stratum, metric, device_id, total FROM (SELECT `+armCase+` AS arm, cd.stratum, th.metric, th.device_id, th.sum AS total`+from+` AND th.sum > 0) x
		WHERE arm > 0 ORDER BY device_id, metric`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("campaign events: %w", err)
	}
	defer rows.Close()
	var counts []store.HourlyCount
	for rows.Next() {
		var c store.HourlyCount
		if err := rows.Scan(&c.Arm, &c.Stratum, &c.Metric, &c.DeviceID, &c.Sum); err != nil {
			return nil, nil, fmt.Errorf("campaign events: %w", err)
		}
		counts = append(counts, c)
	}
	return counts, exp, rows.Err()
}

// TelemetrySums implements store.Campaigns.
func (s *Store) TelemetrySums(ctx context.Context, tenant, metric string, deviceIDs []string, from, to time.Time) (map[string]float64, error) {
	out := map[string]float64{}
	for chunk := range slices.Chunk(deviceIDs, 500) {
		args := []any{tenant, metric, micros(from), micros(to)}
		for _, id := range chunk {
			args = append(args, id)
		}
		rows, err := s.query(ctx, `SELECT device_id, SUM(sum) FROM telemetry_hourly WHERE tenant_id = ? AND metric = ? AND hour >= ? AND hour < ?
			AND device_id IN (`+placeholders(len(chunk))+`) GROUP BY device_id`, args...)
		if err != nil {
			return nil, fmt.Errorf("telemetry sums: %w", err)
		}
		for rows.Next() {
			var id string
			var v float64
			if err := rows.Scan(&id, &v); err != nil {
				rows.Close()
				return nil, fmt.Errorf("telemetry sums: %w", err)
			}
			out[id] = v
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return nil, fmt.Errorf("telemetry sums: %w", err)
		}
	}
	return out, nil
}

// ReleaseOutcomes implements store.Campaigns.
func (s *Store) ReleaseOutcomes(ctx context.Context, tenant, releaseID string) (int, int, error) {
	var devices, failures int
	err := s.queryRow(ctx, `SELECT COUNT(*), COALESCE(SUM(CASE WHEN state IN ('failed', 'rolled-back', 'timed-out') THEN 1 ELSE 0 END), 0)
		FROM assignments WHERE tenant_id = ? AND release_id = ? AND state IN ('succeeded', 'failed', 'rolled-back', 'timed-out')`,
		tenant, releaseID).Scan(&devices, &failures)
	if err != nil {
		return 0, 0, fmt.Errorf("release outcomes: %w", err)
	}
	return devices, failures, nil
}

var _ store.Campaigns = (*Store)(nil)
