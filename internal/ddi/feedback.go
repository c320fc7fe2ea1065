package ddi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// Execution states and results a controller may send.
var (
	executions = map[string]bool{"closed": true, "proceeding": true, "canceled": true, "scheduled": true,
		"rejected": true, "resumed": true, "downloaded": true, "download": true}
	finishes = map[string]bool{"success": true, "failure": true, "none": true}
)

// readBody reads a bounded request body.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, apierror.BadRequest("read body: %v", err)
	}
	return b, nil
}

// parseFeedback decodes and checks a DdiActionFeedback body. Unknown
// fields are ignored; everything the mapping reads must be well formed.
func parseFeedback(body []byte) (status, error) {
	var fb feedback
	if err := json.Unmarshal(body, &fb); err != nil {
		return status{}, apierror.BadRequest("feedback is not valid JSON: %v", jsonProblem(err))
	}
	st := fb.Status
	switch {
	case st == nil:
		return status{}, apierror.BadRequest("feedback needs a status")
	case !executions[st.Execution]:
		return status{}, apierror.BadRequest("status.execution %q is not one of closed, proceeding, canceled, scheduled, rejected, resumed, downloaded, download", st.Execution)
	case st.Result == nil:
		return status{}, apierror.BadRequest("feedback needs status.result")
	case !finishes[st.Result.Finished]:
		return status{}, apierror.BadRequest("status.result.finished %q is not one of success, failure, none", st.Result.Finished)
	case len(st.Details) > maxDetails:
		return status{}, apierror.BadRequest("status.details has %d entries; the limit is %d", len(st.Details), maxDetails)
	}
	if p := st.Result.Progress; p != nil {
		if p.Cnt < 0 || (p.Of != nil && (*p.Of < 0 || (*p.Of > 0 && p.Cnt > *p.Of))) {
			return status{}, apierror.BadRequest("status.result.progress must have 0 <= cnt <= of")
		}
	}
	for _, d := range st.Details {
		if !utf8.ValidString(d) || strings.IndexByte(d, 0) >= 0 {
			return status{}, apierror.BadRequest("status.details must be UTF-8 text without NUL bytes")
		}
	}
	return *st, nil
}

func jsonProblem(err error) string {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("syntax error at byte %d", se.Offset)
	case errors.As(err, &te):
		return fmt.Sprintf("field %q: expected %s", te.Field, te.Type)
	}
	return "malformed"
}

// stageRank orders the non-terminal states so feedback never moves an
// assignment backwards.
func stageRank(s store.AssignmentState) int {
	switch s {
	case store.AssignNotified:
		return 1
	case store.AssignDownloading:
		return 2
	case store.AssignInstalling:
		return 3
	case store.AssignRebooting:
		return 4
	case store.AssignVerifying:
		return 5
	}
	return 0
}

func later(cur, next store.AssignmentState) store.AssignmentState {
	if cur.Terminal() || stageRank(next) >= stageRank(cur) {
		return next
	}
	return cur
}

// deploymentReport maps deploymentBase feedback onto a status report:
//
//	closed + success|none   succeeded  (but see update=skip below)
//	closed + failure        failed     (error code = status.code)
//	proceeding, resumed     downloading while progress cnt < of, else installing
//	download                downloading
//	downloaded              downloading, 100 %
//	scheduled               unchanged (at least notified)
//	canceled                skipped, error code canceled_by_device
//	rejected                unchanged, error code rejected
//
// SWUpdate answers update=skip with closed/success "Skipped Update."; while
// the server says skip, closed+success is recorded without finishing.
func deploymentReport(as store.Assignment, st status, h handlingTypes) store.StatusReport {
	r := store.StatusReport{AssignmentID: as.ID, State: as.State, Progress: as.Progress}
	p := st.Result.Progress
	pct := -1
	if p != nil && p.Of != nil && *p.Of > 0 {
		pct = int(p.Cnt * 100 / *p.Of)
	}
	switch st.Execution {
	case "closed":
		switch {
		case st.Result.Finished == "failure":
			r.State = store.AssignFailed
			if st.Code != nil {
				r.ErrorCode = strconv.Itoa(*st.Code)
			} else {
				r.ErrorCode = "ddi_failure"
			}
		case h.update == typeSkip && stageRank(as.State) <= stageRank(store.AssignNotified):
			r.ErrorCode = "update_skipped"
		default:
			r.State, pct = store.AssignSucceeded, 100
		}
	case "proceeding", "resumed":
		next := store.AssignInstalling
		if p != nil && p.Of != nil && *p.Of > 0 && p.Cnt < *p.Of {
			next = store.AssignDownloading
		}
		r.State = later(as.State, next)
	case "download":
		r.State = later(as.State, store.AssignDownloading)
	case "downloaded":
		r.State, pct = later(as.State, store.AssignDownloading), 100
	case "scheduled":
		r.State = later(as.State, store.AssignNotified)
	case "canceled":
		r.State, r.ErrorCode = store.AssignSkipped, "canceled_by_device"
	case "rejected":
		r.ErrorCode = "rejected"
	}
	if r.State == store.AssignPending {
		r.State = store.AssignNotified
	}
	if pct >= 0 {
		r.Progress = pct
	}
	r.Message, r.LogTail = texts(st)
	return r
}

