// Package reliability runs the reliability scenario (internal/reliability)
// at scale: 10,000 simulated devices by default, each a real agent,
// against an `updraft serve` process on a scaled clock, on SQLite and on
// PostgreSQL (skipped without a server unless UPDRAFT_REQUIRE_SERVICES=1).
// Each backend runs twice in the same benchmark: first without faults —
// the baseline — then with 20 % of connections dropped, power cuts in 5 %
// of installs and the server killed with SIGKILL mid-campaign twice. It
// prints the report table and the ratios of the faulted run to the
// baseline. Run it with
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 3h ./bench/reliability
//
// -reliability.devices (env UPDRAFT_RELIABILITY_DEVICES) sets the fleet
// size, -reliability.scale (UPDRAFT_RELIABILITY_SCALE) the time scale,
// -reliability.backends (sqlite,postgres) the backends.
package reliability

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/reliability"
	"github.com/updraft/updraft/internal/testenv"
)

var (
	devicesFlag  = flag.Int("reliability.devices", envInt("UPDRAFT_RELIABILITY_DEVICES", 10000), "simulated devices")
	scaleFlag    = flag.Float64("reliability.scale", envFloat("UPDRAFT_RELIABILITY_SCALE", 0), "time scale (0: 60000 / devices, at most 200)")
	backendsFlag = flag.String("reliability.backends", "sqlite,postgres", "backends to run: sqlite, postgres")
	seedFlag     = flag.Uint64("reliability.seed", 1, "seed")
	baseFlag     = flag.Bool("reliability.baseline", true, "run the no-fault baseline before the faulted run")
	soakFlag     = flag.Duration("reliability.soak", 30*time.Minute, "minimum soak per wave (simulated)")
)

func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil {
		return v
	}
	return def
}

func envFloat(name string, def float64) float64 {
	if v, err := strconv.ParseFloat(os.Getenv(name), 64); err == nil {
		return v
	}
	return def
}

func BenchmarkReliability(b *testing.B) {
	bin, err := reliability.Build(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	n := *devicesFlag
	scale := *scaleFlag
	if scale <= 0 {
		// The server's 5-minute check-ins at this scale are about
		// 200 requests per real second, whatever the fleet size; much
		// more and, on two cores, a request's real latency becomes
		// minutes of simulated time, so agents miss their 10-minute
		// window to confirm a new image and roll back.
		scale = min(200, 60000/float64(n))
	}
	for b.Loop() {
		var all []*reliability.Report
		for _, backend := range strings.Split(*backendsFlag, ",") {
			var runs [2]*reliability.Report
			for i, faults := range []reliability.Faults{{}, reliability.StandardFaults()} {
				if i == 0 && !*baseFlag {
					continue
				}
				db := ""
				if backend == "postgres" {
					db = testenv.Postgres(b)
				}
				cfg := reliability.Config{Binary: bin, Dir: b.TempDir(), Database: db, Devices: n, Seed: *seedFlag,
					TimeScale: scale, Faults: faults, MinSoak: *soakFlag, Budget: 48 * time.Hour, Deadline: 3 * time.Hour,
					Progress: func(format string, args ...any) {
						fmt.Fprintf(os.Stderr, "%s %s: "+format+"\n", append([]any{backend, faults}, args...)...)
					}}
				rep, err := reliability.Run(context.Background(), cfg)
				if err != nil {
					if rep != nil {
						_ = reliability.WriteTable(os.Stdout, rep)
					}
					b.Fatal(err)
				}
				for _, p := range rep.Problems() {
					b.Errorf("%s seed %d: %s", backend, *seedFlag, p)
				}
				runs[i] = rep
				all = append(all, rep)
			}
			base, f := runs[0], runs[1]
			if base == nil {
				base = &reliability.Report{}
			}
			fmt.Printf("%s: faulted / baseline: good campaign %s, time to halt %s, exposed %s, wall %s\n", backend,
				ratio(f.GoodDuration, base.GoodDuration), ratio(f.TimeToHalt, base.TimeToHalt),
				ratio(time.Duration(f.Exposed), time.Duration(base.Exposed)), ratio(f.Wall, base.Wall))
			b.ReportMetric(f.GoodDuration.Minutes(), backend+"-good-sim-min")
			b.ReportMetric(f.TimeToHalt.Minutes(), backend+"-halt-sim-min")
			b.ReportMetric(float64(f.Bricked), backend+"-bricked")
			b.ReportMetric(float64(f.ReportsLost), backend+"-reports-lost")
		}
		fmt.Printf("\n%d devices, time scale %g, seed %d\n", n, scale, *seedFlag)
		if err := reliability.WriteTable(os.Stdout, all...); err != nil {
			b.Fatal(err)
		}
	}
}

func ratio(a, b time.Duration) string {
	if a == 0 || b == 0 {
		return "-"
	}
	return fmt.Sprintf("%.2f×", float64(a)/float64(b))
}
