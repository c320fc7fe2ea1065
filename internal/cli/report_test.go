package cli

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/client"
	"github.com/updraft/updraft/internal/client/clienttest"
	"github.com/updraft/updraft/internal/store"
)

func readCSVFile(t *testing.T, path string) [][]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	recs, err := csv.NewReader(bytes.NewReader(b)).ReadAll()
	if err != nil {
		t.Fatalf("%s is not CSV: %v\n%s", path, err, b)
	}
	return recs
}

// TestReportAndExportCommands builds a small history through the command
// line and the store, then reads it back with report compliance and audit
// export in every format.
func TestReportAndExportCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	ctx := context.Background()
	st, clk := f.srv.Store, f.srv.Clock
	sn1 := f.srv.Enroll(clienttest.Device{Serial: "SN-1", DeviceType: "gw-200", HWRev: "B", Accept: true})
	f.srv.Enroll(clienttest.Device{Serial: "SN-2", DeviceType: "gw-200", HWRev: "B", Accept: true})
	sn3 := f.srv.Enroll(clienttest.Device{Serial: "SN-3", DeviceType: "gw-200", HWRev: "B", Accept: true})
	dir := t.TempDir()
	img := filepath.Join(dir, "fw.img")
	if err := os.WriteFile(img, []byte("firmware"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.steps([]step{
		{args: []string{"release", "create", "1.0.0", "--severity", "low"}, stdout: []string{"created draft release 1.0.0"}},
		{args: []string{"release", "upload", "1.0.0", img, "--device-type", "gw-200", "--hw-rev", "B", "--type", "raw-image"}, stdout: []string{"uploaded"}},
		{args: []string{"release", "publish", "1.0.0"}, stdout: []string{"published"}},
		{args: []string{"release", "create", "1.1.0", "--severity", "high", "--cve", "CVE-2026-1001"}, stdout: []string{"created draft release 1.1.0"}},
		{args: []string{"release", "upload", "1.1.0", img, "--device-type", "gw-200", "--hw-rev", "B", "--type", "raw-image"}, stdout: []string{"uploaded"}},
		{args: []string{"release", "publish", "1.1.0"}, stdout: []string{"published"}},
		{args: []string{"device", "assign", sn1.ID, "1.0.0"}, stdout: []string{"assigned release 1.0.0"}},
	})
	as, err := st.ActiveAssignment(ctx, store.DefaultTenant, sn1.ID)
	if err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)
	if out, err := st.RecordReports(ctx, []store.DeviceReports{{TenantID: store.DefaultTenant, DeviceID: sn1.ID, Reports: []store.StatusReport{
		{AssignmentID: as.ID, Seq: 1, State: store.AssignSucceeded, Progress: 100, ReportedAt: clk.Now()},
	}}}, clk.Now()); err != nil || out[0][0] != store.ReportApplied {
		t.Fatalf("report success: %v %v", out, err)
	}
	if _, err := st.UpdateDeviceReport(ctx, store.DefaultTenant, sn3.ID, store.DeviceReport{Version: "0.9.0", Now: clk.Now()}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(time.Minute)

	csvOut := filepath.Join(dir, "report.csv")
	f.steps([]step{
		{args: []string{"report", "compliance"}, stdout: []string{
			"DEVICE", "APPROVALS", "EXPOSURE", "SN-1", "1.0.0", "assignment", "create by ", "needs 1.1.0 (high)",
			"SN-3", "0.9.0", "reported", "unknown",
			"3 devices at 2026-03-01T12:", "2 exposed; by version: 0.9.0: 1, 1.0.0: 1, unknown: 1"}},
		{args: []string{"report", "compliance", "--release", "1.0.0"}, stdout: []string{"SN-1", "1 devices at"}, notOut: []string{"SN-3"}},
		{args: []string{"report", "compliance", "--at", "2026-02-01"}, stdout: []string{"0 devices at 2026-02-01T23:59:59Z"}},
		{args: []string{"report", "compliance", "--format", "csv", "-f", csvOut}, stdout: []string{"^$"}, stderr: []string{"wrote " + csvOut}},
		{args: []string{"report", "compliance", "--format", "xml"}, code: 2, stderr: []string{"--format"}},
		{args: []string{"report", "compliance", "--exposed", "maybe"}, code: 2, stderr: []string{"--exposed"}},
		{args: []string{"report", "compliance", "--at", "last tuesday"}, code: 1, stderr: []string{"(bad_parameter)"}},
		{args: []string{"report", "compliance", "--release", "9.9.9"}, code: 1, stderr: []string{"(not_found)"}},
	})
	recs := readCSVFile(t, csvOut)
	if len(recs) != 4 || recs[0][0] != "device_id" || recs[0][14] != "exposures" {
		t.Fatalf("CSV report: %v", recs)
	}

	var rep client.ComplianceReport
	f.decode(&rep, "report", "compliance", "--cve", "cve-2026-1001")
	if !rep.ExposedOnly || rep.CVE != "CVE-2026-1001" || len(rep.Items) != 2 {
		t.Fatalf("-o json with --cve: %+v", rep)
	}
	r := f.run(runOpts{}, "report", "compliance", "--format", "json", "--at", "2026-02-01")
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &rep) != nil || rep.Items == nil || len(rep.Items) != 0 {
		t.Fatalf("empty JSON report: %d %q", r.code, r.stdout)
	}

	// Audit export: the same entries as the listing, in CSV and JSON.
	var listed client.List[store.AuditEntry]
	f.decode(&listed, "audit", "list", "--all", "--limit", "5")
	auditOut := filepath.Join(dir, "audit.csv")
	f.steps([]step{
		{args: []string{"audit", "export", "-f", auditOut}, stderr: []string{"wrote " + auditOut}},
		{args: []string{"audit", "export", "--format", "yaml"}, code: 2, stderr: []string{"--format"}},
		{args: []string{"audit", "export", "--since", "tomorrow"}, code: 2, stderr: []string{"--since"}},
		{args: []string{"audit", "export", "--since", "2026-03-02", "--until", "2026-03-01"}, code: 2, stderr: []string{"--since must be before --until"}},
		{args: []string{"audit", "list", "--action", "release.publish", "--since", "2026-03-01"}, stdout: []string{"release.publish"}, notOut: []string{"release.create"}},
	})
	if recs := readCSVFile(t, auditOut); len(recs) != len(listed.Items)+1 || recs[1][10] != listed.Items[0].Hash {
		t.Fatalf("audit CSV has %d records for %d entries", len(recs), len(listed.Items))
	}
	r = f.run(runOpts{}, "audit", "export", "--format", "json", "--action", "release.publish")
	var published []store.AuditEntry
	if r.code != 0 || json.Unmarshal([]byte(r.stdout), &published) != nil || len(published) != 2 {
		t.Fatalf("JSON export of release.publish: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r = f.run(runOpts{}, "audit", "export", "--since", "2026-03-02")
	if r.code != 0 || strings.Count(r.stdout, "\n") != 1 || !strings.HasPrefix(r.stdout, "seq,at,") {
		t.Fatalf("export of nothing: %q", r.stdout)
	}
}

// TestWriteOutputLeavesNoPartialFile: a download that fails half way
// leaves neither the target nor a temporary file; a complete one replaces
// the target.
func TestWriteOutputLeavesNoPartialFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	target := filepath.Join(dir, "out.csv")
	var stderr bytes.Buffer
	e := &Env{Stdout: io.Discard, Stderr: &stderr}
	broken := errors.New("connection reset")
	err := e.writeOutput(target, func(w io.Writer) error {
		_, _ = io.WriteString(w, "half a file")
		return broken
	})
	if !errors.Is(err, broken) {
		t.Fatalf("err %v", err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Fatalf("left behind %v", ents)
	}
	for _, content := range []string{"first\n", "second\n"} {
		if err := e.writeOutput(target, func(w io.Writer) error { _, err := io.WriteString(w, content); return err }); err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(target); string(b) != content {
			t.Fatalf("file holds %q, want %q", b, content)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 1 {
		t.Fatalf("directory holds %v, want only the target", ents)
	}
}
