package mgmtapi

import (
	"fmt"
	"maps"
	"net/url"
	"testing"
)

func TestCountDevicesBy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Seven gw-200 devices (B, C, B, C, …; the first five accepted) and one
	// sensor.
	for i := range 7 {
		e.enroll(fmt.Sprintf("SN-%d", i), "gw-200", []string{"B", "C"}[i%2], i < 5)
	}
	e.enroll("OTHER", "sensor-9", "A", true)
	gw := url.QueryEscape(`device_type == "gw-200"`)
	tests := []struct {
		query string
		total int
		by    map[string]int
	}{
		{"?by=hw_rev", 8, map[string]int{"A": 1, "B": 4, "C": 3}},
		{"?by=hw_rev&q=" + gw, 7, map[string]int{"B": 4, "C": 3}},
		{"?q=" + gw + "&by=state", 7, map[string]int{"accepted": 5, "pending": 2}},
		{"?by=device_type", 8, map[string]int{"gw-200": 7, "sensor-9": 1}},
		{"?by=region&q=" + url.QueryEscape(`hw_rev == "C"`), 3, map[string]int{"eu-west": 3}},
		{"?by=version", 8, map[string]int{"": 8}},
		{"?by=hw_rev&q=" + url.QueryEscape(`tag:nothing`), 0, map[string]int{}},
	}
	for _, tt := range tests {
		var got countByBody
		e.must(200, req{token: e.viewer, method: "GET", path: "/devices/count" + tt.query}).decode(t, &got)
		if got.Total != tt.total || !maps.Equal(got.By, tt.by) || got.By == nil {
			t.Errorf("%s: %+v, want total %d by %v", tt.query, got, tt.total, tt.by)
		}
	}
	// Without by, the plain count.
	var c countBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/count?q=" + gw}).decode(t, &c)
	if c.Count != 7 {
		t.Errorf("count = %d, want 7", c.Count)
	}
	for _, by := range []string{"serial", "attr.modem", "hw_rev,region", "HW_REV"} {
		r := e.must(400, req{token: e.viewer, method: "GET", path: "/devices/count?by=" + url.QueryEscape(by)})
		if code := r.errorCode(t); code != "bad_parameter" {
			t.Errorf("by=%s: code %s, want bad_parameter", by, code)
		}
	}
	r := e.must(400, req{token: e.viewer, method: "GET", path: "/devices/count?by=hw_rev&q=" + url.QueryEscape(`hw_rev ==`)})
	var b struct {
		Error struct {
			Code   string `json:"code"`
			Column int    `json:"column"`
		} `json:"error"`
	}
	r.decode(t, &b)
	if b.Error.Code != "bad_filter" || b.Error.Column != 10 {
		t.Errorf("bad filter with by: %s, want bad_filter at column 10", r.body)
	}
}
