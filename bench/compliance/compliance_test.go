// Package compliance measures the compliance report's store queries as the
// fleet grows: walking the whole report (DeviceVersionsAt) and the exposed
// devices (ExposedDevicesAt) in pages of 1,000, against a baseline walk of
// the plain device list (ListDevices) in the same database and run. The
// report reads devices in chunks, each with one primary-key lookup of its
// newest succeeded report, then the chunk's assignments by id, so its cost
// should stay a small multiple of the baseline and grow with the fleet like
// it (about 10× per 10× devices), never quadratically.
//
// Each size gets a fresh database (SQLite, or PostgreSQL with
// -compliance.db=postgres) populated with bulk SQL outside
// the timing: a quarter of the devices installed 1.0.0 by hand, a quarter
// 1.1.0 through a campaign, a quarter 1.0.0 through the campaign, and a
// quarter report 0.9.0 on their own; 1.1.0 is a high-severity fix, so
// three quarters are exposed. Run it with
//
//	go test -timeout 30m -run '^$' -bench . -benchtime 1x ./bench/compliance
//
// and -compliance.sizes=10000,100000 to choose the fleet sizes. It prints
// each size's times, the ratio to the baseline and to the previous size.
//
// The 100,000-device size outlasts go test's default 10-minute timeout on
// a busy machine: add -timeout 30m.
//
// Figures from one run on the 2-core development machine while other
// builds shared it: SQLite 10,000 devices — device list 665 ms, report
// 1,299 ms (1.95×), exposed 2,122 ms (3.19×); 100,000 — list 4,909 ms,
// report 4,681 ms (0.95×), exposed 8,330 ms (1.70×). PostgreSQL 3,000 —
// list 127 ms, report 104 ms (0.82×); 30,000 — list 949 ms, report
// 1,099 ms (1.16×), 10.6× the smaller size.
package compliance

