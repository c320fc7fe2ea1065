package deviceapi_test

import (
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

// manyDevices lifts the enrollment rate limit for tests that enroll many
// devices from one address.
var manyDevices = deviceapi.Limits{EnrollBurst: 1000}

// devices enrolls n accepted devices.
func (e *env) devices(n int) []*device {
	out := make([]*device, n)
	for i := range out {
		out[i] = e.enrollAccepted(fmt.Sprintf("SN-%03d", i))
	}
	return out
}

func (e *env) countEvents() int {
	e.t.Helper()
	var n int
	if err := e.sql.DB().QueryRowContext(e.ctx, `SELECT COUNT(*) FROM assignment_events`).Scan(&n); err != nil {
		e.t.Fatal(err)
	}
	return n
}

func holdingStore(cs *countingStore) func(store.Store) store.Store {
	return func(s store.Store) store.Store { cs.Store = s; return cs }
}

// TestGroupCommitBatchesConcurrentRequests holds the first commit so that
// concurrent report requests pile up, and checks that they then share one
// transaction and that every request's reports are stored once it got 200.
func TestGroupCommitBatchesConcurrentRequests(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			cs := &countingStore{hold: make(chan struct{}), holding: make(chan struct{})}
			e := setup(t, options{backend: backend, wrap: holdingStore(cs), limits: manyDevices})
			devs := e.devices(25)
			results := make(chan response, len(devs))
			send := func(d *device) {
				results <- d.report(
					wire.Report{AssignmentID: "a-" + d.devID, Seq: 1, State: "downloading", Progress: 10},
					wire.Report{AssignmentID: "a-" + d.devID, Seq: 2, State: "downloading", Progress: 20},
				)
			}
			go send(devs[0])
			<-cs.holding
			for _, d := range devs[1:] {
				go send(d)
			}
			e.eventually("requests queued behind the first commit", func() bool { return e.api.ReportsQueued() == len(devs)-1 })
			select {
			case r := <-results:
				t.Fatalf("a request was answered before its commit: %d %s", r.status, r.body)
			default:
			}
			close(cs.hold)
			for range devs {
				wantOutcomes(t, <-results, "recorded", "recorded")
			}
			calls, sizes := cs.stats()
			if calls != 2 || sizes[0] != 2 || sizes[1] != 2*(len(devs)-1) {
				t.Fatalf("%d transactions of %v reports; want 2 of [2 %d]", calls, sizes, 2*(len(devs)-1))
			}
			if n := e.countEvents(); n != 2*len(devs) {
				t.Fatalf("%d events stored, want %d", n, 2*len(devs))
			}
			if got := metricValue(t, e, "updraft_device_report_batch_size"); got != 2 {
				t.Fatalf("batch size histogram has %v samples, want 2", got)
			}
		})
	}
}

// TestGroupCommitWindow gathers requests for the configured window on the
// injected clock before committing them together.
func TestGroupCommitWindow(t *testing.T) {
	t.Parallel()
	cs := &countingStore{}
	e := setup(t, options{wrap: holdingStore(cs), limits: deviceapi.Limits{EnrollBurst: 1000, GroupCommitWindow: 5 * time.Millisecond}})
	devs := e.devices(10)
	results := make(chan response, len(devs))
	for _, d := range devs {
		go func() { results <- d.report(wire.Report{AssignmentID: "a-1", Seq: 7, State: "installing"}) }()
	}
	e.eventually("all requests gathered in the window", func() bool {
		return e.api.ReportsWaiting() == len(devs) && e.api.ReportsQueued() == 0 && e.clock.Waiters() == e.baseTimers+1
	})
	if calls, _ := cs.stats(); calls != 0 {
		t.Fatalf("committed before the window ended: %d calls", calls)
	}
	e.clock.Advance(5 * time.Millisecond)
	for range devs {
		wantOutcomes(t, <-results, "recorded")
	}
	if calls, sizes := cs.stats(); calls != 1 || sizes[0] != len(devs) {
		t.Fatalf("%d transactions of %v reports; want 1 of %d", calls, sizes, len(devs))
	}
	// Every device had a gap 1..6 recorded.
	for _, d := range devs {
		gaps, err := e.store.ReportGaps(e.ctx, store.DefaultTenant, d.devID)
		if err != nil || len(gaps) != 1 || gaps[0].FromSeq != 1 || gaps[0].ToSeq != 6 {
			t.Fatalf("device %s gaps %+v, err %v", d.devID, gaps, err)
		}
	}
}

// TestGroupCommitIsolatesDevices: a device decommissioned while its
// request waits gets 403; the others in the same batch are stored.
func TestGroupCommitIsolatesDevices(t *testing.T) {
	t.Parallel()
	cs := &countingStore{hold: make(chan struct{}), holding: make(chan struct{})}
	e := setup(t, options{wrap: holdingStore(cs)})
	devs := e.devices(3)
	type result struct {
		d *device
		r response
	}
	results := make(chan result, 3)
	send := func(d *device) {
		results <- result{d, d.report(wire.Report{AssignmentID: "a", Seq: 1, State: "downloading"})}
	}
	go send(devs[0])
	<-cs.holding
	go send(devs[1])
	go send(devs[2])
	e.eventually("queued", func() bool { return e.api.ReportsQueued() == 2 })
	if _, err := e.sql.DecommissionDevice(e.ctx, store.DefaultTenant, devs[2].devID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	close(cs.hold)
	for range 3 {
		res := <-results
		want := http.StatusOK
		if res.d == devs[2] {
			want = http.StatusForbidden
		}
		if res.r.status != want {
			t.Errorf("device %s: %d %s, want %d", res.d.id.Serial, res.r.status, res.r.body, want)
		}
	}
	if n := e.countEvents(); n != 2 {
		t.Fatalf("%d events stored, want 2", n)
	}
}

// TestStopCommitsQueuedReports: reports queued when the server stops are
// committed and acknowledged; later ones get 503.
func TestStopCommitsQueuedReports(t *testing.T) {
	t.Parallel()
	cs := &countingStore{hold: make(chan struct{}), holding: make(chan struct{})}
	e := setup(t, options{wrap: holdingStore(cs)})
	devs := e.devices(4)
	results := make(chan response, len(devs))
	send := func(d *device) { results <- d.report(wire.Report{AssignmentID: "a", Seq: 1, State: "downloading"}) }
	go send(devs[0])
	<-cs.holding
	for _, d := range devs[1:] {
		go send(d)
	}
	e.eventually("queued", func() bool { return e.api.ReportsQueued() == len(devs)-1 })
	stopped := make(chan struct{})
	go func() { e.api.Stop(); close(stopped) }()
	close(cs.hold)
	<-stopped
	for range devs {
		if r := <-results; r.status != http.StatusOK {
			t.Fatalf("queued before stop: %d %s", r.status, r.body)
		}
	}
	if n := e.countEvents(); n != len(devs) {
		t.Fatalf("%d events stored, want %d", n, len(devs))
	}
	r := devs[0].report(wire.Report{AssignmentID: "a", Seq: 2, State: "downloading"})
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("after stop: %d %s", r.status, r.body)
	}
}
