package storetest

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// rep builds a status report.
func rep(assignmentID string, seq int64, state store.AssignmentState, progress int) store.StatusReport {
	return store.StatusReport{AssignmentID: assignmentID, Seq: seq, State: state, Progress: progress, ReportedAt: T0}
}

// report records one device's reports in a batch of its own.
func (e *releaseEnv) report(deviceID string, now time.Time, reports ...store.StatusReport) []store.ReportOutcome {
	e.t.Helper()
	out, err := e.s.RecordReports(e.ctx, []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: deviceID, Reports: reports}}, now)
	if err != nil {
		e.t.Fatalf("record reports: %v", err)
	}
	if len(out) != 1 || len(out[0]) != len(reports) {
		e.t.Fatalf("outcomes %v do not match one device with %d reports", out, len(reports))
	}
	return out[0]
}

// gaps renders the device's recorded gaps as "from-to" strings.
func (e *releaseEnv) gaps(deviceID string) string {
	e.t.Helper()
	gs, err := e.s.ReportGaps(e.ctx, store.DefaultTenant, deviceID)
	if err != nil {
		e.t.Fatalf("report gaps: %v", err)
	}
	var parts []string
	for _, g := range gs {
		parts = append(parts, fmt.Sprintf("%d-%d", g.FromSeq, g.ToSeq))
	}
	return strings.Join(parts, ",")
}

// eventSeqs lists the seqs stored for an assignment.
func (e *releaseEnv) eventSeqs(assignmentID string) []int64 {
	e.t.Helper()
	evs, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, assignmentID)
	if err != nil {
		e.t.Fatalf("assignment events: %v", err)
	}
	var out []int64
	for _, ev := range evs {
		out = append(out, ev.Seq)
	}
	return out
}

func (e *releaseEnv) lastSeq(deviceID string) int64 {
	e.t.Helper()
	d, err := e.s.Device(e.ctx, store.DefaultTenant, deviceID)
	if err != nil {
		e.t.Fatalf("device: %v", err)
	}
	return d.LastReportSeq
}

func outcomes(o ...store.ReportOutcome) []store.ReportOutcome { return o }

const (
	applied   = store.ReportApplied
	recorded  = store.ReportRecorded
	duplicate = store.ReportDuplicate
)

