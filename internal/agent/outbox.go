package agent

import (
	"context"
	"net/http"
	"slices"
	"time"

	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/verifier"
)

// flushOutbox sends queued reports, oldest first, and drops each one the
// server acknowledged. A report the server refuses as invalid (which the
// agent's own checks should make impossible) is dropped after it was sent
// alone, so it cannot block the reports behind it.
func (a *Agent) flushOutbox(ctx context.Context) {
	for len(a.st.Outbox) > 0 && a.token != "" && a.due(a.retryAt) {
		n := min(len(a.st.Outbox), wire.MaxReports)
		batch := a.st.Outbox[:n]
		var resp wire.ReportsResponse
		err := a.authed(ctx, wire.PathReports, wire.ReportsRequest{Reports: batch}, &resp, 0)
		if ae := asAPIError(err); ae != nil && ae.Status == http.StatusBadRequest {
			a.reachable()
			if n > 1 {
				// Find the bad one by sending them one at a time.
				one := a.st.Outbox[0]
				err = a.authed(ctx, wire.PathReports, wire.ReportsRequest{Reports: []wire.Report{one}}, &resp, 0)
				if ae := asAPIError(err); ae == nil || ae.Status != http.StatusBadRequest {
					if err != nil {
						a.serverFailed("send reports", err)
						return
					}
					a.ack(resp)
					continue
				}
			}
			a.log.Error("server refused a status report; dropping it", "seq", a.st.Outbox[0].Seq, "state", a.st.Outbox[0].State, "err", err)
			a.st.Outbox = a.st.Outbox[1:]
			if err := a.save(); err != nil {
				a.log.Error("cannot save the outbox", "err", err)
				return
			}
			continue
		}
		if err != nil {
			a.serverFailed("send reports", err)
			return
		}
		a.reachable()
		a.ack(resp)
	}
}

// ack removes acknowledged reports (applied, recorded or duplicate: all
// are durable on the server).
func (a *Agent) ack(resp wire.ReportsResponse) {
	acked := map[int64]bool{}
	for _, r := range resp.Results {
		acked[r.Seq] = true
	}
	before := len(a.st.Outbox)
	a.st.Outbox = slices.DeleteFunc(a.st.Outbox, func(r wire.Report) bool { return acked[r.Seq] })
	if len(a.st.Outbox) == before {
		return
	}
	if err := a.save(); err != nil {
		a.log.Error("cannot save the outbox", "err", err)
	}
}

// serverFailed logs a failed call and backs off; answers from the server
// (4xx/5xx) other than unavailability do not count as unreachable.
func (a *Agent) serverFailed(what string, err error) {
	ae := asAPIError(err)
	if ae != nil && ae.Status < 500 && ae.Status != http.StatusTooManyRequests {
		a.log.Error(what+" refused", "err", err)
		a.reachable()
		a.retryAt = a.clock.Now().Add(a.cfg.Timing.BackoffMin)
		return
	}
	a.log.Warn(what+" failed", "err", err)
	a.backoff()
	if ae != nil && ae.RetryAfter > 0 {
		a.retryAt = maxTime(a.retryAt, a.clock.Now().Add(ae.RetryAfter))
	}
}

func maxTime(x, y time.Time) time.Time {
	if x.After(y) {
		return x
	}
	return y
}

// checkIn reports the agent's state and takes the server's answer: the
// next poll time, long-poll support, the current assignment and cancels.
// wait > 0 makes it a long-poll.
func (a *Agent) checkIn(ctx context.Context, wait time.Duration) {
	if a.token == "" || !a.due(a.retryAt) {
		return
	}
	req := wire.CheckInRequest{
		Version:    a.runningVersion(),
		State:      string(a.st.Phase),
		DeviceType: a.cfg.Identity.DeviceType,
		HWRev:      a.cfg.Identity.HWRev,
		TimeZone:   a.cfg.Identity.TimeZone,
		Attributes: a.cfg.Identity.Attributes,
	}
	if a.st.Job != nil {
		req.AssignmentID = a.st.Job.AssignmentID
	}
	if v, err := a.openVerifier(ctx); err != nil {
		a.log.Warn("cannot open the verifier", "err", err)
	} else if v != nil {
		// The server sends a finalize only while the floor is below it.
		floor := v.Floor()
		req.SecurityFloor = &floor
	}
	path := wire.PathCheckIn
	if wait > 0 {
		path += "?wait=" + wait.String()
	}
	var resp wire.CheckInResponse
	started := a.clock.Now()
	if err := a.authed(ctx, path, req, &resp, wait); err != nil {
		if ctx.Err() != nil {
			return
		}
		a.serverFailed("check-in", err)
		a.nextCheckIn = a.retryAt
		return
	}
	a.reachable()
	a.checkedIn = true
	if len(resp.Finalize) > 0 {
		a.finalize(ctx, resp.Finalize)
	}
	a.longPoll = resp.LongPoll
	a.offered = resp.Assignment
	a.cancel = resp.Cancel
	poll := time.Duration(resp.PollAfterSeconds) * time.Second
	if poll <= 0 {
		poll = a.jitter(a.cfg.Timing.PollInterval)
	}
	a.nextCheckIn = a.clock.Now().Add(poll)
	if wait > 0 && a.clock.Now().Sub(started) >= wait/2 {
		// The long-poll ran its course: hold the next one open at once.
		a.nextCheckIn = a.clock.Now()
	}
	if a.st.Job != nil && resp.Assignment != nil && resp.Assignment.ID == a.st.Job.AssignmentID &&
		resp.Assignment.Artifact.URL != "" && resp.Assignment.Artifact.URL != a.st.Job.URL {
		// A fresh signed URL for the same work; not a transition, but
		// saved so a resumed download after a reboot has it.
		a.st.Job.URL = resp.Assignment.Artifact.URL
		if err := a.save(); err != nil {
			a.log.Error("cannot save the download URL", "err", err)
		}
	}
}

// finalize hands a director-signed finalize document to the verifier, which
// raises the security floor only if the document is genuine, is for this
// device and names the version it runs. The floor never rises at commit:
// until the server finalizes, a release can still be rolled back.
func (a *Agent) finalize(ctx context.Context, doc []byte) {
	if a.verifier == nil {
		a.log.Warn("ignoring a finalize document: this agent does not verify signed updates")
		return
	}
	before := a.verifier.Floor()
	if err := a.verifier.Finalize(ctx, doc, a.runningVersion()); err != nil {
		a.log.Warn("finalize refused", "reason", string(verifier.ReasonOf(err)), "err", err)
		return
	}
	if after := a.verifier.Floor(); after != before {
		a.log.Info("security floor raised", "from", before, "to", after, "version", a.runningVersion())
	}
}
