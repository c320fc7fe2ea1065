// Package rollouttick measures what one rollout engine tick costs as a
// campaign grows: the engine must do work in proportion to what changed,
// not to the fleet, so the tick time should stay nearly flat from 10,000
// to 1,000,000 assignments (the goal: at most 12× per 10× more).
//
// Each size gets a fresh SQLite database holding one running campaign
// whose N devices all have an active assignment (populated with bulk SQL,
// outside the timing). Every timed tick follows 100 devices reporting
// success, so each tick folds 100 assignment changes, 100 device changes
// (their installed version moved), evaluates the health policy and saves
// the campaign. Run it with
//
//	go test -run '^$' -bench . -benchtime 50x ./bench/rollouttick
//
// and -rollouttick.sizes=10000,100000 to skip the million (whose
// population takes several minutes). It prints each size's time per tick
// and the ratio to the previous size.
//
// Figures from one run on the 2-core development machine while other
// builds shared it (50 ticks each): 10,000 assignments 39.7 ms per tick;
// 100,000: 37.8 ms (0.95×); 1,000,000: 55.3 ms (1.46×). The growth comes
// from deeper indexes, not from scanning: the goal of at most 12× per 10×
// holds with a wide margin.
package rollouttick

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

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
)

var sizesFlag = flag.String("rollouttick.sizes", "10000,100000,1000000", "campaign sizes (assignments) to measure")

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

var actor = store.Actor{Kind: store.ActorUser, ID: "bench", Name: "bench"}

// fixture is a populated database with one running campaign.
type fixture struct {
	st       *sqlstore.Store
	clock    *clock.Fake
	eng      *rollout.Engine
	campaign string
	devices  []string
	assigns  []string
	next     int
}

