package mgmtapi

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/md5"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

func TestDeviceLifecycle(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.enroll("SN-1", "gw-200", "B", false)

	var d store.Device
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + id + "/accept"}).decode(t, &d)
	if d.State != store.DeviceAccepted {
		t.Fatalf("state after accept = %s", d.State)
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + id + "/tags", body: map[string]any{"add": []string{"lab", "needs-review"}}}).decode(t, &d)
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + id + "/tags", body: map[string]any{"remove": []string{"needs-review"}}}).decode(t, &d)
	if !slices.Equal(d.Tags, []string{"lab"}) {
		t.Fatalf("tags = %v, want [lab]", d.Tags)
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + id + "/groups", body: map[string]any{"add": []string{"berlin"}}}).decode(t, &d)
	if !slices.Equal(d.Groups, []string{"berlin"}) {
		t.Fatalf("groups = %v, want [berlin]", d.Groups)
	}

	var detail deviceDetail
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + id}).decode(t, &detail)
	if detail.ID != id || len(detail.Credentials) != 1 || detail.Credentials[0].Kind != store.CredPublicKey || detail.ActiveAssignment != nil {
		t.Fatalf("device detail = %+v", detail)
	}

	// A target token is shown once; the store keeps only its hash.
	var tt struct {
		Credential credentialView `json:"credential"`
		Token      string         `json:"token"`
	}
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + id + "/target-token"}).decode(t, &tt)
	sum := sha256.Sum256([]byte(tt.Token))
	if len(tt.Token) < 16 || tt.Credential.Fingerprint != hex.EncodeToString(sum[:]) || tt.Credential.Kind != store.CredToken {
		t.Fatalf("target token response = %+v", tt)
	}
	e.must(204, req{token: e.operator, method: "DELETE", path: "/devices/" + id + "/credentials/" + tt.Credential.ID})
	e.must(404, req{token: e.operator, method: "DELETE", path: "/devices/" + id + "/credentials/" + tt.Credential.ID + "x"})
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + id}).decode(t, &detail)
	for _, c := range detail.Credentials {
		if c.ID == tt.Credential.ID && c.State != store.CredRevoked {
			t.Fatalf("revoked target token is %s", c.State)
		}
	}

	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + id + "/decommission"}).decode(t, &d)
	if d.State != store.DeviceDecommissioned {
		t.Fatalf("state after decommission = %s", d.State)
	}
	if n := e.notifications(); !slices.Contains(n, id) {
		t.Fatalf("device was never notified: %v", n)
	}

	other := e.enroll("SN-2", "gw-200", "C", false)
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + other + "/reject"}).decode(t, &d)
	if d.State != store.DeviceRejected {
		t.Fatalf("state after reject = %s", d.State)
	}
}

func TestDeviceListFilterAndPagination(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	for i := range 5 {
		rev := "B"
		if i%2 == 1 {
			rev = "C"
		}
		e.enroll(fmt.Sprintf("SN-%d", i), "gw-200", rev, i < 4)
	}
	e.enroll("OTHER", "sensor-9", "A", true)

	var all []string
	after := ""
	pages := 0
	for {
		var l listBody[store.Device]
		path := "/devices?limit=2&q=" + url.QueryEscape(`device_type == "gw-200"`)
		if after != "" {
			path += "&after=" + url.QueryEscape(after)
		}
		e.must(200, req{token: e.viewer, method: "GET", path: path}).decode(t, &l)
		pages++
		for _, d := range l.Items {
			all = append(all, d.Serial)
		}
		if l.Next == "" {
			break
		}
		after = l.Next
	}
	if len(all) != 5 || pages != 3 {
		t.Fatalf("paged %d devices in %d pages (%v), want 5 in 3", len(all), pages, all)
	}

	var l listBody[store.Device]
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices?state=pending"}).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].Serial != "SN-4" {
		t.Fatalf("pending devices = %+v", l.Items)
	}
	var c struct{ Count int }
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/count?q=" + url.QueryEscape(`hw_rev in ("B", "C") and state == "accepted"`)}).decode(t, &c)
	if c.Count != 4 {
		t.Fatalf("count = %d, want 4", c.Count)
	}
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/count"}).decode(t, &c)
	if c.Count != 6 {
		t.Fatalf("count without filter = %d, want 6", c.Count)
	}
}

