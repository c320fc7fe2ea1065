package mgmtapi

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/store"
)

// TestDeviceTransitionsWakeTheDevice checks that accept, reject and
// decommission wake a device waiting in a long-poll (through a real
// notify.Hub, as the server wires it), so it learns of the change at once,
// and that a refused transition wakes nobody.
func TestDeviceTransitionsWakeTheDevice(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	hub := notify.NewHub()
	api, err := New(Config{Store: e.st, Blobs: e.blobs, Clock: e.clock, Notifier: hub, PasswordParams: testArgon2})
	if err != nil {
		t.Fatal(err)
	}
	post := func(path string) int {
		r := httptest.NewRequest("POST", Prefix+path, nil)
		r.Header.Set("Authorization", "Bearer "+e.operator)
		rec := httptest.NewRecorder()
		api.Handler().ServeHTTP(rec, r)
		return rec.Code
	}
	tests := []struct {
		name     string
		accepted bool // the device's state before
		action   string
		status   int
		wakes    bool
	}{
		{"accept", false, "accept", http.StatusOK, true},
		{"reject", false, "reject", http.StatusOK, true},
		{"decommission", true, "decommission", http.StatusOK, true},
		{"decommission a pending device", false, "decommission", http.StatusOK, true},
		{"accept a decommissioned device", false, "accept", http.StatusConflict, false},
	}
	for i, tt := range tests {
		id := e.enroll("SN-WAKE-"+string(rune('A'+i)), "gw-200", "B", tt.accepted)
		if tt.status == http.StatusConflict {
			if _, err := e.st.DecommissionDevice(context.Background(), store.DefaultTenant, id, bootstrap, e.clock.Now()); err != nil {
				t.Fatal(err)
			}
		}
		woken, cancel := hub.Subscribe(store.DefaultTenant, id)
		other, cancelOther := hub.Subscribe(store.DefaultTenant, e.enroll("SN-OTHER-"+string(rune('A'+i)), "gw-200", "B", true))
		if got := post("/devices/" + id + "/" + tt.action); got != tt.status {
			t.Fatalf("%s: status %d, want %d", tt.name, got, tt.status)
		}
		if closed(woken) != tt.wakes {
			t.Errorf("%s: device woken %v, want %v", tt.name, closed(woken), tt.wakes)
		}
		if closed(other) {
			t.Errorf("%s: another device was woken", tt.name)
		}
		cancel()
		cancelOther()
	}
	if got := post("/devices/no-such-device/reject"); got != http.StatusNotFound {
		t.Fatalf("reject an unknown device: %d, want 404", got)
	}
	if n := hub.Waiting(); n != 0 {
		t.Fatalf("%d subscriptions left", n)
	}
}

func closed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
