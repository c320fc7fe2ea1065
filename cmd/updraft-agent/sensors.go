package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/updraft/updraft/internal/agent"
	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/boot"
	"github.com/updraft/updraft/internal/devfs"
)

// execRunner runs commands with os/exec through the boot package's runner
// (bounded output, the command's standard error in the error).
type execRunner struct{}

// Run implements agent.Runner.
func (execRunner) Run(ctx context.Context, argv []string) ([]byte, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("empty command")
	}
	return boot.ExecRunner{}.Run(ctx, nil, argv[0], argv[1:]...)
}

// buildSensors reads sensors from files (sysfs-style) or commands.
func buildSensors(fsys devfs.FS, run agent.Runner, c sensorsConfig) agent.Sensors {
	var s agent.Sensors
	switch {
	case c.BatteryCommand != nil:
		argv := c.BatteryCommand
		s.Battery = func(ctx context.Context) (gate.Battery, error) {
			// "<percent> [charging]": e.g. "81 1".
			out, err := run.Run(ctx, argv)
			if err != nil {
				return gate.Battery{}, err
			}
			f := strings.Fields(string(out))
			if len(f) == 0 {
				return gate.Battery{}, fmt.Errorf("battery command printed nothing")
			}
			p, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return gate.Battery{}, fmt.Errorf("battery command: %w", err)
			}
			return gate.Battery{Percent: p, Charging: len(f) > 1 && (f[1] == "1" || strings.EqualFold(f[1], "charging"))}, nil
		}
	case c.BatteryCapacityFile != "":
		capFile, statusFile := c.BatteryCapacityFile, c.BatteryStatusFile
		s.Battery = func(context.Context) (gate.Battery, error) {
			v, err := firstLine(fsys, capFile)
			if err != nil {
				return gate.Battery{}, err
			}
			p, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return gate.Battery{}, fmt.Errorf("%s: %w", capFile, err)
			}
			b := gate.Battery{Percent: p}
			if statusFile != "" {
				// power_supply status: Charging, Full, Discharging, Not charging.
				st, err := firstLine(fsys, statusFile)
				if err != nil {
					return gate.Battery{}, err
				}
				b.Charging = st == "Charging" || st == "Full"
			}
			return b, nil
		}
	}
	if c.TemperatureFile != "" {
		name := c.TemperatureFile
		s.Temperature = func(context.Context) (float64, error) {
			v, err := firstLine(fsys, name)
			if err != nil {
				return 0, err
			}
			milli, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			return milli / 1000, nil
		}
	}
	if c.SignalCommand != nil {
		s.Signal = numberCommand(run, c.SignalCommand)
	}
	if c.MeteredCommand != nil {
		argv := c.MeteredCommand
		s.Metered = func(ctx context.Context) (bool, error) {
			out, err := run.Run(ctx, argv)
			if err != nil {
				return false, err
			}
			v := strings.TrimSpace(string(out))
			return v == "1" || v == "yes" || v == "true", nil
		}
	}
	if c.FreeStoragePath != "" {
		p := c.FreeStoragePath
		s.FreeBytes = func(context.Context) (int64, error) { return freeBytes(p) }
	}
	switch {
	case c.CrashCommand != nil:
		f := numberCommand(run, c.CrashCommand)
		s.Crashes = func(ctx context.Context) (int64, error) {
			v, err := f(ctx)
			return int64(v), err
		}
	case c.CrashDir != "":
		dir := c.CrashDir
		s.Crashes = func(context.Context) (int64, error) {
			ents, err := fsys.ReadDir(dir)
			if err != nil {
				return 0, err
			}
			return int64(len(ents)), nil
		}
	}
	if c.CustomCommand != nil {
		argv := c.CustomCommand
		s.Custom = func(ctx context.Context) (map[string]float64, error) {
			// One "name value" pair per line.
			out, err := run.Run(ctx, argv)
			if err != nil {
				return nil, err
			}
			m := map[string]float64{}
			for _, line := range strings.Split(string(out), "\n") {
				f := strings.Fields(line)
				if len(f) != 2 {
					continue
				}
				if v, err := strconv.ParseFloat(f[1], 64); err == nil {
					m[f[0]] = v
				}
			}
			return m, nil
		}
	}
	return s
}

func numberCommand(run agent.Runner, argv []string) func(context.Context) (float64, error) {
	return func(ctx context.Context) (float64, error) {
		out, err := run.Run(ctx, argv)
		if err != nil {
			return 0, err
		}
		return strconv.ParseFloat(strings.TrimSpace(string(out)), 64)
	}
}
