package deviceapi

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
)

// handleEnroll serves POST /api/device/v1/enroll: a signed enrollment
// request. Answers: 200 with a token (accepted, including preauthorized
// keys), 202 while pending, 403 for rejected or decommissioned devices,
// 429 when the source address or the pending cap is exhausted.
func (a *API) handleEnroll(w http.ResponseWriter, r *http.Request) {
	result, err := a.enroll(w, r)
	a.metrics.enrollments.WithLabelValues(result).Inc()
	if err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) enroll(w http.ResponseWriter, r *http.Request) (result string, err error) {
	now := a.clock.Now()
	if ok, wait := a.enrollLimit.allow(clientKey(r), now); !ok {
		return enrollRateLimited, &apierror.Error{Status: http.StatusTooManyRequests, Code: "rate_limited",
			Message: "too many enrollment requests from this address; retry later", RetryAfter: retrySeconds(wait)}
	}
	body, err := readBody(w, r, identity.MaxRequestBytes)
	if err != nil {
		return enrollInvalid, err
	}
	enr, err := identity.ParseEnrollment(body, r.Header.Get(identity.SignatureHeader), now, a.limits.MaxSkew)
	if err != nil {
		return enrollInvalid, signedRequestError(err)
	}
	if err := a.useNonce("enroll", enr.Nonce, enr.Timestamp, now); err != nil {
		return enrollInvalid, err
	}
	key := enr.PublicKey.Credential()
	d, err := a.store.Enroll(r.Context(), store.EnrollParams{
		TenantID:   a.tenant,
		Serial:     enr.Identity.Serial,
		DeviceType: enr.Identity.DeviceType,
		HWRev:      enr.Identity.HWRev,
		Region:     enr.Identity.Region,
		TimeZone:   enr.Identity.TimeZone,
		Attributes: enr.Identity.Attributes,
		Protocol:   store.ProtocolNative,
		Key: store.Credential{
			Kind:        store.CredentialKind(key.Kind),
			Algorithm:   key.Algorithm,
			Fingerprint: key.Fingerprint,
			Material:    key.Material,
		},
		Now:        now,
		PendingTTL: a.limits.PendingTTL,
		MaxPending: a.limits.MaxPending,
	})
	switch {
	case errors.Is(err, store.ErrPendingLimit):
		return enrollRateLimited, err
	case errors.Is(err, store.ErrConflict):
		// The store's message names serials and keys; an unauthenticated
		// caller must not be able to probe which serials are enrolled.
		a.log.InfoContext(r.Context(), "enrollment conflict", "err", err)
		return enrollInvalid, &apierror.Error{Status: http.StatusConflict, Code: "conflict",
			Message: "this serial number or key conflicts with an enrolled device; an operator must resolve it", Err: err}
	case errors.Is(err, store.ErrInvalidRequest):
		return enrollInvalid, err
	case err != nil:
		return enrollError, err
	}
	switch d.State {
	case store.DeviceAccepted:
		if err := a.writeToken(w, d); err != nil {
			return enrollError, err
		}
		return enrollAccepted, nil
	case store.DevicePending:
		retry := retrySeconds(a.limits.PendingRetryAfter)
		w.Header().Set("Retry-After", strconv.Itoa(retry))
		apierror.WriteJSON(w, http.StatusAccepted, wire.PendingResponse{Status: wire.StatusPending, DeviceID: d.ID, RetryAfter: retry})
		return enrollPending, nil
	}
	return enrollRefused, notAccepted(d.State)
}

