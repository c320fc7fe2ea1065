package ddi

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/updraft/updraft/internal/agent/gate"
	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// Handling types of deployment.download and deployment.update.
const (
	typeSkip    = "skip"
	typeAttempt = "attempt"
	typeForced  = "forced"
)

// cancelAckPrefix starts the error code of every cancel acknowledgement
// recorded in an assignment's history.
const cancelAckPrefix = "ddi_cancel_"

// maxCancelChecks bounds the canceled assignments a poll looks at.
const maxCancelChecks = 3

// handlePoll answers the base poll: the polling interval and the links to
// what the controller should do next. An unknown controller is registered
// as a pending device (not with a target token, which already names one).
func (a *API) handlePoll(w http.ResponseWriter, r *http.Request) error {
	c, err := a.authenticate(r)
	if err != nil {
		return err
	}
	ctx := r.Context()
	now := a.cfg.Clock.Now()
	d, err := a.device(r, c)
	if errors.Is(err, store.ErrNotFound) {
		if !a.allowRegistration(now) {
			return &apierror.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
				Message: "too many new controllers; try again later", RetryAfter: 60}
		}
		d, _, err = a.cfg.Store.RegisterDDIDevice(ctx, store.RegisterDDIParams{
			TenantID: c.tenant, ControllerID: c.controller, DeviceType: a.cfg.DeviceType, HWRev: a.cfg.HWRev,
			Now: now, PendingTTL: a.cfg.PendingTTL, MaxPending: a.cfg.MaxPending,
		})
		if err == nil {
			a.log.InfoContext(ctx, "ddi controller registered", "tenant", c.tenant, "controller_id", c.controller, "device_id", d.ID)
		}
	}
	if err != nil {
		return err
	}
	// Last seen is written at most every half poll interval per device, and
	// needs no state here: the device row says when it was last written.
	if d.LastSeenAt == nil || now.Sub(*d.LastSeenAt) >= a.cfg.PollInterval/2 {
		if err := a.cfg.Store.TouchLastSeen(ctx, c.tenant, map[string]time.Time{d.ID: now}); err != nil {
			a.log.WarnContext(ctx, "record last seen", "tenant", c.tenant, "device_id", d.ID, "err", err)
		}
	}
	resp := pollResponse{Config: pollConfig{Polling: polling{Sleep: formatSleep(a.cfg.PollInterval)}}}
	switch d.State {
	case store.DeviceAccepted:
	case store.DevicePending:
		apierror.WriteJSON(w, http.StatusOK, resp)
		return nil
	default:
		return apierror.Forbidden("controller %q is %s", c.controller, d.State)
	}
	links, err := a.pollLinks(ctx, c, d, now)
	if err != nil {
		return err
	}
	if len(links) > 0 {
		resp.Links = links
	}
	apierror.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// pollLinks picks the links as hawkBit does: at most one of deploymentBase
// (the active assignment) or cancelAction (an unacknowledged cancel), plus
// installedBase and configData.
func (a *API) pollLinks(ctx context.Context, c caller, d store.Device, now time.Time) (map[string]link, error) {
	links := map[string]link{}
	base := a.base(c)
	_, active, err := a.cfg.Store.CheckInState(ctx, c.tenant, d.ID)
	if err != nil {
		return nil, err
	}
	recent, _, err := a.cfg.Store.ListAssignments(ctx, c.tenant, d.ID, store.Page{Limit: 20})
	if err != nil {
		return nil, err
	}
	if active != nil {
		id, err := a.cfg.Store.DDIActionID(ctx, c.tenant, active.ID, now)
		if err != nil {
			return nil, err
		}
		etag, err := a.actionETag(ctx, d, *active, now)
		if err != nil {
			return nil, err
		}
		links["deploymentBase"] = link{Href: fmt.Sprintf("%s/deploymentBase/%d?c=%s", base, id, etag)}
	} else {
		// The newest few canceled assignments are candidates: once a
		// controller acknowledged one, it stays quiet.
		checked := 0
		for _, as := range recent {
			if as.State != store.AssignCanceled {
				continue
			}
			if checked++; checked > maxCancelChecks {
				break
			}
			acked, err := a.cancelAcknowledged(ctx, c.tenant, as.ID)
			if err != nil {
				return nil, err
			}
			if !acked {
				id, err := a.cfg.Store.DDIActionID(ctx, c.tenant, as.ID, now)
				if err != nil {
					return nil, err
				}
				links["cancelAction"] = link{Href: fmt.Sprintf("%s/cancelAction/%d", base, id)}
				break
			}
		}
	}
	for _, as := range recent {
		if as.State == store.AssignSucceeded {
			id, err := a.cfg.Store.DDIActionID(ctx, c.tenant, as.ID, now)
			if err != nil {
				return nil, err
			}
			links["installedBase"] = link{Href: fmt.Sprintf("%s/installedBase/%d", base, id)}
			break
		}
	}
	if len(d.Attributes) == 0 {
		links["configData"] = link{Href: base + "/configData"}
	}
	return links, nil
}

