package ddi_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/ddi"
	"github.com/updraft/updraft/internal/store"
)

var swu = art{name: "update.swu", typ: store.ArtifactSWU, data: []byte("pretend this is a signed cpio archive")}

func TestDeploymentLifecycle(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d, tok := e.device("dev01")
	p := e.poll("dev01", tt(tok))
	if p.Config.Polling.Sleep != "00:01:30" {
		t.Fatalf("sleep %q, want 00:01:30", p.Config.Polling.Sleep)
	}
	if _, ok := p.Links["deploymentBase"]; ok {
		t.Fatalf("deploymentBase without an assignment: %+v", p.Links)
	}
	e.href(p, "configData") // no attributes yet
	if seen := must(e.store.Device(e.ctx, store.DefaultTenant, d.ID)).LastSeenAt; seen == nil || !seen.Equal(T0) {
		t.Fatalf("last seen %v after a poll, want %v", seen, T0)
	}

	rel := e.release("2.0.0", store.SeverityMedium, swu)
	as := e.assign(d, rel, "")
	p = e.poll("dev01", tt(tok))
	dbPath := e.href(p, "deploymentBase")
	if !strings.Contains(dbPath, "?c=") {
		t.Fatalf("deploymentBase href %q has no etag", dbPath)
	}
	db := e.deploymentBase(dbPath, tt(tok))
	if db.Deployment.Download != "attempt" || db.Deployment.Update != "attempt" || db.Deployment.MaintenanceWindow != "" {
		t.Fatalf("handling %+v, want attempt/attempt without window", db.Deployment)
	}
	if len(db.Deployment.Chunks) != 1 || db.Deployment.Chunks[0].Part != "os" || db.Deployment.Chunks[0].Version != "2.0.0" {
		t.Fatalf("chunks %+v", db.Deployment.Chunks)
	}
	a0 := db.Deployment.Chunks[0].Artifacts[0]
	full := rel.Artifacts[0]
	if a0.Filename != "update.swu" || a0.Size != int64(len(swu.data)) || a0.Hashes["sha1"] != full.SHA1 || a0.Hashes["md5"] != full.MD5 || a0.Hashes["sha256"] != full.SHA256 {
		t.Fatalf("artifact %+v, want %+v", a0, full)
	}
	if got := e.assignment(as.ID).State; got != store.AssignNotified {
		t.Fatalf("state after deploymentBase %s, want notified", got)
	}

	// Downloads: with the token, by signed link, ranges, MD5SUM.
	plain := strings.TrimPrefix(a0.Links["download-http"].Href, e.srv.URL)
	r := e.do("GET", plain, tt(tok), nil)
	e.want(r, 200, "download")
	if string(r.body) != string(swu.data) || r.header.Get("Etag") == "" {
		t.Fatalf("download body %q etag %q", r.body, r.header.Get("Etag"))
	}
	r = e.do("GET", plain, tt(tok), nil, "Range", "bytes=7-10", "If-Range", r.header.Get("Etag"))
	e.want(r, http.StatusPartialContent, "range")
	if string(r.body) != string(swu.data[7:11]) {
		t.Fatalf("range body %q", r.body)
	}
	r = e.do("GET", plain, tt(tok), nil, "Range", "bytes=7-10", "If-Range", `"stale"`)
	e.want(r, 200, "range with a stale If-Range")
	e.want(e.do("GET", plain, "", nil), http.StatusUnauthorized, "download without credentials")
	signed := strings.TrimPrefix(a0.Links["download"].Href, e.srv.URL)
	if !strings.Contains(signed, "s=") {
		t.Fatalf("download link %q is not signed", signed)
	}
	e.want(e.do("GET", signed, "", nil), 200, "signed download")
	e.want(e.do("GET", strings.Replace(signed, "s=", "s=x", 1), "", nil), http.StatusForbidden, "tampered signed download")
	r = e.do("GET", strings.TrimPrefix(a0.Links["md5sum"].Href, e.srv.URL), tt(tok), nil)
	e.want(r, 200, "md5sum")
	if string(r.body) != full.MD5+"  update.swu\n" {
		t.Fatalf("MD5SUM body %q", r.body)
	}
	r = e.do("GET", strings.TrimSuffix(plain, "/update.swu"), tt(tok), nil)
	e.want(r, 200, "artifact list")
	if !strings.Contains(string(r.body), `"update.swu"`) {
		t.Fatalf("artifact list %s", r.body)
	}
	e.want(e.do("GET", strings.Replace(plain, "update.swu", "other.swu", 1), tt(tok), nil), 404, "unknown artifact")

	fbPath := strings.SplitN(dbPath, "?", 2)[0] + "/feedback"
	steps := []struct {
		body     any
		state    store.AssignmentState
		progress int
	}{
		{fbProgress("proceeding", 1, 4), store.AssignDownloading, 25},
		{fb("proceeding", "none", "Installing", "Installed Chunk."), store.AssignInstalling, 25},
		{fb("download", "none"), store.AssignInstalling, 25}, // never backwards
		{fb("closed", "success", "done"), store.AssignSucceeded, 100},
	}
	for i, s := range steps {
		e.want(e.do("POST", fbPath, tt(tok), s.body), 200, "feedback")
		got := e.assignment(as.ID)
		if got.State != s.state || got.Progress != s.progress {
			t.Fatalf("step %d: state %s progress %d, want %s %d", i, got.State, got.Progress, s.state, s.progress)
		}
	}
	evs := must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as.ID))
	if len(evs) != 4 || evs[1].Message != "ddi proceeding/none: Installed Chunk." || evs[1].LogTail != "Installing\nInstalled Chunk." {
		t.Fatalf("history %+v", evs)
	}
	for i, ev := range evs {
		if ev.Seq != int64(i+1) {
			t.Fatalf("event %d has seq %d: server numbering must be contiguous", i, ev.Seq)
		}
	}
	if dev := must(e.store.Device(e.ctx, store.DefaultTenant, d.ID)); dev.Version != "2.0.0" {
		t.Fatalf("device version %q after success", dev.Version)
	}
	r = e.do("POST", fbPath, tt(tok), fb("closed", "success"))
	e.want(r, http.StatusGone, "feedback on a finished action")

	p = e.poll("dev01", tt(tok))
	if _, ok := p.Links["deploymentBase"]; ok {
		t.Fatalf("deploymentBase after success: %+v", p.Links)
	}
	ib := e.deploymentBase(e.href(p, "installedBase")+"?actionHistory=-1", tt(tok))
	if ib.ID != db.ID || ib.ActionHistory == nil || ib.ActionHistory.Status != "FINISHED" || len(ib.ActionHistory.Messages) != 4 {
		t.Fatalf("installedBase %+v", ib)
	}
	e.want(e.do("GET", strings.SplitN(dbPath, "?", 2)[0], tt(tok), nil), 404, "deploymentBase of a finished action")
	e.want(e.do("GET", base("dev01")+"/deploymentBase/999", tt(tok), nil), 404, "unknown action")
	e.want(e.do("GET", base("dev01")+"/deploymentBase/x1", tt(tok), nil), 404, "non-numeric action")
}

