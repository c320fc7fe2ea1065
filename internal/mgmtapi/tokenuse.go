package mgmtapi

import (
	"context"
	"errors"
	"sync"
	"time"
)

// DefaultTokenUseFlush is how often API token last-use times are written
// when Config.TokenUseFlush is 0.
const DefaultTokenUseFlush = time.Minute

// flushTimeout bounds one flush (real time: it guards against a hung
// database, not a schedule).
const flushTimeout = 30 * time.Second

// tokenUses collects when API tokens were last used. It is lossy by
// design, like a device's last-seen time: the times live in memory until
// the next flush, so an authenticated request costs no write, and a crash
// loses at most one flush interval of them. Its size is bounded by the
// number of valid tokens, since only authenticated uses are recorded.
type tokenUses struct {
	mu sync.Mutex
	m  map[string]time.Time // token id → last use
}

func newTokenUses() *tokenUses { return &tokenUses{m: make(map[string]time.Time)} }

func (u *tokenUses) touch(id string, at time.Time) {
	at = at.Truncate(time.Microsecond) // the store's precision
	u.mu.Lock()
	defer u.mu.Unlock()
	if at.After(u.m[id]) {
		u.m[id] = at
	}
}

// latest returns the unflushed last use of a token, if any.
func (u *tokenUses) latest(id string) (time.Time, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	at, ok := u.m[id]
	return at, ok
}

// take returns the collected times and starts afresh.
func (u *tokenUses) take() map[string]time.Time {
	u.mu.Lock()
	defer u.mu.Unlock()
	m := u.m
	u.m = make(map[string]time.Time, len(m))
	return m
}

// flushTokenUses writes the collected times in one batch; a failed batch
// is logged and dropped.
func (a *API) flushTokenUses(ctx context.Context) {
	used := a.uses.take()
	if len(used) == 0 {
		return
	}
	if err := a.store.TouchAPITokens(ctx, used); err != nil {
		a.log.WarnContext(ctx, "api token last-use flush failed; these times are lost", "tokens", len(used), "err", err)
	}
}

// flushLoop flushes token uses every flush interval until ctx ends.
func (a *API) flushLoop(ctx context.Context) {
	for {
		t := a.clock.NewTimer(a.flushEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
		// A flush that has taken the times finishes even if Stop cancels
		// ctx meanwhile; otherwise those times would be lost.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), flushTimeout)
		a.flushTokenUses(fctx)
		cancel()
	}
}

// Start runs the API's background work: flushing API token last-use times
// every Config.TokenUseFlush. The API serves requests without it, but then
// keeps those times in memory only. Start may be called once; Stop ends
// the work.
func (a *API) Start(ctx context.Context) error {
	a.bg.Lock()
	defer a.bg.Unlock()
	switch {
	case a.stopped:
		return errors.New("mgmtapi: start after stop")
	case a.cancel != nil:
		return errors.New("mgmtapi: already started")
	}
	ctx, a.cancel = context.WithCancel(ctx)
	a.loopDone = make(chan struct{})
	go func() {
		defer close(a.loopDone)
		a.flushLoop(ctx)
	}()
	return nil
}

// Stop ends the background work and writes the token uses collected since
// the last flush. It is safe to call more than once, and without Start.
func (a *API) Stop() {
	a.bg.Lock()
	defer a.bg.Unlock()
	if a.stopped {
		return
	}
	a.stopped = true
	if a.cancel != nil {
		a.cancel()
		<-a.loopDone
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	a.flushTokenUses(ctx)
}