// texts turns execution, result and details into the report's message
// (the newest detail) and log tail (all details, newest kept).
func texts(st status) (msg, logTail string) {
	msg = "ddi " + st.Execution + "/" + st.Result.Finished
	if n := len(st.Details); n > 0 {
		msg += ": " + st.Details[n-1]
	}
	msg = truncate(msg, 1024, false)
	return msg, truncate(strings.Join(st.Details, "\n"), store.MaxReportLogTail, true)
}

// truncate cuts s to at most max bytes on a rune boundary, keeping the
// head, or the tail when tail is set.
func truncate(s string, max int, tail bool) string {
	if len(s) <= max {
		return s
	}
	if tail {
		s = s[len(s)-max:]
		for len(s) > 0 && !utf8.RuneStart(s[0]) {
			s = s[1:]
		}
		return s
	}
	s = s[:max]
	for len(s) > 0 && !utf8.ValidString(s) {
		s = s[:len(s)-1]
	}
	return s
}

// record stores one report of the device with the next sequence number.
func (a *API) record(r *http.Request, d store.Device, rep store.StatusReport) error {
	ctx := r.Context()
	unlock := a.lockDevice(d.TenantID + "\x00" + d.ID)
	defer unlock()
	fresh, _, err := a.cfg.Store.CheckInState(ctx, d.TenantID, d.ID)
	if err != nil {
		return err
	}
	now := a.cfg.Clock.Now()
	rep.Seq, rep.ReportedAt = fresh.LastReportSeq+1, now
	if err := rep.Validate(); err != nil {
		return apierror.BadRequest("feedback cannot be stored: %v", err)
	}
	out, err := a.cfg.Store.RecordReports(ctx, []store.DeviceReports{{TenantID: d.TenantID, DeviceID: d.ID, Reports: []store.StatusReport{rep}}}, now)
	if err != nil {
		return err
	}
	if len(out) != 1 || out[0] == nil {
		return apierror.Forbidden("controller %q is not accepted", d.Serial)
	}
	return nil
}

// handleDeploymentFeedback records feedback on the active action; an
// action that is no longer active is 410 Gone.
func (a *API) handleDeploymentFeedback(w http.ResponseWriter, r *http.Request) error {
	_, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	as, id, err := a.action(r, d)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxFeedbackBody)
	if err != nil {
		return err
	}
	st, err := parseFeedback(body)
	if err != nil {
		return err
	}
	if !as.Active {
		return apierror.New(http.StatusGone, "gone", "action %d is no longer active", id)
	}
	h, err := a.handling(r.Context(), d, as, a.cfg.Clock.Now())
	if err != nil {
		return err
	}
	if err := a.record(r, d, deploymentReport(as, st, h)); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// handleCancelFeedback records the controller's answer to a cancel:
// closed+success or canceled acknowledge it, rejected means the install
// was already under way, closed+failure that it could not stop. Each of
// these ends the cancelAction link; other executions are history only.
func (a *API) handleCancelFeedback(w http.ResponseWriter, r *http.Request) error {
	_, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	as, id, err := a.action(r, d)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, maxFeedbackBody)
	if err != nil {
		return err
	}
	st, err := parseFeedback(body)
	if err != nil {
		return err
	}
	if as.State != store.AssignCanceled {
		return apierror.New(http.StatusGone, "gone", "action %d is not being canceled", id)
	}
	rep := store.StatusReport{AssignmentID: as.ID, State: store.AssignCanceled, Progress: as.Progress}
	switch {
	case st.Execution == "canceled", st.Execution == "closed" && st.Result.Finished != "failure":
		rep.ErrorCode = cancelAckPrefix + "acknowledged"
	case st.Execution == "rejected":
		rep.ErrorCode = cancelAckPrefix + "rejected"
	case st.Execution == "closed":
		rep.ErrorCode = cancelAckPrefix + "failed"
	}
	rep.Message, rep.LogTail = texts(st)
	if err := a.record(r, d, rep); err != nil {
		return err
	}
	writeEmpty(w)
	return nil
}

// writeEmpty answers 200 with an explicit empty body.
func writeEmpty(w http.ResponseWriter) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusOK)
}
