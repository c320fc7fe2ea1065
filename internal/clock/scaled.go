package clock

import (
	"errors"
	"fmt"
	"math"
	"time"
)

// MaxScale is the largest factor a Scaled clock accepts. Beyond it a
// simulated second is shorter than the server's own bookkeeping takes,
// and timers of a few seconds fire in microseconds.
const MaxScale = 100_000

// Scaled runs Factor times faster than its base clock around a fixed
// origin: now = origin + (base now − origin) × factor. The timeline is a
// function of the base clock alone, so two processes — or one process
// killed and restarted — given the same origin and factor share one
// simulated timeline. It is for simulations and tests only: timers fire
// after d / factor of base time, while network deadlines, which do not
// go through this package, stay real.
type Scaled struct {
	base   Clock
	origin time.Time
	factor float64
}

// NewScaled returns a clock running factor times faster than base from
// origin. It refuses a factor that is not in (0, MaxScale], an origin
// after base's now, and an origin so old that the simulated time would
// overflow.
func NewScaled(base Clock, origin time.Time, factor float64) (*Scaled, error) {
	if base == nil {
		return nil, errors.New("scaled clock: no base clock")
	}
	if math.IsNaN(factor) || factor <= 0 || factor > MaxScale {
		return nil, fmt.Errorf("scaled clock: time scale %g must be greater than 0 and at most %d", factor, MaxScale)
	}
	if origin.IsZero() {
		return nil, errors.New("scaled clock: no time origin")
	}
	elapsed := base.Now().Sub(origin)
	if elapsed < 0 {
		return nil, fmt.Errorf("scaled clock: time origin %s is in the future", origin.Format(time.RFC3339))
	}
	// Leave room for a long run after the start: a year of base time.
	if float64(elapsed+365*24*time.Hour)*factor >= math.MaxInt64 {
		return nil, fmt.Errorf("scaled clock: time origin %s is too far in the past for a time scale of %g", origin.Format(time.RFC3339), factor)
	}
	return &Scaled{base: base, origin: origin, factor: factor}, nil
}

// Now returns the simulated time.
func (s *Scaled) Now() time.Time {
	return s.origin.Add(time.Duration(float64(s.base.Now().Sub(s.origin)) * s.factor))
}

// NewTimer fires after d of simulated time.
func (s *Scaled) NewTimer(d time.Duration) Timer {
	return s.base.NewTimer(time.Duration(float64(d) / s.factor))
}

// Origin returns the instant where simulated and base time coincide.
func (s *Scaled) Origin() time.Time { return s.origin }

// Factor returns how much faster than its base the clock runs.
func (s *Scaled) Factor() float64 { return s.factor }
