package deviceapi_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

// TestBackgroundExpiryAndPruning: the maintenance loop deletes pending
// enrollments past their TTL and raw telemetry past its retention, keeping
// the hourly roll-ups.
func TestBackgroundExpiryAndPruning(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limits: deviceapi.Limits{PendingTTL: time.Hour, TelemetryRawRetention: 2 * time.Hour, TelemetryHourlyRetention: 24 * time.Hour}})
	pending := e.newDevice("SN-PENDING")
	if r := pending.enroll(); r.status != http.StatusAccepted {
		t.Fatalf("enroll: %d %s", r.status, r.body)
	}
	d := e.enrollAccepted("SN-1")
	at := e.clock.Now().Truncate(time.Hour)
	r := e.do("POST", wire.PathTelemetry, d.auth(), mustJSON(t, wire.TelemetryRequest{Points: []wire.Point{{Name: "uptime", At: at, Value: 1}}}))
	if r.status != http.StatusOK {
		t.Fatalf("telemetry: %d %s", r.status, r.body)
	}

	e.clock.Advance(3 * time.Hour) // past the pending TTL and the raw retention
	e.eventually("pending enrollment expired", func() bool {
		_, err := e.store.Device(e.ctx, store.DefaultTenant, pending.devID)
		return errors.Is(err, store.ErrNotFound)
	})
	e.eventually("raw telemetry pruned", func() bool {
		pts, err := e.store.TelemetryRaw(e.ctx, store.DefaultTenant, d.devID, "uptime", at.Add(-time.Hour), at.Add(time.Hour))
		return err == nil && len(pts) == 0
	})
	hours, err := e.store.TelemetryHourly(e.ctx, store.DefaultTenant, d.devID, "uptime", at.Add(-time.Hour), at.Add(time.Hour))
	if err != nil || len(hours) != 1 || hours[0].Count != 1 {
		t.Fatalf("hourly roll-ups %+v, err %v; want one hour with one point", hours, err)
	}
	if _, err := e.store.Device(e.ctx, store.DefaultTenant, d.devID); err != nil {
		t.Fatalf("accepted device: %v", err)
	}
}
