package filter

import (
	"strings"
	"testing"
)

func TestSQLText(t *testing.T) {
	t.Parallel()
	const tagSQL = "EXISTS (SELECT 1 FROM device_tags d_tag WHERE d_tag.tenant_id = d.tenant_id AND d_tag.device_id = d.id AND d_tag.tag = "
	const grpSQL = "EXISTS (SELECT 1 FROM device_group_members d_grp WHERE d_grp.tenant_id = d.tenant_id AND d_grp.device_id = d.id AND d_grp.group_name = "
	tests := []struct {
		filter  string
		dialect Dialect
		want    string
		args    []string
	}{
		{`region == "eu"`, SQLite, `d.region = ?`, []string{"eu"}},
		{`region == "eu"`, Postgres, `d.region = $1`, []string{"eu"}},
		{`region == "eu" and tag:lab`, Config{Engine: Postgres, ArgOffset: 3},
			`(d.region = $4 AND ` + tagSQL + `$5))`, []string{"eu", "lab"}},
		{`region == "eu" or group:g`, Config{Engine: Postgres, ArgOffset: 3, QuestionMarks: true},
			`(d.region = ? OR ` + grpSQL + `?))`, []string{"eu", "g"}},
		{`hw_rev in ("B", "C")`, SQLite, `d.hw_rev IN (?, ?)`, []string{"B", "C"}},
		{`hw_rev not in ("B")`, Postgres, `d.hw_rev NOT IN ($1)`, []string{"B"}},
		{`serial < "x"`, SQLite, `d.serial COLLATE BINARY < ?`, []string{"x"}},
		{`serial >= "x"`, Postgres, `d.serial COLLATE "C" >= $1`, []string{"x"}},
		{`attr.site.a-1 == "x"`, SQLite, `json_extract(d.attributes, '$."site.a-1"') = ?`, []string{"x"}},
		{`attr.site.a-1 == "x"`, Postgres, `(d.attributes::jsonb ->> 'site.a-1') = $1`, []string{"x"}},
		{`version < "1.2.3"`, SQLite,
			`(d.version_key <> '' AND d.version_key COLLATE BINARY < ?)`,
			[]string{"00000000000000000001.00000000000000000002.00000000000000000003~"}},
		{`version >= "1.2.3-rc.1+b"`, Postgres,
			`d.version_key COLLATE "C" >= $1`,
			[]string{"00000000000000000001.00000000000000000002.00000000000000000003-:rc!.00000000000000000001"}},
		{`version == "1.0.0"`, SQLite, `d.version_key = ?`, []string{"00000000000000000001.00000000000000000000.00000000000000000000~"}},
		{`version != "1.0.0"`, SQLite, `(d.version_key <> '' AND d.version_key <> ?)`, []string{"00000000000000000001.00000000000000000000.00000000000000000000~"}},
		{`not tag:"it's"`, Config{Engine: SQLite, Alias: "dev"},
			`NOT COALESCE(EXISTS (SELECT 1 FROM device_tags dev_tag WHERE dev_tag.tenant_id = dev.tenant_id AND dev_tag.device_id = dev.id AND dev_tag.tag = ?), FALSE)`,
			[]string{"it's"}},
		{`tag:a or tag:b and not group:c`, SQLite,
			`(` + tagSQL + `?) OR (` + tagSQL + `?) AND NOT COALESCE(` + grpSQL + `?), FALSE)))`,
			[]string{"a", "b", "c"}},
		{`region == "'; DROP TABLE devices; --"`, SQLite, `d.region = ?`, []string{"'; DROP TABLE devices; --"}},
	}
	for _, tt := range tests {
		t.Run(tt.filter, func(t *testing.T) {
			t.Parallel()
			where, args := MustParse(tt.filter).SQL(tt.dialect)
			if where != tt.want {
				t.Errorf("SQL(%v)\n got: %s\nwant: %s", tt.dialect, where, tt.want)
			}
			if len(args) != len(tt.args) {
				t.Fatalf("args = %q, want %q", args, tt.args)
			}
			for i := range args {
				if args[i] != tt.args[i] {
					t.Errorf("args[%d] = %q, want %q", i, args[i], tt.args[i])
				}
			}
		})
	}
}

func TestSQLRejectsBadDialect(t *testing.T) {
	t.Parallel()
	e := MustParse("tag:a")
	for _, d := range []Dialect{
		Engine(0),
		Config{Engine: Engine(7)},
		Config{Engine: SQLite, Alias: "d; DROP TABLE x"},
		Config{Engine: SQLite, Alias: "1d"},
		Config{Engine: Postgres, ArgOffset: -1},
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("SQL(%#v) did not panic", d)
				}
			}()
			e.SQL(d)
		}()
	}
	if got := Postgres.String() + "," + SQLite.String() + "," + Engine(9).String(); got != "postgres,sqlite,Engine(9)" {
		t.Errorf("engine names = %s", got)
	}
	// An empty alias means "d".
	if w, _ := e.SQL(Config{Engine: SQLite}); !strings.Contains(w, "= d.tenant_id") {
		t.Errorf("default alias not d: %s", w)
	}
}