// handleToken serves POST /api/device/v1/token: a renewal request signed
// with the device's enrolled key buys a new device token carrying the
// device's current credential epoch.
func (a *API) handleToken(w http.ResponseWriter, r *http.Request) {
	if err := a.renew(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) renew(w http.ResponseWriter, r *http.Request) error {
	now := a.clock.Now()
	body, err := readBody(w, r, identity.MaxRequestBytes)
	if err != nil {
		return err
	}
	p, err := identity.DecodeRenewal(body)
	if err != nil {
		return signedRequestError(err)
	}
	ctx := r.Context()
	d, err := a.store.Device(ctx, a.tenant, p.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return &apierror.Error{Status: http.StatusNotFound, Code: "unknown_device",
			Message: "device " + p.DeviceID + " is not registered; enroll first", Err: err}
	} else if err != nil {
		return err
	}
	creds, err := a.store.ListCredentials(ctx, a.tenant, d.ID)
	if err != nil {
		return err
	}
	var keys []*identity.PublicKey
	for _, c := range creds {
		if c.Kind != store.CredPublicKey || c.State != store.CredActive {
			continue
		}
		pk, err := identity.Credential{Kind: identity.KindPublicKey, Algorithm: c.Algorithm, Fingerprint: c.Fingerprint, Material: c.Material}.PublicKey()
		if err != nil {
			a.log.WarnContext(ctx, "stored device key does not parse", "device_id", d.ID, "credential_id", c.ID, "err", err)
			continue
		}
		keys = append(keys, pk)
	}
	if len(keys) == 0 {
		if d.State != store.DeviceAccepted {
			return notAccepted(d.State)
		}
		return apierror.New(http.StatusForbidden, "no_key", "the device has no active key on record; an operator must preauthorize a new one")
	}
	var ren *identity.Renewal
	for _, k := range keys {
		if ren, err = p.Verify(r.Header.Get(identity.SignatureHeader), k, now, a.limits.MaxSkew); err == nil {
			break
		}
		if !errors.Is(err, identity.ErrBadSignature) {
			return signedRequestError(err)
		}
	}
	if err != nil {
		return signedRequestError(err)
	}
	if err := a.useNonce("renew", ren.Nonce, ren.Timestamp, now); err != nil {
		return err
	}
	if d.State != store.DeviceAccepted {
		return notAccepted(d.State)
	}
	return a.writeToken(w, d)
}

// writeToken issues a device token for d and sends it with 200.
func (a *API) writeToken(w http.ResponseWriter, d store.Device) error {
	tok, exp, err := a.tokens.Issue(identity.Claims{Tenant: d.TenantID, DeviceID: d.ID, Epoch: d.CredentialEpoch})
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	apierror.WriteJSON(w, http.StatusOK, wire.TokenResponse{Status: wire.StatusAccepted, DeviceID: d.ID, Token: tok, ExpiresAt: exp.UTC()})
	return nil
}

// useNonce refuses a signed request whose nonce was seen within the
// replay window.
func (a *API) useNonce(kind, nonce string, signedAt, now time.Time) error {
	switch a.nonces.use(kind+":"+nonce, signedAt.Add(a.limits.MaxSkew), now) {
	case nonceReplayed:
		return apierror.New(http.StatusUnauthorized, "replayed", "this signed request was already used; sign a new one with a fresh nonce")
	case nonceFull:
		return &apierror.Error{Status: http.StatusServiceUnavailable, Code: "busy", Message: "too many signed requests in flight; retry later", RetryAfter: 10}
	}
	return nil
}

// signedRequestError maps identity's errors to 4xx answers. Their texts
// are written for the device's developer and carry no server internals.
func signedRequestError(err error) error {
	var ve *identity.ValidationError
	switch {
	case errors.As(err, &ve):
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: ve.Error(), Err: err}
	case errors.Is(err, identity.ErrStaleRequest):
		return &apierror.Error{Status: http.StatusBadRequest, Code: "stale_request",
			Message: err.Error() + "; check the device clock (the Date header has the server's time)", Err: err}
	case errors.Is(err, identity.ErrMissingSignature):
		return &apierror.Error{Status: http.StatusUnauthorized, Code: "missing_signature",
			Message: "missing " + identity.SignatureHeader + " header: sign the exact body bytes with the device key", Err: err}
	case errors.Is(err, identity.ErrBadSignature):
		return &apierror.Error{Status: http.StatusUnauthorized, Code: "bad_signature",
			Message: "the signature does not match the body and the device key", Err: err}
	}
	return err
}

// retrySeconds rounds a wait up to whole seconds, at least one.
func retrySeconds(d time.Duration) int {
	return max(1, int(math.Ceil(d.Seconds())))
}
