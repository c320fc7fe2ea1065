package wire

import (
	"fmt"
	"maps"
	"slices"

	"github.com/updraft/updraft/internal/semver"
)

// ReportStates are the assignment states a device may report, in the
// order of a normal update. "notified" acknowledges an assignment the
// device has not started (for example while an install gate blocks it;
// the message says why); "canceled" acknowledges a cancel. The server sets
// "pending", "timed-out" and "superseded" itself.
var ReportStates = []string{
	"notified", "downloading", "installing", "rebooting", "verifying",
	"succeeded", "failed", "rolled-back", "skipped", "canceled",
}

// DecodeCheckIn decodes and validates a check-in body.
func DecodeCheckIn(body []byte) (CheckInRequest, error) {
	var r CheckInRequest
	if err := decodeStrict(body, &r); err != nil {
		return CheckInRequest{}, err
	}
	if r.Version == "" {
		return CheckInRequest{}, fieldErr("version", "required: the installed firmware version, a semantic version such as 1.4.2")
	}
	if _, err := semver.Parse(r.Version); err != nil {
		return CheckInRequest{}, fieldErr("version", "%v", err)
	}
	if r.State != "" && !isState(r.State) {
		return CheckInRequest{}, fieldErr("state", "must be 1 to %d characters of a-z 0-9 -", MaxStateLen)
	}
	if r.AssignmentID != "" && !isName(r.AssignmentID, MaxNameLen) {
		return CheckInRequest{}, fieldErr("assignment_id", "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxNameLen)
	}
	if r.DeviceType != "" && !isName(r.DeviceType, MaxNameLen) {
		return CheckInRequest{}, fieldErr("device_type", "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxNameLen)
	}
	if r.HWRev != "" && !isName(r.HWRev, MaxNameLen) {
		return CheckInRequest{}, fieldErr("hw_rev", "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxNameLen)
	}
	if r.TimeZone != "" && !isTimeZoneName(r.TimeZone) {
		return CheckInRequest{}, fieldErr("time_zone", "%q is not an IANA time zone name such as Europe/Berlin", r.TimeZone)
	}
	if err := checkAttributes("attributes", r.Attributes); err != nil {
		return CheckInRequest{}, err
	}
	if r.SecurityFloor != nil && *r.SecurityFloor < 0 {
		return CheckInRequest{}, fieldErr("security_floor", "must not be negative")
	}
	return r, nil
}

func isState(s string) bool {
	if s == "" || len(s) > MaxStateLen {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '-') {
			return false
		}
	}
	return true
}

// isTimeZoneName checks the form of an IANA zone name; whether the zone
// exists is for the server to check against its tz database.
func isTimeZoneName(s string) bool {
	if s == "" || len(s) > MaxTimeZoneLen || s == "Local" || s[0] == '/' || s[len(s)-1] == '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		b := s[i]
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '/' || b == '_' || b == '-' || b == '+') {
			return false
		}
		if b == '/' && s[i+1] == '/' {
			return false
		}
	}
	return true
}

func checkAttributes(field string, attrs map[string]string) error {
	if len(attrs) > MaxAttributes {
		return fieldErr(field, "%d attributes, at most %d allowed", len(attrs), MaxAttributes)
	}
	for _, k := range slices.Sorted(maps.Keys(attrs)) {
		if !isName(k, MaxNameLen) {
			return fieldErr(field, "name %q must be 1 to %d characters of A-Z a-z 0-9 . _ -", k, MaxNameLen)
		}
		v := attrs[k]
		if len(v) > MaxAttributeValueLen {
			return fieldErr(field+"."+k, "longer than %d bytes", MaxAttributeValueLen)
		}
		if !isText(v, oneLine) {
			return fieldErr(field+"."+k, "contains control characters")
		}
	}
	return nil
}