func TestPreauthorize(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	pemText := string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	var c credentialView
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/preauthorize", body: map[string]any{"public_key": pemText, "serial": "SN-9"}}).decode(t, &c)
	sum := sha256.Sum256(der)
	if c.State != store.CredPreauthorized || c.Fingerprint != hex.EncodeToString(sum[:]) || c.PreauthSerial != "SN-9" || c.Algorithm != "ed25519" {
		t.Fatalf("preauthorized credential = %+v", c)
	}
	before := e.snapshot()
	r := e.must(409, req{token: e.operator, method: "POST", path: "/devices/preauthorize", body: map[string]any{"public_key": pemText}})
	if r.errorCode(t) != "conflict" {
		t.Fatalf("second preauthorization: %s", r.body)
	}
	e.unchanged(before, "repeated preauthorization")
}

func TestReleaseUploadPublishAndFlags(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var rel store.Release
	e.must(201, req{token: e.operator, method: "POST", path: "/releases", body: map[string]any{
		"version": "1.2.0", "notes": "fixes", "security_version": 3, "severity": "critical", "cves": []string{"CVE-2025-1234"},
	}}).decode(t, &rel)
	if rel.State != store.ReleaseDraft || rel.SecurityVersion != 3 || rel.Severity != store.SeverityCritical {
		t.Fatalf("created release = %+v", rel)
	}
	r := e.must(409, req{token: e.operator, method: "POST", path: "/releases/1.2.0/publish"})
	if !strings.Contains(string(r.body), "no artifacts") {
		t.Fatalf("publishing an empty draft: %s", r.body)
	}

	content := bytes.Repeat([]byte("firmware!"), 100000)
	s256, s1, s5 := sha256.Sum256(content), sha1.Sum(content), md5.Sum(content)
	var art store.Artifact
	e.must(201, req{token: e.operator, method: "PUT",
		path:    "/releases/1.2.0/artifacts?device_type=gw-200&hw_revs=B,C&type=raw-image&component=rootfs&name=rootfs.img.gz&compression=gzip",
		body:    bytes.NewReader(content),
		headers: map[string]string{SHA256Header: hex.EncodeToString(s256[:])},
	}).decode(t, &art)
	if art.Size != int64(len(content)) || art.SHA256 != hex.EncodeToString(s256[:]) || art.SHA1 != hex.EncodeToString(s1[:]) || art.MD5 != hex.EncodeToString(s5[:]) {
		t.Fatalf("artifact digests = %+v", art)
	}
	if !slices.Equal(art.HWRevs, []string{"B", "C"}) || art.Compression != "gzip" {
		t.Fatalf("artifact key = %+v", art)
	}
	obj, err := e.blobs.Stat(context.Background(), art.SHA256)
	if err != nil || obj.Size != art.Size {
		t.Fatalf("blob: %+v, %v", obj, err)
	}
	// The same hardware key again is refused before reading the body.
	before := e.snapshot()
	e.must(409, req{token: e.operator, method: "PUT",
		path: "/releases/1.2.0/artifacts?device_type=gw-200&hw_revs=C&type=raw-image&component=rootfs&name=other.img",
		body: strings.NewReader("other content")})
	e.unchanged(before, "overlapping artifact")
	// Another revision is fine.
	e.must(201, req{token: e.operator, method: "PUT",
		path: "/releases/" + rel.ID + "/artifacts?device_type=gw-200&hw_revs=D&type=raw-image&component=rootfs&name=rootfs-d.img",
		body: strings.NewReader("rev D image")})

	e.must(200, req{token: e.operator, method: "POST", path: "/releases/1.2.0/publish"}).decode(t, &rel)
	if rel.State != store.ReleasePublished || len(rel.Artifacts) != 2 {
		t.Fatalf("published release = %+v", rel)
	}
	before = e.snapshot()
	r = e.must(409, req{token: e.operator, method: "PUT",
		path: "/releases/1.2.0/artifacts?device_type=gw-300&hw_revs=A&type=raw-image&name=x.img",
		body: strings.NewReader("late")})
	if r.errorCode(t) != "immutable" {
		t.Fatalf("upload to a published release: %s", r.body)
	}
	e.must(409, req{token: e.operator, method: "DELETE", path: "/releases/1.2.0"})
	e.unchanged(before, "changing a published release")

	e.must(200, req{token: e.operator, method: "POST", path: "/releases/1.2.0/mark-bad", body: map[string]any{"bad": true, "reason": "bricks rev D"}}).decode(t, &rel)
	if !rel.Bad || rel.BadReason != "bricks rev D" {
		t.Fatalf("after mark-bad: %+v", rel)
	}
	e.must(200, req{token: e.operator, method: "POST", path: "/releases/" + rel.ID + "/mark-affected", body: map[string]any{"cves": []string{"CVE-2026-0001", "CVE-2026-0002"}}}).decode(t, &rel)
	if !slices.Equal(rel.AffectedBy, []string{"CVE-2026-0001", "CVE-2026-0002"}) {
		t.Fatalf("affected_by = %v", rel.AffectedBy)
	}
	e.must(200, req{token: e.viewer, method: "GET", path: "/releases/" + rel.ID}).decode(t, &rel)
	if rel.Version != "1.2.0" || !rel.Bad {
		t.Fatalf("get by id: %+v", rel)
	}

	var l listBody[store.Release]
	e.clock.Advance(time.Minute) // newest first: 1.3.0 must be newer
	e.release("1.3.0", "gw-200", []string{"B"}, false)
	e.must(200, req{token: e.viewer, method: "GET", path: "/releases?limit=1"}).decode(t, &l)
	if len(l.Items) != 1 || l.Items[0].Version != "1.3.0" || l.Next == "" {
		t.Fatalf("first page of releases: %+v", l)
	}
	var l2 listBody[store.Release]
	e.must(200, req{token: e.viewer, method: "GET", path: "/releases?limit=1&after=" + url.QueryEscape(l.Next)}).decode(t, &l2)
	if len(l2.Items) != 1 || l2.Items[0].Version != "1.2.0" || l2.Next != "" {
		t.Fatalf("second page of releases: %+v", l2)
	}
}

