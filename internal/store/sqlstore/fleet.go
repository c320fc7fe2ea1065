package sqlstore

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Fleet overview counts (store.FleetStats).

// CountDevicesSeen implements store.FleetStats: one GROUP BY over the
// tenant's devices.
func (s *Store) CountDevicesSeen(ctx context.Context, tenant string, since time.Time) (map[store.DeviceState]store.SeenCounts, error) {
	rows, err := s.query(ctx, `SELECT state, CASE WHEN last_seen_at IS NULL THEN 0 WHEN last_seen_at >= ? THEN 1 ELSE 2 END, COUNT(*)
		FROM devices WHERE tenant_id = ? GROUP BY 1, 2`, micros(since), tenant)
	if err != nil {
		return nil, fmt.Errorf("count devices by last seen: %w", err)
	}
	defer rows.Close()
	out := map[store.DeviceState]store.SeenCounts{}
	for rows.Next() {
		var (
			state string
			kind  int
			n     int
		)
		if err := rows.Scan(&state, &kind, &n); err != nil {
			return nil, fmt.Errorf("count devices by last seen: %w", err)
		}
		c := out[store.DeviceState(state)]
		switch kind {
		case 0:
			c.Never += n
		case 1:
			c.Recent += n
		default:
			c.Earlier += n
		}
		out[store.DeviceState(state)] = c
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count devices by last seen: %w", err)
	}
	return out, nil
}

// AssignmentOutcomes implements store.FleetStats. There is no index on
// assignments.updated_at: both queries scan the tenant's assignments.
func (s *Store) AssignmentOutcomes(ctx context.Context, tenant string, q store.OutcomeQuery) (map[store.AssignmentState]int, []store.Assignment, error) {
	counts := map[store.AssignmentState]int{}
	if len(q.States) == 0 {
		return counts, nil, nil
	}
	if q.Recent < 0 || q.Recent > store.MaxPageLimit {
		return nil, nil, invalidf("recent assignments: %d is not from 0 to %d", q.Recent, store.MaxPageLimit)
	}
	marks := strings.TrimSuffix(strings.Repeat("?, ", len(q.States)), ", ")
	args := []any{tenant}
	for _, st := range q.States {
		args = append(args, string(st))
	}
	args = append(args, micros(q.Since))
	where := `a.tenant_id = ? AND a.state IN (` + marks + `) AND a.updated_at >= ?`
	rows, err := s.query(ctx, `SELECT a.state, COUNT(*) FROM assignments a WHERE `+where+` GROUP BY a.state`, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("count assignment outcomes: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			state string
			n     int
		)
		if err := rows.Scan(&state, &n); err != nil {
			return nil, nil, fmt.Errorf("count assignment outcomes: %w", err)
		}
		counts[store.AssignmentState(state)] = n
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("count assignment outcomes: %w", err)
	}
	rows.Close()
	if q.Recent == 0 {
		return counts, nil, nil
	}
	rows, err = s.query(ctx, assignmentSelect+` WHERE `+where+` ORDER BY a.updated_at DESC, a.id DESC LIMIT ?`, append(args, q.Recent)...)
	if err != nil {
		return nil, nil, fmt.Errorf("recent assignment outcomes: %w", err)
	}
	defer rows.Close()
	var recent []store.Assignment
	for rows.Next() {
		a, err := scanAssignment(rows)
		if err != nil {
			return nil, nil, fmt.Errorf("recent assignment outcomes: %w", err)
		}
		recent = append(recent, a)
	}
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("recent assignment outcomes: %w", err)
	}
	return counts, recent, nil
}
