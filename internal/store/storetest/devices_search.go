package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

// fleetDevice describes one device of the search fleet.
type fleetDevice struct {
	serial, deviceType, hwRev, region, version string
	tags, groups                               []string
	attrs                                      map[string]string
	accepted                                   bool
}

// regFleet enrolls 25 devices, one second apart, so list order is serial order.
func regFleet(t *testing.T, s *sqlstore.Store) ([]fleetDevice, map[string]store.Device) {
	t.Helper()
	ctx := context.Background()
	versions := []string{"", "1.9.0", "2.3.10", "2.4.0-rc.1", "2.4.0", "2.10.0"}
	var fleet []fleetDevice
	devs := map[string]store.Device{}
	for i := range 25 {
		f := fleetDevice{
			serial:     fmt.Sprintf("SN-%02d", i),
			deviceType: []string{"gw-200", "gw-100"}[i%2],
			hwRev:      []string{"A", "B", "C"}[i%3],
			region:     []string{"eu-west", "us-east"}[i/13],
			version:    versions[i%len(versions)],
			attrs:      map[string]string{"battery": []string{"li-ion", "none"}[i%2]},
			accepted:   i%5 != 4,
		}
		if i%4 == 0 {
			f.tags = []string{"lab"}
		}
		if i%7 == 0 {
			f.groups = []string{"canary"}
		}
		if i%3 == 0 {
			f.attrs["modem"] = "lte"
		}
		p := regParams(f.serial, regKey(t), T0.Add(time.Duration(i)*time.Second))
		p.DeviceType, p.HWRev, p.Region, p.Attributes = f.deviceType, f.hwRev, f.region, f.attrs
		d := regEnroll(t, s, p)
		var err error
		if f.accepted {
			if d, err = s.AcceptDevice(ctx, store.DefaultTenant, d.ID, Admin, T0); err != nil {
				t.Fatal(err)
			}
		}
		if f.version != "" {
			if d, err = s.UpdateDeviceReport(ctx, store.DefaultTenant, d.ID, store.DeviceReport{Version: f.version, Now: T0}); err != nil {
				t.Fatal(err)
			}
		}
		if f.tags != nil {
			if d, err = s.SetTags(ctx, store.DefaultTenant, d.ID, f.tags, nil, Admin, T0); err != nil {
				t.Fatal(err)
			}
		}
		if f.groups != nil {
			if d, err = s.SetGroups(ctx, store.DefaultTenant, d.ID, f.groups, nil, Admin, T0); err != nil {
				t.Fatal(err)
			}
		}
		fleet = append(fleet, f)
		devs[f.serial] = d
	}
	return fleet, devs
}

func (f fleetDevice) subject(d store.Device) filter.Subject {
	return filter.Subject{ID: d.ID, Serial: d.Serial, State: string(d.State), Protocol: string(d.Protocol),
		DeviceType: d.DeviceType, HWRev: d.HWRev, Region: d.Region, TimeZone: d.TimeZone, Version: d.Version,
		Attributes: d.Attributes, Tags: d.Tags, Groups: d.Groups}
}