func populate(b *testing.B, n int) *fixture {
	b.Helper()
	ctx := context.Background()
	st, err := sqlite.Open(filepath.Join(b.TempDir(), "tick.db"), nil)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		b.Fatal(err)
	}
	rel, err := st.CreateRelease(ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: "2.0.0"}, actor, t0)
	if err != nil {
		b.Fatal(err)
	}
	if _, err := st.AddArtifact(ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "gw", HWRevs: []string{"B"},
		Type: store.ArtifactRawImage, Name: "img", Size: 1, SHA256: strings.Repeat("a", 64), SHA1: strings.Repeat("b", 40), MD5: strings.Repeat("c", 32)}, actor, t0); err != nil {
		b.Fatal(err)
	}
	if _, err := st.PublishRelease(ctx, store.DefaultTenant, rel.ID, actor, t0); err != nil {
		b.Fatal(err)
	}
	now := t0.Add(time.Hour)
	spec, _ := json.Marshal(campaign.Spec{Name: "bench", Release: "2.0.0", Strata: []string{"hw_rev"},
		Plan: campaign.Plan{Waves: []float64{100}, NoControl: true}, DeviceTimeout: campaign.Duration(1000 * time.Hour)})
	plan, _ := json.Marshal(campaign.Resolved{Steps: []campaign.Step{{Name: "wave 1", Kind: campaign.StepWave, Fraction: 1, Planned: n}},
		Targets: n, Strata: map[string]int{"hw_rev=B": n}, Baseline: 0.02})
	rt, _ := json.Marshal(campaign.Runtime{Targeted: true, DeviceCursor: store.DeviceCursor{UpdatedAt: now}, AssignAt: now,
		RateHour: now.Add(1000 * time.Hour), StepStartedAt: now})
	c, err := st.CreateCampaign(ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "bench", Kind: store.CampaignKindRollout, ReleaseID: rel.ID,
		Spec: spec, Plan: plan, Engine: rt, State: store.CampaignRunning, ApprovedStep: -1, Seed: 1, StartedAt: &now}, actor, now)
	if err != nil {
		b.Fatal(err)
	}
	f := &fixture{st: st, clock: clock.NewFake(now), campaign: c.ID}
	key := semver.Key(semver.MustParse("1.0.0"))
	db := st.DB()
	err = bulk(db, n, func(tx *sql.Tx, i int) error {
		dev, asg := fmt.Sprintf("dev-%08d", i), fmt.Sprintf("asg-%08d", i)
		f.devices, f.assigns = append(f.devices, dev), append(f.assigns, asg)
		us := t0.UnixMicro()
		if _, err := tx.Exec(`INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, version, version_key, attributes, created_at, updated_at)
			VALUES ('default', ?, ?, 'accepted', 'native', 'gw', 'B', '1.0.0', ?, '{}', ?, ?)`, dev, "SN-"+dev, key, us, us); err != nil {
			return err
		}
		if _, err := tx.Exec(`INSERT INTO assignments (tenant_id, id, device_id, release_id, campaign_id, state, active, created_at, updated_at)
			VALUES ('default', ?, ?, ?, ?, 'notified', 1, ?, ?)`, asg, dev, rel.ID, c.ID, us, us); err != nil {
			return err
		}
		_, err := tx.Exec(`INSERT INTO campaign_devices (tenant_id, campaign_id, device_id, stratum, step, state, assignment_id, eligible_at, due_at, assigned_at, updated_at)
			VALUES ('default', ?, ?, 'hw_rev=B', 0, 'assigned', ?, ?, ?, ?, ?)`, c.ID, dev, asg, us, now.Add(1000*time.Hour).UnixMicro(), us, us)
		return err
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO campaign_tallies (tenant_id, campaign_id, step, stratum, state, silent, n) VALUES ('default', ?, 0, 'hw_rev=B', 'assigned', 0, ?)`, c.ID, n); err != nil {
		b.Fatal(err)
	}
	if _, err := db.Exec(`ANALYZE`); err != nil {
		b.Fatal(err)
	}
	f.eng, err = rollout.New(rollout.Config{Store: st, Clock: f.clock, Holder: "bench", Interval: time.Minute, LeaseTTL: time.Hour, Lag: -1})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := f.eng.Tick(ctx); err != nil {
		b.Fatal(err)
	}
	return f
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

// reports has the next 100 devices report success.
func (f *fixture) reports(b *testing.B) {
	f.clock.Advance(time.Second)
	var batch []store.DeviceReports
	for k := 0; k < 100; k++ {
		i := f.next % len(f.devices)
		f.next++
		batch = append(batch, store.DeviceReports{TenantID: store.DefaultTenant, DeviceID: f.devices[i], Reports: []store.StatusReport{{
			AssignmentID: f.assigns[i], Seq: int64(f.next/len(f.devices) + 1), State: store.AssignSucceeded, Progress: 100,
		}}})
	}
	if _, err := f.st.RecordReports(context.Background(), batch, f.clock.Now()); err != nil {
		b.Fatal(err)
	}
}

func BenchmarkTick(b *testing.B) {
	var prev float64
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 1000 {
			b.Fatalf("size %q: want an integer of at least 1000", s)
		}
		var perTick float64
		b.Run(fmt.Sprintf("assignments=%d", n), func(b *testing.B) {
			f := populate(b, n)
			ctx := context.Background()
			b.ResetTimer()
			var total time.Duration
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				f.reports(b)
				b.StartTimer()
				start := time.Now()
				if _, err := f.eng.Tick(ctx); err != nil {
					b.Fatal(err)
				}
				total += time.Since(start)
			}
			perTick = float64(total.Microseconds()) / float64(b.N)
			b.ReportMetric(perTick, "µs/tick")
			cs, err := f.st.CampaignTallies(ctx, store.DefaultTenant, f.campaign)
			if err != nil {
				b.Fatal(err)
			}
			succeeded := 0
			for _, t := range cs {
				if t.State == store.CDSucceeded {
					succeeded += t.N
				}
			}
			if succeeded != min(f.next, n) {
				b.Fatalf("%d devices succeeded in the campaign, %d reported: the ticks lost changes", succeeded, f.next)
			}
		})
		if prev > 0 {
			fmt.Printf("assignments=%d: %.0f µs per tick, %.2f× the previous size\n", n, perTick, perTick/prev)
		} else {
			fmt.Printf("assignments=%d: %.0f µs per tick\n", n, perTick)
		}
		prev = perTick
	}
}