// TestDeleteDraftLeavesItsBlobsToTheCollector: deleting a draft keeps its
// blobs (another upload may be adopting the same content); the collector
// deletes the one nothing references once the grace period has passed.
func TestDeleteDraftLeavesItsBlobsToTheCollector(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	kept := e.release("2.0.0", "gw-200", []string{"B"}, true)
	// The draft shares one blob with the published release and has one of its own.
	e.must(201, req{token: e.operator, method: "POST", path: "/releases", body: map[string]any{"version": "2.1.0-rc.1"}})
	e.must(201, req{token: e.operator, method: "PUT", path: "/releases/2.1.0-rc.1/artifacts?device_type=gw-200&hw_revs=B&type=raw-image&component=rootfs&name=a.img",
		body: strings.NewReader("image 2.0.0 for gw-200")})
	e.must(201, req{token: e.operator, method: "PUT", path: "/releases/2.1.0-rc.1/artifacts?device_type=gw-200&hw_revs=C&type=raw-image&component=rootfs&name=b.img",
		body: strings.NewReader("only in the draft")})
	if got := len(e.snapshot().blobs); got != 2 {
		t.Fatalf("%d blobs before delete, want 2", got)
	}
	e.must(204, req{token: e.operator, method: "DELETE", path: "/releases/2.1.0-rc.1"})
	e.must(404, req{token: e.viewer, method: "GET", path: "/releases/2.1.0-rc.1"})
	if got := len(e.snapshot().blobs); got != 2 {
		t.Fatalf("%d blobs right after delete, want both still there", got)
	}
	if n := e.collectBlobs(); n != 1 {
		t.Fatalf("collection deleted %d blobs, want 1", n)
	}
	blobs := e.snapshot().blobs
	if len(blobs) != 1 || blobs[0] != kept.Artifacts[0].SHA256 {
		t.Fatalf("blobs after collection = %v, want only %s", blobs, kept.Artifacts[0].SHA256)
	}
}

