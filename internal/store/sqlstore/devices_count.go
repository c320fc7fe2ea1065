package sqlstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

// countColumn maps a store.CountBy* field to its column. The column name
// put into the query comes from this switch, never from the caller.
func countColumn(field string) (string, bool) {
	switch field {
	case store.CountByDeviceType:
		return "d.device_type", true
	case store.CountByHWRev:
		return "d.hw_rev", true
	case store.CountByRegion:
		return "d.region", true
	case store.CountByState:
		return "d.state", true
	case store.CountByVersion:
		return "d.version", true
	}
	return "", false
}

// CountDevicesBy implements store.Devices: one GROUP BY over the devices
// the filter matches.
func (s *Store) CountDevicesBy(ctx context.Context, tenant string, f *filter.Expr, field string) (map[string]int, error) {
	col, ok := countColumn(field)
	if !ok {
		return nil, fmt.Errorf("count devices: %w: cannot count by %q (one of %s)", store.ErrInvalidRequest, field, strings.Join(store.CountByFields(), ", "))
	}
	where, args, err := s.deviceWhere(tenant, f, "")
	if err != nil {
		return nil, err
	}
	rows, err := s.query(ctx, `SELECT `+col+`, COUNT(*) FROM devices d WHERE `+where+` GROUP BY `+col, args...)
	if err != nil {
		return nil, fmt.Errorf("count devices by %s: %w", field, err)
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var v string
		var n int
		if err := rows.Scan(&v, &n); err != nil {
			return nil, fmt.Errorf("count devices by %s: %w", field, err)
		}
		out[v] = n
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("count devices by %s: %w", field, err)
	}
	return out, nil
}