func TestFeedbackOutcomes(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		body  any
		state store.AssignmentState
		code  string
	}{
		{"failure with code", map[string]any{"status": map[string]any{"execution": "closed", "code": 42, "result": map[string]any{"finished": "failure"}}}, store.AssignFailed, "42"},
		{"failure", fb("closed", "failure"), store.AssignFailed, "ddi_failure"},
		{"closed none", fb("closed", "none"), store.AssignSucceeded, ""},
		{"canceled by device", fb("canceled", "none"), store.AssignSkipped, "canceled_by_device"},
		{"rejected", fb("rejected", "none"), store.AssignNotified, "rejected"},
		{"scheduled", fb("scheduled", "none"), store.AssignNotified, ""},
		{"downloaded", fb("downloaded", "success"), store.AssignDownloading, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, options{})
			d, tok := e.device("dev01")
			as := e.assign(d, e.release("1.0.0", store.SeverityLow, swu), "")
			dbPath := e.href(e.poll("dev01", tt(tok)), "deploymentBase")
			e.deploymentBase(dbPath, tt(tok))
			e.want(e.do("POST", strings.SplitN(dbPath, "?", 2)[0]+"/feedback", tt(tok), c.body), 200, "feedback")
			got := e.assignment(as.ID)
			if got.State != c.state || got.ErrorCode != c.code {
				t.Fatalf("state %s code %q, want %s %q", got.State, got.ErrorCode, c.state, c.code)
			}
		})
	}
}