func testDeviceSearch(h Harness) func(*testing.T) {
	return func(t *testing.T) {
		t.Parallel()
		s := h.NewStore(t)
		ctx := context.Background()
		fleet, devs := regFleet(t, s)
		for _, tc := range []struct {
			expr  string
			state store.DeviceState
			want  int // hand-counted, so the test does not only compare SQL with Match
		}{
			{"", "", 25},
			{"", store.DeviceAccepted, 20},
			{"", store.DevicePending, 5},
			{`device_type == "gw-200"`, "", 13},
			{`hw_rev in ("B", "C")`, "", 16},
			{`tag:lab`, "", 7},
			{`group:canary`, "", 4},
			{`not tag:lab`, "", 18},
			{`version < "2.4.0"`, "", 12},                 // 1.9.0, 2.3.10 and 2.4.0-rc.1, 4 each; not 2.10.0
			{`version >= "2.4.0"`, "", 8},                 // 2.4.0 and 2.10.0
			{`version == "2.3.10"`, "", 4},                //
			{`version != "2.4.0"`, "", 16},                // devices without a version never match
			{`attr.modem == "lte"`, "", 9},                //
			{`attr.modem != "lte"`, "", 0},                // missing attributes never match
			{`not attr.modem == "lte"`, "", 16},           //
			{`attr.battery == "none" and tag:lab`, "", 0}, // lab devices are even-numbered
			{`device_type == "gw-200" and hw_rev in ("B","C") and version < "2.4.0" and region == "eu-west" and tag:lab`, "", 1},
			{`region == "us-east" or group:canary`, store.DeviceAccepted, 11},
		} {
			var f *filter.Expr
			if tc.expr != "" {
				f = filter.MustParse(tc.expr)
			}
			var want []string
			for _, fd := range fleet {
				d := devs[fd.serial]
				if (f == nil || f.Match(fd.subject(d))) && (tc.state == "" || d.State == tc.state) {
					want = append(want, fd.serial)
				}
			}
			if len(want) != tc.want {
				t.Fatalf("%q: the fleet has %d matches by filter.Match, the test expects %d", tc.expr, len(want), tc.want)
			}
			var got []string
			after, pages := "", 0
			for {
				page, next, err := s.ListDevices(ctx, store.DefaultTenant, store.DeviceQuery{Filter: f, State: tc.state, Page: store.Page{Limit: 10, After: after}})
				if err != nil {
					t.Fatalf("%q: %v", tc.expr, err)
				}
				pages++
				if len(page) > 10 || (next != "" && len(page) != 10) {
					t.Fatalf("%q: page %d has %d devices, next %q", tc.expr, pages, len(page), next)
				}
				for _, d := range page {
					got = append(got, d.Serial)
					if !slices.Equal(d.Tags, devs[d.Serial].Tags) || !slices.Equal(d.Groups, devs[d.Serial].Groups) {
						t.Fatalf("%q: %s listed with tags %v groups %v, want %v %v", tc.expr, d.Serial, d.Tags, d.Groups, devs[d.Serial].Tags, devs[d.Serial].Groups)
					}
				}
				if next == "" {
					break
				}
				after = next
			}
			if !slices.Equal(got, want) {
				t.Fatalf("%q state %q: listed %v\nwant %v", tc.expr, tc.state, got, want)
			}
			if wantPages := max(1, (len(want)+9)/10); pages != wantPages && !(len(want)%10 == 0 && pages == wantPages+1) {
				t.Fatalf("%q: %d pages for %d devices", tc.expr, pages, len(want))
			}
			if tc.state == "" {
				n, err := s.CountDevices(ctx, store.DefaultTenant, f)
				if err != nil || n != tc.want {
					t.Fatalf("CountDevices(%q) = %d, %v; want %d", tc.expr, n, err, tc.want)
				}
			}
		}
		byState, err := s.CountDevicesByState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[store.DeviceState]int{store.DeviceAccepted: 20, store.DevicePending: 5}
		if len(byState) != 1 || len(byState[store.DefaultTenant]) != len(want) ||
			byState[store.DefaultTenant][store.DeviceAccepted] != 20 || byState[store.DefaultTenant][store.DevicePending] != 5 {
			t.Fatalf("CountDevicesByState = %v, want %v in %q", byState, want, store.DefaultTenant)
		}
		if _, _, err := s.ListDevices(ctx, store.DefaultTenant, store.DeviceQuery{Page: store.Page{After: "!!"}}); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("bad cursor: %v, want ErrInvalidRequest", err)
		}
		if _, _, err := s.ListDevices(ctx, store.DefaultTenant, store.DeviceQuery{State: "sleeping"}); !errors.Is(err, store.ErrInvalidRequest) {
			t.Fatalf("unknown state: %v, want ErrInvalidRequest", err)
		}
		if page, next, err := s.ListDevices(ctx, "other-tenant", store.DeviceQuery{}); err != nil || len(page) != 0 || next != "" {
			t.Fatalf("another tenant's devices: %d, %q, %v; want none", len(page), next, err)
		}
	}
}
