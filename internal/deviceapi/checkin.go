package deviceapi

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// handleCheckIn serves POST /api/device/v1/checkin[?wait=30s].
//
// The token is verified without the store; then one store read returns the
// device (credential epoch, state, reported fields) and its active
// assignment. The device's report is written only if it differs from what
// is stored; last-seen goes to memory and is flushed in batches; a pending
// assignment becomes notified when it is first handed out.
//
// With ?wait the request is held until the answer would tell the device
// something new (an assignment it does not know, or a cancel), the wait
// ends, the client goes away or the server stops. The hub subscription is
// taken before each read, so a change committed in between still wakes it.
func (a *API) handleCheckIn(w http.ResponseWriter, r *http.Request) {
	result, err := a.checkIn(w, r)
	if err != nil {
		result = checkinRejected
		if apierror.From(err).Status >= 500 {
			result = checkinError
		}
		apierror.Write(w, r, a.log, err)
	}
	if result != "" {
		a.metrics.checkins.WithLabelValues(result).Inc()
	}
}

func (a *API) checkIn(w http.ResponseWriter, r *http.Request) (string, error) {
	wait, err := a.parseWait(r.URL.RawQuery)
	if err != nil {
		return "", err
	}
	claims, err := a.verifyToken(r)
	if err != nil {
		return "", err
	}
	body, err := readBody(w, r, wire.MaxCheckInBytes)
	if err != nil {
		return "", err
	}
	req, err := wire.DecodeCheckIn(body)
	if err != nil {
		return "", invalid(err)
	}
	ctx := r.Context()
	now := a.clock.Now()

	var wake <-chan struct{}
	unsubscribe := func() {}
	defer func() { unsubscribe() }()
	if wait > 0 {
		wake, unsubscribe = a.hub.Subscribe(claims.Tenant, claims.DeviceID)
	}
	d, act, err := a.readCheckIn(ctx, claims)
	if err != nil {
		return "", err
	}
	if d, err = a.storeReport(ctx, d, req, now); err != nil {
		return "", err
	}
	a.seen.touch(d.TenantID, d.ID, now)
	resp, err := a.answer(ctx, d, act, req)
	if err != nil {
		return "", err
	}
	if wait > 0 && !news(resp, req) {
		a.metrics.longPolls.Inc()
		resp, err = a.longPoll(ctx, claims, req, resp, wake, &unsubscribe, wait)
		a.metrics.longPolls.Dec()
		if err != nil {
			return "", err
		}
		if resp == nil { // the client went away
			return "", nil
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	apierror.WriteJSON(w, http.StatusOK, resp)
	switch {
	case resp.Cancel != nil:
		return checkinCancel, nil
	case resp.Assignment != nil:
		return checkinAssignment, nil
	}
	return checkinNoWork, nil
}

// longPoll waits for news after the first answer had none. It returns the
// answer to send, or nil if the client went away.
func (a *API) longPoll(ctx context.Context, claims identity.Claims, req wire.CheckInRequest, resp *wire.CheckInResponse,
	wake <-chan struct{}, unsubscribe *func(), wait time.Duration) (*wire.CheckInResponse, error) {
	timer := a.clock.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case <-timer.C():
			return resp, nil
		case <-a.draining:
			return resp, nil
		case <-ctx.Done():
			return nil, nil
		case <-wake:
		}
		(*unsubscribe)()
		wake, *unsubscribe = a.hub.Subscribe(claims.Tenant, claims.DeviceID)
		d, act, err := a.readCheckIn(ctx, claims)
		if err != nil {
			return nil, err
		}
		next, err := a.answer(ctx, d, act, req)
		if err != nil {
			return nil, err
		}
		resp = next
		if news(resp, req) {
			return resp, nil
		}
	}
}

// news reports whether resp tells the device something it did not say it
// knew: an assignment other than the one it works on, or a cancel.
func news(resp *wire.CheckInResponse, req wire.CheckInRequest) bool {
	return resp.Cancel != nil || (resp.Assignment != nil && resp.Assignment.ID != req.AssignmentID)
}

