package store

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Limits on a status report, enforced by StatusReport.Validate and so by
// RecordReports. The API layers bound request bodies; these bound what is
// stored.
const (
	MaxReportAssignmentID = 128
	MaxReportErrorCode    = 64
	MaxReportMessage      = 4 << 10
	MaxReportLogTail      = 16 << 10
)

// Validate checks r against what RecordReports accepts, without a
// database, so that a caller gathering many devices' reports into one
// group commit can answer a bad report on its own. The error wraps
// ErrInvalidRequest and its text is safe to show to the device.
func (r StatusReport) Validate() error {
	if r.AssignmentID == "" {
		return invalidReport("assignment id is required")
	}
	if err := checkReportLabel("assignment id", r.AssignmentID, MaxReportAssignmentID); err != nil {
		return err
	}
	if r.Seq < 1 {
		return invalidReport("report sequence number %d is not positive", r.Seq)
	}
	if !r.State.known() {
		return invalidReport("report state %q is not an assignment state", r.State)
	}
	if r.Progress < 0 || r.Progress > 100 {
		return invalidReport("report progress %d is outside 0..100", r.Progress)
	}
	if err := checkReportLabel("error code", r.ErrorCode, MaxReportErrorCode); err != nil {
		return err
	}
	if err := checkReportText("report message", r.Message, MaxReportMessage); err != nil {
		return err
	}
	return checkReportText("log tail", r.LogTail, MaxReportLogTail)
}

// known reports whether s is an assignment state at all.
func (s AssignmentState) known() bool {
	switch s {
	case AssignPending, AssignNotified, AssignDownloading, AssignInstalling,
		AssignRebooting, AssignVerifying, AssignSucceeded, AssignFailed,
		AssignRolledBack, AssignTimedOut, AssignSkipped, AssignCanceled,
		AssignSuperseded:
		return true
	}
	return false
}

func invalidReport(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidRequest, fmt.Sprintf(format, args...))
}

// checkReportText refuses what PostgreSQL's TEXT cannot hold (invalid
// UTF-8, NUL) and values longer than max bytes, so both databases answer
// alike.
func checkReportText(field, s string, max int) error {
	if len(s) > max {
		return invalidReport("%s is %d bytes long; the limit is %d", field, len(s), max)
	}
	if !utf8.ValidString(s) {
		return invalidReport("%s is not valid UTF-8", field)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return invalidReport("%s contains a NUL byte", field)
	}
	return nil
}

// checkReportLabel is checkReportText for identifiers: also no control
// characters and no leading or trailing white space. Empty is allowed.
func checkReportLabel(field, s string, max int) error {
	if err := checkReportText(field, s, max); err != nil {
		return err
	}
	if strings.TrimSpace(s) != s {
		return invalidReport("%s %q has leading or trailing white space", field, s)
	}
	if strings.IndexFunc(s, unicode.IsControl) >= 0 {
		return invalidReport("%s %q contains a control character", field, s)
	}
	return nil
}
