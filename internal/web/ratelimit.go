package web

import (
	"sync"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// Sign-in limits: after loginFailures failures within loginWindow from one
// address, or for one user name, further attempts are refused until the
// window has passed since the first of them.
const (
	loginFailures = 5
	loginWindow   = 15 * time.Minute
	// loginKeys bounds the memory the limiter uses; when full, the oldest
	// entries are dropped (a flood of distinct keys cannot grow it).
	loginKeys = 10000
)

type loginLimiter struct {
	clock clock.Clock
	mu    sync.Mutex
	hits  map[string]*failures
}

type failures struct {
	first time.Time
	n     int
}

func newLoginLimiter(c clock.Clock) *loginLimiter {
	return &loginLimiter{clock: c, hits: map[string]*failures{}}
}

func limiterKeys(addr, name string) [2]string {
	return [2]string{"addr:" + addr, "user:" + name}
}

// blocked returns how long sign-ins from addr or for name stay refused.
func (l *loginLimiter) blocked(addr, name string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	var wait time.Duration
	for _, k := range limiterKeys(addr, name) {
		f := l.hits[k]
		if f == nil {
			continue
		}
		if now.Sub(f.first) >= loginWindow {
			delete(l.hits, k)
			continue
		}
		if f.n >= loginFailures {
			wait = max(wait, loginWindow-now.Sub(f.first))
		}
	}
	return wait
}

func (l *loginLimiter) failed(addr, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.clock.Now()
	for _, k := range limiterKeys(addr, name) {
		f := l.hits[k]
		if f == nil || now.Sub(f.first) >= loginWindow {
			if len(l.hits) >= loginKeys {
				l.evictOldest()
			}
			f = &failures{first: now}
			l.hits[k] = f
		}
		f.n++
	}
}

// succeeded forgets the user name's failures; the address keeps its count
// so that one valid account does not reset a guessing run on others.
func (l *loginLimiter) succeeded(_, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.hits, "user:"+name)
}

func (l *loginLimiter) evictOldest() {
	var oldest string
	var t time.Time
	for k, f := range l.hits {
		if oldest == "" || f.first.Before(t) {
			oldest, t = k, f.first
		}
	}
	delete(l.hits, oldest)
}
