package deviceapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

func TestCancelAndSupersede(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	relA := e.release("2.0.0", []byte("image A"))
	relB := e.release("2.1.0", []byte("image B"))

	a := e.assign(d, relA)
	ci := d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", AssignmentID: a.ID, State: "downloading"})
	if ci.Assignment == nil || ci.Assignment.ID != a.ID || ci.Cancel != nil {
		t.Fatalf("working on the active assignment: %+v", ci)
	}

	// A newer assignment supersedes the one the device works on.
	b := e.assign(d, relB)
	ci = d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", AssignmentID: a.ID, State: "downloading"})
	if ci.Cancel == nil || *ci.Cancel != (wire.Cancel{AssignmentID: a.ID, Reason: wire.CancelSuperseded}) {
		t.Fatalf("superseded: cancel %+v", ci.Cancel)
	}
	if ci.Assignment == nil || ci.Assignment.ID != b.ID || ci.Assignment.Version != "2.1.0" {
		t.Fatalf("superseded: assignment %+v, want %s", ci.Assignment, b.ID)
	}

	// A long-poll on b is woken by the operator canceling it.
	done := make(chan wire.CheckInResponse, 1)
	go func() {
		r := d.checkIn("?wait=45", wire.CheckInRequest{Version: "1.0.0", AssignmentID: b.ID, State: "downloading"})
		var out wire.CheckInResponse
		if r.status == http.StatusOK {
			r.decode(t, &out)
		}
		done <- out
	}()
	e.eventually("long-poll waiting", func() bool { return e.clock.Waiters() == e.baseTimers+1 })
	if _, err := e.store.CancelAssignment(e.ctx, store.DefaultTenant, b.ID, "operator abort", admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.hub.Notify(store.DefaultTenant, d.devID)
	ci = <-done
	if ci.Cancel == nil || *ci.Cancel != (wire.Cancel{AssignmentID: b.ID, Reason: wire.CancelCanceled}) || ci.Assignment != nil {
		t.Fatalf("canceled: %+v", ci)
	}

	// An assignment id the device should not have is canceled too.
	ci = d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", AssignmentID: "not-an-assignment"})
	if ci.Cancel == nil || ci.Cancel.Reason != wire.CancelCanceled {
		t.Fatalf("unknown assignment: %+v", ci)
	}
	other := e.enrollAccepted("SN-2")
	c := e.assign(other, relA)
	ci = d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", AssignmentID: c.ID})
	if ci.Cancel == nil || ci.Cancel.AssignmentID != c.ID || ci.Assignment != nil {
		t.Fatalf("another device's assignment: %+v", ci)
	}
	if got := metricValue(t, e, `updraft_device_checkins_total{result="cancel"}`); got != 4 {
		t.Fatalf("cancel check-ins = %v, want 4", got)
	}
}

func TestArtifactFollowsHardware(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	rel := e.release("2.0.0", []byte("image"))
	e.assign(d, rel)
	ci := d.checkInOK("", idle)
	if ci.Assignment == nil || ci.Assignment.Artifact.Name != "gw-200-2.0.0.img" {
		t.Fatalf("gw-200 rev B: %+v", ci.Assignment)
	}
	// The device reports new hardware the release has nothing for: it gets
	// no file rather than one for other hardware.
	ci = d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", HWRev: "Z"})
	if ci.Assignment != nil {
		t.Fatalf("rev Z: %+v", ci.Assignment)
	}
	ci = d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", DeviceType: "gw-300", HWRev: "A"})
	if ci.Assignment == nil || ci.Assignment.Artifact.Name != "gw-300-2.0.0.img" {
		t.Fatalf("gw-300 rev A: %+v", ci.Assignment)
	}
}

func TestLongPollEnds(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limits: deviceapi.Limits{MaxLongPoll: 20 * time.Second}})
	d := e.enrollAccepted("SN-1")

	// At the deadline (capped to the configured maximum) with no news.
	done := make(chan response, 1)
	go func() { done <- d.checkIn("?wait=10m", idle) }()
	e.eventually("long-poll waiting", func() bool { return e.clock.Waiters() == e.baseTimers+1 })
	e.clock.Advance(19 * time.Second)
	select {
	case r := <-done:
		t.Fatalf("long-poll ended before its capped deadline: %d", r.status)
	default:
	}
	e.clock.Advance(time.Second)
	r := <-done
	var ci wire.CheckInResponse
	r.decode(t, &ci)
	if r.status != http.StatusOK || ci.Assignment != nil || ci.LongPoll.MaxWaitSeconds != 20 {
		t.Fatalf("at the deadline: %d %s", r.status, r.body)
	}

	// A notification without news keeps it waiting.
	go func() { done <- d.checkIn("?wait=5s", idle) }()
	e.eventually("long-poll waiting", func() bool { return e.clock.Waiters() == e.baseTimers+1 })
	e.hub.Notify(store.DefaultTenant, d.devID)
	e.eventually("re-subscribed", func() bool { return e.hub.Waiting() == 1 })
	select {
	case r := <-done:
		t.Fatalf("spurious wake-up ended the long-poll: %d", r.status)
	default:
	}
	e.clock.Advance(5 * time.Second)
	if r := <-done; r.status != http.StatusOK {
		t.Fatalf("after spurious wake-up: %d %s", r.status, r.body)
	}

	// When the client goes away.
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "POST", e.srv.URL+wire.PathCheckIn+"?wait=20s", jsonBody(t, idle))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = d.auth()
	errc := make(chan error, 1)
	go func() {
		resp, err := e.client.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		errc <- err
	}()
	e.eventually("long-poll waiting", func() bool { return e.clock.Waiters() == e.baseTimers+1 })
	cancel()
	if err := <-errc; err == nil {
		t.Fatal("canceled request succeeded")
	}
	e.eventually("handler gone", func() bool {
		return e.hub.Waiting() == 0 && metricValue(t, e, "updraft_device_long_polls_active") == 0
	})

	// When the server stops.
	go func() { done <- d.checkIn("?wait=20s", idle) }()
	e.eventually("long-poll waiting", func() bool { return e.clock.Waiters() == e.baseTimers+1 })
	e.api.Stop()
	if r := <-done; r.status != http.StatusOK {
		t.Fatalf("on stop: %d %s", r.status, r.body)
	}
}

