package web

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Device pages: search with the filter language (/ui/devices), the live
// match count (/ui/devices/count, also used by the campaign form), one
// device's detail (/ui/devices/{id}) and the operator's actions on it.

func (u *UI) deviceRoutes() []route {
	return []route{
		{http.MethodGet, "devices", signedIn, u.devicesPage},
		{http.MethodGet, "devices/count", signedIn, u.deviceCount},
		{http.MethodGet, "devices/{id}", signedIn, u.devicePage},
		{http.MethodGet, "devices/{id}/live", signedIn, u.deviceLive},
		{http.MethodPost, "devices/{id}/accept", write, u.deviceAction("accept")},
		{http.MethodPost, "devices/{id}/reject", write, u.deviceAction("reject")},
		{http.MethodPost, "devices/{id}/decommission", write, u.deviceAction("decommission")},
		{http.MethodPost, "devices/{id}/tags", write, u.deviceTags},
	}
}

// Page sizes.
const (
	devicesPageSize = 50
	historyPageSize = 10
)

// deviceStates are the states the search can narrow to.
var deviceStates = []store.DeviceState{store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned}

// filterProblem is an API error about a search, with the offending line
// and a caret under the column when the API gave one.
type filterProblem struct {
	Message string
	Code    string
	Line    int
	Column  int
	Source  string // the line of the expression the column is in
	Caret   string // spaces and a ^ under the column
}

func newFilterProblem(expr string, ae *APIError) *filterProblem {
	p := &filterProblem{Message: ae.Message, Code: ae.Code}
	if ae.Code != "bad_filter" {
		return p
	}
	line, col := intDetail(ae.Details["line"]), intDetail(ae.Details["column"])
	lines := strings.Split(expr, "\n")
	if line < 1 || col < 1 || line > len(lines) {
		return p
	}
	src := strings.ReplaceAll(strings.TrimRight(lines[line-1], "\r"), "\t", " ")
	p.Line, p.Column, p.Source = line, col, src
	p.Caret = strings.Repeat(" ", min(col-1, len([]rune(src)))) + "^"
	return p
}

func intDetail(v any) int {
	switch n := v.(type) {
	case float64:
		return int(n)
	case int:
		return n
	}
	return 0
}

type devicesView struct {
	Q, State, After string
	States          []store.DeviceState
	Devices         []store.Device
	NextURL         string
	Problem         *filterProblem
	Match           countView
	Pending         int
	PendingText     string
	// Here is this page's URL, where an action's form returns to.
	Here string
}

func (u *UI) devicesPage(w http.ResponseWriter, r *http.Request, s *Session) error {
	ctx, api := r.Context(), s.API()
	in := r.URL.Query()
	v := devicesView{Q: in.Get("q"), State: in.Get("state"), After: in.Get("after"), States: deviceStates, Here: r.URL.RequestURI()}
	q := url.Values{"limit": {strconv.Itoa(devicesPageSize)}}
	for _, k := range []string{"q", "state", "after"} {
		if x := in.Get(k); x != "" {
			q.Set(k, x)
		}
	}
	var list apiList[store.Device]
	err := api.Do(ctx, http.MethodGet, "/devices", q, nil, &list)
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		v.Problem = newFilterProblem(v.Q, ae)
		v.Match.Problem = v.Problem
		return u.render(w, r, s, http.StatusBadRequest, "devices.html", "Devices", v)
	}
	if err != nil {
		return err
	}
	v.Devices = list.Items
	v.NextURL = nextPage(r, list.Next)
	if v.Match.Count, err = countDevices(ctx, api, v.Q); err != nil {
		return err
	}
	v.Match.Text = countText(v.Match.Count)
	var byState countBy
	if err := api.Do(ctx, http.MethodGet, "/devices/count", url.Values{"by": {"state"}}, nil, &byState); err != nil {
		return err
	}
	v.Pending = byState.By[string(store.DevicePending)]
	v.PendingText = thousands(v.Pending)
	return u.render(w, r, s, http.StatusOK, "devices.html", "Devices", v)
}

func countDevices(ctx context.Context, api *API, expr string) (int, error) {
	var q url.Values
	if expr != "" {
		q = url.Values{"q": {expr}}
	}
	var c struct {
		Count int `json:"count"`
	}
	err := api.Do(ctx, http.MethodGet, "/devices/count", q, nil, &c)
	return c.Count, err
}

// countView is the match count fragment.
type countView struct {
	Count   int
	Text    string
	Problem *filterProblem
}

