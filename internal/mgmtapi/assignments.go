package mgmtapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// assign makes a release the device's active assignment and wakes the
// device. The release is named by version or by id.
func (a *API) assign(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Release  string `json:"release"`
		AllowBad bool   `json:"allow_bad"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if req.Release == "" {
		return apierror.BadRequest("release is required: a version such as 1.2.0 or a release id")
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := a.store.Device(ctx, c.tenant(), id); err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	rel, err := a.findRelease(r, c, req.Release)
	if err != nil {
		return err
	}
	as, superseded, err := a.store.Assign(ctx, store.AssignParams{
		TenantID:  c.tenant(),
		DeviceID:  id,
		ReleaseID: rel.ID,
		AllowBad:  req.AllowBad,
		Now:       a.now(),
	}, c.actor)
	if err != nil {
		return fmt.Errorf("assign release %s to device %s: %w", rel.Version, id, err)
	}
	a.notifier.Notify(c.tenant(), id)
	return created(w, assignResult{Assignment: as, Superseded: superseded})
}

// findRelease resolves a release reference: a semantic version, or else a
// release id.
func (a *API) findRelease(r *http.Request, c *caller, ref string) (store.Release, error) {
	var (
		rel store.Release
		err error
	)
	if _, perr := semver.Parse(ref); perr == nil {
		rel, err = a.store.ReleaseByVersion(r.Context(), c.tenant(), ref)
	} else {
		rel, err = a.store.Release(r.Context(), c.tenant(), ref)
	}
	if errors.Is(err, store.ErrNotFound) {
		return rel, apierror.NotFound("release %q not found (give a version such as 1.2.0 or a release id)", ref)
	}
	if err != nil {
		return rel, fmt.Errorf("release %s: %w", ref, err)
	}
	return rel, nil
}

func (a *API) listAssignments(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := a.store.Device(ctx, c.tenant(), id); err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	items, next, err := a.store.ListAssignments(ctx, c.tenant(), id, p)
	if err != nil {
		return fmt.Errorf("assignments of device %s: %w", id, err)
	}
	writeList(w, items, next)
	return nil
}

func (a *API) getAssignment(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	id := r.PathValue("id")
	as, err := a.store.Assignment(ctx, c.tenant(), id)
	if err != nil {
		return fmt.Errorf("assignment %s: %w", id, err)
	}
	events, err := a.store.AssignmentEvents(ctx, c.tenant(), id)
	if err != nil {
		return fmt.Errorf("events of assignment %s: %w", id, err)
	}
	return ok(w, assignmentDetail{Assignment: as, Events: nonNil(events)})
}

const maxReasonLen = 1024

func (a *API) cancelAssignment(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Reason string `json:"reason"`
	}
	if err := decodeOptionalBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if len(req.Reason) > maxReasonLen {
		return apierror.BadRequest("reason is longer than %d bytes", maxReasonLen)
	}
	if req.Reason == "" {
		req.Reason = "canceled by " + c.actor.Name
	}
	id := r.PathValue("id")
	as, err := a.store.CancelAssignment(r.Context(), c.tenant(), id, req.Reason, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("cancel assignment %s: %w", id, err)
	}
	a.notifier.Notify(c.tenant(), as.DeviceID)
	return ok(w, as)
}

// Telemetry query bounds: raw points are kept for days, roll-ups for months.
const (
	defaultTelemetryRange = 24 * time.Hour
	maxRawRange           = 7 * 24 * time.Hour
	maxHourlyRange        = 400 * 24 * time.Hour
)

type telemetryBody struct {
	Metric     string    `json:"metric"`
	Resolution string    `json:"resolution"`
	From       time.Time `json:"from"`
	To         time.Time `json:"to"`
	// Exactly one of Points (raw) and Rollups (hourly) is present.
	Points  *[]store.MetricPoint  `json:"points,omitempty"`
	Rollups *[]store.HourlyRollup `json:"rollups,omitempty"`
}

func (a *API) telemetry(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	metric := q.Get("metric")
	if metric == "" {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "metric is required, e.g. metric=crashes")
	}
	if err := checkLabel("metric", metric); err != nil {
		return err
	}
	res := q.Get("resolution")
	if res == "" {
		res = "raw"
	}
	if res != "raw" && res != "hourly" {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "resolution must be raw or hourly")
	}
	from, err := timeParam(r, "from")
	if err != nil {
		return err
	}
	to, err := timeParam(r, "to")
	if err != nil {
		return err
	}
	if to.IsZero() {
		to = a.now()
	}
	if from.IsZero() {
		from = to.Add(-defaultTelemetryRange)
	}
	maxRange := maxRawRange
	if res == "hourly" {
		maxRange = maxHourlyRange
	}
	if !from.Before(to) {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "from must be before to")
	}
	if to.Sub(from) > maxRange {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "%s telemetry can be read at most %d days at a time", res, int(maxRange.Hours()/24))
	}
	ctx := r.Context()
	id := r.PathValue("id")
	if _, err := a.store.Device(ctx, c.tenant(), id); err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	out := telemetryBody{Metric: metric, Resolution: res, From: from.UTC(), To: to.UTC()}
	if res == "raw" {
		pts, err := a.store.TelemetryRaw(ctx, c.tenant(), id, metric, from, to)
		if err != nil {
			return fmt.Errorf("telemetry of device %s: %w", id, err)
		}
		pts = nonNil(pts)
		out.Points = &pts
	} else {
		rs, err := a.store.TelemetryHourly(ctx, c.tenant(), id, metric, from, to)
		if err != nil {
			return fmt.Errorf("telemetry of device %s: %w", id, err)
		}
		rs = nonNil(rs)
		out.Rollups = &rs
	}
	return ok(w, out)
}
