package web

import (
	"cmp"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// The fleet overview (/ui/): device counts by state and check-in, the
// installed versions and hardware, recent failures and the campaigns in
// progress. Everything comes from the management API: /fleet/summary,
// /devices/count?by=…, /campaigns and /campaigns/{id}.

func (u *UI) overviewRoutes() []route {
	return []route{
		{http.MethodGet, "", signedIn, u.overviewPage},
		{http.MethodGet, "overview/live", signedIn, u.overviewLive},
	}
}

// fleetSummary is the API's GET /fleet/summary.
type fleetSummary struct {
	At                     time.Time `json:"at"`
	CheckInIntervalSeconds int64     `json:"check_in_interval_seconds"`
	OnlineWindowSeconds    int64     `json:"online_window_seconds"`
	OnlineSince            time.Time `json:"online_since"`
	Devices                struct {
		Total     int            `json:"total"`
		ByState   map[string]int `json:"by_state"`
		Online    int            `json:"online"`
		Offline   int            `json:"offline"`
		NeverSeen int            `json:"never_seen"`
	} `json:"devices"`
	Failures struct {
		Since   time.Time          `json:"since"`
		Total   int                `json:"total"`
		ByState map[string]int     `json:"by_state"`
		Recent  []store.Assignment `json:"recent"`
	} `json:"failures"`
}

type countBy struct {
	Total int            `json:"total"`
	By    map[string]int `json:"by"`
}

type apiList[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next"`
}

// Overview limits: the longest bar charts and campaign list it shows.
const (
	overviewMaxBars      = 12
	overviewMaxCampaigns = 8
)

// activeCampaignStates are the campaigns the overview lists.
var activeCampaignStates = []store.CampaignState{store.CampaignRunning, store.CampaignWaitingApproval,
	store.CampaignPaused, store.CampaignHalted}

type stateCount struct {
	State string
	N     string
	Href  string
}

type failureRow struct {
	store.Assignment
	Serial string
}

type campaignRow struct {
	ID, Name, Version, State string
	Succeeded, Failed, Total int
	Percent                  int // succeeded of total
	Progress                 string
}

type overviewView struct {
	Empty        bool
	Total        string
	States       []stateCount
	Online       string
	Offline      string
	NeverSeen    string
	Accepted     int
	OnlinePct    string
	CheckIn      string // "5 min"
	OnlineWindow string // "10 min"
	OnlineSince  time.Time

	Versions      []Bar
	MoreVersions  int
	Hardware      []Bar
	MoreHardware  int
	DeviceTypes   []Bar
	FailuresSince time.Time
	FailureCounts []stateCount
	FailureTotal  int
	Failures      []failureRow

	Campaigns     []campaignRow
	MoreCampaigns bool
}

func (u *UI) overviewPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, err := u.overview(r.Context(), s)
	if err != nil {
		return err
	}
	return u.render(w, r, s, http.StatusOK, "overview.html", "Fleet overview", v)
}

// overviewLive refreshes the overview's figures every LiveInterval.
func (u *UI) overviewLive(w http.ResponseWriter, r *http.Request, s *Session) error {
	return u.serveLive(w, r, func(ctx context.Context) ([]Fragment, error) {
		v, err := u.overview(ctx, s)
		if err != nil {
			return nil, err
		}
		html, err := u.fragment("overview.html", "overview-body", s, v)
		if err != nil {
			return nil, err
		}
		return []Fragment{{ID: "overview-body", HTML: html}}, nil
	})
}