import (
	"context"
	"database/sql"
	"encoding/json"
	"flag"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

var (
	sizesFlag = flag.String("compliance.sizes", "10000,100000", "fleet sizes to measure")
	dbFlag    = flag.String("compliance.db", "sqlite", "database: sqlite, or postgres (UPDRAFT_TEST_POSTGRES_URL, see internal/testenv)")
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

var actor = store.Actor{Kind: store.ActorUser, ID: "bench", Name: "bench"}

func release(b *testing.B, st *sqlstore.Store, version string, sev store.Severity, cves []string) store.Release {
	ctx := context.Background()
	rel, err := st.CreateRelease(ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version, Severity: sev, CVEs: cves}, actor, t0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddArtifact(ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "gw", HWRevs: []string{"B"},
		Type: store.ArtifactRawImage, Name: "img", Size: 1, SHA256: strings.Repeat("a", 63) + version[:1], SHA1: strings.Repeat("b", 40), MD5: strings.Repeat("c", 32)}, actor, t0); err != nil {
		b.Fatal(err)
	}
	if rel, err = st.PublishRelease(ctx, store.DefaultTenant, rel.ID, actor, t0); err != nil {
		b.Fatal(err)
	}
	return rel
}

func populate(b *testing.B, n int) *sqlstore.Store {
	b.Helper()
	ctx := context.Background()
	var st *sqlstore.Store
	var err error
	switch *dbFlag {
	case "sqlite":
		st, err = sqlite.Open(filepath.Join(b.TempDir(), "compliance.db"), nil)
	case "postgres":
		st, err = postgres.Open(ctx, testenv.Postgres(b), nil)
	default:
		b.Fatalf("-compliance.db %q: want sqlite or postgres", *dbFlag)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		b.Fatal(err)
	}
	r100 := release(b, st, "1.0.0", store.SeverityLow, nil)
	r110 := release(b, st, "1.1.0", store.SeverityHigh, []string{"CVE-2026-1001"})
	c, err := st.CreateCampaign(ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "bench", Kind: store.CampaignKindRollout,
		ReleaseID: r110.ID, Spec: json.RawMessage(`{}`), ApprovedStep: -1, Seed: 1}, actor, t0)
	if err != nil {
		b.Fatal(err)
	}
	for _, action := range []string{"campaign.start", "campaign.approve"} {
		if err := st.AppendAudit(ctx, store.DefaultTenant, actor, action, "campaign", c.ID, nil, t0); err != nil {
			b.Fatal(err)
		}
	}
	keys := map[string]string{}
	for _, v := range []string{"0.9.0", "1.0.0", "1.1.0"} {
		keys[v] = semver.Key(semver.MustParse(v))
	}
	us := t0.Add(time.Hour).UnixMicro()
	q := st.Dialect().Rebind
	err = bulk(st.DB(), n, func(tx *sql.Tx, i int) error {
		dev, asg := fmt.Sprintf("dev-%08d", i), fmt.Sprintf("asg-%08d", i)
		version, rel, campaign := "1.0.0", r100.ID, ""
		switch i % 4 {
		case 1:
			version, rel, campaign = "1.1.0", r110.ID, c.ID
		case 2:
			campaign = c.ID
		case 3:
			version = "0.9.0"
		}
		if _, err := tx.Exec(q(`INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, version, version_key, version_since, attributes, created_at, updated_at)
			VALUES ('default', ?, ?, 'accepted', 'native', 'gw', 'B', ?, ?, ?, '{}', ?, ?)`), dev, "SN-"+dev, version, keys[version], us, us, us); err != nil {
			return err
		}
		if version == "0.9.0" {
			return nil
		}
		if _, err := tx.Exec(q(`INSERT INTO assignments (tenant_id, id, device_id, release_id, campaign_id, state, active, progress, created_at, updated_at)
			VALUES ('default', ?, ?, ?, ?, 'succeeded', 0, 100, ?, ?)`), asg, dev, rel, campaign, us, us); err != nil {
			return err
		}
		_, err := tx.Exec(q(`INSERT INTO assignment_events (tenant_id, device_id, seq, assignment_id, state, progress, reported_at, received_at, applied)
			VALUES ('default', ?, 1, ?, 'succeeded', 100, ?, ?, 1)`), dev, asg, us, us)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.DB().Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	return st
}

// bulk runs fn for 0..n-1 in transactions of 20,000 rows.
func bulk(db *sql.DB, n int, fn func(tx *sql.Tx, i int) error) error {
	for start := 0; start < n; start += 20000 {
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		for i := start; i < min(n, start+20000); i++ {
			if err := fn(tx, i); err != nil {
				_ = tx.Rollback()
				return err
			}
		}
		if err := tx.Commit(); err != nil {
			return err
		}
	}
	return nil
}

// walk reads every page of a list and returns the number of rows.
func walk(b *testing.B, list func(after string) (int, string, error)) int {
	total, after := 0, ""
	for {
		n, next, err := list(after)
		if err != nil {
			b.Fatal(err)
		}
		total += n
		if next == "" {
			return total
		}
		after = next
	}
}

func BenchmarkCompliance(b *testing.B) {
	ctx := context.Background()
	var prevReport float64
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 100 {
			b.Fatalf("size %q: want an integer of at least 100", s)
		}
		var base, report, exposed float64
		b.Run(fmt.Sprintf("devices=%d", n), func(b *testing.B) {
			st := populate(b, n)
			at := t0.Add(2 * time.Hour)
			page := store.Page{Limit: store.MaxPageLimit}
			b.ResetTimer()
			var tBase, tReport, tExposed time.Duration
			for i := 0; i < b.N; i++ {
				start := time.Now()
				got := walk(b, func(after string) (int, string, error) {
					ds, next, err := st.ListDevices(ctx, store.DefaultTenant, store.DeviceQuery{Page: store.Page{Limit: page.Limit, After: after}})
					return len(ds), next, err
				})
				tBase += time.Since(start)
				if got != n {
					b.Fatalf("device list walked %d devices, want %d", got, n)
				}
				start = time.Now()
				got = walk(b, func(after string) (int, string, error) {
					rows, next, err := st.DeviceVersionsAt(ctx, store.DefaultTenant, store.ComplianceQuery{At: at, Page: store.Page{Limit: page.Limit, After: after}})
					return len(rows), next, err
				})
				tReport += time.Since(start)
				if got != n {
					b.Fatalf("report walked %d devices, want %d", got, n)
				}
				start = time.Now()
				got = walk(b, func(after string) (int, string, error) {
					rows, next, err := st.ExposedDevicesAt(ctx, store.DefaultTenant, store.ComplianceQuery{At: at, Page: store.Page{Limit: page.Limit, After: after}})
					return len(rows), next, err
				})
				tExposed += time.Since(start)
				if want := n - (n+2)/4; got != want {
					b.Fatalf("exposed walk found %d devices, want %d", got, want)
				}
			}
			base = float64(tBase.Milliseconds()) / float64(b.N)
			report = float64(tReport.Milliseconds()) / float64(b.N)
			exposed = float64(tExposed.Milliseconds()) / float64(b.N)
			b.ReportMetric(report, "ms/report")
			b.ReportMetric(exposed, "ms/exposed")
			b.ReportMetric(base, "ms/device-list")
		})
		line := fmt.Sprintf("devices=%d: device list %.0f ms, report %.0f ms (%.2f× the list), exposed %.0f ms (%.2f×)",
			n, base, report, report/max(base, 1), exposed, exposed/max(base, 1))
		if prevReport > 0 {
			line += fmt.Sprintf("; report %.2f× the previous size", report/prevReport)
		}
		fmt.Println(line)
		prevReport = report
	}
}
