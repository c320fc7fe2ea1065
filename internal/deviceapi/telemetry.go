package deviceapi

import (
	"net/http"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

// handleTelemetry serves POST /api/device/v1/telemetry: a batch of metric
// points, stored raw and rolled up hourly by the store. Points older than
// the raw retention, or too far in the future, are dropped and counted,
// not refused, so a device with a long backlog or a wrong clock does not
// retry them forever.
func (a *API) handleTelemetry(w http.ResponseWriter, r *http.Request) {
	if err := a.telemetry(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) telemetry(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.verifyToken(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, wire.MaxTelemetryBytes)
	if err != nil {
		return err
	}
	req, err := wire.DecodeTelemetry(body)
	if err != nil {
		return invalid(err)
	}
	ctx := r.Context()
	d, err := a.checkDevice(ctx, claims)
	if err != nil {
		return err
	}
	now := a.clock.Now()
	a.seen.touch(d.TenantID, d.ID, now)
	oldest := now.Add(-a.limits.TelemetryRawRetention)
	newest := now.Add(a.limits.TelemetryMaxFuture)
	points := make([]store.MetricPoint, 0, len(req.Points))
	for _, p := range req.Points {
		if p.At.Before(oldest) || p.At.After(newest) {
			continue
		}
		points = append(points, store.MetricPoint{Name: p.Name, At: p.At.UTC(), Value: p.Value})
	}
	if len(points) > 0 {
		if err := a.store.RecordTelemetry(ctx, d.TenantID, d.ID, points); err != nil {
			return err
		}
		a.metrics.telemetry.Add(float64(len(points)))
	}
	apierror.WriteJSON(w, http.StatusOK, wire.TelemetryResponse{Accepted: len(points), Dropped: len(req.Points) - len(points)})
	return nil
}
