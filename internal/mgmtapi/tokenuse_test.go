package mgmtapi

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
)

// eventually polls cond until it holds, failing after a few seconds of
// real time. It is for goroutines reaching a state, never for time passing
// (that is the fake clock's job).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		runtime.Gosched()
	}
}

func tokenID(t *testing.T, text string) string {
	t.Helper()
	id, _, err := auth.ParseAPIToken(text)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// storedLastUse is a token's last use as the store has it.
func (e *env) storedLastUse(id string) *time.Time {
	e.t.Helper()
	tk, err := e.st.APITokenByID(context.Background(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return tk.LastUsedAt
}

func TestTokenLastUse(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	viewer := tokenID(t, e.viewer)
	soon := e.clock.Now().Add(2 * time.Minute)
	expiring := e.mintToken(store.RoleViewer, "", &soon)

	e.clock.Advance(time.Minute)
	used := e.clock.Now()
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices"})
	if at := e.storedLastUse(viewer); at != nil {
		t.Fatalf("a request wrote the last use (%v) at once; it is batched", at)
	}
	// The list shows uses not yet flushed.
	var l listBody[store.APIToken]
	e.must(200, req{token: e.admin, method: "GET", path: "/tokens"}).decode(t, &l)
	listed := map[string]*time.Time{}
	for _, tk := range l.Items {
		listed[tk.ID] = tk.LastUsedAt
	}
	if at := listed[viewer]; at == nil || !at.Equal(used) {
		t.Fatalf("listed viewer token last used %v, want %v", at, used)
	}
	if at := listed[tokenID(t, e.admin)]; at == nil || !at.Equal(used) {
		t.Fatalf("the listing admin token last used %v, want %v", at, used)
	}
	if at := listed[tokenID(t, e.operator)]; at != nil {
		t.Fatalf("unused operator token last used %v", at)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := e.api.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.api.Start(ctx); err == nil {
		t.Fatal("a second Start succeeded")
	}
	eventually(t, "flush loop waiting", func() bool { return e.clock.Waiters() == 1 })
	e.clock.Advance(DefaultTokenUseFlush)
	eventually(t, "last use flushed", func() bool {
		at := e.storedLastUse(viewer)
		return at != nil && at.Equal(used)
	})

	// A refused token is not recorded as used.
	e.clock.Advance(2 * time.Minute)
	e.must(401, req{token: expiring, method: "GET", path: "/devices"})
	later := e.clock.Now()
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices"})
	// Stop writes what was collected since the last flush.
	e.api.Stop()
	if at := e.storedLastUse(viewer); at == nil || !at.Equal(later) {
		t.Fatalf("after Stop the viewer token was last used %v, want %v", at, later)
	}
	if at := e.storedLastUse(tokenID(t, expiring)); at != nil {
		t.Fatalf("an expired token was recorded as used at %v", at)
	}
	if n := e.clock.Waiters(); n != 0 {
		t.Fatalf("%d timers left after Stop", n)
	}
	e.api.Stop()
	if err := e.api.Start(ctx); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
}

func TestTokenUseFlushConfig(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for _, tt := range []struct {
		flush time.Duration
		ok    bool
	}{{0, true}, {time.Second, true}, {-time.Second, false}} {
		_, err := New(Config{Store: e.st, Blobs: e.blobs, Clock: e.clock, PasswordParams: testArgon2, TokenUseFlush: tt.flush})
		if (err == nil) != tt.ok {
			t.Errorf("TokenUseFlush %s: err %v, want ok %v", tt.flush, err, tt.ok)
		}
	}
}
