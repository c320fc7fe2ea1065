package deviceapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
)

// verifyToken checks the request's bearer device token without touching
// the store. The caller must still compare the token's epoch with the
// device's (checkDevice).
func (a *API) verifyToken(r *http.Request) (identity.Claims, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" || !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return identity.Claims{}, &apierror.Error{Status: http.StatusUnauthorized, Code: "unauthorized",
			Message: "missing device token: send \"Authorization: Bearer <token>\" (get one from " + wire.PathEnroll + " or " + wire.PathToken + ")"}
	}
	c, err := a.tokens.Verify(strings.TrimSpace(token))
	switch {
	case errors.Is(err, identity.ErrTokenExpired):
		return identity.Claims{}, &apierror.Error{Status: http.StatusUnauthorized, Code: "token_expired",
			Message: fmt.Sprintf("device token expired at %s; renew it at %s", c.Expiry.Format("2006-01-02T15:04:05Z07:00"), wire.PathToken)}
	case err != nil:
		return identity.Claims{}, &apierror.Error{Status: http.StatusUnauthorized, Code: "invalid_token",
			Message: "device token is not valid; renew it at " + wire.PathToken, Err: err}
	}
	return c, nil
}

// checkDevice reads the token's device and checks that the token is still
// good for it: the device exists, the token's credential epoch is the
// device's current one (decommissioning and credential revocation bump it)
// and the device is accepted.
func (a *API) checkDevice(ctx context.Context, c identity.Claims) (store.Device, error) {
	d, err := a.store.Device(ctx, c.Tenant, c.DeviceID)
	return admit(c, d, err)
}

// admit decides whether the token c may act for the device d that was read
// for it (err from that read), as checkDevice describes.
func admit(c identity.Claims, d store.Device, err error) (store.Device, error) {
	if errors.Is(err, store.ErrNotFound) {
		return store.Device{}, &apierror.Error{Status: http.StatusUnauthorized, Code: "unknown_device",
			Message: "the device this token was issued to is not registered any more; enroll again", Err: err}
	}
	if err != nil {
		return store.Device{}, fmt.Errorf("read device %s: %w", c.DeviceID, err)
	}
	if err := c.CheckEpoch(d.CredentialEpoch); err != nil {
		return store.Device{}, &apierror.Error{Status: http.StatusUnauthorized, Code: "token_revoked",
			Message: "device token was revoked; renew it at " + wire.PathToken, Err: err}
	}
	if d.State != store.DeviceAccepted {
		return store.Device{}, notAccepted(d.State)
	}
	return d, nil
}

// notAccepted is the 403 for a device that may not use the API.
func notAccepted(s store.DeviceState) error {
	switch s {
	case store.DevicePending:
		return &apierror.Error{Status: http.StatusForbidden, Code: "device_pending",
			Message: "the device is waiting for an operator to accept it; keep enrolling until then"}
	case store.DeviceRejected:
		return apierror.New(http.StatusForbidden, "device_rejected", "an operator rejected this device")
	case store.DeviceDecommissioned:
		return apierror.New(http.StatusForbidden, "device_decommissioned", "the device was decommissioned; its credentials are revoked")
	}
	return apierror.New(http.StatusForbidden, "forbidden", "the device is %s", s)
}

// readBody reads the whole request body, refusing more than limit bytes
// with 413.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, error) {
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	b, err := io.ReadAll(r.Body)
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, apierror.From(err)
		}
		return nil, &apierror.Error{Status: http.StatusBadRequest, Code: "bad_request", Message: "could not read the request body", Err: err}
	}
	return b, nil
}

// invalid turns a wire decoding error into a 400.
func invalid(err error) error {
	var fe *wire.FieldError
	if errors.As(err, &fe) {
		return &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: fe.Error(), Err: err}
	}
	return err
}