func TestLongPollDisabled(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limits: deviceapi.Limits{MaxLongPoll: -1}})
	d := e.enrollAccepted("SN-1")
	ci := d.checkInOK("?wait=30s", idle) // answers at once
	if ci.LongPoll.Supported || ci.LongPoll.MaxWaitSeconds != 0 {
		t.Fatalf("long_poll %+v", ci.LongPoll)
	}
}

func TestCheckInStoresReportOnlyWhenChanged(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	steps := []struct {
		req    wire.CheckInRequest
		writes bool
	}{
		{wire.CheckInRequest{Version: "1.0.0"}, true},
		{wire.CheckInRequest{Version: "1.0.0"}, false},
		{wire.CheckInRequest{Version: "1.0.0", State: "downloading"}, false},
		{wire.CheckInRequest{Version: "1.0.0", TimeZone: "Europe/Berlin"}, false}, // as enrolled
		{wire.CheckInRequest{Version: "1.0.0", TimeZone: "America/New_York"}, true},
		{wire.CheckInRequest{Version: "1.0.0", Attributes: map[string]string{"a": "1"}}, true},
		{wire.CheckInRequest{Version: "1.0.0", Attributes: map[string]string{"a": "1"}}, false},
		{wire.CheckInRequest{Version: "1.0.0"}, false}, // attributes left as they are
		{wire.CheckInRequest{Version: "1.0.1"}, true},
	}
	for i, s := range steps {
		before := e.snapshot()
		d.checkInOK("", s.req)
		if wrote := e.snapshot() != before; wrote != s.writes {
			t.Fatalf("step %d (%+v): wrote %v, want %v", i, s.req, wrote, s.writes)
		}
	}
	dev, err := e.store.Device(e.ctx, store.DefaultTenant, d.devID)
	if err != nil || dev.Version != "1.0.1" || dev.PreviousVersion != "1.0.0" || dev.TimeZone != "America/New_York" {
		t.Fatalf("device %+v, err %v", dev, err)
	}
}

