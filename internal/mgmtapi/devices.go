package mgmtapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/filter"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
)

// parseFilter parses the filter in query parameter name; empty means none.
func parseFilter(r *http.Request, name string) (*filter.Expr, error) {
	src := r.URL.Query().Get(name)
	if src == "" {
		return nil, nil
	}
	f, err := filter.Parse(src)
	if err != nil {
		// The position goes into the body too, so a client can point at it.
		var se *filter.SyntaxError
		if errors.As(err, &se) {
			return nil, &apierror.Error{Status: http.StatusBadRequest, Code: "bad_filter",
				Message: fmt.Sprintf("bad filter in %q: %s", name, se.Error()),
				Details: map[string]any{"line": se.Line, "column": se.Column}, Err: err}
		}
		return nil, apierror.New(http.StatusBadRequest, "bad_filter", "bad filter in %q", name)
	}
	return f, nil
}

func parseState(s string) (store.DeviceState, error) {
	switch st := store.DeviceState(s); st {
	case "", store.DevicePending, store.DeviceAccepted, store.DeviceRejected, store.DeviceDecommissioned:
		return st, nil
	}
	return "", apierror.New(http.StatusBadRequest, "bad_parameter", "state %q is not one of pending, accepted, rejected, decommissioned", s)
}

func (a *API) listDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	f, err := parseFilter(r, "q")
	if err != nil {
		return err
	}
	st, err := parseState(r.URL.Query().Get("state"))
	if err != nil {
		return err
	}
	p, err := page(r)
	if err != nil {
		return err
	}
	devs, next, err := a.store.ListDevices(r.Context(), c.tenant(), store.DeviceQuery{Filter: f, State: st, Page: p})
	if err != nil {
		return fmt.Errorf("list devices: %w", err)
	}
	for i := range devs {
		devs[i] = deviceView(devs[i])
	}
	writeList(w, devs, next)
	return nil
}

// countBody is the answer to a count without "by".
type countBody struct {
	Count int `json:"count"`
}

// countByBody is the answer to a count with "by": the devices the filter
// matches, and how many of them have each value of the field.
type countByBody struct {
	Total int            `json:"total"`
	By    map[string]int `json:"by"`
}

func (a *API) countDevices(w http.ResponseWriter, r *http.Request, c *caller) error {
	f, err := parseFilter(r, "q")
	if err != nil {
		return err
	}
	by := r.URL.Query().Get("by")
	if by == "" {
		n, err := a.store.CountDevices(r.Context(), c.tenant(), f)
		if err != nil {
			return fmt.Errorf("count devices: %w", err)
		}
		return ok(w, countBody{n})
	}
	if !store.IsCountByField(by) {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "by %q is not one of %s", by, strings.Join(store.CountByFields(), ", "))
	}
	counts, err := a.store.CountDevicesBy(r.Context(), c.tenant(), f, by)
	if err != nil {
		return fmt.Errorf("count devices by %s: %w", by, err)
	}
	out := countByBody{By: counts}
	for _, n := range counts {
		out.Total += n
	}
	return ok(w, out)
}

func (a *API) getDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	d, err := a.store.Device(ctx, c.tenant(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("device %s: %w", r.PathValue("id"), err)
	}
	creds, err := a.store.ListCredentials(ctx, c.tenant(), d.ID)
	if err != nil {
		return fmt.Errorf("credentials of device %s: %w", d.ID, err)
	}
	out := deviceDetail{Device: deviceView(d), Credentials: make([]credentialView, 0, len(creds))}
	for _, cr := range creds {
		out.Credentials = append(out.Credentials, credView(cr))
	}
	as, err := a.store.ActiveAssignment(ctx, c.tenant(), d.ID)
	switch {
	case err == nil:
		out.ActiveAssignment = &as
	case !errors.Is(err, store.ErrNotFound):
		return fmt.Errorf("active assignment of device %s: %w", d.ID, err)
	}
	return ok(w, out)
}

// deviceTransition is accept, reject and decommission: a bodiless POST that
// moves the device and wakes it if it is waiting.
func (a *API) deviceTransition(w http.ResponseWriter, r *http.Request, c *caller,
	fn func(ctx context.Context, tenant, id string, by store.Actor, now time.Time) (store.Device, error)) error {
	id := r.PathValue("id")
	d, err := fn(r.Context(), c.tenant(), id, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("device %s: %w", id, err)
	}
	a.notifier.Notify(c.tenant(), d.ID)
	return ok(w, deviceView(d))
}

func (a *API) acceptDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.deviceTransition(w, r, c, a.store.AcceptDevice)
}

func (a *API) rejectDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.deviceTransition(w, r, c, a.store.RejectDevice)
}

func (a *API) decommissionDevice(w http.ResponseWriter, r *http.Request, c *caller) error {
	return a.deviceTransition(w, r, c, a.store.DecommissionDevice)
}

// Limits on operator-owned labels.
const (
	maxLabelLen     = 128
	maxLabelsPerReq = 100
)

type labelChange struct {
	Add    []string `json:"add"`
	Remove []string `json:"remove"`
}