func TestAssignAndCancel(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev := e.enroll("SN-1", "gw-200", "B", true)
	v1 := e.release("1.0.0", "gw-200", []string{"B", "C"}, true)
	v2 := e.release("1.1.0", "gw-200", []string{"B"}, true)

	var first assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": "1.0.0"}}).decode(t, &first)
	if first.Assignment.ReleaseID != v1.ID || !first.Assignment.Active || first.Superseded != nil {
		t.Fatalf("first assignment = %+v", first)
	}
	var second assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": v2.ID}}).decode(t, &second)
	if second.Superseded == nil || second.Superseded.ID != first.Assignment.ID || second.Assignment.Version != "1.1.0" {
		t.Fatalf("second assignment = %+v", second)
	}
	if n := e.notifications(); len(n) != 2 || n[0] != dev || n[1] != dev {
		t.Fatalf("notifications = %v, want the device twice", n)
	}

	var detail deviceDetail
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev}).decode(t, &detail)
	if detail.ActiveAssignment == nil || detail.ActiveAssignment.ID != second.Assignment.ID {
		t.Fatalf("active assignment = %+v", detail.ActiveAssignment)
	}
	var l listBody[store.Assignment]
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/assignments"}).decode(t, &l)
	if len(l.Items) != 2 {
		t.Fatalf("assignments = %+v", l.Items)
	}

	// A bad release needs the override.
	e.must(200, req{token: e.operator, method: "POST", path: "/releases/1.0.0/mark-bad", body: map[string]any{"bad": true, "reason": "regression"}})
	before := e.snapshot()
	e.must(409, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": "1.0.0"}})
	e.unchanged(before, "assigning a bad release")
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": "1.0.0", "allow_bad": true}})

	// No artifact for the hardware: 1.1.0 has rev B only.
	revC := e.enroll("SN-C", "gw-200", "C", true)
	before = e.snapshot()
	e.must(409, req{token: e.operator, method: "POST", path: "/devices/" + revC + "/assignments", body: map[string]any{"release": "1.1.0"}})
	e.unchanged(before, "assigning a release without a matching artifact")

	var cur assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": "1.1.0"}}).decode(t, &cur)
	var canceled store.Assignment
	e.must(200, req{token: e.operator, method: "POST", path: "/assignments/" + cur.Assignment.ID + "/cancel", body: map[string]any{"reason": "wrong device"}}).decode(t, &canceled)
	if canceled.State != store.AssignCanceled || canceled.Active {
		t.Fatalf("canceled assignment = %+v", canceled)
	}
	var ad assignmentDetail
	e.must(200, req{token: e.viewer, method: "GET", path: "/assignments/" + cur.Assignment.ID}).decode(t, &ad)
	if ad.ID != cur.Assignment.ID || ad.State != store.AssignCanceled {
		t.Fatalf("assignment detail = %+v", ad)
	}
	e.must(409, req{token: e.operator, method: "POST", path: "/assignments/" + cur.Assignment.ID + "/cancel"})
}