func (a *API) cancelAcknowledged(ctx context.Context, tenant, assignmentID string) (bool, error) {
	evs, err := a.cfg.Store.AssignmentEvents(ctx, tenant, assignmentID)
	if err != nil {
		return false, err
	}
	for _, e := range evs {
		if strings.HasPrefix(e.ErrorCode, cancelAckPrefix) {
			return true, nil
		}
	}
	return false, nil
}

// actionETag changes whenever what deploymentBase says about the action
// changes (another assignment, soft → forced, a window opening).
func (a *API) actionETag(ctx context.Context, d store.Device, as store.Assignment, now time.Time) (string, error) {
	h, err := a.handling(ctx, d, as, now)
	if err != nil {
		return "", err
	}
	f := fnv.New32a()
	fmt.Fprintf(f, "%s|%s|%s|%s", as.ID, h.download, h.update, h.window)
	return strconv.FormatInt(int64(int32(f.Sum32())), 10), nil
}

// handlingTypes are deployment.download, .update and .maintenanceWindow.
type handlingTypes struct {
	download, update, window string
}

// handling derives the handling from the assignment's campaign: forced for
// a critical release after the campaign deadline, update skipped outside
// the campaign's maintenance windows (in the device's time zone, UTC when
// it has none), attempt otherwise.
func (a *API) handling(ctx context.Context, d store.Device, as store.Assignment, now time.Time) (handlingTypes, error) {
	h := handlingTypes{download: typeAttempt, update: typeAttempt}
	if as.CampaignID == "" {
		return h, nil
	}
	camp, err := a.cfg.Store.Campaign(ctx, as.TenantID, as.CampaignID)
	if err != nil {
		return h, fmt.Errorf("campaign of assignment %s: %w", as.ID, err)
	}
	rel, err := a.cfg.Store.Release(ctx, as.TenantID, as.ReleaseID)
	if err != nil {
		return h, fmt.Errorf("release of assignment %s: %w", as.ID, err)
	}
	terms, err := campaign.AssignmentTerms(camp, rel, now)
	if err != nil {
		return h, fmt.Errorf("terms of campaign %s: %w", camp.ID, err)
	}
	if terms.Forced {
		return handlingTypes{download: typeForced, update: typeForced}, nil
	}
	if len(terms.Windows) == 0 {
		return h, nil
	}
	loc := time.UTC
	if d.TimeZone != "" {
		if l, err := time.LoadLocation(d.TimeZone); err == nil {
			loc = l
		}
	}
	in, err := gate.Inside(now, loc, terms.Windows)
	if err != nil {
		return h, fmt.Errorf("windows of campaign %s: %w", camp.ID, err)
	}
	if in {
		h.window = "available"
	} else {
		h.window = "unavailable"
		h.update = typeSkip
	}
	return h, nil
}

// action resolves the {actionId} path value to an assignment of device d.
func (a *API) action(r *http.Request, d store.Device) (store.Assignment, int64, error) {
	raw := r.PathValue("actionId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return store.Assignment{}, 0, apierror.NotFound("no action %q", raw)
	}
	aid, err := a.cfg.Store.DDIActionAssignment(r.Context(), d.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Assignment{}, 0, apierror.NotFound("no action %d", id)
	} else if err != nil {
		return store.Assignment{}, 0, err
	}
	as, err := a.cfg.Store.Assignment(r.Context(), d.TenantID, aid)
	if err != nil {
		return store.Assignment{}, 0, err
	}
	if as.DeviceID != d.ID {
		return store.Assignment{}, 0, apierror.NotFound("no action %d", id)
	}
	return as, id, nil
}

