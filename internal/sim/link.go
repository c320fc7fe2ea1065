package sim

import (
	"errors"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// errDropped is what a simulated dropped connection looks like to the agent.
var errDropped = errors.New("sim: connection dropped")

// linkTransport adds latency and dropped connections to real transports.
// Latency is real time: it is network time, not device time.
type linkTransport struct {
	link    Link
	latency clock.Clock

	mu  sync.Mutex
	rnd *rand.Rand

	dropped atomic.Int64
}

func newLinkTransport(link Link, seed uint64) *linkTransport {
	return &linkTransport{link: link, latency: clock.Real{}, rnd: rand.New(rand.NewPCG(seed, 0x11c))}
}

func (l *linkTransport) draw() float64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.rnd.Float64()
}

// via returns a round tripper that goes through the link over base.
func (l *linkTransport) via(base http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) { return l.roundTrip(base, req) })
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// roundTrip adds latency and drops to base.
func (l *linkTransport) roundTrip(base http.RoundTripper, req *http.Request) (*http.Response, error) {
	if d := time.Duration(l.link.Latency); d > 0 {
		if !clock.Sleep(l.latency, d, req.Context().Done()) {
			return nil, req.Context().Err()
		}
	}
	drop := l.link.DropRate > 0 && l.draw() < l.link.DropRate
	if drop && l.draw() < 0.5 {
		l.dropped.Add(1)
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, errDropped
	}
	resp, err := base.RoundTrip(req)
	if err != nil || !drop {
		return resp, err
	}
	l.dropped.Add(1)
	// Cut the body half way (or at once when its length is unknown).
	keep := resp.ContentLength / 2
	resp.Body = &cutBody{rc: resp.Body, left: max(keep, 0)}
	return resp, nil
}

// cutBody delivers left bytes, then fails as a dropped connection does.
type cutBody struct {
	rc   io.ReadCloser
	left int64
}

func (c *cutBody) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, errDropped
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.rc.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		return n, errDropped
	}
	return n, err
}

func (c *cutBody) Close() error { return c.rc.Close() }

// Accelerated is a clock that runs Factor times faster than real time from
// Start: soak times and telemetry pass in simulated hours while network
// timeouts, which use real-time deadlines, stay real. It is safe for
// concurrent use.
type Accelerated struct {
	start time.Time // the accelerated time at origin
	real  clock.Real

	mu     sync.Mutex
	origin time.Time // real time at which the current factor took over
	at     time.Time // accelerated time at origin
	factor float64
}

// NewAccelerated starts an accelerated clock at start, running factor
// times faster than real time.
func NewAccelerated(start time.Time, factor float64) *Accelerated {
	if factor <= 0 {
		factor = 1
	}
	return &Accelerated{start: start, at: start, origin: clock.Real{}.Now(), factor: factor}
}

// Now returns the accelerated time.
func (a *Accelerated) Now() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nowLocked(a.real.Now())
}

func (a *Accelerated) nowLocked(real time.Time) time.Time {
	return a.at.Add(time.Duration(float64(real.Sub(a.origin)) * a.factor))
}

// Start is the accelerated time the clock started at.
func (a *Accelerated) Start() time.Time { return a.start }

// SetFactor changes the speed from now on (the demo slows to real time
// when it leaves a fleet running for exploration); time never jumps.
// Timers already running keep their real-time length.
func (a *Accelerated) SetFactor(factor float64) {
	if factor <= 0 {
		factor = 1
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	now := a.real.Now()
	a.at, a.origin, a.factor = a.nowLocked(now), now, factor
}

// NewTimer fires after d of accelerated time.
func (a *Accelerated) NewTimer(d time.Duration) clock.Timer {
	a.mu.Lock()
	f := a.factor
	a.mu.Unlock()
	return a.real.NewTimer(time.Duration(float64(d) / f))
}
