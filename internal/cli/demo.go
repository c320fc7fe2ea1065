package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"

	"github.com/updraft/updraft/internal/demo"
)

func demoCommand() *command {
	var (
		o    demo.Options
		addr string
	)
	return &command{
		name:  "demo",
		short: "watch a bad release get halted and rolled back, then a good one roll out",
		help: `Starts a server with a fresh temporary data directory on a clock that runs
--factor times faster than real time (network timeouts stay real), creates
offline TUF keys, signs three releases, and enrolls --devices simulated
devices, each the real agent in signed mode. Release 2.0.0 hides a
regression on hardware revision B (5x the crash rate): its campaign, with
waves sized by the power calculation and the default health policy, is
halted by the health gate (revision B, or the whole campaign when the
fleet-wide test rejects too) and its devices are rolled back, with the
engine's explanation. Then 2.0.1 rolls out through every wave.

The dashboard URL and the admin's credentials are printed at the start (the
demo sets the password itself). Ctrl-C stops everything and removes the
temporary directory; --keep leaves the server and the fleet running on real
time after the scenario, and the directory in place, until Ctrl-C.
See docs/simulator.md.`,
		flags: func(fs *flag.FlagSet) {
			fs.StringVar(&addr, "addr", "", "listen `address` (default 127.0.0.1:8080, or a free port when that is taken)")
			fs.IntVar(&o.Devices, "devices", 1000, "number of simulated `devices`")
			fs.Float64Var(&o.Factor, "factor", 1000, "how many times faster than real time the simulated clock runs")
			fs.Uint64Var(&o.Seed, "seed", 1, "random `seed` of the fleet and the campaigns' wave draws")
			fs.BoolVar(&o.Keep, "keep", false, "after the scenario, keep the server and the fleet running (on real time) and the data directory")
			fs.StringVar(&o.Dir, "dir", "", "working `directory` (default: a new temporary one)")
		},
		run: func(ctx context.Context, e *Env, _ []string) error {
			if o.Devices < 20 {
				return usageErrorf("--devices must be at least 20 (the health statistics need a fleet)")
			}
			if o.Factor < 1 {
				return usageErrorf("--factor must be at least 1")
			}
			o.Addr, o.AddrRequired = addr, addr != ""
			_, err := demo.Run(ctx, o, e.Stdout)
			if errors.Is(err, context.Canceled) && ctx.Err() != nil {
				fmt.Fprintln(e.Stdout, "Stopped; server and fleet shut down cleanly.")
				return nil
			}
			return err
		},
	}
}
