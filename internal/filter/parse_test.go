package filter

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

func TestParseCanonical(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`device_type == "gw-200" and hw_rev in ("B","C") and version < "2.4.0" and region == "eu-west" and tag:lab`,
			`device_type == "gw-200" and hw_rev in ("B", "C") and version < "2.4.0" and region == "eu-west" and tag:lab`},
		{`region=="eu"`, `region == "eu"`},
		{"serial != \"x\"\n\tAND  state == \"active\"", `serial != "x" and state == "active"`},
		{`time_zone >= "Europe/A" Or protocol <= "native"`, `time_zone >= "Europe/A" or protocol <= "native"`},
		{`id > "1" and id < "9"`, `id > "1" and id < "9"`},
		{`attr.site.floor-2_x == "3"`, `attr.site.floor-2_x == "3"`},
		{`attr.x not in ("a", "b",)`, `attr.x not in ("a", "b")`},
		{`version NOT IN ("1.0.0", "1.0.0-rc.1+b7")`, `version not in ("1.0.0", "1.0.0-rc.1+b7")`},
		{`tag:"env:prod" or group:canary-1`, `tag:"env:prod" or group:canary-1`},
		{`TAG:lab and Group:"fleet a"`, `tag:lab and group:"fleet a"`},
		{`tag:"plain"`, `tag:plain`},
		{`tag:"-x"`, `tag:"-x"`},
		{`tag:and`, `tag:and`},
		{`not tag:a`, `not tag:a`},
		{`not not tag:a`, `not not tag:a`},
		{`not (tag:a)`, `not tag:a`},
		{`((tag:a))`, `tag:a`},
		{`tag:a or tag:b and tag:c`, `tag:a or tag:b and tag:c`},
		{`(tag:a or tag:b) and tag:c`, `(tag:a or tag:b) and tag:c`},
		{`tag:a or (tag:b or tag:c)`, `tag:a or tag:b or tag:c`},
		{`tag:a and (tag:b and tag:c) and tag:d`, `tag:a and tag:b and tag:c and tag:d`},
		{`not (tag:a and tag:b)`, `not (tag:a and tag:b)`},
		{`not tag:a and tag:b`, `not tag:a and tag:b`},
		{`not (tag:a or tag:b) or not tag:c`, `not (tag:a or tag:b) or not tag:c`},
		{`region == "a\"b\\c\/d\n\r\t\u00e9\u0001\u2028"`, "region == \"a\\\"b\\\\c/d\\n\\r\\té\\u0001\u2028\""},
		{`region == "Zürich"`, `region == "Zürich"`},
		{`region == ""`, `region == ""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse(%q): %v", tt.in, err)
			}
			got := e.String()
			if got != tt.want {
				t.Fatalf("Parse(%q).String()\n got: %s\nwant: %s", tt.in, got, tt.want)
			}
			again, err := Parse(got)
			if err != nil {
				t.Fatalf("canonical form %q does not parse: %v", got, err)
			}
			if again.String() != got {
				t.Fatalf("canonical form is not stable: %q -> %q", got, again.String())
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in       string
		line     int
		col      int
		wantText string // the whole Error()
	}{
		{``, 1, 1, `filter: column 1: filter is empty`},
		{"  \n ", 1, 1, `filter: column 1: filter is empty`},
		{`device_type == gw-200`, 1, 16, `filter: column 16: expected a string after "==", found "gw-200" (quote values: "gw-200")`},
		{`device_type == `, 1, 16, `filter: column 16: expected a string after "==", found end of filter`},
		{`device_type == "gw-200" and hw_rev in ("B","C") and version < "2.4"`, 1, 63,
			`filter: column 63: version "2.4" is not a semantic version (want MAJOR.MINOR.PATCH)`},
		{`version in ("1.0.0", "v2.0.0")`, 1, 22,
			`filter: column 22: version "v2.0.0" starts with "v"; semantic versions do not (use "2.0.0")`},
		{`device_type = "x"`, 1, 13, `filter: column 13: unexpected "=" (use "==" to compare)`},
		{`! tag:a`, 1, 1, `filter: column 1: unexpected "!" (use "not" or "!=")`},
		{`region == 'eu'`, 1, 11, `filter: column 11: unexpected "'" (strings use double quotes)`},
		{`region == “eu”`, 1, 11, `filter: column 11: unexpected '“' (strings use straight double quotes)`},
		{`région == "x"`, 1, 2, `filter: column 2: unexpected character 'é'`},
		{"region == \"x\" \u00a0", 1, 15, `filter: column 15: unexpected character U+00A0`},
		{"tag:a and \xff", 1, 11, `filter: column 11: invalid UTF-8`},
		{"region == \"\xff\"", 1, 12, `filter: column 12: invalid UTF-8 in string`},
		{`colour == "red"`, 1, 1, `filter: column 1: unknown field "colour" (want one of ` + fieldList + `)`},
		{`Region == "eu"`, 1, 1, `filter: column 1: unknown field "Region" (want one of ` + fieldList + `; field names are lower case)`},
		{`attr == "eu"`, 1, 1, `filter: column 1: unknown field "attr" (want one of ` + fieldList + `; attributes are written attr.NAME)`},
		{`attr. == "x"`, 1, 1, `filter: column 1: attribute name missing after "attr."`},
		{`region`, 1, 7, `filter: column 7: expected an operator (==, !=, <, <=, >, >=, in, not in) after "region", found end of filter`},
		{`region not == "x"`, 1, 8, `filter: column 8: expected an operator (==, !=, <, <=, >, >=, in, not in) after "region", found "not"`},
		{`region in "x"`, 1, 11, `filter: column 11: expected "(" to start a list of strings after "in", found string "x"`},
		{`region in ()`, 1, 12, `filter: column 12: expected a string after "(", found ")"`},
		{`region in ("a" "b")`, 1, 16, `filter: column 16: expected "," or ")" after "\"a\"", found string "b"`},
		{`region in ("a",,)`, 1, 16, `filter: column 16: expected a string after ",", found ","`},
		{`region in ("a"`, 1, 15, `filter: column 15: expected "," or ")" after "\"a\"", found end of filter`},
		{`tag:a and`, 1, 10, `filter: column 10: expected a field, tag: or group: after "and", found end of filter`},
		{`tag:a and or tag:b`, 1, 11, `filter: column 11: expected a field, tag: or group: after "and", found "or"`},
		{`and tag:a`, 1, 1, `filter: column 1: expected a field, tag: or group:, found "and"`},
		{`"gw" == device_type`, 1, 1, `filter: column 1: expected a field, tag: or group:, found string "gw" (write comparisons as field == "value")`},
		{`tag:a tag:b`, 1, 7, `filter: column 7: expected "and", "or" or end of filter after "a", found "tag:"`},
		{`tag:a)`, 1, 6, `filter: column 6: unexpected ")" without a matching "("`},
		{`(tag:a`, 1, 7, `filter: column 7: expected ")" to close the "(" at column 1 after "a", found end of filter`},
		{`tag: lab`, 1, 6, `filter: column 6: expected a tag name right after "tag:", found "lab"`},
		{`group:`, 1, 7, `filter: column 7: expected a group name right after "group:", found end of filter`},
		{`tag:""`, 1, 5, `filter: column 5: tag name is empty`},
		{`env:prod`, 1, 1, `filter: column 1: unknown prefix "env:" (want "tag:" or "group:"; quote names that contain ":")`},
		{`tag:env:prod`, 1, 5, `filter: column 5: unknown prefix "env:" (want "tag:" or "group:"; quote names that contain ":")`},
		{`region == "eu`, 1, 11, `filter: column 11: unterminated string`},
		{`region == "eu\`, 1, 14, `filter: column 14: unterminated string`},
		{`region == "a\qb"`, 1, 13, `filter: column 13: unknown escape "\q" in string`},
		{`region == "\u12"`, 1, 12, `filter: column 12: escape "\u" needs four hex digits`},
		{`region == "\u12zz"`, 1, 12, `filter: column 12: escape "\u" needs four hex digits`},
		{`region == "\ud800"`, 1, 12, `filter: column 12: escape "\uD800" is a lone surrogate`},
		{`region == "\u0000"`, 1, 12, `filter: column 12: strings cannot contain U+0000`},
		{"region == \"a\nb\"", 1, 13, `filter: column 13: newline in string (use "\n")`},
		{"region == \"a\tb\"", 1, 13, `filter: column 13: control character U+0009 in string (use "\u0009")`},
		{"tag:a and\n  region == 'eu'", 2, 13, `filter: line 2, column 13: unexpected "'" (strings use double quotes)`},
		{"tag:a and\r\n  région", 2, 4, `filter: line 2, column 4: unexpected character 'é'`},
		{"tag:ä and x", 1, 5, `filter: column 5: unexpected character 'ä'`},
		{"region == \"ä\" and x", 1, 19, `filter: column 19: unknown field "x" (want one of ` + fieldList + `)`},
		{strings.Repeat("(", MaxDepth) + "tag:a" + strings.Repeat(")", MaxDepth), 0, 0, ""},
		{strings.Repeat("(", MaxDepth+1) + "tag:a" + strings.Repeat(")", MaxDepth+1), 1, MaxDepth + 1, `filter: column 33: filter nests deeper than 32 levels`},
		{strings.Repeat("not ", MaxDepth+1) + "tag:a", 1, 4*MaxDepth + 1, `filter: column 129: filter nests deeper than 32 levels`},
		{strings.Repeat("not (", 20) + "tag:a" + strings.Repeat(")", 20), 1, 81, `filter: column 81: filter nests deeper than 32 levels`},
		{`tag:a or ` + strings.Repeat("x", MaxLength), 1, MaxLength + 1, `filter: column 4097: filter is longer than 4096 bytes`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			e, err := Parse(tt.in)
			if tt.wantText == "" {
				if err != nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse(%q) = %s, want error", tt.in, e)
			}
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("error %T %v is not a *SyntaxError", err, err)
			}
			if se.Line != tt.line || se.Column != tt.col {
				t.Errorf("position = line %d column %d, want line %d column %d", se.Line, se.Column, tt.line, tt.col)
			}
			if err.Error() != tt.wantText {
				t.Errorf("error\n got: %s\nwant: %s", err, tt.wantText)
			}
		})
	}
}

func TestMaxLengthAccepted(t *testing.T) {
	t.Parallel()
	// Exactly MaxLength bytes parses.
	src := `region == "` + strings.Repeat("x", MaxLength-len(`region == ""`)) + `"`
	if len(src) != MaxLength {
		t.Fatalf("test input is %d bytes", len(src))
	}
	if _, err := Parse(src); err != nil {
		t.Fatal(err)
	}
}

func TestTextMarshaling(t *testing.T) {
	t.Parallel()
	var doc struct {
		Target *Expr `json:"target"`
	}
	if err := json.Unmarshal([]byte(`{"target": "tag:a AND version >= \"1.0.0\""}`), &doc); err != nil {
		t.Fatal(err)
	}
	out, err := json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"target":"tag:a and version \u003e= \"1.0.0\""}`; string(out) != want {
		t.Fatalf("round trip = %s, want %s", out, want)
	}
	err = json.Unmarshal([]byte(`{"target": "tag:"}`), &doc)
	var se *SyntaxError
	if !errors.As(err, &se) || se.Column != 5 {
		t.Fatalf("bad filter in JSON: got %v, want *SyntaxError at column 5", err)
	}
	if _, err := (&Expr{}).MarshalText(); err == nil {
		t.Fatal("MarshalText of a zero Expr succeeded")
	}
}
