// Package webhook delivers campaign events (halt, rollback, approval
// needed, finished, …) to operators' HTTP endpoints.
//
// Events are stored as deliveries in the transaction that caused them
// (store.Campaigns.UpdateCampaign, an outbox), so none is lost to a crash.
// The Sender works through due deliveries: it POSTs the payload with an
// HMAC-SHA256 signature of the timestamp and body, and retries failures
// with exponential backoff on the injected clock until MaxAttempts, after
// which the delivery is failed for good. Every attempt's outcome is
// stored, so the delivery log (status, error, attempts) is visible through
// the API. The rollout engine's leader runs the sender after each tick;
// a Sender is safe for concurrent use but meant to run in one place.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
)

// Headers of a delivery.
const (
	// SignatureHeader carries "sha256=" and the hex HMAC-SHA256, keyed by
	// the webhook's secret, of TimestampHeader's value, a '.', and the body.
	SignatureHeader = "X-Updraft-Signature"
	TimestampHeader = "X-Updraft-Timestamp"
	EventHeader     = "X-Updraft-Event"
	DeliveryHeader  = "X-Updraft-Delivery"
)

// Events the engine emits.
const (
	EventHalted         = "campaign.halted"
	EventRollback       = "campaign.rollback"
	EventRollbackFailed = "campaign.rollback_failed"
	EventApproval       = "campaign.approval_needed"
	EventFinished       = "campaign.finished"
	EventKeyExpiry      = "signing.key_expiring"
	EventMetadataExpiry = "signing.metadata_expiring"
)

// Events lists every event a webhook may subscribe to ("*" means all).
func Events() []string {
	return []string{EventHalted, EventRollback, EventRollbackFailed, EventApproval, EventFinished, EventKeyExpiry, EventMetadataExpiry}
}

// Sign returns the signature header value for a body sent at ts.
func Sign(secret []byte, ts string, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(ts))
	m.Write([]byte{'.'})
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// Verify checks a signature header in constant time; receivers use it
// (and should also refuse timestamps far from their clock).
func Verify(secret []byte, ts string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature))
}

// Defaults of Sender.
const (
	DefaultMaxAttempts = 8
	DefaultBackoff     = 30 * time.Second
	DefaultMaxBackoff  = 6 * time.Hour
	DefaultTimeout     = 10 * time.Second
)

// Sender delivers due webhook deliveries.
type Sender struct {
	Store  store.Store
	Clock  clock.Clock
	Client *http.Client // nil: a client with Timeout
	Logger *slog.Logger
	// MaxAttempts before a delivery fails for good; Backoff the first
	// retry delay, doubled per attempt up to MaxBackoff.
	MaxAttempts int
	Backoff     time.Duration
	MaxBackoff  time.Duration
	Timeout     time.Duration
	// Batch is the most deliveries sent per Run.
	Batch int
}

func (s *Sender) defaults() {
	if s.MaxAttempts <= 0 {
		s.MaxAttempts = DefaultMaxAttempts
	}
	if s.Backoff <= 0 {
		s.Backoff = DefaultBackoff
	}
	if s.MaxBackoff <= 0 {
		s.MaxBackoff = DefaultMaxBackoff
	}
	if s.Timeout <= 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Batch <= 0 {
		s.Batch = 100
	}
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Client == nil {
		s.Client = &http.Client{Timeout: s.Timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	}
}

// Backoff returns the delay before retry number attempt (1 for the first
// retry): Backoff·2^(attempt−1), at most MaxBackoff.
func (s *Sender) backoff(attempt int) time.Duration {
	d := s.Backoff
	for i := 1; i < attempt && d < s.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, s.MaxBackoff)
}

// Run sends the deliveries due now and records each attempt. It returns
// how many were attempted.
func (s *Sender) Run(ctx context.Context) (int, error) {
	s.defaults()
	now := s.Clock.Now()
	ds, hooks, err := s.Store.DueWebhookDeliveries(ctx, now, s.Batch)
	if err != nil {
		return 0, err
	}
	for i, d := range ds {
		status, sendErr := s.send(ctx, hooks[i], d, now)
		a := store.DeliveryAttempt{TenantID: d.TenantID, ID: d.ID, Status: status, Now: s.Clock.Now()}
		switch {
		case sendErr == nil:
			a.Done = true
		case d.Attempts+1 >= s.MaxAttempts:
			a.Done, a.Error = true, sendErr.Error()
		default:
			a.Error, a.NextAt = sendErr.Error(), s.Clock.Now().Add(s.backoff(d.Attempts+1))
		}
		if sendErr != nil {
			s.Logger.Warn("webhook delivery failed", "webhook_id", d.WebhookID, "delivery_id", d.ID, "attempt", d.Attempts+1, "err", sendErr)
		}
		if err := s.Store.RecordDeliveryAttempt(ctx, a); err != nil {
			return i, err
		}
	}
	return len(ds), nil
}

func (s *Sender) send(ctx context.Context, w store.Webhook, d store.WebhookDelivery, now time.Time) (int, error) {
	ts := strconv.FormatInt(now.Unix(), 10)
	ctx, cancel := context.WithTimeout(ctx, s.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, w.URL, bytes.NewReader(d.Payload))
	if err != nil {
		return 0, fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "updraft-webhook")
	req.Header.Set(TimestampHeader, ts)
	req.Header.Set(EventHeader, d.Event)
	req.Header.Set(DeliveryHeader, d.ID)
	req.Header.Set(SignatureHeader, Sign([]byte(w.Secret), ts, d.Payload))
	resp, err := s.Client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("post: %w", err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("endpoint answered %d", resp.StatusCode)
	}
	return resp.StatusCode, nil
}
