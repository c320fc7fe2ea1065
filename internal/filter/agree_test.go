package filter

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/testenv"
)

// agreeSeed is fixed so that failures reproduce; every failure prints it.
const agreeSeed = 0x5eed_f11e

// Value pools are small so that random filters often hit random devices.
// Several values order differently byte-wise than in natural-language
// collations, which catches a missing COLLATE.
var (
	poolStrings  = []string{"", "a", "A", "b", "B", "ä", "z", "Z", "a-b", "a b", "10", "9", "Zürich", "zurich", "it's", `q"uote`}
	poolVersions = []string{"0.0.1", "1.0.0-rc.1", "1.0.0-rc.2", "1.0.0-rc.10", "1.0.0", "1.0.0+b7", "1.2.0", "1.10.0", "2.0.0-alpha", "2.0.0-alpha.1", "2.0.0", "10.0.0"}
	poolAttrs    = []string{"site", "floor", "a.b", "k-1"}
	poolTags     = []string{"lab", "env:prod", "x y", "Lab", "b"}
	poolFields   = []string{"device_type", "hw_rev", "region", "time_zone", "serial", "state", "protocol", "id"}
)

type agreeDevice struct {
	tenant string
	s      Subject
}

func randomDevices(r *rand.Rand, n int) []agreeDevice {
	pick := func(p []string) string { return p[r.IntN(len(p))] }
	var ds []agreeDevice
	for i := range n {
		s := Subject{
			ID: fmt.Sprintf("dev-%02d", i), Serial: fmt.Sprintf("SN%d", i),
			State: pick(poolStrings), Protocol: pick(poolStrings), DeviceType: pick(poolStrings),
			HWRev: pick(poolStrings), Region: pick(poolStrings), TimeZone: pick(poolStrings),
			Attributes: map[string]string{},
		}
		switch r.IntN(4) {
		case 0: // no version
		case 1:
			s.Version = "v1.0.0" // not semantic: no version_key
		default:
			s.Version = pick(poolVersions)
		}
		for _, a := range poolAttrs {
			if r.IntN(2) == 0 {
				s.Attributes[a] = pick(poolStrings)
			}
		}
		for _, tg := range poolTags {
			if r.IntN(3) == 0 {
				s.Tags = append(s.Tags, tg)
			}
			if r.IntN(3) == 0 {
				s.Groups = append(s.Groups, tg)
			}
		}
		ds = append(ds, agreeDevice{tenant: "default", s: s})
		// The same device id in another tenant, with other facts and
		// memberships, must never leak into the default tenant's results.
		o := s
		o.Tags, o.Groups = slices.Clone(poolTags), slices.Clone(poolTags)
		o.Region, o.Version = "other-tenant", "1.0.0"
		ds = append(ds, agreeDevice{tenant: "other", s: o})
	}
	return ds
}

// randomFilter writes random filter source text; depth bounds nesting.
func randomFilter(r *rand.Rand, depth int) string {
	pick := func(p []string) string { return p[r.IntN(len(p))] }
	kw := func(k string) string {
		if r.IntN(5) == 0 {
			return strings.ToUpper(k)
		}
		return k
	}
	if depth > 0 && r.IntN(3) > 0 {
		switch r.IntN(4) {
		case 0:
			return kw("not") + " " + randomFilter(r, depth-1)
		case 1:
			return "(" + randomFilter(r, depth-1) + ")"
		case 2:
			return randomFilter(r, depth-1) + " " + kw("and") + " " + randomFilter(r, depth-1)
		default:
			return randomFilter(r, depth-1) + " " + kw("or") + " " + randomFilter(r, depth-1)
		}
	}
	switch r.IntN(8) {
	case 0:
		return "tag:" + quote(pick(poolTags))
	case 1:
		return "group:" + quote(pick(poolTags))
	}
	var field string
	var pool []string
	switch r.IntN(4) {
	case 0:
		field, pool = "version", poolVersions
	case 1:
		field, pool = "attr."+pick(poolAttrs), poolStrings
	default:
		field, pool = pick(poolFields), poolStrings
	}
	if field == "id" {
		pool = []string{"dev-00", "dev-01", "dev-05", "dev-1", ""}
	}
	ops := []string{"==", "!=", "<", "<=", ">", ">=", "in", "not in"}
	op := ops[r.IntN(len(ops))]
	if op == "in" || op == "not in" {
		vals := make([]string, 1+r.IntN(3))
		for i := range vals {
			vals[i] = quote(pick(pool))
		}
		return field + " " + kw(op) + " (" + strings.Join(vals, ", ") + ")"
	}
	return field + " " + op + " " + quote(pick(pool))
}

// agreeSchema mirrors the columns the filter reads. Nothing is declared
// COLLATE "C": the filter's own COLLATE clauses must keep ordering byte-wise.
const agreeSchema = `
CREATE TABLE devices (
	tenant_id TEXT NOT NULL, id TEXT NOT NULL, serial TEXT NOT NULL,
	state TEXT NOT NULL, protocol TEXT NOT NULL, device_type TEXT NOT NULL,
	hw_rev TEXT NOT NULL, region TEXT NOT NULL, time_zone TEXT NOT NULL,
	version TEXT NOT NULL, version_key TEXT NOT NULL, attributes TEXT NOT NULL,
	PRIMARY KEY (tenant_id, id));
CREATE TABLE device_tags (tenant_id TEXT NOT NULL, device_id TEXT NOT NULL, tag TEXT NOT NULL,
	PRIMARY KEY (tenant_id, device_id, tag));
CREATE TABLE device_group_members (tenant_id TEXT NOT NULL, group_name TEXT NOT NULL, device_id TEXT NOT NULL,
	PRIMARY KEY (tenant_id, group_name, device_id))`