// deviceCount answers the match count of ?q= as one line of HTML, for the
// search box and the campaign form (static/app.js, data-count-url): "1,234
// devices match", or the filter error with its column (status 400).
func (u *UI) deviceCount(w http.ResponseWriter, r *http.Request, s *Session) error {
	expr := r.URL.Query().Get("q")
	n, err := countDevices(r.Context(), s.API(), expr)
	status, v := http.StatusOK, countView{Count: n, Text: countText(n)}
	var ae *APIError
	if errors.As(err, &ae) && ae.Status == http.StatusBadRequest {
		status, v.Problem = http.StatusBadRequest, newFilterProblem(expr, ae)
	} else if err != nil {
		return err
	}
	html, err := u.fragment("devices.html", "match-count", s, v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err = w.Write([]byte(html))
	return err
}

func countText(n int) string {
	if n == 1 {
		return "1 device matches"
	}
	return thousands(n) + " devices match"
}

// credential is a device credential as the API shows it.
type credential struct {
	ID            string     `json:"id"`
	Kind          string     `json:"kind"`
	Algorithm     string     `json:"algorithm"`
	Fingerprint   string     `json:"fingerprint"`
	State         string     `json:"state"`
	PreauthSerial string     `json:"preauth_serial"`
	CreatedAt     time.Time  `json:"created_at"`
	RevokedAt     *time.Time `json:"revoked_at"`
}

type deviceDetail struct {
	store.Device
	Credentials      []credential      `json:"credentials"`
	ActiveAssignment *store.Assignment `json:"active_assignment"`
}

type assignmentHistory struct {
	store.Assignment
	Events []store.AssignmentEvent `json:"events"`
}

type labelLink struct {
	Name, Href string
}

type keyValue struct {
	Key, Value string
}

type metricView struct {
	Name, Label string
	Values      []float64
	Summary     string
}

type deviceView struct {
	D           deviceDetail
	Attributes  []keyValue
	Tags        []labelLink
	Groups      []labelLink
	History     []assignmentHistory
	HistoryNext string
	FirstPage   bool
	Gaps        []store.ReportGap
	Telemetry   []metricView
	TelemetryAt time.Time // start of the telemetry window
	Here        string
}

// deviceMetric is a metric the device page draws: counters are summed per
// hour, gauges averaged. The names are the agent's (internal/agent).
type deviceMetric struct {
	Name, Label, Unit string
	Counter           bool
	Always            bool // drawn even without data
}

var deviceMetrics = []deviceMetric{
	{Name: "crashes", Label: "Crashes", Counter: true, Always: true},
	{Name: "unexpected_reboots", Label: "Unexpected reboots", Counter: true, Always: true},
	{Name: "battery_pct", Label: "Battery", Unit: "%", Always: true},
	{Name: "signal_dbm", Label: "Signal", Unit: "dBm", Always: true},
	{Name: "temperature_c", Label: "Temperature", Unit: "°C"},
	{Name: "free_storage_bytes", Label: "Free storage", Unit: "bytes"},
}

// telemetryWindow is how far back the sparklines reach (hourly roll-ups).
const telemetryWindow = 7 * 24 * time.Hour

func (u *UI) devicePage(w http.ResponseWriter, r *http.Request, s *Session) error {
	v, err := u.device(r.Context(), s, r.PathValue("id"), r.URL.Query().Get("after"))
	if err != nil {
		return err
	}
	title := "Device " + v.D.Serial
	if v.D.Serial == "" {
		title = "Device " + v.D.ID
	}
	return u.render(w, r, s, http.StatusOK, "device.html", title, v)
}

// deviceFragments are the parts of the device page its live view sends.
var deviceFragments = []string{"device-head", "device-facts", "device-telemetry", "device-history"}

// deviceLive refreshes the device's state, facts, telemetry and the first
// page of its history while the page is open.
func (u *UI) deviceLive(w http.ResponseWriter, r *http.Request, s *Session) error {
	id := r.PathValue("id")
	return u.serveLive(w, r, func(ctx context.Context) ([]Fragment, error) {
		v, err := u.device(ctx, s, id, "")
		if err != nil {
			return nil, err
		}
		var fs []Fragment
		for _, name := range deviceFragments {
			html, err := u.fragment("device.html", name, s, v)
			if err != nil {
				return nil, err
			}
			fs = append(fs, Fragment{ID: name, HTML: html})
		}
		return fs, nil
	})
}

// device reads everything the device page shows; after is the cursor of
// the history page.
func (u *UI) device(ctx context.Context, s *Session, id, after string) (deviceView, error) {
	api := s.API()
	page := Prefix + "devices/" + url.PathEscape(id)
	base := "/devices/" + url.PathEscape(id)
	v := deviceView{Here: page, FirstPage: after == ""}
	if err := api.Do(ctx, http.MethodGet, base, nil, nil, &v.D); err != nil {
		return v, err
	}
	for k, val := range v.D.Attributes {
		v.Attributes = append(v.Attributes, keyValue{k, val})
	}
	slices.SortFunc(v.Attributes, func(a, b keyValue) int { return cmp.Compare(a.Key, b.Key) })
	for _, t := range v.D.Tags {
		v.Tags = append(v.Tags, labelLink{t, devicesURL("tag:" + filterName(t))})
	}
	for _, g := range v.D.Groups {
		v.Groups = append(v.Groups, labelLink{g, devicesURL("group:" + filterName(g))})
	}

	q := url.Values{"limit": {strconv.Itoa(historyPageSize)}}
	if after != "" {
		q.Set("after", after)
	}
	var hist apiList[store.Assignment]
	if err := api.Do(ctx, http.MethodGet, base+"/assignments", q, nil, &hist); err != nil {
		return v, err
	}
	if hist.Next != "" {
		v.HistoryNext = page + "?" + url.Values{"after": {hist.Next}}.Encode()
	}
	for _, a := range hist.Items {
		var h assignmentHistory
		if err := api.Do(ctx, http.MethodGet, "/assignments/"+url.PathEscape(a.ID), nil, nil, &h); err != nil {
			return v, err
		}
		v.History = append(v.History, h)
	}
	var gaps apiList[store.ReportGap]
	if err := api.Do(ctx, http.MethodGet, base+"/report-gaps", nil, nil, &gaps); err != nil {
		return v, err
	}
	v.Gaps = gaps.Items

	v.TelemetryAt = u.now().Add(-telemetryWindow).UTC().Truncate(time.Hour)
	for _, m := range deviceMetrics {
		var t struct {
			Rollups []store.HourlyRollup `json:"rollups"`
		}
		tq := url.Values{"metric": {m.Name}, "resolution": {"hourly"}, "from": {v.TelemetryAt.Format(time.RFC3339)}}
		if err := api.Do(ctx, http.MethodGet, base+"/telemetry", tq, nil, &t); err != nil {
			return v, err
		}
		if len(t.Rollups) == 0 && !m.Always {
			continue
		}
		v.Telemetry = append(v.Telemetry, metricSeries(m, t.Rollups))
	}
	return v, nil
}

// metricSeries turns hourly roll-ups into a sparkline and a one-line
// summary: the total for counters, the latest value and range for gauges.
func metricSeries(m deviceMetric, rs []store.HourlyRollup) metricView {
	mv := metricView{Name: m.Name, Label: m.Label}
	if len(rs) == 0 {
		mv.Summary = "no data in the last 7 days"
		return mv
	}
	var total float64
	lo, hi := rs[0].Min, rs[0].Max
	for _, h := range rs {
		if m.Counter {
			mv.Values = append(mv.Values, h.Sum)
			total += h.Sum
			continue
		}
		if h.Count > 0 {
			mv.Values = append(mv.Values, h.Sum/float64(h.Count))
		}
		lo, hi = min(lo, h.Min), max(hi, h.Max)
	}
	unit := ""
	if m.Unit != "" {
		unit = " " + m.Unit
	}
	if m.Counter {
		mv.Summary = fmt.Sprintf("%s in the last 7 days", trimFloat(total))
	} else {
		mv.Summary = fmt.Sprintf("now %s%s (range %s to %s)", trimFloat(rs[len(rs)-1].Last), unit, trimFloat(lo), trimFloat(hi))
	}
	return mv
}

// deviceAction posts accept, reject or decommission to the API and
// returns to the page the form came from.
func (u *UI) deviceAction(action string) func(http.ResponseWriter, *http.Request, *Session) error {
	return func(w http.ResponseWriter, r *http.Request, s *Session) error {
		id := r.PathValue("id")
		if err := s.API().Do(r.Context(), http.MethodPost, "/devices/"+url.PathEscape(id)+"/"+action, nil, nil, nil); err != nil {
			return err
		}
		http.Redirect(w, r, backTo(r, Prefix+"devices/"+url.PathEscape(id)), http.StatusSeeOther)
		return nil
	}
}

// deviceTags adds the comma-separated tags in "add" or removes the tag in
// "remove".
func (u *UI) deviceTags(w http.ResponseWriter, r *http.Request, s *Session) error {
	id := r.PathValue("id")
	body := map[string][]string{"add": {}, "remove": {}}
	for _, t := range strings.Split(r.PostFormValue("add"), ",") {
		if t = strings.TrimSpace(t); t != "" {
			body["add"] = append(body["add"], t)
		}
	}
	if t := r.PostFormValue("remove"); t != "" {
		body["remove"] = append(body["remove"], t)
	}
	if err := s.API().Do(r.Context(), http.MethodPost, "/devices/"+url.PathEscape(id)+"/tags", nil, body, nil); err != nil {
		return err
	}
	http.Redirect(w, r, backTo(r, Prefix+"devices/"+url.PathEscape(id)), http.StatusSeeOther)
	return nil
}

// backTo is the form's "next" page if it is on the dashboard, else def.
func backTo(r *http.Request, def string) string {
	if next := r.PostFormValue("next"); next != "" {
		return safeNext(next)
	}
	return def
}

// devicesURL is the device search for a filter expression.
func devicesURL(expr string) string {
	return Prefix + "devices?" + url.Values{"q": {expr}}.Encode()
}

// filterString quotes s as a filter language string.
func filterString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r < 0x20 || (r >= 0x7f && r <= 0x9f):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}

// filterName is a tag or group name as the filter language spells it:
// bare when it is a word, quoted otherwise.
func filterName(s string) string {
	for i, r := range s {
		word := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_'
		if !word && (i == 0 || (r != '.' && r != '-')) {
			return filterString(s)
		}
	}
	if s == "" {
		return `""`
	}
	return s
}

// thousands writes n with thousands separators: 1,234,567.
func thousands(n int) string {
	s := strconv.Itoa(n)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}
