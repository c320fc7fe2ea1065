package deviceapi

import (
	"context"
	"sync"
	"time"
)

// lastSeen collects when devices were last heard from. It is lossy by
// design: times live in memory until the next flush, and a crash loses at
// most one flush interval of them. Everything else a device sends is
// written before it is acknowledged.
type lastSeen struct {
	mu sync.Mutex
	m  map[string]map[string]time.Time // tenant → device → time
}

func newLastSeen() *lastSeen { return &lastSeen{m: make(map[string]map[string]time.Time)} }

func (s *lastSeen) touch(tenant, device string, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t := s.m[tenant]
	if t == nil {
		t = make(map[string]time.Time)
		s.m[tenant] = t
	}
	if at.After(t[device]) {
		t[device] = at
	}
}

// take returns the collected times and starts afresh.
func (s *lastSeen) take() map[string]map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.m
	s.m = make(map[string]map[string]time.Time, len(m))
	return m
}

// flushLastSeen writes the collected last-seen times, one batch per
// tenant. A failed batch is logged and dropped.
func (a *API) flushLastSeen(ctx context.Context) {
	for tenant, seen := range a.seen.take() {
		if err := a.store.TouchLastSeen(ctx, tenant, seen); err != nil {
			a.metrics.lastSeenFlush.Inc()
			a.log.WarnContext(ctx, "last-seen flush failed; these times are lost", "tenant", tenant, "devices", len(seen), "err", err)
		}
	}
}

// flushTimeout bounds one flush (real time: it guards against a hung
// database).
const flushTimeout = 30 * time.Second

// flushLoop flushes last-seen times every LastSeenFlush until ctx ends.
func (a *API) flushLoop(ctx context.Context) {
	for {
		t := a.clock.NewTimer(a.limits.LastSeenFlush)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// A flush that has taken the times finishes even if Stop cancels
		// ctx meanwhile; otherwise those times would be lost.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		a.flushLastSeen(fctx)
		cancel()
	}
}