func (u *UI) overview(ctx context.Context, s *Session) (overviewView, error) {
	api := s.API()
	var sum fleetSummary
	if err := api.Do(ctx, http.MethodGet, "/fleet/summary", nil, nil, &sum); err != nil {
		return overviewView{}, err
	}
	v := overviewView{
		Empty: sum.Devices.Total == 0, Total: thousands(sum.Devices.Total),
		Online: thousands(sum.Devices.Online), Offline: thousands(sum.Devices.Offline), NeverSeen: thousands(sum.Devices.NeverSeen),
		Accepted:     sum.Devices.ByState[string(store.DeviceAccepted)],
		CheckIn:      humanDuration(time.Duration(sum.CheckInIntervalSeconds) * time.Second),
		OnlineWindow: humanDuration(time.Duration(sum.OnlineWindowSeconds) * time.Second),
		OnlineSince:  sum.OnlineSince, FailuresSince: sum.Failures.Since, FailureTotal: sum.Failures.Total,
	}
	v.OnlinePct = percent(sum.Devices.Online, v.Accepted)
	for _, st := range []store.DeviceState{store.DeviceAccepted, store.DevicePending, store.DeviceRejected, store.DeviceDecommissioned} {
		v.States = append(v.States, stateCount{State: string(st), N: thousands(sum.Devices.ByState[string(st)]),
			Href: Prefix + "devices?state=" + string(st)})
	}
	for _, st := range store.FailedStates() {
		v.FailureCounts = append(v.FailureCounts, stateCount{State: string(st), N: thousands(sum.Failures.ByState[string(st)])})
	}
	for _, a := range sum.Failures.Recent {
		row := failureRow{Assignment: a}
		var d store.Device
		if err := api.Do(ctx, http.MethodGet, "/devices/"+url.PathEscape(a.DeviceID), nil, nil, &d); err == nil {
			row.Serial = d.Serial
		}
		v.Failures = append(v.Failures, row)
	}
	if v.Empty {
		return v, nil
	}

	var err error
	if v.Versions, v.MoreVersions, err = countBars(ctx, api, "version", versionHref); err != nil {
		return v, err
	}
	if v.Hardware, v.MoreHardware, err = countBars(ctx, api, "hw_rev", fieldHref("hw_rev")); err != nil {
		return v, err
	}
	if v.DeviceTypes, _, err = countBars(ctx, api, "device_type", fieldHref("device_type")); err != nil {
		return v, err
	}

	var cs apiList[store.Campaign]
	states := make([]string, len(activeCampaignStates))
	for i, st := range activeCampaignStates {
		states[i] = string(st)
	}
	q := url.Values{"state": {strings.Join(states, ",")}, "limit": {fmt.Sprint(overviewMaxCampaigns)}}
	if err := api.Do(ctx, http.MethodGet, "/campaigns", q, nil, &cs); err != nil {
		return v, err
	}
	v.MoreCampaigns = cs.Next != ""
	for _, c := range cs.Items {
		var d struct {
			store.Campaign
			Tallies []store.CampaignTally `json:"tallies"`
		}
		if err := api.Do(ctx, http.MethodGet, "/campaigns/"+url.PathEscape(c.ID), nil, nil, &d); err != nil {
			return v, err
		}
		row := campaignRow{ID: c.ID, Name: c.Name, Version: c.Version, State: string(d.State)}
		for _, t := range d.Tallies {
			row.Total += t.N
			switch t.State {
			case store.CDSucceeded:
				row.Succeeded += t.N
			case store.CDFailed, store.CDRolledBack, store.CDTimedOut:
				row.Failed += t.N
			}
		}
		if row.Total > 0 {
			row.Percent = 100 * row.Succeeded / row.Total
		}
		row.Progress = fmt.Sprintf("%s of %s updated", thousands(row.Succeeded), thousands(row.Total))
		v.Campaigns = append(v.Campaigns, row)
	}
	return v, nil
}

// countBars counts devices by field and makes the largest groups bars
// (largest first); it also returns how many groups did not fit.
func countBars(ctx context.Context, api *API, field string, href func(string) string) ([]Bar, int, error) {
	var c countBy
	if err := api.Do(ctx, http.MethodGet, "/devices/count", url.Values{"by": {field}}, nil, &c); err != nil {
		return nil, 0, err
	}
	bars := make([]Bar, 0, len(c.By))
	for k, n := range c.By {
		label := k
		if label == "" {
			label = "(not reported)"
		}
		bars = append(bars, Bar{Label: label, Value: n, Href: href(k)})
	}
	slices.SortFunc(bars, func(a, b Bar) int {
		if c := cmp.Compare(b.Value, a.Value); c != 0 {
			return c
		}
		return strings.Compare(a.Label, b.Label)
	})
	more := 0
	if len(bars) > overviewMaxBars {
		more = len(bars) - overviewMaxBars
		bars = bars[:overviewMaxBars]
	}
	return bars, more, nil
}

// versionHref links a version's bar to the devices running it. Devices
// without a version match `not version >= "0.0.0-0"`; a reported version
// that is not a semantic version cannot be searched for.
func versionHref(v string) string {
	if v == "" {
		return devicesURL(`not version >= "0.0.0-0"`)
	}
	if _, err := semver.Parse(v); err != nil {
		return ""
	}
	return devicesURL("version == " + filterString(v))
}

func fieldHref(field string) func(string) string {
	return func(v string) string { return devicesURL(field + " == " + filterString(v)) }
}

// humanDuration writes a check-in interval: "5 min", "90 s", "2 h".
func humanDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "—"
	case d%time.Hour == 0:
		return fmt.Sprintf("%d h", int(d/time.Hour))
	case d%time.Minute == 0:
		return fmt.Sprintf("%d min", int(d/time.Minute))
	}
	return fmt.Sprintf("%d s", int(d.Round(time.Second)/time.Second))
}

func percent(a, b int) string {
	if b == 0 {
		return "0 %"
	}
	return fmt.Sprintf("%.0f %%", 100*float64(a)/float64(b))
}
