// Package clock is the only place in Updraft that reads the wall clock.
//
// Every server and agent component takes a Clock so that tests, the fleet
// simulator and the demo can run on a fake or accelerated clock. Network
// timeouts (net/http deadlines, dial timeouts) deliberately stay on real time
// and are not routed through here. A test in this package fails if any other
// non-test source file calls time.Now, time.Since, time.Until, time.After,
// time.Tick, time.NewTimer or time.NewTicker directly.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and creates timers. Implementations are safe for
// concurrent use.
type Clock interface {
	Now() time.Time
	// NewTimer returns a timer that fires once after d on this clock.
	NewTimer(d time.Duration) Timer
}

// Timer is the part of *time.Timer that Updraft uses.
type Timer interface {
	C() <-chan time.Time
	// Stop prevents the timer from firing; it reports whether it was active.
	Stop() bool
}

// Real is the system clock.
type Real struct{}

// Now returns the current wall-clock time.
func (Real) Now() time.Time { return time.Now() }

// NewTimer wraps time.NewTimer.
func (Real) NewTimer(d time.Duration) Timer { return realTimer{time.NewTimer(d)} }

type realTimer struct{ t *time.Timer }

func (r realTimer) C() <-chan time.Time { return r.t.C }
func (r realTimer) Stop() bool          { return r.t.Stop() }

// Since returns the time elapsed on c since t.
func Since(c Clock, t time.Time) time.Duration { return c.Now().Sub(t) }

// Sleep waits for d on c, or until done is closed; it reports whether the
// full duration elapsed.
func Sleep(c Clock, d time.Duration, done <-chan struct{}) bool {
	if d <= 0 {
		return true
	}
	t := c.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C():
		return true
	case <-done:
		return false
	}
}

// Fake is a manually advanced clock for tests and simulations. The zero value
// is not usable; create one with NewFake.
type Fake struct {
	mu     sync.Mutex
	now    time.Time
	timers []*fakeTimer
}

// NewFake returns a fake clock set to start.
func NewFake(start time.Time) *Fake { return &Fake{now: start} }

// Now returns the fake time.
func (f *Fake) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

// NewTimer returns a timer that fires when the fake clock is advanced past
// its deadline.
func (f *Fake) NewTimer(d time.Duration) Timer {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := &fakeTimer{f: f, at: f.now.Add(d), c: make(chan time.Time, 1), active: true}
	if d <= 0 {
		t.fire(f.now)
		return t
	}
	f.timers = append(f.timers, t)
	return t
}

// Advance moves the clock forward by d and fires every timer that falls due.
func (f *Fake) Advance(d time.Duration) {
	f.Set(f.Now().Add(d))
}

// Set moves the clock to t (never backwards) and fires due timers.
func (f *Fake) Set(t time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if t.Before(f.now) {
		return
	}
	f.now = t
	kept := f.timers[:0]
	for _, tm := range f.timers {
		if !tm.active {
			continue
		}
		if !tm.at.After(t) {
			tm.fire(t)
			continue
		}
		kept = append(kept, tm)
	}
	f.timers = kept
}

// Waiters returns the number of timers that have not fired or been stopped.
// Tests use it to wait until a goroutine is blocked on the clock before
// advancing it.
func (f *Fake) Waiters() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, t := range f.timers {
		if t.active {
			n++
		}
	}
	return n
}

type fakeTimer struct {
	f      *Fake
	at     time.Time
	c      chan time.Time
	active bool // guarded by f.mu
}

// fire must be called with f.mu held.
func (t *fakeTimer) fire(now time.Time) {
	t.active = false
	select {
	case t.c <- now:
	default:
	}
}

func (t *fakeTimer) C() <-chan time.Time { return t.c }

func (t *fakeTimer) Stop() bool {
	t.f.mu.Lock()
	defer t.f.mu.Unlock()
	was := t.active
	t.active = false
	return was
}
