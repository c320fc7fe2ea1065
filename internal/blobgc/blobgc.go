// Package blobgc collects artifact blobs that no artifact references.
//
// Requests never delete blobs: a blob that a refused upload or a deleted
// draft leaves unreferenced may at the same moment be adopted by another
// upload of the same content. The Collector instead walks the blob store
// periodically and deletes a blob only when no artifact references it
// (store.BlobInUse) and its last use (blob.Disk.LastUsed, refreshed by
// every Put of its content) is older than the grace period. An upload
// records its artifact right after its Put, far within the grace period,
// so a blob is referenced or recently used at every moment an upload
// needs it; blob.Disk.DeleteIdle closes the gap between the check and the
// deletion. Each run also sweeps temp leftovers of crashed uploads.
//
// Replicas that share the blob directory elect one collector through the
// store lease "blob-gc"; a run that does not hold it does nothing. The
// Collector is safe for concurrent use; Run may be called directly by
// tests instead of running the loop.
package blobgc

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
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/store"
)

// LeaseName is the lease the collecting replica holds.
const LeaseName = "blob-gc"

// Defaults of Config.
const (
	DefaultInterval = time.Hour
	DefaultGrace    = 24 * time.Hour
)

// Store is what the collector needs from the store.
type Store interface {
	BlobInUse(ctx context.Context, sha256 string) (bool, error)
	store.Leases
}

// Blobs is what the collector needs from the blob store; blob.Disk
// implements it.
type Blobs interface {
	Keys(ctx context.Context, fn func(key string) error) error
	LastUsed(ctx context.Context, key string) (time.Time, error)
	DeleteIdle(ctx context.Context, key string, cutoff time.Time) (bool, error)
	Sweep(ctx context.Context, olderThan time.Duration) (int, error)
}

var _ Blobs = (*blob.Disk)(nil)

// Config configures a Collector. Store, Blobs and Clock are required.
type Config struct {
	Store Store
	Blobs Blobs
	Clock clock.Clock
	// Logger receives the collector's log; nil discards it.
	Logger *slog.Logger
	// Holder names this replica in the lease; empty: a random name.
	Holder string
	// Interval between runs; Grace how long an unreferenced blob or an
	// upload's temp files stay after their last use. LeaseTTL is the
	// lease's lifetime, renewed every run; it defaults to twice Interval
	// so the leader keeps the duty from one run to the next.
	Interval time.Duration
	Grace    time.Duration
	LeaseTTL time.Duration
	// Metrics registers the collector's counters; nil: not registered.
	Metrics prometheus.Registerer
}

// Result says what one run did.
type Result struct {
	Led       bool // the run held the lease; otherwise it did nothing
	Collected int  // blobs deleted
	Swept     int  // temp leftovers removed
}

// Collector deletes unreferenced idle blobs. Create it with New.
type Collector struct {
	cfg       Config
	log       *slog.Logger
	holder    string
	collected prometheus.Counter
	swept     prometheus.Counter

	mu     sync.Mutex
	cancel context.CancelFunc
	done   chan struct{}
}

// New checks cfg and returns a collector.
func New(cfg Config) (*Collector, error) {
	if cfg.Store == nil || cfg.Blobs == nil || cfg.Clock == nil {
		return nil, errors.New("blobgc: config needs a Store, Blobs and a Clock")
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Grace <= 0 {
		cfg.Grace = DefaultGrace
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 2 * cfg.Interval
	}
	c := &Collector{cfg: cfg, log: cfg.Logger, holder: cfg.Holder}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.holder == "" {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("blobgc: holder name: %w", err)
		}
		c.holder = "replica-" + hex.EncodeToString(b[:])
	}
	c.collected = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "updraft_blob_gc_collected_total",
		Help: "Artifact blobs deleted because no artifact referenced them past the grace period.",
	})
	c.swept = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "updraft_blob_gc_swept_total",
		Help: "Temp leftovers of interrupted blob uploads and deletions removed.",
	})
	if cfg.Metrics != nil {
		for _, m := range []prometheus.Collector{c.collected, c.swept} {
			if err := cfg.Metrics.Register(m); err != nil {
				return nil, fmt.Errorf("blobgc: register metrics: %w", err)
			}
		}
	}
	return c, nil
}