func TestAssignmentEventsAndGaps(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev := e.enroll("SN-1", "gw-200", "B", true)
	e.release("1.0.0", "gw-200", []string{"B"}, true)
	var ar assignResult
	e.must(201, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/assignments", body: map[string]any{"release": "1.0.0"}}).decode(t, &ar)
	_, err := e.st.RecordReports(context.Background(), []store.DeviceReports{{
		TenantID: store.DefaultTenant, DeviceID: dev,
		Reports: []store.StatusReport{
			{AssignmentID: ar.Assignment.ID, Seq: 1, State: store.AssignDownloading, Progress: 10, ReportedAt: t0},
			{AssignmentID: ar.Assignment.ID, Seq: 4, State: store.AssignFailed, ErrorCode: "E_FLASH", Message: "write failed", LogTail: "dd: error", ReportedAt: t0},
		},
	}}, t0)
	if err != nil {
		t.Fatal(err)
	}
	var ad assignmentDetail
	e.must(200, req{token: e.viewer, method: "GET", path: "/assignments/" + ar.Assignment.ID}).decode(t, &ad)
	if len(ad.Events) != 2 || ad.Events[1].ErrorCode != "E_FLASH" || ad.State != store.AssignFailed {
		t.Fatalf("assignment with events = %+v", ad)
	}
	var gaps listBody[store.ReportGap]
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/report-gaps"}).decode(t, &gaps)
	if len(gaps.Items) != 1 || gaps.Items[0].FromSeq != 2 || gaps.Items[0].ToSeq != 3 {
		t.Fatalf("gaps = %+v", gaps.Items)
	}
}

func TestTelemetry(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev := e.enroll("SN-1", "gw-200", "B", true)
	var pts []store.MetricPoint
	for i := range 4 {
		pts = append(pts, store.MetricPoint{Name: "crashes", At: t0.Add(-3*time.Hour + time.Duration(i)*time.Hour), Value: float64(i)})
	}
	if err := e.st.RecordTelemetry(context.Background(), store.DefaultTenant, dev, pts); err != nil {
		t.Fatal(err)
	}
	var raw telemetryBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/telemetry?metric=crashes&to=" + url.QueryEscape(t0.Add(time.Minute).Format(time.RFC3339))}).decode(t, &raw)
	if raw.Points == nil || len(*raw.Points) != 4 || raw.Rollups != nil {
		t.Fatalf("raw telemetry = %+v", raw)
	}
	var hourly telemetryBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/telemetry?metric=crashes&resolution=hourly&from=" +
		url.QueryEscape(t0.Add(-48*time.Hour).Format(time.RFC3339)) + "&to=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339))}).decode(t, &hourly)
	if hourly.Rollups == nil || len(*hourly.Rollups) == 0 || hourly.Points != nil {
		t.Fatalf("hourly telemetry = %+v", hourly)
	}
	var empty telemetryBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/telemetry?metric=battery"}).decode(t, &empty)
	if empty.Points == nil || len(*empty.Points) != 0 {
		t.Fatalf("telemetry of an unreported metric = %+v", empty)
	}
	for _, q := range []string{"", "metric=crashes&resolution=daily", "metric=crashes&from=yesterday",
		"metric=crashes&from=" + url.QueryEscape(t0.Add(-30*24*time.Hour).Format(time.RFC3339)),
		"metric=crashes&from=" + url.QueryEscape(t0.Add(time.Hour).Format(time.RFC3339))} {
		e.must(400, req{token: e.viewer, method: "GET", path: "/devices/" + dev + "/telemetry?" + q})
	}
}

func TestUsersTokensAndPasswords(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	var alice newUserBody
	e.must(201, req{token: e.admin, method: "POST", path: "/users", body: map[string]any{"name": "alice", "role": "operator"}}).decode(t, &alice)
	if alice.Password == "" || !alice.MustChangePassword {
		t.Fatalf("user without a password: %+v", alice)
	}
	var bob newUserBody
	e.must(201, req{token: e.admin, method: "POST", path: "/users", body: map[string]any{"name": "bob", "role": "viewer", "password": "correct horse battery"}}).decode(t, &bob)
	if bob.Password != "" || bob.MustChangePassword {
		t.Fatalf("user with a password: %+v", bob)
	}
	e.must(409, req{token: e.admin, method: "POST", path: "/users", body: map[string]any{"name": "bob", "role": "viewer"}})
	var users listBody[store.User]
	e.must(200, req{token: e.admin, method: "GET", path: "/users"}).decode(t, &users)
	if len(users.Items) != 2 {
		t.Fatalf("users = %+v", users.Items)
	}

	// A token owned by alice can do nothing until she changes her password.
	aliceTok := e.mintToken(store.RoleOperator, alice.ID, nil)
	r := e.must(403, req{token: aliceTok, method: "GET", path: "/devices"})
	if r.errorCode(t) != "password_change_required" {
		t.Fatalf("must-change user: %s", r.body)
	}
	e.must(403, req{token: aliceTok, method: "POST", path: "/users/" + alice.ID + "/password", body: map[string]any{"current_password": "not her password", "password": "a new long password"}})
	e.must(400, req{token: aliceTok, method: "POST", path: "/users/" + alice.ID + "/password", body: map[string]any{"password": "a new long password"}})
	e.must(400, req{token: aliceTok, method: "POST", path: "/users/" + alice.ID + "/password", body: map[string]any{"current_password": alice.Password, "password": "short"}})
	e.must(403, req{token: aliceTok, method: "POST", path: "/users/" + bob.ID + "/password", body: map[string]any{"password": "taking over bob"}})
	e.must(204, req{token: aliceTok, method: "POST", path: "/users/" + alice.ID + "/password", body: map[string]any{"current_password": alice.Password, "password": "a new long password"}})
	e.must(200, req{token: aliceTok, method: "GET", path: "/devices"})

	// A token never has more rights than its user: bob is a viewer.
	bobTok := e.mintToken(store.RoleAdmin, bob.ID, nil)
	e.must(403, req{token: bobTok, method: "POST", path: "/releases", body: map[string]any{"version": "1.0.0"}})
	e.must(200, req{token: bobTok, method: "GET", path: "/releases"})

	// An admin reset makes the user change the password again.
	e.must(204, req{token: e.admin, method: "POST", path: "/users/" + alice.ID + "/password", body: map[string]any{"password": "reset by the admin"}})
	e.must(403, req{token: aliceTok, method: "GET", path: "/devices"})

	// Tokens: created once, listed without secrets, revoked.
	var nt newTokenBody
	e.must(201, req{token: e.admin, method: "POST", path: "/tokens", body: map[string]any{"name": "ci-upload", "role": "operator", "expires_in": 3600}}).decode(t, &nt)
	if !strings.HasPrefix(nt.Token, "updraft_"+nt.ID+"_") || nt.ExpiresAt == nil || !nt.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("new token = %+v", nt)
	}
	e.must(201, req{token: nt.Token, method: "POST", path: "/releases", body: map[string]any{"version": "0.1.0"}})
	r = e.must(200, req{token: e.admin, method: "GET", path: "/tokens"})
	if strings.Contains(string(r.body), nt.Token[len(nt.Token)-32:]) {
		t.Fatal("token list shows a secret")
	}
	e.must(204, req{token: e.admin, method: "DELETE", path: "/tokens/" + nt.ID})
	e.must(401, req{token: nt.Token, method: "GET", path: "/releases"})
	e.must(404, req{token: e.admin, method: "DELETE", path: "/tokens/nosuchid"})

	// The clock moves past an expiry.
	e.must(201, req{token: e.admin, method: "POST", path: "/tokens", body: map[string]any{"name": "short", "role": "viewer", "expires_in": 60}}).decode(t, &nt)
	e.must(200, req{token: nt.Token, method: "GET", path: "/devices"})
	e.clock.Advance(time.Minute)
	r = e.must(401, req{token: nt.Token, method: "GET", path: "/devices"})
	if !strings.Contains(string(r.body), "expired") || r.header.Get("WWW-Authenticate") == "" {
		t.Fatalf("expired token: %s %v", r.body, r.header)
	}
}