// DecodeReports decodes and validates a reports body. Sequence numbers
// must grow strictly within one request.
func DecodeReports(body []byte) (ReportsRequest, error) {
	var r ReportsRequest
	if err := decodeStrict(body, &r); err != nil {
		return ReportsRequest{}, err
	}
	switch n := len(r.Reports); {
	case n == 0:
		return ReportsRequest{}, fieldErr("reports", "required: at least one report")
	case n > MaxReports:
		return ReportsRequest{}, fieldErr("reports", "%d reports, at most %d per request", n, MaxReports)
	}
	for i, rep := range r.Reports {
		f := func(name string) string { return fmt.Sprintf("reports[%d].%s", i, name) }
		if !isName(rep.AssignmentID, MaxNameLen) {
			return ReportsRequest{}, fieldErr(f("assignment_id"), "required: 1 to %d characters of A-Z a-z 0-9 . _ -", MaxNameLen)
		}
		if rep.Seq < 1 {
			return ReportsRequest{}, fieldErr(f("seq"), "must be a positive integer")
		}
		if i > 0 && rep.Seq <= r.Reports[i-1].Seq {
			return ReportsRequest{}, fieldErr(f("seq"), "%d does not follow %d; sequence numbers must grow within a request", rep.Seq, r.Reports[i-1].Seq)
		}
		if !slices.Contains(ReportStates, rep.State) {
			return ReportsRequest{}, fieldErr(f("state"), "%q is not one of %v", rep.State, ReportStates)
		}
		if rep.Progress < 0 || rep.Progress > 100 {
			return ReportsRequest{}, fieldErr(f("progress"), "must be 0 to 100")
		}
		if rep.ErrorCode != "" && !isName(rep.ErrorCode, MaxErrorCodeLen) {
			return ReportsRequest{}, fieldErr(f("error_code"), "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxErrorCodeLen)
		}
		if len(rep.Message) > MaxMessageLen {
			return ReportsRequest{}, fieldErr(f("message"), "longer than %d bytes", MaxMessageLen)
		}
		if !isText(rep.Message, multiLine) {
			return ReportsRequest{}, fieldErr(f("message"), "contains control characters")
		}
		if len(rep.LogTail) > MaxLogTailLen {
			return ReportsRequest{}, fieldErr(f("log_tail"), "longer than %d bytes; send the end of the log", MaxLogTailLen)
		}
		if !isText(rep.LogTail, logText) {
			return ReportsRequest{}, fieldErr(f("log_tail"), "contains NUL bytes")
		}
		if !rep.ReportedAt.IsZero() && (rep.ReportedAt.Year() < 2000 || rep.ReportedAt.Year() > 9999) {
			return ReportsRequest{}, fieldErr(f("reported_at"), "year %d is out of range", rep.ReportedAt.Year())
		}
	}
	return r, nil
}

// DecodeTelemetry decodes and validates a telemetry body.
func DecodeTelemetry(body []byte) (TelemetryRequest, error) {
	var r TelemetryRequest
	if err := decodeStrict(body, &r); err != nil {
		return TelemetryRequest{}, err
	}
	switch n := len(r.Points); {
	case n == 0:
		return TelemetryRequest{}, fieldErr("points", "required: at least one point")
	case n > MaxPoints:
		return TelemetryRequest{}, fieldErr("points", "%d points, at most %d per request", n, MaxPoints)
	}
	for i, p := range r.Points {
		if !isName(p.Name, MaxMetricNameLen) {
			return TelemetryRequest{}, fieldErr(fmt.Sprintf("points[%d].name", i), "required: 1 to %d characters of A-Z a-z 0-9 . _ -", MaxMetricNameLen)
		}
		if p.At.IsZero() {
			return TelemetryRequest{}, fieldErr(fmt.Sprintf("points[%d].at", i), "required: an RFC 3339 time")
		}
		if p.At.Year() < 2000 || p.At.Year() > 9999 {
			return TelemetryRequest{}, fieldErr(fmt.Sprintf("points[%d].at", i), "year %d is out of range", p.At.Year())
		}
	}
	return r, nil
}
