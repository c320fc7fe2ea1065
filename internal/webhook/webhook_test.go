package webhook_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/webhook"
)

var t0 = time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)

func TestSignVerify(t *testing.T) {
	t.Parallel()
	secret := []byte("0123456789abcdef")
	body := []byte(`{"event":"campaign.halted"}`)
	sig := webhook.Sign(secret, "1700000000", body)
	if !webhook.Verify(secret, "1700000000", body, sig) {
		t.Fatal("own signature does not verify")
	}
	for name, c := range map[string]struct {
		secret    []byte
		ts        string
		body, sig string
	}{
		"other secret":    {[]byte("fedcba9876543210"), "1700000000", string(body), sig},
		"other timestamp": {secret, "1700000001", string(body), sig},
		"other body":      {secret, "1700000000", `{"event":"campaign.finished"}`, sig},
	} {
		if webhook.Verify(c.secret, c.ts, []byte(c.body), c.sig) {
			t.Errorf("%s: a wrong signature verified", name)
		}
	}
}

// TestDeliveryRetriesWithBackoff: an endpoint fails twice, then accepts;
// the sender retries on the fake clock after 30s and 60s, and the log
// shows three attempts and the signed body.
func TestDeliveryRetriesWithBackoff(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "u.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	calls := 0
	var got []byte
	var sig, ts string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		calls++
		got, _ = io.ReadAll(r.Body)
		sig, ts = r.Header.Get(webhook.SignatureHeader), r.Header.Get(webhook.TimestampHeader)
		if calls < 3 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	secret := "a secret of sixteen+"
	admin := store.Actor{Kind: store.ActorUser, ID: "u", Name: "admin"}
	hook, err := st.CreateWebhook(ctx, store.Webhook{TenantID: store.DefaultTenant, URL: srv.URL, Secret: secret, Events: []string{webhook.EventHalted}}, admin, t0)
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(map[string]any{"event": webhook.EventHalted, "campaign_id": "c1"})
	if err := st.EnqueueWebhookEvents(ctx, store.DefaultTenant, []store.WebhookEvent{
		{Event: webhook.EventHalted, Payload: payload},
		{Event: webhook.EventFinished, Payload: payload}, // not subscribed
	}, t0); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(t0)
	s := &webhook.Sender{Store: st, Clock: fc, Backoff: 30 * time.Second}
	run := func(want int) {
		t.Helper()
		n, err := s.Run(ctx)
		if err != nil || n != want {
			t.Fatalf("run at %v: %d sent, %v; want %d", fc.Now().Sub(t0), n, err, want)
		}
	}
	run(1)
	run(0) // not due again yet
	fc.Advance(29 * time.Second)
	run(0)
	fc.Advance(time.Second)
	run(1)
	fc.Advance(59 * time.Second)
	run(0)
	fc.Advance(time.Second)
	run(1)
	fc.Advance(time.Hour)
	run(0)
	ds, _, err := st.ListWebhookDeliveries(ctx, store.DefaultTenant, hook.ID, store.Page{})
	if err != nil || len(ds) != 1 {
		t.Fatalf("deliveries %v, %v; want one", ds, err)
	}
	d := ds[0]
	if d.State != store.DeliveryDelivered || d.Attempts != 3 || d.LastStatus != 200 || d.DeliveredAt == nil {
		t.Fatalf("delivery %+v, want delivered on the third attempt", d)
	}
	mu.Lock()
	defer mu.Unlock()
	if string(got) != string(payload) || !webhook.Verify([]byte(secret), ts, got, sig) {
		t.Fatalf("endpoint got %s with signature %q", got, sig)
	}
}

func TestDeliveryGivesUp(t *testing.T) {
	t.Parallel()
	st, err := sqlite.Open(filepath.Join(t.TempDir(), "u.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx := context.Background()
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: t0}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "no", http.StatusInternalServerError)
	}))
	defer srv.Close()
	admin := store.Actor{Kind: store.ActorUser, ID: "u", Name: "admin"}
	hook, err := st.CreateWebhook(ctx, store.Webhook{TenantID: store.DefaultTenant, URL: srv.URL, Secret: "sixteen bytes ok", Events: []string{"*"}}, admin, t0)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.EnqueueWebhookEvents(ctx, store.DefaultTenant, []store.WebhookEvent{{Event: webhook.EventFinished, Payload: []byte(`{}`)}}, t0); err != nil {
		t.Fatal(err)
	}
	fc := clock.NewFake(t0)
	s := &webhook.Sender{Store: st, Clock: fc, MaxAttempts: 3, Backoff: time.Minute}
	for i := 0; i < 10; i++ {
		if _, err := s.Run(ctx); err != nil {
			t.Fatal(err)
		}
		fc.Advance(time.Hour)
	}
	ds, _, err := st.ListWebhookDeliveries(ctx, store.DefaultTenant, hook.ID, store.Page{})
	if err != nil || len(ds) != 1 || ds[0].State != store.DeliveryFailed || ds[0].Attempts != 3 || ds[0].LastStatus != 500 {
		t.Fatalf("deliveries %+v, %v; want one failed after 3 attempts with status 500", ds, err)
	}
}
