package filter

import (
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

var pgPlaceholder = regexp.MustCompile(`\$[0-9]+`)

// FuzzParse checks that Parse never panics, that errors are positioned
// inside the input, and that accepted filters have a stable canonical form
// that matches the same devices and compiles to SQL with one placeholder
// per argument. Seeds live in testdata/fuzz/FuzzParse.
func FuzzParse(f *testing.F) {
	subjects := []Subject{
		{},
		{ID: "a", DeviceType: "gw-200", HWRev: "B", Region: "eu-west", Version: "2.3.1",
			Attributes: map[string]string{"site": "x", "a.b": ""}, Tags: []string{"lab"}, Groups: []string{"g"}},
		{Version: "1.0.0-rc.1", State: "active", Tags: []string{"env:prod"}},
	}
	f.Fuzz(func(t *testing.T, src string) {
		e, err := Parse(src)
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("Parse(%q) error %T is not a *SyntaxError", src, err)
			}
			if se.Offset < 0 || se.Offset > len(src) || se.Line < 1 || se.Column < 1 || se.Msg == "" {
				t.Fatalf("Parse(%q): bad error position %+v", src, se)
			}
			before := src[:se.Offset]
			if line := 1 + strings.Count(before, "\n"); line != se.Line {
				t.Fatalf("Parse(%q): line %d, want %d", src, se.Line, line)
			}
			if col := 1 + utf8.RuneCountInString(before[strings.LastIndexByte(before, '\n')+1:]); col != se.Column {
				t.Fatalf("Parse(%q): column %d, want %d", src, se.Column, col)
			}
			return
		}
		canon := e.String()
		e2, err := Parse(canon)
		if err != nil {
			t.Fatalf("canonical form %q of %q does not parse: %v", canon, src, err)
		}
		if again := e2.String(); again != canon {
			t.Fatalf("canonical form unstable: %q -> %q", canon, again)
		}
		for _, s := range subjects {
			if e.Match(s) != e2.Match(s) {
				t.Fatalf("%q and its canonical form %q disagree on %+v", src, canon, s)
			}
		}
		where, args := e.SQL(SQLite)
		if n := strings.Count(where, "?"); n != len(args) {
			t.Fatalf("SQLite SQL for %q has %d placeholders for %d args: %s", src, n, len(args), where)
		}
		where, args = e.SQL(Config{Engine: Postgres, ArgOffset: 2})
		got := pgPlaceholder.FindAllString(where, -1)
		if len(got) != len(args) {
			t.Fatalf("PostgreSQL SQL for %q has %d placeholders for %d args: %s", src, len(got), len(args), where)
		}
		for i, p := range got {
			if want := "$" + strconv.Itoa(i+3); p != want {
				t.Fatalf("PostgreSQL placeholder %d is %s, want %s: %s", i, p, want, where)
			}
		}
		if strings.Contains(where, "?") {
			t.Fatalf("PostgreSQL SQL contains '?': %s", where)
		}
	})
}
