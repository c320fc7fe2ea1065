package mgmtapi

import (
	"fmt"
	"net/http"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// DefaultPollInterval is the check-in interval assumed when
// Config.PollInterval is 0; it matches the device API's default.
const DefaultPollInterval = 5 * time.Minute

// OnlineChecks is how many check-in intervals a device may stay silent and
// still count as online: a device that missed one check-in (jitter, a
// slow network, the batched last-seen write) is not yet offline.
const OnlineChecks = 2

// Failure window defaults of GET /fleet/summary.
const (
	defaultFailureWindow = 24 * time.Hour
	fleetRecentFailures  = 10
)

// fleetSummary is GET /fleet/summary: the numbers of the fleet overview.
type fleetSummary struct {
	At time.Time `json:"at"`
	// CheckInIntervalSeconds is the interval the device API hands out;
	// OnlineSince is the cut-off: accepted devices seen at or after it
	// are online.
	CheckInIntervalSeconds int64        `json:"check_in_interval_seconds"`
	OnlineWindowSeconds    int64        `json:"online_window_seconds"`
	OnlineSince            time.Time    `json:"online_since"`
	Devices                fleetDevices `json:"devices"`
	Failures               fleetFails   `json:"failures"`
}

type fleetDevices struct {
	Total   int            `json:"total"`
	ByState map[string]int `json:"by_state"`
	// Online, Offline and NeverSeen split the accepted devices.
	Online    int `json:"online"`
	Offline   int `json:"offline"`
	NeverSeen int `json:"never_seen"`
	// SeenByState splits every state the same way (recent = online).
	SeenByState map[string]store.SeenCounts `json:"seen_by_state"`
}

type fleetFails struct {
	Since time.Time `json:"since"`
	Total int       `json:"total"`
	// ByState has every failure state (failed, rolled-back, timed-out),
	// zeros included.
	ByState map[string]int `json:"by_state"`
	// Recent are the newest failures, newest first (at most 10).
	Recent []store.Assignment `json:"recent"`
}

// fleetSummary counts devices by state and last check-in, and the
// assignments that failed, rolled back or timed out since ?since (default
// the last 24 hours).
func (a *API) fleetSummary(w http.ResponseWriter, r *http.Request, c *caller) error {
	now := a.now()
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	if since.IsZero() {
		since = now.Add(-defaultFailureWindow)
	}
	if since.After(now) {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "since must not be in the future")
	}
	poll := a.poll
	if poll <= 0 {
		poll = DefaultPollInterval
	}
	window := OnlineChecks * poll
	out := fleetSummary{
		At: now, CheckInIntervalSeconds: int64(poll / time.Second), OnlineWindowSeconds: int64(window / time.Second),
		OnlineSince: now.Add(-window),
		Devices:     fleetDevices{ByState: map[string]int{}, SeenByState: map[string]store.SeenCounts{}},
		Failures:    fleetFails{Since: since.UTC(), ByState: map[string]int{}},
	}
	ctx := r.Context()
	seen, err := a.store.CountDevicesSeen(ctx, c.tenant(), out.OnlineSince)
	if err != nil {
		return fmt.Errorf("fleet summary: %w", err)
	}
	for st, sc := range seen {
		out.Devices.ByState[string(st)] = sc.Total()
		out.Devices.SeenByState[string(st)] = sc
		out.Devices.Total += sc.Total()
	}
	acc := seen[store.DeviceAccepted]
	out.Devices.Online, out.Devices.Offline, out.Devices.NeverSeen = acc.Recent, acc.Earlier, acc.Never
	counts, recent, err := a.store.AssignmentOutcomes(ctx, c.tenant(), store.OutcomeQuery{
		States: store.FailedStates(), Since: since, Recent: fleetRecentFailures})
	if err != nil {
		return fmt.Errorf("fleet summary: %w", err)
	}
	for _, st := range store.FailedStates() {
		out.Failures.ByState[string(st)] = counts[st]
		out.Failures.Total += counts[st]
	}
	out.Failures.Recent = nonNil(recent)
	return ok(w, out)
}