func testReports(t *testing.T, h Harness) {
	t.Run("DuplicatesIgnored", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		a, _ := e.assign(dev.ID, e.published("1.2.0", "gw-200", "B").ID, T0)
		first := rep(a.ID, 1, store.AssignDownloading, 10)
		first.Message = "fetching"
		got := e.report(dev.ID, T0, first, rep(a.ID, 2, store.AssignDownloading, 40))
		if !slices.Equal(got, outcomes(applied, applied)) {
			t.Fatalf("outcomes = %v", got)
		}
		// A retry of seq 1 with other content, and seq 2 again in the same batch.
		again := rep(a.ID, 1, store.AssignFailed, 0)
		again.Message = "replayed"
		got = e.report(dev.ID, T0.Add(time.Minute), again, rep(a.ID, 2, store.AssignFailed, 0), rep(a.ID, 3, store.AssignInstalling, 0), rep(a.ID, 3, store.AssignFailed, 0))
		if !slices.Equal(got, outcomes(duplicate, duplicate, applied, duplicate)) {
			t.Fatalf("outcomes of replays = %v", got)
		}
		evs, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, a.ID)
		if err != nil || len(evs) != 3 {
			t.Fatalf("events = %+v, %v; want 3", evs, err)
		}
		if evs[0].Message != "fetching" || evs[0].State != store.AssignDownloading || !evs[0].ReceivedAt.Equal(T0) || !evs[0].Applied {
			t.Fatalf("first event was overwritten: %+v", evs[0])
		}
		cur, err := e.s.Assignment(e.ctx, store.DefaultTenant, a.ID)
		if err != nil || cur.State != store.AssignInstalling || !cur.Active {
			t.Fatalf("assignment = %+v, %v; want active, installing", cur, err)
		}
		if e.lastSeq(dev.ID) != 3 || e.gaps(dev.ID) != "" {
			t.Fatalf("last seq %d, gaps %q; want 3 and none", e.lastSeq(dev.ID), e.gaps(dev.ID))
		}
	})

	t.Run("GapsRecordedThenFilledByLateReports", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		a, _ := e.assign(dev.ID, e.published("1.2.0", "gw-200", "B").ID, T0)
		steps := []struct {
			seq     int64
			state   store.AssignmentState
			outcome store.ReportOutcome
			gaps    string
			last    int64
		}{
			{1, store.AssignNotified, applied, "", 1},
			{5, store.AssignDownloading, applied, "2-4", 5},
			{9, store.AssignInstalling, applied, "2-4,6-8", 9},
			// Late reports fill gaps; their older states no longer apply.
			{3, store.AssignDownloading, recorded, "2-2,4-4,6-8", 9},
			{2, store.AssignNotified, recorded, "4-4,6-8", 9},
			{8, store.AssignInstalling, applied, "4-4,6-7", 9},
			{6, store.AssignDownloading, recorded, "4-4,7-7", 9},
			{4, store.AssignDownloading, recorded, "7-7", 9},
			{7, store.AssignDownloading, recorded, "", 9},
			{10, store.AssignVerifying, applied, "", 10},
		}
		for i, st := range steps {
			got := e.report(dev.ID, T0.Add(time.Duration(i)*time.Second), rep(a.ID, st.seq, st.state, 0))
			if got[0] != st.outcome {
				t.Fatalf("seq %d: outcome %s, want %s", st.seq, got[0], st.outcome)
			}
			if g := e.gaps(dev.ID); g != st.gaps {
				t.Fatalf("after seq %d: gaps %q, want %q", st.seq, g, st.gaps)
			}
			if l := e.lastSeq(dev.ID); l != st.last {
				t.Fatalf("after seq %d: last seq %d, want %d", st.seq, l, st.last)
			}
		}
		if got := e.eventSeqs(a.ID); !slices.Equal(got, []int64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}) {
			t.Fatalf("events in order = %v", got)
		}
		// The first gap keeps the time it was detected.
		e2 := e.device("gw-200", "B")
		b, _ := e.assign(e2.ID, a.ReleaseID, T0)
		e.report(e2.ID, T0, rep(b.ID, 4, store.AssignDownloading, 0))
		e.report(e2.ID, T0.Add(time.Hour), rep(b.ID, 2, store.AssignDownloading, 0))
		gs, err := e.s.ReportGaps(e.ctx, store.DefaultTenant, e2.ID)
		if err != nil || len(gs) != 2 || !gs[0].DetectedAt.Equal(T0) || !gs[1].DetectedAt.Equal(T0) || gs[1].DeviceID != e2.ID {
			t.Fatalf("split gaps = %+v, %v; want two detected at %v", gs, err, T0)
		}
		_, err = e.s.ReportGaps(e.ctx, store.DefaultTenant, "no-such-device")
		wantErr(t, "gaps of unknown device", err, store.ErrNotFound)
	})

	t.Run("BatchMixesDevicesInOneCall", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		rel := e.published("1.2.0", "gw-200", "B")
		d1, d2 := e.device("gw-200", "B"), e.device("gw-200", "B")
		decom := e.device("gw-200", "B")
		a1, _ := e.assign(d1.ID, rel.ID, T0)
		a2, _ := e.assign(d2.ID, rel.ID, T0)
		if _, err := e.s.DecommissionDevice(e.ctx, store.DefaultTenant, decom.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		batch := []store.DeviceReports{
			{TenantID: store.DefaultTenant, DeviceID: d2.ID, Reports: []store.StatusReport{rep(a2.ID, 1, store.AssignDownloading, 5)}},
			{TenantID: store.DefaultTenant, DeviceID: "no-such-device", Reports: []store.StatusReport{rep(a1.ID, 1, store.AssignFailed, 0)}},
			{TenantID: store.DefaultTenant, DeviceID: d1.ID, Reports: []store.StatusReport{rep(a1.ID, 1, store.AssignDownloading, 5), rep(a1.ID, 2, store.AssignInstalling, 0)}},
			{TenantID: store.DefaultTenant, DeviceID: decom.ID, Reports: []store.StatusReport{rep(a1.ID, 1, store.AssignDownloading, 0)}},
			// A second request of d2 in the same group commit, after the first.
			{TenantID: store.DefaultTenant, DeviceID: d2.ID, Reports: []store.StatusReport{rep(a2.ID, 1, store.AssignDownloading, 5), rep(a2.ID, 3, store.AssignInstalling, 0)}},
		}
		out, err := e.s.RecordReports(e.ctx, batch, T0)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]store.ReportOutcome{{applied}, nil, {applied, applied}, nil, {duplicate, applied}}
		if fmt.Sprint(out) != fmt.Sprint(want) || out[1] != nil || out[3] != nil {
			t.Fatalf("outcomes = %v, want %v", out, want)
		}
		if got := e.eventSeqs(a1.ID); !slices.Equal(got, []int64{1, 2}) {
			t.Fatalf("d1 events = %v", got)
		}
		if got := e.eventSeqs(a2.ID); !slices.Equal(got, []int64{1, 3}) {
			t.Fatalf("d2 events = %v", got)
		}
		if e.gaps(d2.ID) != "2-2" || e.gaps(decom.ID) != "" || e.lastSeq(decom.ID) != 0 {
			t.Fatalf("gaps d2 %q, decommissioned %q (last %d)", e.gaps(d2.ID), e.gaps(decom.ID), e.lastSeq(decom.ID))
		}
		if out, err := e.s.RecordReports(e.ctx, nil, T0); err != nil || len(out) != 0 {
			t.Fatalf("empty batch = %v, %v", out, err)
		}
	})

	t.Run("InvalidReportRejectsTheBatchBeforeWriting", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		a, _ := e.assign(dev.ID, e.published("1.2.0", "gw-200", "B").ID, T0)
		mod := func(f func(*store.StatusReport)) store.StatusReport {
			r := rep(a.ID, 2, store.AssignFailed, 0)
			f(&r)
			return r
		}
		cases := []struct {
			name string
			r    store.StatusReport
			want string
		}{
			{"SeqZero", mod(func(r *store.StatusReport) { r.Seq = 0 }), "sequence"},
			{"UnknownState", mod(func(r *store.StatusReport) { r.State = "exploded" }), `"exploded"`},
			{"ProgressAbove100", mod(func(r *store.StatusReport) { r.Progress = 101 }), "progress"},
			{"NegativeProgress", mod(func(r *store.StatusReport) { r.Progress = -1 }), "progress"},
			{"LongMessage", mod(func(r *store.StatusReport) { r.Message = strings.Repeat("m", 4097) }), "message"},
			{"LongLogTail", mod(func(r *store.StatusReport) { r.LogTail = strings.Repeat("l", 16<<10+1) }), "log tail"},
			{"LongErrorCode", mod(func(r *store.StatusReport) { r.ErrorCode = strings.Repeat("E", 65) }), "error code"},
			{"LogTailNotUTF8", mod(func(r *store.StatusReport) { r.LogTail = "boot\xfe\xff" }), "UTF-8"},
			{"MessageNUL", mod(func(r *store.StatusReport) { r.Message = "a\x00b" }), "NUL"},
			{"NoAssignment", mod(func(r *store.StatusReport) { r.AssignmentID = "" }), "assignment id"},
		}
		for _, c := range cases {
			batch := []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: dev.ID, Reports: []store.StatusReport{rep(a.ID, 1, store.AssignDownloading, 0), c.r}}}
			_, err := e.s.RecordReports(e.ctx, batch, T0)
			wantErr(t, c.name, err, store.ErrInvalidRequest, c.want, dev.ID)
		}
		// Limits are inclusive.
		maxed := mod(func(r *store.StatusReport) {
			r.Message, r.LogTail, r.ErrorCode, r.Progress = strings.Repeat("m", 4096), strings.Repeat("l", 16<<10), strings.Repeat("E", 64), 100
		})
		if got := e.eventSeqs(a.ID); len(got) != 0 {
			t.Fatalf("refused batches stored events %v", got)
		}
		if e.lastSeq(dev.ID) != 0 {
			t.Fatal("refused batches moved the report sequence")
		}
		if got := e.report(dev.ID, T0, rep(a.ID, 1, store.AssignDownloading, 0), maxed); !slices.Equal(got, outcomes(applied, applied)) {
			t.Fatalf("outcomes at the limits = %v", got)
		}
		evs, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, a.ID)
		if err != nil || len(evs) != 2 || evs[1].LogTail != maxed.LogTail || evs[1].ErrorCode != maxed.ErrorCode {
			t.Fatalf("stored events = %d, %v", len(evs), err)
		}
	})

	t.Run("TransitionTable", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		rel := e.published("1.2.0", "gw-200", "B")
		const (
			notified    = store.AssignNotified
			downloading = store.AssignDownloading
			installing  = store.AssignInstalling
			rebooting   = store.AssignRebooting
			verifying   = store.AssignVerifying
			succeeded   = store.AssignSucceeded
			failed      = store.AssignFailed
		)
		cases := []struct {
			before  []store.AssignmentState // applied first, in order
			report  store.AssignmentState
			applies bool
		}{
			{nil, notified, true},
			{nil, downloading, true},
			{nil, succeeded, true},
			{nil, store.AssignPending, false},
			{[]store.AssignmentState{downloading}, downloading, true},
			{[]store.AssignmentState{downloading}, rebooting, true},
			{[]store.AssignmentState{installing}, downloading, false},
			{[]store.AssignmentState{verifying}, notified, false},
			{[]store.AssignmentState{downloading}, store.AssignCanceled, false},
			{[]store.AssignmentState{downloading}, store.AssignTimedOut, false},
			{[]store.AssignmentState{downloading}, store.AssignSuperseded, false},
			{[]store.AssignmentState{installing}, failed, true},
			{[]store.AssignmentState{notified}, store.AssignSkipped, true},
			{[]store.AssignmentState{installing, rebooting, verifying}, store.AssignRolledBack, true},
			{[]store.AssignmentState{downloading, failed}, downloading, false},
			{[]store.AssignmentState{failed}, succeeded, false},
			{[]store.AssignmentState{store.AssignSkipped}, failed, false},
		}
		var seq int64
		for _, c := range cases {
			name := fmt.Sprintf("%v->%s", c.before, c.report)
			a, _ := e.assign(dev.ID, rel.ID, T0)
			for _, st := range c.before {
				seq++
				if got := e.report(dev.ID, T0, rep(a.ID, seq, st, 0)); got[0] != applied {
					t.Fatalf("%s: setup report %s = %s", name, st, got[0])
				}
			}
			wantState := store.AssignPending
			if len(c.before) > 0 {
				wantState = c.before[len(c.before)-1]
			}
			want := recorded
			if c.applies {
				want, wantState = applied, c.report
			}
			seq++
			r := rep(a.ID, seq, c.report, 50)
			r.ErrorCode = "E42"
			if got := e.report(dev.ID, T0.Add(time.Minute), r); got[0] != want {
				t.Fatalf("%s: outcome %s, want %s", name, got[0], want)
			}
			cur, err := e.s.Assignment(e.ctx, store.DefaultTenant, a.ID)
			if err != nil {
				t.Fatal(err)
			}
			if cur.State != wantState || cur.Active != !wantState.Terminal() {
				t.Fatalf("%s: assignment %s (active %v), want %s", name, cur.State, cur.Active, wantState)
			}
			if c.applies && (cur.Progress != 50 || cur.ErrorCode != "E42" || !cur.UpdatedAt.Equal(T0.Add(time.Minute))) {
				t.Fatalf("%s: applied report did not update the assignment: %+v", name, cur)
			}
			evs, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, a.ID)
			if err != nil || len(evs) != len(c.before)+1 || evs[len(evs)-1].Applied != c.applies {
				t.Fatalf("%s: events %+v, %v", name, evs, err)
			}
		}
		if e.gaps(dev.ID) != "" {
			t.Fatalf("consecutive reports left gaps %q", e.gaps(dev.ID))
		}
	})

	t.Run("ReportsForOtherAssignmentsAreOnlyRecorded", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		rel := e.published("1.2.0", "gw-200", "B")
		dev, other := e.device("gw-200", "B"), e.device("gw-200", "B")
		old, _ := e.assign(dev.ID, rel.ID, T0)
		cur, _ := e.assign(dev.ID, rel.ID, T0)
		theirs, _ := e.assign(other.ID, rel.ID, T0)
		got := e.report(dev.ID, T0,
			rep(old.ID, 1, store.AssignDownloading, 0), // superseded
			rep("no-such-assignment", 2, store.AssignFailed, 0),
			rep(theirs.ID, 3, store.AssignFailed, 0), // another device's
			rep(cur.ID, 4, store.AssignDownloading, 0))
		if !slices.Equal(got, outcomes(recorded, recorded, recorded, applied)) {
			t.Fatalf("outcomes = %v", got)
		}
		for id, want := range map[string]store.AssignmentState{old.ID: store.AssignSuperseded, theirs.ID: store.AssignPending} {
			after, err := e.s.Assignment(e.ctx, store.DefaultTenant, id)
			if err != nil || after.State != want {
				t.Fatalf("assignment %s is %s (%v), want %s", id, after.State, err, want)
			}
		}
		if got := e.eventSeqs(theirs.ID); len(got) != 0 {
			t.Fatalf("another device's report shows in the assignment's history: %v", got)
		}
		if got := e.eventSeqs(old.ID); !slices.Equal(got, []int64{1}) {
			t.Fatalf("superseded assignment's events = %v", got)
		}
		_, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, "no-such-assignment")
		wantErr(t, "events of unknown assignment", err, store.ErrNotFound)
	})

	t.Run("SuccessSetsInstalledVersion", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		dev := e.device("gw-200", "B")
		r1 := e.published("1.2.0", "gw-200", "B")
		a, _ := e.assign(dev.ID, r1.ID, T0)
		at := T0.Add(time.Hour)
		if got := e.report(dev.ID, at, rep(a.ID, 1, store.AssignInstalling, 0), rep(a.ID, 2, store.AssignSucceeded, 100)); !slices.Equal(got, outcomes(applied, applied)) {
			t.Fatalf("outcomes = %v", got)
		}
		d, err := e.s.Device(e.ctx, store.DefaultTenant, dev.ID)
		if err != nil {
			t.Fatal(err)
		}
		if d.Version != "1.2.0" || d.PreviousVersion != dev.Version || d.VersionSince == nil || !d.VersionSince.Equal(at) {
			t.Fatalf("device after success: version %q, previous %q, since %v", d.Version, d.PreviousVersion, d.VersionSince)
		}
		_, err = e.s.ActiveAssignment(e.ctx, store.DefaultTenant, dev.ID)
		wantErr(t, "active assignment after success", err, store.ErrNotFound)
		// The filter language sees the new version through version_key.
		n := 0
		if err := e.s.DB().QueryRowContext(e.ctx, e.s.Dialect().Rebind(`SELECT COUNT(*) FROM devices WHERE tenant_id = ? AND version_key > ? AND version_key < ?`),
			store.DefaultTenant, semver.Key(semver.MustParse("1.1.9")), semver.Key(semver.MustParse("1.2.1"))).Scan(&n); err != nil || n != 1 {
			t.Fatalf("devices with 1.1.9 < version_key < 1.2.1: %d, %v", n, err)
		}

		// A delta from the installed version now matches the device.
		r2 := e.draft("1.3.0")
		delta := artifactOf(r2.ID, "gw-200", store.ArtifactDelta, "rootfs", "B")
		delta.FromVersion = "1.2.0"
		e.addArtifact(delta)
		if _, err := e.s.PublishRelease(e.ctx, store.DefaultTenant, r2.ID, Admin, T0); err != nil {
			t.Fatal(err)
		}
		b, _ := e.assign(dev.ID, r2.ID, at)
		later := at.Add(time.Hour)
		e.report(dev.ID, later, rep(b.ID, 3, store.AssignSucceeded, 100))
		d, err = e.s.Device(e.ctx, store.DefaultTenant, dev.ID)
		if err != nil || d.Version != "1.3.0" || d.PreviousVersion != "1.2.0" || !d.VersionSince.Equal(later) {
			t.Fatalf("device after second success: %q (previous %q, since %v), %v", d.Version, d.PreviousVersion, d.VersionSince, err)
		}

		// Failure keeps the installed version and records why.
		c, _ := e.assign(dev.ID, r1.ID, later)
		fail := rep(c.ID, 4, store.AssignFailed, 30)
		fail.ErrorCode, fail.Message, fail.LogTail = "EIO", "write to slot B failed", "dd: error writing '/dev/mmcblk0p3'"
		e.report(dev.ID, later.Add(time.Minute), fail)
		d, err = e.s.Device(e.ctx, store.DefaultTenant, dev.ID)
		if err != nil || d.Version != "1.3.0" || d.PreviousVersion != "1.2.0" {
			t.Fatalf("device after failure: %q (previous %q), %v", d.Version, d.PreviousVersion, err)
		}
		cur, err := e.s.Assignment(e.ctx, store.DefaultTenant, c.ID)
		if err != nil || cur.State != store.AssignFailed || cur.Active || cur.ErrorCode != "EIO" || cur.Reason != "write to slot B failed" {
			t.Fatalf("failed assignment = %+v, %v", cur, err)
		}
		evs, err := e.s.AssignmentEvents(e.ctx, store.DefaultTenant, c.ID)
		if err != nil || len(evs) != 1 || evs[0].LogTail != fail.LogTail || !evs[0].ReportedAt.Equal(T0) {
			t.Fatalf("failure event = %+v, %v", evs, err)
		}
		e.verifyAudit()
	})

	t.Run("ConcurrentBatchesOnSharedDevices", func(t *testing.T) {
		t.Parallel()
		e := newReleaseEnv(t, h)
		rel := e.published("1.2.0", "gw-200", "B")
		var devs []store.Device
		var asg []store.Assignment
		for range 4 {
			d := e.device("gw-200", "B")
			a, _ := e.assign(d.ID, rel.ID, T0)
			devs, asg = append(devs, d), append(asg, a)
		}
		// Batch g carries seq g+1 of every device, listing the devices in a
		// different order each time; on PostgreSQL this would deadlock if
		// rows were locked in batch order.
		const batches = 8
		var wg sync.WaitGroup
		errs := make([]error, batches)
		for g := range batches {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var batch []store.DeviceReports
				for k := range devs {
					i := (k + g) % len(devs)
					if g%2 == 1 {
						i = len(devs) - 1 - i
					}
					batch = append(batch, store.DeviceReports{TenantID: store.DefaultTenant, DeviceID: devs[i].ID,
						Reports: []store.StatusReport{rep(asg[i].ID, int64(g+1), store.AssignDownloading, g)}})
				}
				_, errs[g] = e.s.RecordReports(e.ctx, batch, T0)
			}()
		}
		wg.Wait()
		for g, err := range errs {
			if err != nil {
				t.Fatalf("batch %d: %v", g, err)
			}
		}
		for i, d := range devs {
			if got := e.eventSeqs(asg[i].ID); len(got) != batches || e.lastSeq(d.ID) != batches || e.gaps(d.ID) != "" {
				t.Fatalf("device %d: events %v, last seq %d, gaps %q", i, got, e.lastSeq(d.ID), e.gaps(d.ID))
			}
		}
	})
}
