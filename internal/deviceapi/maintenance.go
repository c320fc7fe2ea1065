package deviceapi

import (
	"context"
)

// maintenanceLoop expires pending enrollments and prunes old telemetry at
// start and then every MaintenanceInterval until ctx ends. Both are
// idempotent, so replicas running them concurrently only repeat work.
func (a *API) maintenanceLoop(ctx context.Context) {
	for {
		a.maintain(ctx)
		t := a.clock.NewTimer(a.limits.MaintenanceInterval)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

func (a *API) maintain(ctx context.Context) {
	now := a.clock.Now()
	if n, err := a.store.ExpirePending(ctx, now); err != nil {
		if ctx.Err() == nil {
			a.log.ErrorContext(ctx, "expire pending enrollments", "err", err)
		}
	} else if n > 0 {
		a.log.InfoContext(ctx, "expired pending enrollments", "devices", n)
	}
	raw := now.Add(-a.limits.TelemetryRawRetention)
	hourly := now.Add(-a.limits.TelemetryHourlyRetention)
	if n, err := a.store.PruneTelemetry(ctx, raw, hourly); err != nil {
		if ctx.Err() == nil {
			a.log.ErrorContext(ctx, "prune telemetry", "err", err)
		}
	} else if n > 0 {
		a.log.DebugContext(ctx, "pruned telemetry", "rows", n)
	}
}
