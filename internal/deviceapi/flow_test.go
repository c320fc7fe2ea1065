package deviceapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/store"
)

// TestFullFlow walks one device through its life on both databases:
// enroll → pending → accepted → token → check-in → long-poll woken by an
// assignment → ranged download with resume → reports with a retry and a
// gap → telemetry → last-seen flushed on stop.
func TestFullFlow(t *testing.T) {
	t.Parallel()
	for _, backend := range []string{"sqlite", "postgres"} {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			testFullFlow(t, backend)
		})
	}
}

func testFullFlow(t *testing.T, backend string) {
	e := setup(t, options{backend: backend})
	d := e.newDevice("SN-0001")

	// Enrollment waits for the operator.
	r := d.enroll()
	if r.status != http.StatusAccepted {
		t.Fatalf("first enroll: %d %s", r.status, r.body)
	}
	var pending wire.PendingResponse
	r.decode(t, &pending)
	if pending.Status != wire.StatusPending || pending.RetryAfter != 60 || r.header.Get("Retry-After") != "60" || pending.DeviceID == "" {
		t.Fatalf("pending answer %+v, Retry-After %q", pending, r.header.Get("Retry-After"))
	}
	e.clock.Advance(time.Minute)
	if r := d.enroll(); r.status != http.StatusAccepted {
		t.Fatalf("enroll while pending: %d %s", r.status, r.body)
	}
	if _, err := e.store.AcceptDevice(e.ctx, store.DefaultTenant, d.devID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	r = d.enroll()
	if r.status != http.StatusOK || d.token == "" {
		t.Fatalf("enroll after accept: %d %s", r.status, r.body)
	}
	var tok wire.TokenResponse
	r.decode(t, &tok)
	if !tok.ExpiresAt.Equal(e.clock.Now().Add(tokenTTL)) {
		t.Fatalf("token expires %v, want %v", tok.ExpiresAt, e.clock.Now().Add(tokenTTL))
	}

	// A check-in with nothing to do, reporting attributes for the first time.
	req := wire.CheckInRequest{Version: "1.0.0", State: "idle", Attributes: map[string]string{"kernel": "6.1"}}
	ci := d.checkInOK("", req)
	if ci.Assignment != nil || ci.Cancel != nil {
		t.Fatalf("check-in without work: %+v", ci)
	}
	if lo, hi := 270, 330; ci.PollAfterSeconds < lo || ci.PollAfterSeconds > hi {
		t.Fatalf("poll_after_seconds %d outside %d..%d", ci.PollAfterSeconds, lo, hi)
	}
	if !ci.LongPoll.Supported || ci.LongPoll.MaxWaitSeconds != 60 {
		t.Fatalf("long_poll %+v", ci.LongPoll)
	}
	dev, err := e.store.Device(e.ctx, store.DefaultTenant, d.devID)
	if err != nil {
		t.Fatal(err)
	}
	if dev.Version != "1.0.0" || dev.Attributes["kernel"] != "6.1" || dev.LastSeenAt != nil {
		t.Fatalf("after check-in: version %q attributes %v last seen %v (must wait for the flush)", dev.Version, dev.Attributes, dev.LastSeenAt)
	}
	// The same report again changes nothing.
	before := e.snapshot()
	d.checkInOK("", req)
	if e.snapshot() != before {
		t.Fatal("an unchanged check-in wrote to the database")
	}

	// A long-poll is woken by the assignment.
	image := bytes.Repeat([]byte("firmware-2.0.0|"), 10000)
	rel := e.release("2.0.0", image)
	done := make(chan wire.CheckInResponse, 1)
	go func() {
		r := d.checkIn("?wait=30s", req)
		var out wire.CheckInResponse
		if r.status == http.StatusOK {
			r.decode(t, &out)
		}
		done <- out
	}()
	e.eventually("long-poll waiting", func() bool {
		return e.hub.Waiting() == 1 && e.clock.Waiters() == e.baseTimers+1
	})
	if got := metricValue(t, e, "updraft_device_long_polls_active"); got != 1 {
		t.Fatalf("long polls active = %v, want 1", got)
	}
	asg := e.assign(d, rel)
	ci = <-done // no clock advance: only the notification can have ended it
	if ci.Assignment == nil || ci.Assignment.ID != asg.ID {
		t.Fatalf("long-poll answer %+v, want assignment %s", ci, asg.ID)
	}
	a := ci.Assignment
	if a.Version != "2.0.0" || a.SecurityVersion != 3 || a.State != "notified" || a.Signed != nil {
		t.Fatalf("assignment %+v", a)
	}
	// The first delivery moved it from pending to notified; handing it out
	// again writes nothing.
	if got, err := e.store.Assignment(e.ctx, store.DefaultTenant, asg.ID); err != nil || got.State != store.AssignNotified {
		t.Fatalf("assignment after delivery: %+v, err %v", got, err)
	}
	before = e.snapshot()
	if again := d.checkInOK("", wire.CheckInRequest{Version: "1.0.0", AssignmentID: asg.ID}); again.Assignment == nil ||
		again.Assignment.ID != asg.ID || again.Assignment.State != "notified" {
		t.Fatalf("second delivery: %+v", again.Assignment)
	}
	if e.snapshot() != before {
		t.Fatal("handing out a notified assignment again wrote to the database")
	}
	sum := sha256.Sum256(image)
	art := a.Artifact
	if art.SHA256 != hex.EncodeToString(sum[:]) || art.Size != int64(len(image)) || art.Name != "gw-200-2.0.0.img" ||
		art.Type != "raw-image" || art.Component != "rootfs" || art.SHA1 == "" || art.MD5 == "" {
		t.Fatalf("artifact %+v", art)
	}
	if !strings.HasPrefix(art.URL, e.srv.URL+"/api/device/v1/artifacts/"+art.ID+"/download?") || !art.URLExpiresAt.Equal(e.clock.Now().Add(time.Hour)) {
		t.Fatalf("download URL %q expiring %v", art.URL, art.URLExpiresAt)
	}

	// Download the first part, then resume from where it stopped.
	plain := &http.Client{Transport: e.client.Transport} // no Authorization header is sent
	first := doRequest(t, plain, "GET", art.URL, http.Header{"Range": {"bytes=0-65535"}}, nil)
	if first.status != http.StatusPartialContent || len(first.body) != 65536 {
		t.Fatalf("first range: %d, %d bytes", first.status, len(first.body))
	}
	etag := first.header.Get("ETag")
	rest := doRequest(t, plain, "GET", art.URL, http.Header{"Range": {"bytes=65536-"}, "If-Range": {etag}}, nil)
	if rest.status != http.StatusPartialContent || !bytes.Equal(append(first.body, rest.body...), image) {
		t.Fatalf("resumed range: %d, %d bytes; joined content equal: %v", rest.status, len(rest.body), bytes.Equal(append(first.body, rest.body...), image))
	}
	if r := doRequest(t, plain, "GET", art.URL, http.Header{"Range": {"bytes=" + strconv.Itoa(len(image)) + "-"}}, nil); r.status != http.StatusRequestedRangeNotSatisfiable {
		t.Fatalf("range past the end: %d", r.status)
	}

	// Reports: progress, a retry of the same batch, then success after a gap.
	rep1 := wire.Report{AssignmentID: asg.ID, Seq: 1, State: "downloading", Progress: 40}
	rep2 := wire.Report{AssignmentID: asg.ID, Seq: 2, State: "installing", Progress: 100}
	wantOutcomes(t, d.report(rep1, rep2), "applied", "applied")
	wantOutcomes(t, d.report(rep1, rep2), "duplicate", "duplicate")
	rep5 := wire.Report{AssignmentID: asg.ID, Seq: 5, State: "succeeded", Progress: 100, Message: "booted 2.0.0"}
	wantOutcomes(t, d.report(rep5), "applied")
	gaps, err := e.store.ReportGaps(e.ctx, store.DefaultTenant, d.devID)
	if err != nil || len(gaps) != 1 || gaps[0].FromSeq != 3 || gaps[0].ToSeq != 4 {
		t.Fatalf("gaps %+v, err %v; want [3,4]", gaps, err)
	}
	events, err := e.store.AssignmentEvents(e.ctx, store.DefaultTenant, asg.ID)
	if err != nil || len(events) != 3 {
		t.Fatalf("events %+v, err %v; want 3", events, err)
	}
	got, err := e.store.Assignment(e.ctx, store.DefaultTenant, asg.ID)
	if err != nil || got.State != store.AssignSucceeded || got.Active {
		t.Fatalf("assignment after success: %+v, err %v", got, err)
	}

	// Checking in with the finished assignment: no work and no cancel.
	ci = d.checkInOK("", wire.CheckInRequest{Version: "2.0.0", AssignmentID: asg.ID})
	if ci.Assignment != nil || ci.Cancel != nil {
		t.Fatalf("after success: %+v", ci)
	}

	// Telemetry: two fresh points and one beyond raw retention.
	now := e.clock.Now()
	tr := e.do("POST", wire.PathTelemetry, d.auth(), mustJSON(t, wire.TelemetryRequest{Points: []wire.Point{
		{Name: "battery_pct", At: now.Add(-time.Minute), Value: 81},
		{Name: "battery_pct", At: now, Value: 80.5},
		{Name: "battery_pct", At: now.Add(-8 * 24 * time.Hour), Value: 99},
	}}))
	var tresp wire.TelemetryResponse
	tr.decode(t, &tresp)
	if tr.status != http.StatusOK || tresp.Accepted != 2 || tresp.Dropped != 1 {
		t.Fatalf("telemetry: %d %s", tr.status, tr.body)
	}
	pts, err := e.store.TelemetryRaw(e.ctx, store.DefaultTenant, d.devID, "battery_pct", now.Add(-time.Hour), now.Add(time.Second))
	if err != nil || len(pts) != 2 {
		t.Fatalf("raw points %+v, err %v", pts, err)
	}

	// Last-seen reaches the store on the next flush.
	e.clock.Advance(30 * time.Second)
	e.eventually("last-seen flush", func() bool {
		dev, err := e.store.Device(e.ctx, store.DefaultTenant, d.devID)
		return err == nil && dev.LastSeenAt != nil
	})

	for name, want := range map[string]float64{
		`updraft_device_enrollments_total{result="pending"}`:  2,
		`updraft_device_enrollments_total{result="accepted"}`: 1,
		`updraft_device_checkins_total{result="no_work"}`:     3,
		`updraft_device_checkins_total{result="assignment"}`:  2,
		`updraft_device_reports_committed_total`:              5,
		`updraft_device_long_polls_active`:                    0,
	} {
		if got := metricValue(t, e, name); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
}

func wantOutcomes(t *testing.T, r response, want ...string) {
	t.Helper()
	if r.status != http.StatusOK {
		t.Fatalf("reports: %d %s", r.status, r.body)
	}
	var out wire.ReportsResponse
	r.decode(t, &out)
	if len(out.Results) != len(want) {
		t.Fatalf("reports: %d results, want %d: %s", len(out.Results), len(want), r.body)
	}
	for i, res := range out.Results {
		if res.Outcome != want[i] {
			t.Fatalf("report %d (seq %d): outcome %q, want %q", i, res.Seq, res.Outcome, want[i])
		}
	}
}
