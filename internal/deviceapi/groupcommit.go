package deviceapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// committer is the group commit of status reports. Request handlers submit
// one device's reports and block; a single goroutine takes the first
// waiting submission, gathers more for up to GroupCommitWindow (or until
// GroupCommitMaxReports), and stores them all with one
// store.RecordReports call, i.e. one transaction and one fsync. Each
// handler is released with its own outcomes only after that commit, so a
// 2xx always means durable. Submissions that queue while a commit runs
// form the next batch, so batches grow with load even without a window.
//
// If a batch fails as a whole, its submissions are retried one by one so
// that one device's problem cannot fail another device's request.
type committer struct {
	a       *API
	in      chan *submission
	quit    chan struct{} // closed by stop
	done    chan struct{} // closed when the loop has ended
	mu      sync.Mutex
	running bool
	waiting atomic.Int64 // submissions queued, not yet answered
}

type submission struct {
	reports store.DeviceReports
	res     chan commitResult // buffered: the loop never blocks on it
}

type commitResult struct {
	outcomes []store.ReportOutcome
	err      error
}

// commitTimeout bounds one group-commit transaction (real time: it guards
// against a hung database, not a schedule).
const commitTimeout = 30 * time.Second

var errUnavailable = &apierror.Error{Status: http.StatusServiceUnavailable, Code: "unavailable",
	Message: "the server is not accepting status reports right now; retry later", RetryAfter: 5}

func newCommitter(a *API) *committer {
	return &committer{
		a:    a,
		in:   make(chan *submission, 4096),
		quit: make(chan struct{}),
		done: make(chan struct{}),
	}
}

func (c *committer) start() {
	c.mu.Lock()
	c.running = true
	c.mu.Unlock()
	go c.loop()
}

// stop lets the loop commit what is queued and waits for it to end.
func (c *committer) stop() {
	c.mu.Lock()
	wasRunning := c.running
	c.running = false
	c.mu.Unlock()
	if !wasRunning {
		return
	}
	close(c.quit)
	<-c.done
}

// submit queues one device's reports and waits until they are committed.
// A nil outcome slice means the store refused the device (not accepted).
func (c *committer) submit(ctx context.Context, dr store.DeviceReports) ([]store.ReportOutcome, error) {
	c.mu.Lock()
	running := c.running
	c.mu.Unlock()
	if !running {
		return nil, errUnavailable
	}
	s := &submission{reports: dr, res: make(chan commitResult, 1)}
	select {
	case c.in <- s:
		c.waiting.Add(1)
		defer c.waiting.Add(-1)
	case <-c.quit:
		return nil, errUnavailable
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	select {
	case r := <-s.res:
		return r.outcomes, r.err
	case <-c.done:
		// The loop ended; it may have committed this submission last.
		select {
		case r := <-s.res:
			return r.outcomes, r.err
		default:
			return nil, errUnavailable
		}
	case <-ctx.Done():
		// Nobody is left to answer. The reports may still commit, which is
		// harmless: the device retries and gets "duplicate".
		return nil, ctx.Err()
	}
}

func (c *committer) loop() {
	defer close(c.done)
	maxN := c.a.limits.GroupCommitMaxReports
	for {
		var first *submission
		select {
		case first = <-c.in:
		case <-c.quit:
			c.drain()
			return
		}
		batch, n := []*submission{first}, len(first.reports.Reports)
		batch, n = c.gatherQueued(batch, n, maxN)
		if w := c.a.limits.GroupCommitWindow; n < maxN && w > 0 {
			batch = c.gatherFor(batch, n, maxN, w)
		}
		c.commit(batch)
	}
}

// gatherQueued adds submissions that are already waiting, without blocking.
func (c *committer) gatherQueued(batch []*submission, n, maxN int) ([]*submission, int) {
	for n < maxN {
		select {
		case s := <-c.in:
			batch = append(batch, s)
			n += len(s.reports.Reports)
		default:
			return batch, n
		}
	}
	return batch, n
}

// gatherFor adds submissions arriving within window of the injected clock.
func (c *committer) gatherFor(batch []*submission, n, maxN int, window time.Duration) []*submission {
	t := c.a.clock.NewTimer(window)
	defer t.Stop()
	for n < maxN {
		select {
		case s := <-c.in:
			batch = append(batch, s)
			n += len(s.reports.Reports)
		case <-t.C():
			return batch
		case <-c.quit:
			return batch
		}
	}
	return batch
}

// drain commits everything still queued when the committer stops.
func (c *committer) drain() {
	maxN := c.a.limits.GroupCommitMaxReports
	for {
		batch, _ := c.gatherQueued(nil, 0, maxN)
		if len(batch) == 0 {
			return
		}
		c.commit(batch)
	}
}

func (c *committer) commit(batch []*submission) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	all := make([]store.DeviceReports, len(batch))
	n := 0
	for i, s := range batch {
		all[i] = s.reports
		n += len(s.reports.Reports)
	}
	outcomes, err := c.a.store.RecordReports(ctx, all, c.a.clock.Now())
	if err == nil && len(outcomes) != len(batch) {
		err = fmt.Errorf("record reports: %d outcome lists for %d devices", len(outcomes), len(batch))
	}
	if err != nil && len(batch) > 1 {
		c.a.log.Warn("group commit failed; committing its requests one by one", "requests", len(batch), "reports", n, "err", err)
		for _, s := range batch {
			c.commit([]*submission{s})
		}
		return
	}
	if err != nil {
		if errors.Is(err, store.ErrInvalidRequest) {
			err = &apierror.Error{Status: http.StatusBadRequest, Code: "invalid_request", Message: "the store refused these reports as invalid", Err: err}
		}
		batch[0].res <- commitResult{err: err}
		return
	}
	stored := 0
	for _, o := range outcomes {
		stored += len(o)
	}
	c.a.metrics.commits.Inc()
	c.a.metrics.batchSize.Observe(float64(stored))
	c.a.metrics.reports.Add(float64(stored))
	for i, s := range batch {
		s.res <- commitResult{outcomes: outcomes[i]}
	}
}