// parseWait reads ?wait= as a Go duration ("30s") or whole seconds ("30"),
// capped at the configured maximum.
func (a *API) parseWait(rawQuery string) (time.Duration, error) {
	if rawQuery == "" { // a short poll: nothing to parse
		return 0, nil
	}
	q, _ := url.ParseQuery(rawQuery) // as URL.Query: malformed pairs are dropped
	vs, ok := q["wait"]
	if !ok {
		return 0, nil
	}
	if len(vs) != 1 {
		return 0, apierror.BadRequest("give wait at most once")
	}
	v := vs[0]
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseUint(v, 10, 32)
		if nerr != nil {
			return 0, apierror.BadRequest("wait=%.32q is not a duration such as 30s", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 {
		return 0, apierror.BadRequest("wait must not be negative")
	}
	if a.limits.MaxLongPoll < 0 {
		return 0, nil
	}
	return min(d, a.limits.MaxLongPoll), nil
}

// storeReport writes what the device reported about itself if it differs
// from d, and returns the device as stored. The comparison mirrors the
// store's, so an unchanged report costs no store call at all.
func (a *API) storeReport(ctx context.Context, d store.Device, req wire.CheckInRequest, now time.Time) (store.Device, error) {
	version := req.Version
	if version != d.Version {
		// Stored versions are canonical, so only a different one needs
		// normalizing (the decoder has validated it).
		v, err := semver.Parse(version)
		if err != nil {
			return d, invalid(&wire.FieldError{Field: "version", Msg: err.Error()})
		}
		version = v.String()
	}
	rep := store.DeviceReport{
		Version:    version,
		DeviceType: req.DeviceType,
		HWRev:      req.HWRev,
		TimeZone:   req.TimeZone,
		Attributes: req.Attributes,
		Now:        now,
	}
	if !reportChanges(d, rep) {
		return d, nil
	}
	if rep.TimeZone != "" && rep.TimeZone != d.TimeZone {
		if _, err := time.LoadLocation(rep.TimeZone); err != nil {
			return d, invalid(&wire.FieldError{Field: "time_zone", Msg: fmt.Sprintf("unknown IANA time zone %q", rep.TimeZone)})
		}
	}
	nd, err := a.store.UpdateDeviceReport(ctx, d.TenantID, d.ID, rep)
	if err != nil {
		return d, fmt.Errorf("store report of device %s: %w", d.ID, err)
	}
	return nd, nil
}

func reportChanges(d store.Device, r store.DeviceReport) bool {
	return (r.Version != "" && r.Version != d.Version) ||
		(r.DeviceType != "" && r.DeviceType != d.DeviceType) ||
		(r.HWRev != "" && r.HWRev != d.HWRev) ||
		(r.TimeZone != "" && r.TimeZone != d.TimeZone) ||
		(r.Attributes != nil && !maps.Equal(r.Attributes, d.Attributes))
}

// readCheckIn is everything a check-in reads, in one store call: the
// token's device (checked against the token, see checkDevice) and its
// active assignment, nil if none. A check-in without pending work costs
// nothing else. The device comes without tags and groups, which nothing in
// a check-in uses.
func (a *API) readCheckIn(ctx context.Context, c identity.Claims) (store.Device, *store.Assignment, error) {
	d, act, err := a.store.CheckInState(ctx, c.Tenant, c.DeviceID)
	if d, err = admit(c, d, err); err != nil {
		return store.Device{}, nil, err
	}
	return d, act, nil
}

// answer builds the check-in response for d: its active assignment act
// (with a signed download URL) and a cancel if the device works on an
// assignment that is no longer active.
func (a *API) answer(ctx context.Context, d store.Device, act *store.Assignment, req wire.CheckInRequest) (*wire.CheckInResponse, error) {
	resp := &wire.CheckInResponse{PollAfterSeconds: a.pollAfter()}
	if a.limits.MaxLongPoll > 0 {
		resp.LongPoll = wire.LongPoll{Supported: true, MaxWaitSeconds: int(a.limits.MaxLongPoll / time.Second)}
	}
	var err error
	if act != nil {
		if resp.Assignment, err = a.describe(ctx, d, *act); err != nil {
			return nil, err
		}
		if resp.Assignment != nil && act.State == store.AssignPending {
			a.markNotified(ctx, d, resp.Assignment)
		}
	}
	if req.AssignmentID != "" && (resp.Assignment == nil || resp.Assignment.ID != req.AssignmentID) {
		if resp.Cancel, err = a.cancelFor(ctx, d, req.AssignmentID); err != nil {
			return nil, err
		}
	}
	resp.Finalize = a.finalizeFor(ctx, d, req.SecurityFloor)
	return resp, nil
}

// markNotified records the first delivery of a pending assignment: the
// one write a check-in makes for it, once. A failure is logged, not
// returned: the device still gets its work, and the next check-in that
// hands it out tries again.
func (a *API) markNotified(ctx context.Context, d store.Device, out *wire.Assignment) {
	changed, err := a.store.MarkNotified(ctx, d.TenantID, out.ID, a.clock.Now())
	switch {
	case err != nil:
		a.log.WarnContext(ctx, "could not record the delivery of an assignment",
			"device_id", d.ID, "assignment_id", out.ID, "err", err)
	case changed:
		out.State = string(store.AssignNotified)
	}
}

// cancelFor decides whether a device working on assignment id, which is
// not its active one, must be told to stop, and why. Assignments that the
// device itself ended (succeeded, failed, …) need no cancel.
func (a *API) cancelFor(ctx context.Context, d store.Device, id string) (*wire.Cancel, error) {
	old, err := a.store.Assignment(ctx, d.TenantID, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return &wire.Cancel{AssignmentID: id, Reason: wire.CancelCanceled}, nil
	case err != nil:
		return nil, fmt.Errorf("read assignment %s: %w", id, err)
	case old.DeviceID != d.ID:
		// Not this device's: it must not work on it.
		return &wire.Cancel{AssignmentID: id, Reason: wire.CancelCanceled}, nil
	}
	switch old.State {
	case store.AssignSuperseded:
		return &wire.Cancel{AssignmentID: id, Reason: wire.CancelSuperseded}, nil
	case store.AssignCanceled, store.AssignTimedOut:
		return &wire.Cancel{AssignmentID: id, Reason: wire.CancelCanceled}, nil
	case store.AssignSucceeded, store.AssignFailed, store.AssignRolledBack, store.AssignSkipped:
		return nil, nil
	}
	// Active but not the device's active one cannot happen (one active
	// assignment per device); if it ever does, stop the stray one.
	return &wire.Cancel{AssignmentID: id, Reason: wire.CancelCanceled}, nil
}

// describe turns an active assignment into what the device needs: the
// release, the artifact for its hardware and a signed download URL.
func (a *API) describe(ctx context.Context, d store.Device, act store.Assignment) (*wire.Assignment, error) {
	rel, err := a.store.Release(ctx, d.TenantID, act.ReleaseID)
	if err != nil {
		return nil, fmt.Errorf("read release %s of assignment %s: %w", act.ReleaseID, act.ID, err)
	}
	art, ok := chooseArtifact(rel.Artifacts, d, nativeSupports)
	if !ok {
		// The hardware changed after the assignment was made. Hand out
		// nothing rather than a file for other hardware.
		a.log.WarnContext(ctx, "no artifact of the assigned release suits the device",
			"device_id", d.ID, "assignment_id", act.ID, "release", rel.Version, "device_type", d.DeviceType, "hw_rev", d.HWRev)
		return nil, nil
	}
	exp := a.clock.Now().Add(a.limits.URLTTL).Truncate(time.Second)
	q, err := a.urls.Sign(signedurl.Params{Tenant: d.TenantID, Device: d.ID, Artifact: art.ID}, exp)
	if err != nil {
		return nil, fmt.Errorf("sign download URL for artifact %s: %w", art.ID, err)
	}
	out := &wire.Assignment{
		ID:              act.ID,
		ReleaseID:       rel.ID,
		Version:         rel.Version,
		SecurityVersion: rel.SecurityVersion,
		CampaignID:      act.CampaignID,
		State:           string(act.State),
		Artifact: wire.Artifact{
			ID:           art.ID,
			Name:         art.Name,
			Type:         string(art.Type),
			Component:    art.Component,
			Compression:  art.Compression,
			Size:         art.Size,
			SHA256:       art.SHA256,
			SHA1:         art.SHA1,
			MD5:          art.MD5,
			URL:          a.publicURL + wire.DownloadPath(url.PathEscape(art.ID)) + "?" + q,
			URLExpiresAt: exp.UTC(),
		},
	}
	if a.director != nil {
		if out.Signed, err = a.director.SignAssignment(ctx, d, act, rel, art); err != nil {
			return nil, fmt.Errorf("sign assignment %s: %w", act.ID, err)
		}
	}
	return out, nil
}

// nativeSupports says which artifact types the native agent installs: all.
func nativeSupports(store.ArtifactType) bool { return true }

// typePreference breaks ties between artifacts a device could install:
// lower is preferred.
var typePreference = []store.ArtifactType{
	store.ArtifactRawImage, store.ArtifactArchive, store.ArtifactFile, store.ArtifactScript,
	store.ArtifactSWU, store.ArtifactRAUCBundle, store.ArtifactMender, store.ArtifactDelta,
}

// chooseArtifact picks the artifact for d: its device type and hardware
// revision, a type the device's protocol supports, and either a full image
// or a delta from the exact version it runs. Full images win (deltas need
// agent support the device may lack), then the type order above, then
// component and id, so the choice is deterministic.
func chooseArtifact(arts []store.Artifact, d store.Device, supports func(store.ArtifactType) bool) (store.Artifact, bool) {
	rank := func(t store.ArtifactType) int {
		if i := slices.Index(typePreference, t); i >= 0 {
			return i
		}
		return len(typePreference)
	}
	var best store.Artifact
	found := false
	for _, art := range arts {
		if art.DeviceType != d.DeviceType || !slices.Contains(art.HWRevs, d.HWRev) || !supports(art.Type) {
			continue
		}
		if art.FromVersion != "" && art.FromVersion != d.Version {
			continue
		}
		if !found || better(art, best, rank) {
			best, found = art, true
		}
	}
	return best, found
}

func better(x, y store.Artifact, rank func(store.ArtifactType) int) bool {
	if (x.FromVersion == "") != (y.FromVersion == "") {
		return x.FromVersion == ""
	}
	if rx, ry := rank(x.Type), rank(y.Type); rx != ry {
		return rx < ry
	}
	if x.Component != y.Component {
		return x.Component < y.Component
	}
	return x.ID < y.ID
}

// pollAfter is the configured interval with ± jitter, in whole seconds, so
// a fleet that started together spreads out.
func (a *API) pollAfter() int {
	base := a.limits.PollInterval.Seconds()
	j := a.limits.PollJitter * (2*rand.Float64() - 1)
	return max(1, int(base*(1+j)+0.5))
}