func (l labelChange) validate(what string) error {
	if len(l.Add)+len(l.Remove) == 0 {
		return apierror.BadRequest("nothing to change: give %ss in add or remove", what)
	}
	if len(l.Add)+len(l.Remove) > maxLabelsPerReq {
		return apierror.BadRequest("at most %d %ss per request", maxLabelsPerReq, what)
	}
	return nil // the store checks the names themselves
}

// checkLabel accepts any printable text without surrounding space up to
// maxLabelLen bytes; the filter language can name every such label by
// quoting it (tag:"needs quoting").
func checkLabel(what, s string) error {
	if s == "" || len(s) > maxLabelLen || !utf8.ValidString(s) || strings.TrimSpace(s) != s {
		return apierror.BadRequest("%s %q must be 1 to %d bytes of text without leading or trailing space", what, s, maxLabelLen)
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return apierror.BadRequest("%s %q contains a control character", what, s)
		}
	}
	return nil
}

func (a *API) setTags(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req labelChange
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if err := req.validate("tag"); err != nil {
		return err
	}
	id := r.PathValue("id")
	d, err := a.store.SetTags(r.Context(), c.tenant(), id, req.Add, req.Remove, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("tag device %s: %w", id, err)
	}
	return ok(w, deviceView(d))
}

func (a *API) setGroups(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req labelChange
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if err := req.validate("group"); err != nil {
		return err
	}
	id := r.PathValue("id")
	d, err := a.store.SetGroups(r.Context(), c.tenant(), id, req.Add, req.Remove, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("group device %s: %w", id, err)
	}
	return ok(w, deviceView(d))
}

func (a *API) preauthorize(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		PublicKey string `json:"public_key"`
		Serial    string `json:"serial"`
	}
	if err := decodeBody(w, r, identity.MaxPublicKeyPEMBytes+4<<10, &req); err != nil {
		return err
	}
	if req.PublicKey == "" {
		return apierror.BadRequest("public_key is required: the device's public key as PEM")
	}
	key, err := identity.ParsePublicKeyPEM([]byte(req.PublicKey))
	if err != nil {
		return apierror.New(http.StatusBadRequest, "bad_key", "public_key: %s", err.Error())
	}
	if req.Serial != "" {
		if err := checkLabel("serial", req.Serial); err != nil {
			return err
		}
	}
	cred, err := a.store.PreauthorizeKey(r.Context(), store.Credential{
		TenantID:      c.tenant(),
		Kind:          store.CredPublicKey,
		Algorithm:     key.Algorithm,
		Fingerprint:   key.Fingerprint,
		Material:      key.PEM,
		State:         store.CredPreauthorized,
		PreauthSerial: req.Serial,
	}, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("preauthorize key %s: %w", key.Fingerprint, err)
	}
	return created(w, credView(cred))
}

// createTargetToken issues a hawkBit-style target token for the device. The
// plaintext is in this response only; the store keeps its hash.
func (a *API) createTargetToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	d, err := a.store.Device(ctx, c.tenant(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("device %s: %w", r.PathValue("id"), err)
	}
	tok, err := identity.GenerateTargetToken()
	if err != nil {
		return fmt.Errorf("generate target token: %w", err)
	}
	cred, err := a.store.AddCredential(ctx, store.Credential{
		TenantID:    c.tenant(),
		DeviceID:    d.ID,
		Kind:        store.CredToken,
		Fingerprint: identity.HashTargetToken(tok),
		State:       store.CredActive,
	}, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("add target token to device %s: %w", d.ID, err)
	}
	return created(w, struct {
		Credential credentialView `json:"credential"`
		Token      string         `json:"token"`
	}{credView(cred), tok})
}

func (a *API) revokeCredential(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	id, cid := r.PathValue("id"), r.PathValue("cid")
	creds, err := a.store.ListCredentials(ctx, c.tenant(), id)
	if err != nil {
		return fmt.Errorf("credentials of device %s: %w", id, err)
	}
	found := false
	for _, cr := range creds {
		found = found || cr.ID == cid
	}
	if !found {
		// ListCredentials of an unknown device may be empty rather than
		// an error; either way the pair does not exist.
		return apierror.NotFound("device %s has no credential %s", id, cid)
	}
	if err := a.store.RevokeCredential(ctx, c.tenant(), cid, c.actor, a.now()); err != nil {
		return fmt.Errorf("revoke credential %s: %w", cid, err)
	}
	a.notifier.Notify(c.tenant(), id)
	return noContent(w)
}

func (a *API) reportGaps(w http.ResponseWriter, r *http.Request, c *caller) error {
	ctx := r.Context()
	d, err := a.store.Device(ctx, c.tenant(), r.PathValue("id"))
	if err != nil {
		return fmt.Errorf("device %s: %w", r.PathValue("id"), err)
	}
	gaps, err := a.store.ReportGaps(ctx, c.tenant(), d.ID)
	if err != nil {
		return fmt.Errorf("report gaps of device %s: %w", d.ID, err)
	}
	writeList(w, gaps, "")
	return nil
}
