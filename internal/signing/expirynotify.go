package signing

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Webhook event names for expiring signed metadata (the same names the
// webhook package lists).
const (
	EventMetadataExpiring = "signing.metadata_expiring"
)

// expiryRenotify is how often the same expiring role version is announced
// again while nobody re-signs it.
const expiryRenotify = 24 * time.Hour

// expiryNotice is the payload of a signing.metadata_expiring event.
type expiryNotice struct {
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Expires time.Time `json:"expires"`
	Offline bool      `json:"offline"`
	Expired bool      `json:"expired"`
	Action  string    `json:"action"`
}

// NotifyExpiries queues a webhook event for every metadata role that needs
// an operator: offline-signed roles (root, targets, release lines) within
// the expiry warning window, and online roles that are not being re-signed.
// Each role version is announced at most once a day. Only the publisher
// (the lease holder) calls it, so replicas do not repeat each other. It
// returns how many events it queued.
func (s *Service) NotifyExpiries(ctx context.Context) (int, error) {
	s.mu.RLock()
	st := s.st
	s.mu.RUnlock()
	if st == nil || st.repo == nil {
		return 0, nil
	}
	now := s.clock.Now()
	var events []store.WebhookEvent
	var keys []string
	s.notifyMu.Lock()
	defer s.notifyMu.Unlock()
	if s.notified == nil {
		s.notified = map[string]time.Time{}
	}
	for _, e := range st.expiries {
		left := e.Expires.Sub(now)
		n := expiryNotice{Role: e.Role, Version: e.Version, Expires: e.Expires, Offline: e.Offline, Expired: left <= 0}
		switch {
		case e.Offline && left < s.opts.ExpiryWarning:
			n.Action = "re-sign it with the offline keys and upload it (updraft release sign / updraft keys rotate)"
		case !e.Offline && left < s.onlineLifetime(e.Role)/4:
			n.Action = "the server has not re-signed it: check that a replica holds the publisher lease and can decrypt the online keys"
		default:
			continue
		}
		key := fmt.Sprintf("%s/%d", e.Role, e.Version)
		if at, ok := s.notified[key]; ok && now.Sub(at) < expiryRenotify {
			continue
		}
		payload, err := json.Marshal(n)
		if err != nil {
			return 0, err
		}
		events = append(events, store.WebhookEvent{Event: EventMetadataExpiring, Payload: payload})
		keys = append(keys, key)
	}
	if len(events) == 0 {
		return 0, nil
	}
	if err := s.store.EnqueueWebhookEvents(ctx, s.tenant, events, now); err != nil {
		return 0, fmt.Errorf("queue expiry webhooks: %w", err)
	}
	for _, k := range keys {
		s.notified[k] = now
	}
	return len(events), nil
}
