package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
)

// apiError is a non-2xx answer of the device API.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter time.Duration
}

func (e *apiError) Error() string {
	if e.Code != "" {
		return fmt.Sprintf("server answered %d %s: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("server answered %d", e.Status)
}

func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	return nil
}

// maxAnswerBytes bounds what the agent reads of an API answer.
const maxAnswerBytes = 1 << 20

// call sends one JSON request and decodes a 2xx answer into out. hdr may
// carry a signature; token, when set, goes in Authorization. wait > 0
// extends the request timeout for a long-poll.
func (a *Agent) call(ctx context.Context, method, path string, hdr http.Header, token string, body []byte, out any, wait time.Duration) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, a.cfg.Timing.RequestTimeout+wait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, a.cfg.ServerURL+path, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	for k, vs := range hdr {
		req.Header[k] = vs
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := a.cfg.HTTP.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswerBytes))
	if err != nil {
		return resp.StatusCode, fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode/100 != 2 {
		ae := &apiError{Status: resp.StatusCode}
		var eb struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		if json.Unmarshal(b, &eb) == nil {
			ae.Code, ae.Message = eb.Error.Code, eb.Error.Message
		}
		if s, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && s > 0 {
			ae.RetryAfter = time.Duration(s) * time.Second
		}
		return resp.StatusCode, ae
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return resp.StatusCode, fmt.Errorf("decode answer of %s: %w", path, err)
		}
	}
	return resp.StatusCode, nil
}

// authed calls a token-authenticated endpoint, renewing the token once if
// the server refuses it.
func (a *Agent) authed(ctx context.Context, path string, in, out any, wait time.Duration) error {
	body, err := json.Marshal(in)
	if err != nil {
		return err
	}
	for attempt := 0; ; attempt++ {
		_, err := a.call(ctx, http.MethodPost, path, nil, a.token, body, out, wait)
		ae := asAPIError(err)
		if ae == nil || attempt > 0 || !a.tokenRefused(ae) {
			return err
		}
		a.log.Info("device token refused; renewing", "code", ae.Code)
		a.token = ""
		if !a.session(ctx) {
			return err
		}
	}
}

// tokenRefused reports whether the answer asks for a new token (or a new
// enrollment).
func (a *Agent) tokenRefused(ae *apiError) bool {
	if ae.Status != http.StatusUnauthorized {
		return false
	}
	if ae.Code == "unknown_device" {
		a.st.DeviceID = ""
	}
	return true
}

// session makes sure the agent holds a valid device token, enrolling or
// renewing as needed. It reports whether authenticated calls may proceed.
func (a *Agent) session(ctx context.Context) bool {
	now := a.clock.Now()
	if a.token != "" && now.Before(a.tokenRenewAt) {
		return true
	}
	if !a.due(a.retryAt) || !a.due(a.enrollAt) {
		return a.token != ""
	}
	if a.st.DeviceID != "" {
		ok, err := a.renew(ctx)
		if ok {
			return true
		}
		if err == nil {
			// The server does not know the key or device: enroll.
			return a.enroll(ctx)
		}
		// Keep using a token that has not expired yet.
		return a.token != ""
	}
	return a.enroll(ctx)
}

// renew asks for a new token. ok: got one; err nil and !ok: enroll again.
func (a *Agent) renew(ctx context.Context) (bool, error) {
	body, sig, err := identity.SignRenewal(a.key, a.st.DeviceID, a.clock.Now())
	if err != nil {
		return false, err
	}
	var tr wire.TokenResponse
	_, err = a.call(ctx, http.MethodPost, wire.PathToken, http.Header{identity.SignatureHeader: {sig}}, "", body, &tr, 0)
	if err == nil {
		a.reachable()
		a.takeToken(tr)
		return true, nil
	}
	ae := asAPIError(err)
	if ae == nil {
		a.log.Warn("token renewal failed", "err", err)
		a.backoff()
		return false, err
	}
	a.reachable()
	switch {
	case ae.Status == http.StatusNotFound, ae.Code == "device_pending", ae.Code == "bad_signature":
		return false, nil
	}
	a.log.Error("token renewal refused", "err", err)
	a.refused(ae)
	return false, err
}

func (a *Agent) enroll(ctx context.Context) bool {
	body, sig, err := identity.SignEnrollment(a.key, a.cfg.Identity, a.clock.Now())
	if err != nil {
		a.log.Error("cannot sign the enrollment", "err", err)
		a.refused(&apiError{})
		return false
	}
	var raw json.RawMessage
	status, err := a.call(ctx, http.MethodPost, wire.PathEnroll, http.Header{identity.SignatureHeader: {sig}}, "", body, &raw, 0)
	if err != nil {
		ae := asAPIError(err)
		if ae == nil {
			a.log.Warn("enrollment failed: server unreachable", "err", err)
			a.backoff()
			return false
		}
		a.reachable()
		a.log.Error("enrollment refused", "err", err)
		a.refused(ae)
		return false
	}
	a.reachable()
	if status == http.StatusAccepted {
		var pr wire.PendingResponse
		if err := json.Unmarshal(raw, &pr); err != nil {
			a.log.Error("enrollment answer unreadable", "err", err)
			a.refused(&apiError{})
			return false
		}
		retry := max(time.Duration(pr.RetryAfter)*time.Second, a.cfg.Timing.BackoffMin)
		a.enrollAt = a.clock.Now().Add(a.jitter(retry))
		if a.st.DeviceID != pr.DeviceID {
			a.st.DeviceID = pr.DeviceID
			if err := a.save(); err != nil {
				a.log.Error("cannot save the device id", "err", err)
			}
		}
		a.log.Info("enrollment pending: waiting for an operator", "device_id", pr.DeviceID, "retry_after", retry)
		return false
	}
	var tr wire.TokenResponse
	if err := json.Unmarshal(raw, &tr); err != nil || tr.Token == "" {
		a.log.Error("enrollment answer unreadable", "err", err)
		a.refused(&apiError{})
		return false
	}
	a.takeToken(tr)
	a.log.Info("enrolled", "device_id", tr.DeviceID)
	return true
}

// refused schedules the next enrollment or renewal after the server said
// no: its Retry-After, else the longest backoff.
func (a *Agent) refused(ae *apiError) {
	d := ae.RetryAfter
	if d <= 0 {
		d = a.cfg.Timing.BackoffMax
	}
	a.enrollAt = a.clock.Now().Add(a.jitter(d))
}

func (a *Agent) takeToken(tr wire.TokenResponse) {
	now := a.clock.Now()
	a.token = tr.Token
	// Renew after 80 % of the lifetime as measured on our clock; a clock
	// far off the server's still renews at most once a minute.
	life := tr.ExpiresAt.Sub(now)
	a.tokenRenewAt = now.Add(max(life*8/10, time.Minute))
	if tr.DeviceID != "" && tr.DeviceID != a.st.DeviceID {
		a.st.DeviceID = tr.DeviceID
		if err := a.save(); err != nil {
			a.log.Error("cannot save the device id", "err", err)
		}
	}
}
