package agent

import (
	"context"
	"fmt"
	"strings"

	"github.com/updraft/updraft/internal/agent/gate"
)

// checkGates reads the sensors and evaluates the gates for the job's next
// step: before the download (download true) or before the install.
func (a *Agent) checkGates(ctx context.Context, j *job, download bool) gate.Result {
	ctx, cancel := context.WithTimeout(ctx, sensorTimeout)
	defer cancel()
	s := a.cfg.Sensors
	var rd gate.Readings
	rd.Battery = read(ctx, s.Battery)
	rd.FreeBytes = read(ctx, s.FreeBytes)
	rd.Temperature = read(ctx, s.Temperature)
	if download {
		rd.Metered = read(ctx, s.Metered)
	}
	if len(a.cfg.GateCommand) > 0 && a.cfg.Commands != nil && !j.Target.Forced {
		rd.Custom.Known = true
		if out, err := a.cfg.Commands.Run(ctx, a.cfg.GateCommand); err != nil {
			msg := strings.TrimSpace(string(out))
			if len(msg) > 200 {
				msg = msg[len(msg)-200:]
			}
			if msg == "" {
				msg = err.Error()
			}
			rd.Custom.Err = fmt.Errorf("%s", msg)
		}
	}
	var need int64
	if j.Kind != kindSlot && j.Kind != kindHashSlot {
		// Staging (and for archives, unpacking) needs about the artifact's
		// size again.
		need = j.Target.Length
	}
	return gate.Check(a.cfg.Gates, gate.Request{
		Now:       a.clock.Now(),
		Overrides: j.Target.Gates,
		Windows:   j.Target.Windows,
		Forced:    j.Target.Forced,
		NeedBytes: need,
		Download:  download,
	}, rd)
}

func read[T any](ctx context.Context, f func(context.Context) (T, error)) gate.Reading[T] {
	if f == nil {
		return gate.Reading[T]{}
	}
	v, err := f(ctx)
	return gate.Reading[T]{Known: true, Value: v, Err: err}
}
