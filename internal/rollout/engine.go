// Package rollout is the campaign engine: one leader among the server's
// replicas drives every active campaign through its plan.
//
// Leadership is the database lease "rollout-engine" (store.Leases). Every
// write the engine makes goes through a store method that checks the
// lease's epoch inside the write's own transaction, so a leader that was
// paused past its lease and wakes up believing it still leads changes
// nothing once another replica has taken over.
//
// All state lives in the store (the campaign row's runtime JSON, the
// campaign's device rows and tallies, decisions and rate periods); the
// engine keeps nothing between ticks that it cannot rebuild, so a restart
// or a change of leader resumes where the last committed tick stopped.
// Each tick reads only what changed: assignments of a campaign updated
// since a cursor, devices updated since a cursor, devices that became due
// (time-outs, windows), a bounded batch of queued devices to dispatch,
// and per-stratum tallies; never the whole fleet. Processing is idempotent,
// so the cursors may safely re-read a little (Lag) to tolerate clock skew
// between replicas.
//
// The Engine is safe for concurrent use; Tick may be called directly by
// tests instead of running the loop.
package rollout

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/notify"
	"github.com/updraft/updraft/internal/store"
)

// LeaseName is the lease the engine's leader holds.
const LeaseName = "rollout-engine"

// Defaults of Config.
const (
	DefaultInterval = 5 * time.Second
	DefaultLeaseTTL = 30 * time.Second
	DefaultBatch    = 500
	DefaultLag      = time.Minute
)

// Config configures an Engine. Store and Clock are required.
type Config struct {
	Store store.Store
	Clock clock.Clock
	// Logger receives the engine's log; nil discards it.
	Logger *slog.Logger
	// Notifier wakes devices whose assignment changed; nil wakes nobody.
	Notifier notify.Notifier
	// Holder names this replica in the lease; empty: a random name.
	Holder string
	// Interval between ticks, LeaseTTL the lease's lifetime (renewed
	// every tick), Batch the most devices handled per step of a tick, Lag
	// how far the change cursors re-read to tolerate clock skew.
	Interval time.Duration
	LeaseTTL time.Duration
	Batch    int
	Lag      time.Duration
	// Metrics registers the per-campaign metrics; nil: not registered.
	Metrics prometheus.Registerer
	// AfterTick, when set, runs after every tick the engine led (the
	// server runs the webhook sender from it).
	AfterTick func(ctx context.Context)
}

// Engine drives campaigns. Create it with New.
type Engine struct {
	cfg    Config
	st     store.Store
	clock  clock.Clock
	log    *slog.Logger
	notify notify.Notifier
	holder string
	m      *metrics

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
	lease  store.Lease
}

// New checks cfg and returns an engine.
func New(cfg Config) (*Engine, error) {
	if cfg.Store == nil || cfg.Clock == nil {
		return nil, errors.New("rollout: config needs a Store and a Clock")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = DefaultLeaseTTL
	}
	if cfg.LeaseTTL <= cfg.Interval {
		return nil, fmt.Errorf("rollout: lease ttl %v must exceed the tick interval %v", cfg.LeaseTTL, cfg.Interval)
	}
	if cfg.Batch <= 0 {
		cfg.Batch = DefaultBatch
	}
	if cfg.Lag < 0 {
		cfg.Lag = 0
	} else if cfg.Lag == 0 {
		cfg.Lag = DefaultLag
	}
	e := &Engine{cfg: cfg, st: cfg.Store, clock: cfg.Clock, log: cfg.Logger, notify: cfg.Notifier, holder: cfg.Holder}
	if e.log == nil {
		e.log = slog.New(slog.DiscardHandler)
	}
	if e.notify == nil {
		e.notify = notify.NotifierFunc(func(string, string) {})
	}
	if e.holder == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("rollout: holder name: %w", err)
		}
		e.holder = "replica-" + hex.EncodeToString(b[:])
	}
	e.m = newMetrics()
	if cfg.Metrics != nil {
		if err := cfg.Metrics.Register(e.m); err != nil {
			return nil, fmt.Errorf("rollout: register metrics: %w", err)
		}
	}
	return e, nil
}

// Holder is the name this engine uses in the lease.
func (e *Engine) Holder() string { return e.holder }

// Start runs the loop until Stop or ctx ends.
func (e *Engine) Start(ctx context.Context) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.cancel != nil {
		return errors.New("rollout: engine already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	e.cancel, e.done = cancel, make(chan struct{})
	go e.loop(ctx)
	return nil
}

// Stop ends the loop and gives the lease up, so another replica takes over
// at once rather than after the lease expires.
func (e *Engine) Stop() {
	e.mu.Lock()
	cancel, done := e.cancel, e.done
	e.cancel = nil
	e.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := e.st.ReleaseLease(ctx, LeaseName, e.holder); err != nil {
		e.log.Warn("release rollout lease", "err", err)
	}
}

func (e *Engine) loop(ctx context.Context) {
	defer close(e.done)
	for {
		if _, err := e.Tick(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("rollout tick", "err", err)
		}
		if !clock.Sleep(e.clock, e.cfg.Interval, ctx.Done()) {
			return
		}
	}
}

// Tick acquires or renews the lease and, when this engine leads, runs one
// round over every active campaign. It reports whether it led.
func (e *Engine) Tick(ctx context.Context) (bool, error) {
	now := e.clock.Now()
	l, err := e.st.AcquireLease(ctx, LeaseName, e.holder, e.cfg.LeaseTTL, now)
	if err != nil {
		return false, err
	}
	if !l.Held(e.holder, now) {
		e.m.setLeader(false)
		return false, nil
	}
	e.m.setLeader(true)
	e.mu.Lock()
	if l.Epoch != e.lease.Epoch {
		e.log.Info("leading the rollout engine", "holder", e.holder, "epoch", l.Epoch)
	}
	e.lease = l
	e.mu.Unlock()
	err = e.round(ctx, l)
	if e.cfg.AfterTick != nil {
		e.cfg.AfterTick(ctx)
	}
	return true, err
}

// round runs every active campaign once. A campaign that fails is logged
// and the others go on; a lost lease stops the round.
func (e *Engine) round(ctx context.Context, l store.Lease) error {
	cs, err := e.st.ActiveCampaigns(ctx)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range cs {
		if err := e.runCampaign(ctx, l, c); err != nil {
			if errors.Is(err, store.ErrLeaseLost) {
				return err
			}
			e.log.Error("campaign tick", "campaign_id", c.ID, "err", err)
			errs = append(errs, fmt.Errorf("campaign %s: %w", c.ID, err))
		}
	}
	return errors.Join(errs...)
}