type fakeDirector struct{}

func (fakeDirector) SignAssignment(_ context.Context, d store.Device, a store.Assignment, r store.Release, art store.Artifact) (json.RawMessage, error) {
	return json.Marshal(map[string]string{"device": d.ID, "assignment": a.ID, "version": r.Version, "sha256": art.SHA256})
}

func TestDirectorSignsAssignments(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	api, err := deviceapi.New(deviceapi.Config{
		Store: e.store, Blobs: e.blobs, Tokens: e.issuer, URLs: e.urls, Clock: e.clock,
		PublicURL: e.srv.URL, Director: fakeDirector{},
	})
	if err != nil {
		t.Fatal(err)
	}
	d := e.enrollAccepted("SN-1")
	a := e.assign(d, e.release("2.0.0", []byte("image")))
	req, err := http.NewRequest("POST", wire.PathCheckIn, jsonBody(t, idle))
	if err != nil {
		t.Fatal(err)
	}
	req.Header = d.auth()
	rec := httptest.NewRecorder()
	api.Handler().ServeHTTP(rec, req)
	var ci wire.CheckInResponse
	if err := json.Unmarshal(rec.Body.Bytes(), &ci); err != nil || ci.Assignment == nil {
		t.Fatalf("check-in: %d %s", rec.Code, rec.Body)
	}
	var signed map[string]string
	if err := json.Unmarshal(ci.Assignment.Signed, &signed); err != nil || signed["assignment"] != a.ID || signed["sha256"] != ci.Assignment.Artifact.SHA256 {
		t.Fatalf("signed = %s", ci.Assignment.Signed)
	}
}

// flakyNotify fails the first MarkNotified call and counts them all.
type flakyNotify struct {
	store.Store
	mu    sync.Mutex
	calls int
}

func (f *flakyNotify) MarkNotified(ctx context.Context, tenant, id string, now time.Time) (bool, error) {
	f.mu.Lock()
	f.calls++
	first := f.calls == 1
	f.mu.Unlock()
	if first {
		return false, errors.New("disk full")
	}
	return f.Store.MarkNotified(ctx, tenant, id, now)
}

func (f *flakyNotify) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls
}

// TestFirstDeliveryMarksNotified: handing out a pending assignment marks
// it notified once; a failed mark still delivers the work and is retried
// at the next check-in.
func TestFirstDeliveryMarksNotified(t *testing.T) {
	t.Parallel()
	fn := &flakyNotify{}
	e := setup(t, options{wrap: func(s store.Store) store.Store { fn.Store = s; return fn }})
	d := e.enrollAccepted("SN-1")
	a := e.assign(d, e.release("2.0.0", []byte("image")))
	steps := []struct {
		name       string
		wantState  string // in the answer and in the store
		wantCalled int    // MarkNotified calls so far
	}{
		{"MarkFails", "pending", 1},
		{"Retried", "notified", 2},
		{"AlreadyNotified", "notified", 2},
	}
	for _, s := range steps {
		ci := d.checkInOK("", idle)
		if ci.Assignment == nil || ci.Assignment.ID != a.ID || ci.Assignment.State != s.wantState {
			t.Fatalf("%s: assignment %+v, want %s in state %s", s.name, ci.Assignment, a.ID, s.wantState)
		}
		got, err := e.store.Assignment(e.ctx, store.DefaultTenant, a.ID)
		if err != nil || string(got.State) != s.wantState {
			t.Fatalf("%s: stored %+v, err %v; want state %s", s.name, got, err, s.wantState)
		}
		if n := fn.count(); n != s.wantCalled {
			t.Fatalf("%s: %d MarkNotified calls, want %d", s.name, n, s.wantCalled)
		}
	}
}