func TestMalformedFeedbackStoresNothing(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d, tok := e.device("dev01")
	as := e.assign(d, e.release("1.0.0", store.SeverityLow, swu), "")
	dbPath := e.href(e.poll("dev01", tt(tok)), "deploymentBase")
	e.deploymentBase(dbPath, tt(tok))
	fbPath := strings.SplitN(dbPath, "?", 2)[0] + "/feedback"
	cases := []struct {
		name   string
		body   string
		status int
	}{
		{"not json", `{"status":`, 400},
		{"trailing data", `{"status":{"execution":"closed","result":{"finished":"success"}}} {}`, 400},
		{"no status", `{"id":"1"}`, 400},
		{"unknown execution", `{"status":{"execution":"done","result":{"finished":"success"}}}`, 400},
		{"no result", `{"status":{"execution":"closed"}}`, 400},
		{"unknown finished", `{"status":{"execution":"closed","result":{"finished":"maybe"}}}`, 400},
		{"progress beyond total", `{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":5,"of":2}}}}`, 400},
		{"negative progress", `{"status":{"execution":"proceeding","result":{"finished":"none","progress":{"cnt":-1,"of":2}}}}`, 400},
		{"details not strings", `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":[1]}}`, 400},
		{"NUL in details", `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":["a\u0000b"]}}`, 400},
		{"too many details", `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":[` + strings.Repeat(`"x",`, 300) + `"x"]}}`, 400},
		{"too large", `{"status":{"execution":"proceeding","result":{"finished":"none"},"details":["` + strings.Repeat("x", 70<<10) + `"]}}`, 413},
	}
	for _, c := range cases {
		e.want(e.do("POST", fbPath, tt(tok), c.body), c.status, c.name)
	}
	if evs := must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as.ID)); len(evs) != 0 {
		t.Fatalf("malformed feedback was stored: %+v", evs)
	}
	if got := e.assignment(as.ID); got.State != store.AssignNotified {
		t.Fatalf("state %s after malformed feedback", got.State)
	}
	// Unknown fields and the legacy id/time are ignored.
	e.want(e.do("POST", fbPath, tt(tok), `{"id":"7","time":"20261128T003509","extra":{"x":1},"status":{"execution":"proceeding","result":{"finished":"none"}}}`), 200, "legacy fields")
}

func TestAuthentication(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d, tok := e.device("dev01")
	_, tok2 := e.device("dev02")
	cases := []struct {
		name, path, auth string
		status           int
	}{
		{"target token", base("dev01"), tt(tok), 200},
		{"lower-case tenant", "/default/controller/v1/dev01", tt(tok), 200},
		{"mixed-case tenant", "/Default/controller/v1/dev01", tt(tok), 200},
		{"unknown tenant", "/other/controller/v1/dev01", tt(tok), 404},
		{"no header", base("dev01"), "", 401},
		{"wrong token", base("dev01"), tt("not-the-token-0123456789"), 401},
		{"token of another device", base("dev01"), tt(tok2), 401},
		{"unknown scheme", base("dev01"), "Bearer " + tok, 401},
		{"gateway token", base("dev01"), "GatewayToken " + gatewayToken, 200},
		{"wrong gateway token", base("dev01"), "GatewayToken " + gatewayToken + "x", 401},
	}
	for _, c := range cases {
		e.want(e.do("GET", c.path, c.auth, nil), c.status, c.name)
	}
	// Links repeat the client's spelling of the tenant.
	if p := e.poll("dev01", tt(tok)); !strings.Contains(p.Links["configData"].Href, "/DEFAULT/controller/v1/dev01/") {
		t.Fatalf("configData href %q", p.Links["configData"].Href)
	}
	// The gateway token is audited once per controller per hour.
	e.want(e.do("GET", base("dev01"), "GatewayToken "+gatewayToken, nil), 200, "gateway again")
	audits := func() int {
		l, _, err := e.store.ListAudit(e.ctx, store.DefaultTenant, store.AuditQuery{Action: "ddi.gateway_token_used"})
		if err != nil {
			t.Fatal(err)
		}
		return len(l)
	}
	if n := audits(); n != 1 {
		t.Fatalf("%d gateway audit entries, want 1", n)
	}
	e.clock.Advance(time.Hour)
	e.want(e.do("GET", base("dev01"), "GatewayToken "+gatewayToken, nil), 200, "gateway an hour later")
	if n := audits(); n != 2 {
		t.Fatalf("%d gateway audit entries, want 2", n)
	}
	// Revoking the token locks the device out.
	creds := must(e.store.ListCredentials(e.ctx, store.DefaultTenant, d.ID))
	if err := e.store.RevokeCredential(e.ctx, store.DefaultTenant, creds[0].ID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("GET", base("dev01"), tt(tok), nil), 401, "revoked token")

	anon := setup(t, options{anonymous: true})
	anon.device("dev01")
	anon.want(anon.do("GET", base("dev01"), "", nil), 200, "anonymous mode")
	if _, err := ddi.New(ddi.Config{Store: e.store, Blobs: e.blobs, Clock: e.clock, PublicURL: "http://x", GatewayTokens: map[string]string{"default": "short"}}); err == nil {
		t.Fatal("New accepted a short gateway token")
	}
}

