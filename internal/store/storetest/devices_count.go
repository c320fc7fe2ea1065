package storetest

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
)

func testCountDevicesBy(t *testing.T, h Harness) {
	t.Parallel()
	s := h.NewStore(t)
	ctx := context.Background()
	fleet, devs := regFleet(t, s)
	for _, tc := range []struct {
		expr, field string
		want        map[string]int // hand-counted from regFleet
	}{
		{"", store.CountByDeviceType, map[string]int{"gw-200": 13, "gw-100": 12}},
		{"", store.CountByHWRev, map[string]int{"A": 9, "B": 8, "C": 8}},
		{"", store.CountByRegion, map[string]int{"eu-west": 13, "us-east": 12}},
		{"", store.CountByState, map[string]int{"accepted": 20, "pending": 5}},
		{"", store.CountByVersion, map[string]int{"": 5, "1.9.0": 4, "2.3.10": 4, "2.4.0-rc.1": 4, "2.4.0": 4, "2.10.0": 4}},
		{`tag:lab`, store.CountByHWRev, map[string]int{"A": 3, "B": 2, "C": 2}},
		{`device_type == "gw-200" and version >= "2.4.0"`, store.CountByRegion, map[string]int{"eu-west": 2, "us-east": 2}},
		{`region == "mars"`, store.CountByHWRev, map[string]int{}},
	} {
		var f *filter.Expr
		if tc.expr != "" {
			f = filter.MustParse(tc.expr)
		}
		// The hand count must agree with the filter's own evaluation.
		byMatch := map[string]int{}
		for _, fd := range fleet {
			d := devs[fd.serial]
			if f != nil && !f.Match(fd.subject(d)) {
				continue
			}
			byMatch[map[string]string{
				store.CountByDeviceType: d.DeviceType, store.CountByHWRev: d.HWRev, store.CountByRegion: d.Region,
				store.CountByState: string(d.State), store.CountByVersion: d.Version,
			}[tc.field]]++
		}
		if !maps.Equal(byMatch, tc.want) {
			t.Fatalf("%q by %s: filter.Match counts %v, the test expects %v", tc.expr, tc.field, byMatch, tc.want)
		}
		got, err := s.CountDevicesBy(ctx, store.DefaultTenant, f, tc.field)
		if err != nil || got == nil || !maps.Equal(got, tc.want) {
			t.Fatalf("CountDevicesBy(%q, %s) = %v, %v; want %v", tc.expr, tc.field, got, err, tc.want)
		}
	}
	for _, field := range []string{"", "serial", "HW_REV", "hw_rev; DROP TABLE devices", "attr.modem", "d.hw_rev"} {
		if got, err := s.CountDevicesBy(ctx, store.DefaultTenant, nil, field); !errors.Is(err, store.ErrInvalidRequest) || got != nil {
			t.Fatalf("CountDevicesBy by %q = %v, %v; want ErrInvalidRequest", field, got, err)
		}
	}
	for _, field := range store.CountByFields() {
		if !store.IsCountByField(field) {
			t.Fatalf("CountByFields lists %q, which IsCountByField refuses", field)
		}
		if got, err := s.CountDevicesBy(ctx, "other-tenant", nil, field); err != nil || len(got) != 0 {
			t.Fatalf("another tenant's devices by %s: %v, %v; want none", field, got, err)
		}
	}
	if n, err := s.CountDevices(ctx, store.DefaultTenant, nil); err != nil || n != 25 {
		t.Fatalf("the count left the fleet at %d devices (%v)", n, err)
	}
}