func TestAuditLog(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	dev := e.enroll("SN-1", "gw-200", "B", false)
	e.must(200, req{token: e.operator, method: "POST", path: "/devices/" + dev + "/accept"})
	e.clock.Advance(time.Hour)
	e.release("1.0.0", "gw-200", []string{"B"}, true)

	var l listBody[store.AuditEntry]
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit?object_type=device&object_id=" + dev}).decode(t, &l)
	found := false
	for _, en := range l.Items {
		if en.Actor.Kind == store.ActorToken && en.Actor.Name == "test-operator" {
			found = true
		}
	}
	if !found {
		t.Fatalf("no audit entry by the operator token for device %s: %+v", dev, l.Items)
	}
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit?since=" + url.QueryEscape(t0.Add(30*time.Minute).Format(time.RFC3339))}).decode(t, &l)
	for _, en := range l.Items {
		if en.At.Before(t0.Add(30 * time.Minute)) {
			t.Fatalf("entry at %s is before since", en.At)
		}
	}
	if len(l.Items) < 3 {
		t.Fatalf("release entries since: %d", len(l.Items))
	}
	var page1, page2 listBody[store.AuditEntry]
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit?limit=2"}).decode(t, &page1)
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit?limit=2&after=" + url.QueryEscape(page1.Next)}).decode(t, &page2)
	if len(page1.Items) != 2 || len(page2.Items) != 2 || page2.Items[0].Seq >= page1.Items[1].Seq {
		t.Fatalf("audit pages out of order: %+v / %+v", page1.Items, page2.Items)
	}

	var v auditVerifyBody
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit/verify"}).decode(t, &v)
	if !v.OK || v.Checked < 4 {
		t.Fatalf("verify = %+v", v)
	}
	if _, err := e.st.DB().Exec(`UPDATE audit_log SET object_id = 'forged' WHERE seq = 2`); err != nil {
		t.Fatal(err)
	}
	v = auditVerifyBody{}
	e.must(200, req{token: e.viewer, method: "GET", path: "/audit/verify"}).decode(t, &v)
	if v.OK || v.Checked != 1 || v.Problem != "audit entry 2: content does not match its hash (altered)" {
		t.Fatalf("verify after tampering = %+v", v)
	}
}

func TestUnknownRoutes(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := e.must(404, req{token: e.viewer, method: "GET", path: "/nothing-here"})
	if r.errorCode(t) != "not_found" {
		t.Fatalf("unknown path: %s", r.body)
	}
	r = e.must(405, req{token: e.viewer, method: "PATCH", path: "/releases"})
	if allow := r.header.Get("Allow"); allow != "GET, POST" {
		t.Fatalf("Allow = %q", allow)
	}
}