// handleDeploymentBase describes the active action: handling, chunks and
// artifact links. An action that is no longer active is 404, as hawkBit
// answers for a cancelled one.
func (a *API) handleDeploymentBase(w http.ResponseWriter, r *http.Request) error {
	c, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	as, id, err := a.action(r, d)
	if err != nil {
		return err
	}
	if !as.Active {
		return apierror.NotFound("action %d is no longer active", id)
	}
	now := a.cfg.Clock.Now()
	resp, err := a.describe(r.Context(), c, d, as, id, now)
	if err != nil {
		return err
	}
	if _, err := a.cfg.Store.MarkNotified(r.Context(), c.tenant, as.ID, now); err != nil {
		return err
	}
	if h, err := a.handling(r.Context(), d, as, now); err != nil {
		return err
	} else {
		resp.Deployment.Download, resp.Deployment.Update, resp.Deployment.MaintenanceWindow = h.download, h.update, h.window
	}
	if n, _ := strconv.Atoi(r.URL.Query().Get("actionHistory")); n != 0 {
		if resp.ActionHistory, err = a.history(r.Context(), as, n, "RUNNING"); err != nil {
			return err
		}
	}
	apierror.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// handleInstalledBase describes a finished (succeeded) action.
func (a *API) handleInstalledBase(w http.ResponseWriter, r *http.Request) error {
	c, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	as, id, err := a.action(r, d)
	if err != nil {
		return err
	}
	if as.State != store.AssignSucceeded {
		return apierror.NotFound("action %d has not finished successfully", id)
	}
	resp, err := a.describe(r.Context(), c, d, as, id, a.cfg.Clock.Now())
	if err != nil {
		return err
	}
	resp.Deployment.Download, resp.Deployment.Update = typeSkip, typeSkip
	n, _ := strconv.Atoi(r.URL.Query().Get("actionHistory"))
	if resp.ActionHistory, err = a.history(r.Context(), as, n, "FINISHED"); err != nil {
		return err
	}
	apierror.WriteJSON(w, http.StatusOK, resp)
	return nil
}

// history returns up to n of the newest messages (n < 0: all).
func (a *API) history(ctx context.Context, as store.Assignment, n int, status string) (*actionHistory, error) {
	h := &actionHistory{Status: status, Messages: []string{}}
	if n == 0 {
		return h, nil
	}
	evs, err := a.cfg.Store.AssignmentEvents(ctx, as.TenantID, as.ID)
	if err != nil {
		return nil, err
	}
	for i := len(evs) - 1; i >= 0 && (n < 0 || len(h.Messages) < n); i-- {
		if evs[i].Message != "" {
			h.Messages = append(h.Messages, evs[i].Message)
		}
	}
	return h, nil
}

// authAccepted authenticates and loads the caller's accepted device.
func (a *API) authAccepted(r *http.Request) (caller, store.Device, error) {
	c, err := a.authenticate(r)
	if err != nil {
		return caller{}, store.Device{}, err
	}
	d, err := a.acceptedDevice(r, c)
	return c, d, err
}

// artifactsFor returns the release's artifacts that suit the device: its
// device type, one of its hardware revisions (or any), no deltas.
func artifactsFor(rel store.Release, d store.Device) []store.Artifact {
	var out []store.Artifact
	for _, art := range rel.Artifacts {
		if art.DeviceType != d.DeviceType || art.Type == store.ArtifactDelta {
			continue
		}
		ok := len(art.HWRevs) == 0
		for _, rev := range art.HWRevs {
			ok = ok || rev == d.HWRev
		}
		if ok {
			out = append(out, art)
		}
	}
	return out
}

// describe builds the deployment's chunks: one per artifact component
// (part = the component, "os" when empty; Zephyr needs one "bApp" chunk).
func (a *API) describe(ctx context.Context, c caller, d store.Device, as store.Assignment, id int64, now time.Time) (deploymentResponse, error) {
	rel, err := a.cfg.Store.Release(ctx, c.tenant, as.ReleaseID)
	if err != nil {
		return deploymentResponse{}, err
	}
	arts := artifactsFor(rel, d)
	if len(arts) == 0 {
		return deploymentResponse{}, apierror.NotFound("release %s has no artifact for device type %q", rel.Version, d.DeviceType)
	}
	resp := deploymentResponse{ID: strconv.FormatInt(id, 10), Deployment: deployment{Chunks: []chunk{}}}
	index := map[string]int{}
	for _, art := range arts {
		part := art.Component
		if part == "" {
			part = "os"
		}
		i, ok := index[part]
		if !ok {
			i = len(resp.Deployment.Chunks)
			index[part] = i
			resp.Deployment.Chunks = append(resp.Deployment.Chunks, chunk{Part: part, Version: rel.Version, Name: part, Artifacts: []artifact{}})
		}
		href := fmt.Sprintf("%s/softwaremodules/%d/artifacts/%s", a.base(c), id, url.PathEscape(art.Name))
		dl := href
		if a.cfg.URLs != nil {
			q, err := a.cfg.URLs.Sign(signedurl.Params{Tenant: c.tenant, Device: d.ID, Artifact: art.ID}, now.Add(a.cfg.URLTTL))
			if err != nil {
				return deploymentResponse{}, err
			}
			dl = href + "?" + q
		}
		ch := &resp.Deployment.Chunks[i]
		ch.Artifacts = append(ch.Artifacts, artifact{
			Filename: art.Name,
			Hashes:   hashes{SHA1: art.SHA1, MD5: art.MD5, SHA256: art.SHA256},
			Size:     art.Size,
			Links: map[string]link{
				"download": {Href: dl}, "download-http": {Href: href},
				"md5sum": {Href: href + ".MD5SUM"}, "md5sum-http": {Href: href + ".MD5SUM"},
			},
		})
	}
	return resp, nil
}

// handleCancelAction confirms a cancel the controller has not yet
// acknowledged.
func (a *API) handleCancelAction(w http.ResponseWriter, r *http.Request) error {
	_, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	as, id, err := a.action(r, d)
	if err != nil {
		return err
	}
	if as.State != store.AssignCanceled {
		return apierror.NotFound("action %d is not being canceled", id)
	}
	s := strconv.FormatInt(id, 10)
	apierror.WriteJSON(w, http.StatusOK, cancelResponse{ID: s, CancelAction: cancelAction{StopID: s}})
	return nil
}
