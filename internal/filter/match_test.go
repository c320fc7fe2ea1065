package filter

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	gw := Subject{
		ID: "dev-1", Serial: "SN100", State: "active", Protocol: "native",
		DeviceType: "gw-200", HWRev: "B", Region: "eu-west", TimeZone: "Europe/Berlin",
		Version:    "2.3.1+build.7",
		Attributes: map[string]string{"site": "hamburg", "floor": "3", "empty": ""},
		Tags:       []string{"lab", "env:prod"},
		Groups:     []string{"canary"},
	}
	bare := Subject{ID: "dev-2", State: "pending", Protocol: "ddi"}
	pre := Subject{ID: "dev-3", Version: "2.4.0-rc.1"}
	legacy := Subject{ID: "dev-4", Version: "v2.0.0"} // not semver: no version

	tests := []struct {
		filter string
		d      Subject
		want   bool
	}{
		{`device_type == "gw-200" and hw_rev in ("B","C") and version < "2.4.0" and region == "eu-west" and tag:lab`, gw, true},
		{`device_type == "gw-200"`, gw, true},
		{`device_type == "GW-200"`, gw, false}, // case-sensitive
		{`device_type != "gw-200"`, gw, false},
		{`device_type != "gw-100"`, gw, true},
		{`hw_rev not in ("B", "C")`, gw, false},
		{`hw_rev not in ("C")`, gw, true},
		{`serial >= "SN100" and serial < "SN2"`, gw, true},
		{`serial > "SN100"`, gw, false},
		{`serial <= "SN0"`, gw, false},
		{`time_zone == "Europe/Berlin" and state == "active" and protocol == "native" and id == "dev-1"`, gw, true},
		{`region == ""`, bare, true},
		{`region != ""`, bare, false},

		// Versions: semver precedence, build metadata ignored.
		{`version == "2.3.1"`, gw, true},
		{`version == "2.3.1+other"`, gw, true},
		{`version in ("1.0.0", "2.3.1")`, gw, true},
		{`version not in ("1.0.0", "2.3.1")`, gw, false},
		{`version > "2.3.0"`, gw, true},
		{`version > "2.3.1"`, gw, false},
		{`version >= "2.3.1"`, gw, true},
		{`version < "2.10.0"`, gw, true}, // numeric, not string, order
		{`version < "2.4.0"`, pre, true}, // a pre-release is below its release
		{`version > "2.4.0-beta"`, pre, true},
		{`version <= "2.4.0-rc.1"`, pre, true},
		{`version < "2.4.0-rc.1"`, pre, false},
		// No version never matches a version comparison, whatever the operator.
		{`version < "9.0.0"`, bare, false},
		{`version >= "0.0.0-0"`, bare, false},
		{`version != "1.0.0"`, bare, false},
		{`version not in ("1.0.0")`, bare, false},
		{`not version >= "0.0.0-0"`, bare, true},
		{`version != "1.0.0"`, legacy, false},
		{`version == "2.0.0"`, legacy, false},

		// Attributes: missing never matches; present-but-empty is a value.
		{`attr.site == "hamburg"`, gw, true},
		{`attr.site in ("berlin", "hamburg")`, gw, true},
		{`attr.floor > "2"`, gw, true},
		{`attr.floor > "20"`, gw, true}, // string order: "3" > "20"
		{`attr.empty == ""`, gw, true},
		{`attr.Site == "hamburg"`, gw, false}, // names are case-sensitive
		{`attr.missing == "x"`, gw, false},
		{`attr.missing != "x"`, gw, false},
		{`attr.missing not in ("x")`, gw, false},
		{`attr.missing < "zzz"`, gw, false},
		{`not attr.missing == "x"`, gw, true},
		{`attr.site != "x"`, bare, false},

		// Tags and groups.
		{`tag:lab`, gw, true},
		{`tag:Lab`, gw, false},
		{`tag:"env:prod"`, gw, true},
		{`tag:canary`, gw, false},
		{`group:canary`, gw, true},
		{`group:lab`, gw, false},
		{`tag:lab`, bare, false},

		// Boolean structure and precedence: not > and > or.
		{`tag:nope or tag:lab and group:canary`, gw, true},
		{`tag:lab or tag:nope and group:nope`, gw, true},
		{`(tag:lab or tag:nope) and group:nope`, gw, false},
		{`not tag:lab and group:canary`, gw, false},
		{`not (tag:lab and group:nope)`, gw, true},
		{`not not tag:lab`, gw, true},
		{`tag:a or tag:b or tag:lab`, gw, true},
		{`tag:lab and group:canary and region == "eu-west"`, gw, true},
	}
	for _, tt := range tests {
		t.Run(tt.filter+"/"+tt.d.ID, func(t *testing.T) {
			t.Parallel()
			e := MustParse(tt.filter)
			if got := e.Match(tt.d); got != tt.want {
				t.Fatalf("Match(%s) on %s = %v, want %v", tt.filter, tt.d.ID, got, tt.want)
			}
		})
	}
}

func TestMustParsePanics(t *testing.T) {
	t.Parallel()
	defer func() {
		if recover() == nil {
			t.Fatal("MustParse of a bad filter did not panic")
		}
	}()
	MustParse("tag:")
}
