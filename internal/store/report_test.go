package store_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func TestStatusReportValidate(t *testing.T) {
	t.Parallel()
	good := store.StatusReport{
		AssignmentID: "a1", Seq: 1, State: store.AssignDownloading, Progress: 40,
		ReportedAt: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
	}
	tests := []struct {
		name   string
		change func(r *store.StatusReport)
		want   string // part of the error; empty: valid
	}{
		{"good", func(*store.StatusReport) {}, ""},
		{"failure with everything at its limit", func(r *store.StatusReport) {
			r.State, r.Progress = store.AssignFailed, 100
			r.AssignmentID = strings.Repeat("a", store.MaxReportAssignmentID)
			r.ErrorCode = strings.Repeat("E", store.MaxReportErrorCode)
			r.Message = strings.Repeat("m", store.MaxReportMessage)
			r.LogTail = strings.Repeat("l\n", store.MaxReportLogTail/2)
		}, ""},
		{"no assignment", func(r *store.StatusReport) { r.AssignmentID = "" }, "assignment id is required"},
		{"long assignment", func(r *store.StatusReport) { r.AssignmentID = strings.Repeat("a", store.MaxReportAssignmentID+1) }, "assignment id is 129 bytes"},
		{"spaced assignment", func(r *store.StatusReport) { r.AssignmentID = " a1" }, "white space"},
		{"control in assignment", func(r *store.StatusReport) { r.AssignmentID = "a\x1b1" }, "control character"},
		{"zero seq", func(r *store.StatusReport) { r.Seq = 0 }, "sequence number 0"},
		{"negative seq", func(r *store.StatusReport) { r.Seq = -3 }, "sequence number -3"},
		{"unknown state", func(r *store.StatusReport) { r.State = "exploding" }, `state "exploding"`},
		{"empty state", func(r *store.StatusReport) { r.State = "" }, `state ""`},
		{"progress over", func(r *store.StatusReport) { r.Progress = 101 }, "progress 101"},
		{"progress under", func(r *store.StatusReport) { r.Progress = -1 }, "progress -1"},
		{"long error code", func(r *store.StatusReport) { r.ErrorCode = strings.Repeat("E", store.MaxReportErrorCode+1) }, "error code is 65 bytes"},
		{"newline in error code", func(r *store.StatusReport) { r.ErrorCode = "E\n1" }, "control character"},
		{"long message", func(r *store.StatusReport) { r.Message = strings.Repeat("m", store.MaxReportMessage+1) }, "report message is"},
		{"NUL in message", func(r *store.StatusReport) { r.Message = "a\x00b" }, "NUL"},
		{"invalid UTF-8 log", func(r *store.StatusReport) { r.LogTail = "\xff\xfe" }, "not valid UTF-8"},
		{"long log", func(r *store.StatusReport) { r.LogTail = strings.Repeat("l", store.MaxReportLogTail+1) }, "log tail is"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := good
			tt.change(&r)
			err := r.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("Validate() = %v, want nil", err)
			case tt.want != "" && (!errors.Is(err, store.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("Validate() = %v, want ErrInvalidRequest mentioning %q", err, tt.want)
			}
		})
	}
}

// TestStatusReportValidateKnowsEveryState keeps Validate's list of states
// in step with the declared ones: a report may name any of them (whether
// it is applied is RecordReports' business).
func TestStatusReportValidateKnowsEveryState(t *testing.T) {
	t.Parallel()
	for _, st := range []store.AssignmentState{
		store.AssignPending, store.AssignNotified, store.AssignDownloading, store.AssignInstalling,
		store.AssignRebooting, store.AssignVerifying, store.AssignSucceeded, store.AssignFailed,
		store.AssignRolledBack, store.AssignTimedOut, store.AssignSkipped, store.AssignCanceled,
		store.AssignSuperseded,
	} {
		r := store.StatusReport{AssignmentID: "a1", Seq: 1, State: st}
		if err := r.Validate(); err != nil {
			t.Errorf("state %s: %v", st, err)
		}
	}
}
