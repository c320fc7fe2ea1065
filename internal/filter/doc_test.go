package filter

import (
	"os"
	"strings"
	"testing"
)

// TestLanguageDoc keeps docs/filter-language.md honest: every example
// parses, and the canonical-form table shows what String really returns.
func TestLanguageDoc(t *testing.T) {
	t.Parallel()
	b, err := os.ReadFile("../../docs/filter-language.md")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(b)
	_, examples, ok := strings.Cut(doc, "## Examples\n\n```\n")
	if !ok {
		t.Fatal("no Examples block")
	}
	examples, _, _ = strings.Cut(examples, "```")
	n := 0
	for line := range strings.Lines(examples) {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		n++
		if _, err := Parse(line); err != nil {
			t.Errorf("example %q: %v", line, err)
		}
	}
	if n < 5 {
		t.Errorf("found only %d examples", n)
	}
	_, table, ok := strings.Cut(doc, "| input | canonical |\n| --- | --- |\n")
	if !ok {
		t.Fatal("no canonical-form table")
	}
	rows := 0
	for line := range strings.Lines(table) {
		if !strings.HasPrefix(line, "| `") {
			break
		}
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		in, want := strings.Trim(strings.TrimSpace(cells[0]), "`"), strings.Trim(strings.TrimSpace(cells[1]), "`")
		e, err := Parse(in)
		if err != nil {
			t.Errorf("canonical table input %q: %v", in, err)
			continue
		}
		rows++
		if e.String() != want {
			t.Errorf("canonical form of %q is %q, doc says %q", in, e.String(), want)
		}
	}
	if rows == 0 {
		t.Error("canonical-form table is empty")
	}
}