// Start runs a collection now and then every Interval until Stop or ctx
// ends.
func (c *Collector) Start(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancel != nil {
		return errors.New("blobgc: already started")
	}
	ctx, cancel := context.WithCancel(ctx)
	c.cancel, c.done = cancel, make(chan struct{})
	go c.loop(ctx)
	return nil
}

// Stop ends the loop, waiting for a run in progress, and gives the lease
// up so another replica can take the duty over at once.
func (c *Collector) Stop() {
	c.mu.Lock()
	cancel, done := c.cancel, c.done
	c.cancel = nil
	c.mu.Unlock()
	if cancel == nil {
		return
	}
	cancel()
	<-done
	ctx, stop := context.WithTimeout(context.Background(), 5*time.Second)
	defer stop()
	if err := c.cfg.Store.ReleaseLease(ctx, LeaseName, c.holder); err != nil {
		c.log.Warn("release blob gc lease", "err", err)
	}
}

func (c *Collector) loop(ctx context.Context) {
	defer close(c.done)
	for {
		res, err := c.Run(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			c.log.Error("blob gc", "err", err)
		case res.Collected > 0 || res.Swept > 0:
			c.log.Info("blob gc", "collected", res.Collected, "swept", res.Swept)
		}
		if !clock.Sleep(c.cfg.Clock, c.cfg.Interval, ctx.Done()) {
			return
		}
	}
}

// Run takes or renews the lease and, when it holds it, deletes every blob
// that no artifact references and that has been idle longer than the
// grace period, then sweeps temp leftovers older than the grace period. A
// blob it cannot check or delete is logged and skipped.
func (c *Collector) Run(ctx context.Context) (Result, error) {
	now := c.cfg.Clock.Now()
	l, err := c.cfg.Store.AcquireLease(ctx, LeaseName, c.holder, c.cfg.LeaseTTL, now)
	if err != nil {
		return Result{}, fmt.Errorf("blob gc lease: %w", err)
	}
	if !l.Held(c.holder, now) {
		return Result{}, nil
	}
	res := Result{Led: true}
	cutoff := now.Add(-c.cfg.Grace)
	var errs []error
	err = c.cfg.Blobs.Keys(ctx, func(key string) error {
		deleted, err := c.collect(ctx, key, cutoff)
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			c.log.Warn("collect blob", "blob", key, "err", err)
			errs = append(errs, err)
			return nil
		}
		if deleted {
			res.Collected++
			c.collected.Inc()
			c.log.Info("collected unreferenced blob", "blob", key)
		}
		return nil
	})
	if err != nil {
		return res, fmt.Errorf("blob gc: %w", err)
	}
	// Sweep removes unfinished deletions too: make sure no other replica
	// took the duty over meanwhile and may be deleting right now.
	if err := c.cfg.Store.CheckLease(ctx, l, c.cfg.Clock.Now()); err != nil {
		return res, fmt.Errorf("blob gc sweep: %w", err)
	}
	n, err := c.cfg.Blobs.Sweep(ctx, c.cfg.Grace)
	res.Swept = n
	c.swept.Add(float64(n))
	if err != nil {
		errs = append(errs, err)
	}
	return res, errors.Join(errs...)
}

// collect deletes key if it is unreferenced and idle since before cutoff.
// The last use read first only spares the store a query for recent blobs.
// What decides is the reference check followed by DeleteIdle's own check
// of the last use: an upload adopts the blob (refreshing its last use)
// before it records the artifact, so a blob found unreferenced is either
// idle for good or freshly used, and DeleteIdle tells the two apart.
func (c *Collector) collect(ctx context.Context, key string, cutoff time.Time) (bool, error) {
	used, err := c.cfg.Blobs.LastUsed(ctx, key)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if !used.Before(cutoff) {
		return false, nil
	}
	inUse, err := c.cfg.Store.BlobInUse(ctx, key)
	if err != nil {
		return false, fmt.Errorf("blob %s: %w", key, err)
	}
	if inUse {
		return false, nil
	}
	deleted, err := c.cfg.Blobs.DeleteIdle(ctx, key, cutoff)
	if errors.Is(err, blob.ErrNotFound) {
		return false, nil
	}
	return deleted, err
}