func loadDevices(t *testing.T, db *sql.DB, engine Engine, ds []agreeDevice) {
	t.Helper()
	ctx := context.Background()
	schema := agreeSchema
	if engine == Postgres {
		// Make the columns order like natural language where the server
		// has ICU, even if the database's default collation is "C".
		var icu bool
		if err := db.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu')`).Scan(&icu); err != nil {
			t.Fatal(err)
		}
		if icu {
			schema = strings.ReplaceAll(schema, "TEXT NOT NULL", `TEXT COLLATE "und-x-icu" NOT NULL`)
			var lt bool
			if err := db.QueryRowContext(ctx, `SELECT 'a' < 'B' COLLATE "und-x-icu"`).Scan(&lt); err != nil || !lt {
				t.Fatalf("und-x-icu does not order 'a' < 'B' (%v, %v)", lt, err)
			}
		} else {
			t.Logf("no ICU collation: ordering is checked under the database default collation only")
		}
	}
	for _, stmt := range strings.Split(schema, ";") {
		if _, err := db.ExecContext(ctx, stmt); err != nil {
			t.Fatalf("schema: %v", err)
		}
	}
	ph := func(n int) string {
		var p []string
		for i := 1; i <= n; i++ {
			if engine == Postgres {
				p = append(p, fmt.Sprintf("$%d", i))
			} else {
				p = append(p, "?")
			}
		}
		return strings.Join(p, ", ")
	}
	for _, d := range ds {
		s := d.s
		key := ""
		if v, err := semver.Parse(s.Version); err == nil {
			key = semver.Key(v)
		}
		attrs, err := json.Marshal(s.Attributes)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.ExecContext(ctx, `INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type,
			hw_rev, region, time_zone, version, version_key, attributes) VALUES (`+ph(12)+`)`,
			d.tenant, s.ID, s.Serial, s.State, s.Protocol, s.DeviceType, s.HWRev, s.Region, s.TimeZone,
			s.Version, key, string(attrs)); err != nil {
			t.Fatalf("insert device: %v", err)
		}
		for _, tg := range s.Tags {
			if _, err := db.ExecContext(ctx, `INSERT INTO device_tags (tenant_id, device_id, tag) VALUES (`+ph(3)+`)`, d.tenant, s.ID, tg); err != nil {
				t.Fatalf("insert tag: %v", err)
			}
		}
		for _, g := range s.Groups {
			if _, err := db.ExecContext(ctx, `INSERT INTO device_group_members (tenant_id, group_name, device_id) VALUES (`+ph(3)+`)`, d.tenant, g, s.ID); err != nil {
				t.Fatalf("insert group: %v", err)
			}
		}
	}
}

// checkAgreement runs random filters through Match and through SQL on db
// and fails on the first filter whose results differ.
func checkAgreement(t *testing.T, db *sql.DB, engine Engine) {
	r := rand.New(rand.NewPCG(agreeSeed, uint64(engine)))
	ds := randomDevices(r, 60)
	loadDevices(t, db, engine, ds)
	ctx := context.Background()
	aliases := []string{"d", "dev", "t", "d_tag"}
	const filters = 600
	nonTrivial := 0
	for i := range filters {
		src := randomFilter(r, 3)
		e, err := Parse(src)
		if err != nil {
			t.Fatalf("seed %#x: generated filter %q does not parse: %v", agreeSeed, src, err)
		}
		var want []string
		for _, d := range ds {
			if d.tenant == "default" && e.Match(d.s) {
				want = append(want, d.s.ID)
			}
		}
		if len(want) > 0 && len(want) < len(ds)/2 {
			nonTrivial++
		}
		alias := aliases[i%len(aliases)]
		tenantPH := "?"
		if engine == Postgres {
			tenantPH = "$1"
		}
		where, args := e.SQL(Config{Engine: engine, Alias: alias, ArgOffset: 1})
		q := fmt.Sprintf("SELECT %[1]s.id FROM devices %[1]s WHERE %[1]s.tenant_id = %[2]s AND %[3]s ORDER BY %[1]s.id", alias, tenantPH, where)
		rows, err := db.QueryContext(ctx, q, append([]any{"default"}, args...)...)
		if err != nil {
			t.Fatalf("seed %#x: filter %s\nSQL: %s\nargs: %q\nerror: %v", agreeSeed, src, q, args, err)
		}
		var got []string
		for rows.Next() {
			var id string
			if err := rows.Scan(&id); err != nil {
				t.Fatal(err)
			}
			got = append(got, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		rows.Close()
		if !slices.Equal(got, want) {
			t.Fatalf("seed %#x, filter #%d disagrees:\nfilter: %s\nSQL:    %s\nargs:   %q\nMatch:  %v\nSQL:    %v",
				agreeSeed, i, src, q, args, want, got)
		}
	}
	// Guard against a generator that only produces all-or-nothing filters,
	// which would let the comparison pass vacuously.
	if nonTrivial < filters/5 {
		t.Fatalf("seed %#x: only %d of %d filters selected a proper subset of devices", agreeSeed, nonTrivial, filters)
	}
}

func TestSQLAgreesWithMatchSQLite(t *testing.T) {
	t.Parallel()
	db, err := sql.Open("sqlite", ":memory:")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	db.SetMaxOpenConns(1) // one connection: one in-memory database
	checkAgreement(t, db, SQLite)
}

func TestSQLAgreesWithMatchPostgres(t *testing.T) {
	t.Parallel()
	dsn := testenv.Postgres(t)
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	checkAgreement(t, db, Postgres)
}