func TestAutoRegistration(t *testing.T) {
	t.Parallel()
	e := setup(t, options{cfg: func(c *ddi.Config) { c.RegisterBurst, c.RegisterPerMinute = 2, 1 }})
	gw := "GatewayToken " + gatewayToken
	p := e.poll("new-01", gw)
	if len(p.Links) != 0 {
		t.Fatalf("pending device got links %+v", p.Links)
	}
	d := must(e.store.DDIDevice(e.ctx, store.DefaultTenant, "new-01"))
	if d.State != store.DevicePending || d.Protocol != store.ProtocolDDI || d.DeviceType != "board" {
		t.Fatalf("registered %+v", d)
	}
	e.poll("new-01", gw) // known now: no new registration
	e.poll("new-02", gw)
	r := e.do("GET", base("new-03"), gw, nil)
	e.want(r, http.StatusTooManyRequests, "third registration in a burst of 2")
	if _, err := e.store.DDIDevice(e.ctx, store.DefaultTenant, "new-03"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rate-limited controller was registered: %v", err)
	}
	e.clock.Advance(time.Minute)
	e.poll("new-03", gw)
	e.want(e.do("GET", base("new-01")+"/deploymentBase/1", gw, nil), http.StatusForbidden, "pending device's deploymentBase")
	if _, err := e.store.RejectDevice(e.ctx, store.DefaultTenant, d.ID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	e.want(e.do("GET", base("new-01"), gw, nil), http.StatusForbidden, "rejected device polls")
}

func TestCancel(t *testing.T) {
	t.Parallel()
	for _, answer := range []struct {
		body any
		code string
	}{
		{fb("closed", "success", "cancellation acknowledged."), "ddi_cancel_acknowledged"},
		{fb("rejected", "none"), "ddi_cancel_rejected"},
	} {
		e := setup(t, options{})
		d, tok := e.device("dev01")
		as := e.assign(d, e.release("1.0.0", store.SeverityLow, swu), "")
		dbPath := e.href(e.poll("dev01", tt(tok)), "deploymentBase")
		e.deploymentBase(dbPath, tt(tok))
		if _, err := e.store.CancelAssignment(e.ctx, store.DefaultTenant, as.ID, "operator", admin, e.clock.Now()); err != nil {
			t.Fatal(err)
		}
		p := e.poll("dev01", tt(tok))
		if _, ok := p.Links["deploymentBase"]; ok {
			t.Fatalf("deploymentBase beside cancelAction: %+v", p.Links)
		}
		cPath := e.href(p, "cancelAction")
		r := e.do("GET", cPath, tt(tok), nil)
		e.want(r, 200, "cancelAction")
		var ca struct {
			ID           string `json:"id"`
			CancelAction struct {
				StopID string `json:"stopId"`
			} `json:"cancelAction"`
		}
		r.json(t, &ca)
		if ca.ID == "" || ca.CancelAction.StopID != ca.ID || !strings.HasSuffix(cPath, "/"+ca.ID) {
			t.Fatalf("cancelAction %s for %s", r.body, cPath)
		}
		e.want(e.do("GET", strings.SplitN(dbPath, "?", 2)[0], tt(tok), nil), 404, "deploymentBase of a canceled action")
		e.want(e.do("POST", strings.SplitN(dbPath, "?", 2)[0]+"/feedback", tt(tok), fb("proceeding", "none")), http.StatusGone, "deployment feedback after cancel")
		e.want(e.do("POST", cPath+"/feedback", tt(tok), `{"status":{}}`), 400, "malformed cancel feedback")
		e.want(e.do("POST", cPath+"/feedback", tt(tok), answer.body), 200, "cancel feedback")
		if p := e.poll("dev01", tt(tok)); p.Links["cancelAction"].Href != "" {
			t.Fatalf("cancelAction after the acknowledgement: %+v", p.Links)
		}
		evs := must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as.ID))
		if len(evs) != 1 || evs[0].ErrorCode != answer.code {
			t.Fatalf("history %+v, want one %s", evs, answer.code)
		}
	}
}

