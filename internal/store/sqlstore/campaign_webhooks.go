package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Webhooks and their delivery log. An event is stored as one delivery per
// subscribed webhook in the transaction that caused it (an outbox), so a
// decision and its notification commit together; the sender
// (internal/webhook) then works through due deliveries.

// MaxWebhooks caps the webhooks of one tenant.
const MaxWebhooks = 50

func checkWebhook(w store.Webhook) error {
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil || u.Fragment != "" {
		return invalidf("webhook url %q must be an absolute http or https URL without credentials or fragment", w.URL)
	}
	if len(w.URL) > 2048 {
		return invalidf("webhook url is longer than 2048 bytes")
	}
	if len(w.Secret) < 16 || len(w.Secret) > 256 {
		return invalidf("webhook secret must be 16 to 256 bytes")
	}
	if len(w.Events) == 0 || len(w.Events) > 32 {
		return invalidf("a webhook subscribes to 1 to 32 events")
	}
	for _, e := range w.Events {
		if err := checkLabel("webhook event", e, true); err != nil {
			return err
		}
	}
	return nil
}

// CreateWebhook implements store.Campaigns.
func (s *Store) CreateWebhook(ctx context.Context, w store.Webhook, by store.Actor, now time.Time) (store.Webhook, error) {
	now = storedTime(now)
	w.ID, w.CreatedAt = newID(), now
	w.Events = dedupe(w.Events)
	if err := checkWebhook(w); err != nil {
		return store.Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	err := s.tx(ctx, func(t *txn) error {
		var n int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM webhooks WHERE tenant_id = ?`, w.TenantID).Scan(&n); err != nil {
			return fmt.Errorf("count webhooks: %w", err)
		}
		if n >= MaxWebhooks {
			return store.Conflictf("tenant has %d webhooks, the most allowed", n)
		}
		if _, err := t.exec(ctx, `INSERT INTO webhooks (tenant_id, id, url, secret, events, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			w.TenantID, w.ID, w.URL, w.Secret, jsonText(w.Events), micros(now)); err != nil {
			return fmt.Errorf("insert webhook: %w", err)
		}
		return t.audit(ctx, w.TenantID, by, "webhook.create", "webhook", w.ID, map[string]any{"url": w.URL, "events": w.Events}, now)
	})
	if err != nil {
		return store.Webhook{}, fmt.Errorf("create webhook: %w", err)
	}
	return w, nil
}

func scanWebhook(row interface{ Scan(...any) error }) (store.Webhook, error) {
	var w store.Webhook
	var events string
	var created int64
	if err := row.Scan(&w.TenantID, &w.ID, &w.URL, &w.Secret, &events, &created); err != nil {
		return w, err
	}
	w.CreatedAt = fromMicros(created)
	if err := decodeJSON(events, &w.Events); err != nil {
		return w, err
	}
	return w, nil
}

const webhookColumns = `w.tenant_id, w.id, w.url, w.secret, w.events, w.created_at`

// ListWebhooks implements store.Campaigns.
func (s *Store) ListWebhooks(ctx context.Context, tenant string) ([]store.Webhook, error) {
	rows, err := s.query(ctx, `SELECT `+webhookColumns+` FROM webhooks w WHERE w.tenant_id = ? ORDER BY w.created_at, w.id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list webhooks: %w", err)
	}
	defer rows.Close()
	out := []store.Webhook{}
	for rows.Next() {
		w, err := scanWebhook(rows)
		if err != nil {
			return nil, fmt.Errorf("list webhooks: %w", err)
		}
		out = append(out, w)
	}
	return out, rows.Err()
}

// DeleteWebhook implements store.Campaigns; its deliveries go with it.
func (s *Store) DeleteWebhook(ctx context.Context, tenant, id string, by store.Actor, now time.Time) error {
	now = storedTime(now)
	err := s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, `DELETE FROM webhook_deliveries WHERE tenant_id = ? AND webhook_id = ?`, tenant, id); err != nil {
			return fmt.Errorf("delete deliveries: %w", err)
		}
		res, err := t.exec(ctx, `DELETE FROM webhooks WHERE tenant_id = ? AND id = ?`, tenant, id)
		if err != nil {
			return fmt.Errorf("delete webhook: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("webhook %s: %w", id, store.ErrNotFound)
		}
		return t.audit(ctx, tenant, by, "webhook.delete", "webhook", id, nil, now)
	})
	if err != nil {
		return fmt.Errorf("delete webhook: %w", err)
	}
	return nil
}

// EnqueueWebhookEvents implements store.Campaigns.
func (s *Store) EnqueueWebhookEvents(ctx context.Context, tenant string, events []store.WebhookEvent, now time.Time) error {
	if len(events) == 0 {
		return nil
	}
	return s.tx(ctx, func(t *txn) error { return t.enqueueWebhookEvents(ctx, tenant, events, storedTime(now)) })
}

func (t *txn) enqueueWebhookEvents(ctx context.Context, tenant string, events []store.WebhookEvent, now time.Time) error {
	if len(events) == 0 {
		return nil
	}
	rows, err := t.query(ctx, `SELECT w.id, w.events FROM webhooks w WHERE w.tenant_id = ? ORDER BY w.id`, tenant)
	if err != nil {
		return fmt.Errorf("webhooks of tenant: %w", err)
	}
	type hook struct {
		id     string
		events []string
	}
	var hooks []hook
	for rows.Next() {
		var h hook
		var evs string
		if err := rows.Scan(&h.id, &evs); err != nil {
			rows.Close()
			return fmt.Errorf("webhooks of tenant: %w", err)
		}
		if err := decodeJSON(evs, &h.events); err != nil {
			rows.Close()
			return err
		}
		hooks = append(hooks, h)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("webhooks of tenant: %w", err)
	}
	for _, e := range events {
		payload := e.Payload
		if len(payload) == 0 || !json.Valid(payload) {
			return invalidf("webhook event %s payload is not JSON", e.Event)
		}
		for _, h := range hooks {
			if !slices.Contains(h.events, e.Event) && !slices.Contains(h.events, "*") {
				continue
			}
			if _, err := t.exec(ctx, `INSERT INTO webhook_deliveries (tenant_id, id, webhook_id, event, payload, state, attempts, next_at, created_at)
				VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)`, tenant, newID(), h.id, e.Event, string(payload), store.DeliveryPending, micros(now), micros(now)); err != nil {
				return fmt.Errorf("enqueue delivery: %w", err)
			}
		}
	}
	return nil
}

const deliveryColumns = `d.tenant_id, d.id, d.webhook_id, d.event, d.payload, d.state, d.attempts, d.next_at, d.last_status, d.last_error, d.created_at, d.delivered_at`

func scanDelivery(row interface{ Scan(...any) error }, extra ...any) (store.WebhookDelivery, error) {
	var d store.WebhookDelivery
	var payload string
	var next, created int64
	var deliveredAt sql.NullInt64
	dest := []any{&d.TenantID, &d.ID, &d.WebhookID, &d.Event, &payload, &d.State, &d.Attempts, &next, &d.LastStatus, &d.LastError, &created, &deliveredAt}
	if err := row.Scan(append(dest, extra...)...); err != nil {
		return d, err
	}
	d.Payload = json.RawMessage(payload)
	d.NextAt, d.CreatedAt, d.DeliveredAt = fromMicros(next), fromMicros(created), timePtr(deliveredAt)
	return d, nil
}

// DueWebhookDeliveries implements store.Campaigns.
func (s *Store) DueWebhookDeliveries(ctx context.Context, now time.Time, n int) ([]store.WebhookDelivery, []store.Webhook, error) {
	rows, err := s.query(ctx, `SELECT `+deliveryColumns+`, `+webhookColumns+` FROM webhook_deliveries d
		JOIN webhooks w ON w.tenant_id = d.tenant_id AND w.id = d.webhook_id
		WHERE d.state = ? AND d.next_at <= ? ORDER BY d.next_at, d.id LIMIT `+strconv.Itoa(max(n, 1)), store.DeliveryPending, micros(now))
	if err != nil {
		return nil, nil, fmt.Errorf("due deliveries: %w", err)
	}
	defer rows.Close()
	var ds []store.WebhookDelivery
	var ws []store.Webhook
	for rows.Next() {
		var w store.Webhook
		var events string
		var created int64
		d, err := scanDelivery(rows, &w.TenantID, &w.ID, &w.URL, &w.Secret, &events, &created)
		if err != nil {
			return nil, nil, fmt.Errorf("due deliveries: %w", err)
		}
		w.CreatedAt = fromMicros(created)
		if err := decodeJSON(events, &w.Events); err != nil {
			return nil, nil, err
		}
		ds, ws = append(ds, d), append(ws, w)
	}
	return ds, ws, rows.Err()
}

// RecordDeliveryAttempt implements store.Campaigns.
func (s *Store) RecordDeliveryAttempt(ctx context.Context, a store.DeliveryAttempt) error {
	if len(a.Error) > maxReasonLen {
		a.Error = a.Error[:maxReasonLen]
	}
	state := store.DeliveryPending
	var delivered *time.Time
	switch {
	case a.Done && a.Error == "":
		state = store.DeliveryDelivered
		now := a.Now
		delivered = &now
	case a.Done:
		state = store.DeliveryFailed
	}
	return s.tx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `UPDATE webhook_deliveries SET state = ?, attempts = attempts + 1, next_at = ?, last_status = ?, last_error = ?, delivered_at = ?
			WHERE tenant_id = ? AND id = ? AND state = ?`,
			state, micros(a.NextAt), a.Status, a.Error, nullMicros(delivered), a.TenantID, a.ID, store.DeliveryPending)
		if err != nil {
			return fmt.Errorf("record delivery attempt: %w", err)
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return fmt.Errorf("pending delivery %s: %w", a.ID, store.ErrNotFound)
		}
		return nil
	})
}

// ListWebhookDeliveries implements store.Campaigns: newest first.
func (s *Store) ListWebhookDeliveries(ctx context.Context, tenant, webhookID string, p store.Page) ([]store.WebhookDelivery, string, error) {
	var one int
	if err := s.queryRow(ctx, `SELECT 1 FROM webhooks WHERE tenant_id = ? AND id = ?`, tenant, webhookID).Scan(&one); err != nil {
		return nil, "", notFound(err, "webhook "+webhookID)
	}
	where := `d.tenant_id = ? AND d.webhook_id = ?`
	args := []any{tenant, webhookID}
	if p.After != "" {
		at, id, err := decodeTimeCursor(p.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (d.created_at < ? OR (d.created_at = ? AND d.id < ?))`
		args = append(args, at, at, id)
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT `+deliveryColumns+` FROM webhook_deliveries d WHERE `+where+` ORDER BY d.created_at DESC, d.id DESC LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	out, next, err := scanPage(rows, n, func(r interface{ Scan(...any) error }) (store.WebhookDelivery, error) { return scanDelivery(r) }, func(v store.WebhookDelivery) string { return timeCursor(v.CreatedAt, v.ID) })
	if err != nil {
		return nil, "", fmt.Errorf("list deliveries: %w", err)
	}
	return out, next, nil
}
