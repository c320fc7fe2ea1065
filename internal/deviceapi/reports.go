package deviceapi

import (
	"net/http"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

// handleReports serves POST /api/device/v1/reports: a batch of status
// reports. The answer (200, one outcome per report) is sent only after the
// reports are committed; a retried batch gets "duplicate" for what was
// already stored. A body that fails validation stores nothing (400).
func (a *API) handleReports(w http.ResponseWriter, r *http.Request) {
	if err := a.reports(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) reports(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.verifyToken(r)
	if err != nil {
		return err
	}
	body, err := readBody(w, r, wire.MaxReportsBytes)
	if err != nil {
		return err
	}
	req, err := wire.DecodeReports(body)
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
	reports := make([]store.StatusReport, len(req.Reports))
	for i, rep := range req.Reports {
		reports[i] = store.StatusReport{
			AssignmentID: rep.AssignmentID,
			Seq:          rep.Seq,
			State:        store.AssignmentState(rep.State),
			Progress:     rep.Progress,
			ErrorCode:    rep.ErrorCode,
			Message:      rep.Message,
			LogTail:      rep.LogTail,
			ReportedAt:   rep.ReportedAt.UTC(),
		}
	}
	outcomes, err := a.committer.submit(ctx, store.DeviceReports{TenantID: d.TenantID, DeviceID: d.ID, Reports: reports})
	if err != nil {
		return err
	}
	if outcomes == nil {
		// The store found the device gone or no longer accepted between
		// our read and the commit; nothing of it was stored.
		return apierror.New(http.StatusForbidden, "forbidden", "the device may no longer report")
	}
	resp := wire.ReportsResponse{Results: make([]wire.ReportResult, len(reports))}
	for i, rep := range reports {
		resp.Results[i] = wire.ReportResult{AssignmentID: rep.AssignmentID, Seq: rep.Seq, Outcome: string(outcomes[i])}
	}
	w.Header().Set("Cache-Control", "no-store")
	apierror.WriteJSON(w, http.StatusOK, resp)
	return nil
}