func TestConfigData(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d, tok := e.device("dev01")
	path := base("dev01") + "/configData"
	steps := []struct {
		body   string
		status int
		want   map[string]string
	}{
		{`{"data":{"VIN":"123","hw":"a"}}`, 200, map[string]string{"VIN": "123", "hw": "a"}},
		{`{"mode":"merge","data":{"hw":"b","os":"x"}}`, 200, map[string]string{"VIN": "123", "hw": "b", "os": "x"}},
		{`{"mode":"remove","data":{"os":""}}`, 200, map[string]string{"VIN": "123", "hw": "b"}},
		{`{"id":"","time":"20261128T003509","status":{"execution":"closed","result":{"finished":"success"}},"mode":"replace","data":{"only":"1"}}`, 200, map[string]string{"only": "1"}},
		{`{"mode":"append","data":{"a":"b"}}`, 400, map[string]string{"only": "1"}},
		{`{"mode":"merge"}`, 400, map[string]string{"only": "1"}},
		{`{"data":{"n":1}}`, 400, map[string]string{"only": "1"}},
		{`{"data":`, 400, map[string]string{"only": "1"}},
	}
	for _, s := range steps {
		e.want(e.do("PUT", path, tt(tok), s.body), s.status, s.body)
		got := must(e.store.Device(e.ctx, store.DefaultTenant, d.ID)).Attributes
		if len(got) != len(s.want) {
			t.Fatalf("after %s: attributes %v, want %v", s.body, got, s.want)
		}
		for k, v := range s.want {
			if got[k] != v {
				t.Fatalf("after %s: attributes %v, want %v", s.body, got, s.want)
			}
		}
	}
	if p := e.poll("dev01", tt(tok)); p.Links["configData"].Href != "" {
		t.Fatalf("configData requested although attributes are known: %+v", p.Links)
	}
}

func TestHandlingFromCampaign(t *testing.T) {
	t.Parallel()
	deadline := T0.Add(-time.Hour)
	cases := []struct {
		name             string
		sev              store.Severity
		schedule         map[string]any
		download, update string
		window           string
	}{
		{"no schedule", store.SeverityCritical, map[string]any{}, "attempt", "attempt", ""},
		{"critical after deadline", store.SeverityCritical, map[string]any{"deadline": deadline, "windows": []any{map[string]any{"start": "01:00", "duration": "2h"}}}, "forced", "forced", ""},
		{"medium after deadline", store.SeverityMedium, map[string]any{"deadline": deadline}, "attempt", "attempt", ""},
		{"outside window", store.SeverityHigh, map[string]any{"windows": []any{map[string]any{"start": "01:00", "duration": "2h"}}}, "attempt", "skip", "unavailable"},
		{"inside window", store.SeverityHigh, map[string]any{"windows": []any{map[string]any{"start": "08:00", "duration": "2h"}}}, "attempt", "attempt", "available"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, options{})
			d, tok := e.device("dev01")
			rel := e.release("3.0.0", c.sev, swu)
			spec, _ := json.Marshal(map[string]any{"name": "c", "release": "3.0.0", "schedule": c.schedule})
			camp, err := e.store.CreateCampaign(e.ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "c", Kind: store.CampaignKindRollout, ReleaseID: rel.ID, Spec: spec}, admin, e.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			as := e.assign(d, rel, camp.ID)
			dbPath := e.href(e.poll("dev01", tt(tok)), "deploymentBase")
			db := e.deploymentBase(dbPath, tt(tok))
			if db.Deployment.Download != c.download || db.Deployment.Update != c.update || db.Deployment.MaintenanceWindow != c.window {
				t.Fatalf("handling %s/%s window %q, want %s/%s %q", db.Deployment.Download, db.Deployment.Update, db.Deployment.MaintenanceWindow, c.download, c.update, c.window)
			}
			if c.update != "skip" {
				return
			}
			// SWUpdate 2022.12 answers skip with closed/success: not an install.
			e.want(e.do("POST", strings.SplitN(dbPath, "?", 2)[0]+"/feedback", tt(tok), fb("closed", "success", "Skipped Update.")), 200, "skip answer")
			if got := e.assignment(as.ID); got.State != store.AssignNotified || got.ErrorCode != "update_skipped" {
				t.Fatalf("after a skipped update: %s %q", got.State, got.ErrorCode)
			}
			// The etag changes when the window opens.
			e.clock.Advance(17 * time.Hour) // 02:00 the next day
			if again := e.href(e.poll("dev01", tt(tok)), "deploymentBase"); again == dbPath {
				t.Fatalf("deploymentBase etag did not change when the window opened: %s", again)
			}
		})
	}
}
