package ddi_test

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// TestReplayZephyr replays the request sequence of Zephyr's hawkBit client
// (subsys/mgmt/hawkbit) in its default, unauthenticated build with the
// lower-case /default prefix, checking the constraints it puts on a
// server: one chunk with part "bApp", one artifact with sha256 and a
// download-http link, HTTP 200 only, Content-Length on every JSON body, a
// deploymentBase path of at most 50 bytes.
func TestReplayZephyr(t *testing.T) {
	t.Parallel()
	e := setup(t, options{anonymous: true})
	const cid = "nrf52840dk-0a1b2c3d4e5f6071"
	d, _ := e.device(cid)
	image := []byte(strings.Repeat("mcuboot image ", 300))
	rel := e.release("1.2.0", store.SeverityMedium, art{name: "zephyr.signed.bin", component: "bApp", typ: store.ArtifactRawImage, data: image})
	as := e.assign(d, rel, "")
	prefix := "/default/controller/v1/" + cid

	// 1. Poll: only sleep, deploymentBase, cancelAction, configData are read.
	r := e.do("GET", prefix, "", nil, "Accept", "application/json")
	e.want(r, 200, "zephyr poll")
	if r.chunked {
		t.Fatal("poll answered with chunked encoding")
	}
	var p poll
	r.json(t, &p)
	if p.Config.Polling.Sleep == "" {
		t.Fatal("no polling.sleep")
	}
	dbHref := p.Links["deploymentBase"].Href
	dbPath := strings.TrimPrefix(dbHref, e.srv.URL)
	// Zephyr copies the path after the controller prefix into a 50-byte buffer.
	if rest := strings.TrimPrefix(dbPath, prefix+"/"); len(rest) > 50 || len(dbHref) > 300 {
		t.Fatalf("deploymentBase %q is too long for Zephyr (%d bytes after the prefix)", dbHref, len(rest))
	}
	// 2. No cancel pending. 3. configData with merge.
	if p.Links["cancelAction"].Href != "" {
		t.Fatalf("unexpected cancelAction %+v", p.Links)
	}
	e.want(e.do("PUT", strings.TrimPrefix(p.Links["configData"].Href, e.srv.URL), "",
		`{"mode":"merge","data":{"VIN":"`+cid+`","hwRevision":"3"}}`), 200, "zephyr configData")
	// 4. deploymentBase, then download-http.
	db := e.deploymentBase(dbPath, "")
	if _, err := strconv.ParseInt(db.ID, 10, 32); err != nil {
		t.Fatalf("action id %q does not fit Zephyr's int: %v", db.ID, err)
	}
	if len(db.Deployment.Chunks) != 1 || db.Deployment.Chunks[0].Part != "bApp" || len(db.Deployment.Chunks[0].Artifacts) != 1 {
		t.Fatalf("Zephyr needs exactly one bApp chunk with one artifact: %+v", db.Deployment.Chunks)
	}
	a := db.Deployment.Chunks[0].Artifacts[0]
	if a.Hashes["sha256"] != rel.Artifacts[0].SHA256 || a.Size != int64(len(image)) {
		t.Fatalf("artifact %+v", a)
	}
	dl := a.Links["download-http"].Href
	if dl == "" || len(dl) > 300 {
		t.Fatalf("download-http %q", dl)
	}
	r = e.do("GET", dl, "", nil)
	e.want(r, 200, "zephyr download")
	if string(r.body) != string(image) {
		t.Fatal("downloaded image differs")
	}
	// 5. After the reboot into the new image: closed/success.
	fbPath := strings.SplitN(dbPath, "?", 2)[0] + "/feedback"
	r = e.do("POST", fbPath, "", `{"id":"`+db.ID+`","status":{"execution":"closed","result":{"finished":"success"}}}`)
	e.want(r, 200, "zephyr closed/success")
	if got := e.assignment(as.ID); got.State != store.AssignSucceeded {
		t.Fatalf("assignment %s after Zephyr's success", got.State)
	}
	// A repeated action id after another reboot is answered, not an error loop.
	e.want(e.do("POST", fbPath, "", `{"id":"`+db.ID+`","status":{"execution":"closed","result":{"finished":"success"}}}`), http.StatusGone, "repeated success")
	if p := e.poll(cid, ""); p.Links["deploymentBase"].Href != "" {
		t.Fatalf("deploymentBase after success: %+v", p.Links)
	}
}

// TestReplayRAUCHawkbitUpdater replays rauc-hawkbit-updater
// (src/hawkbit-client.c): target token, configData from [device],
// deploymentBase with one chunk and one artifact, progress feedback, a
// resumed download with Range (streaming mode issues many), closed/success;
// then a cancel answered with closed/success.
func TestReplayRAUCHawkbitUpdater(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d, tok := e.device("rauc-01")
	bundle := []byte(strings.Repeat("rauc bundle ", 2000))
	rel := e.release("4.0.0", store.SeverityHigh, art{name: "update.raucb", typ: store.ArtifactRAUCBundle, data: bundle})
	as := e.assign(d, rel, "")
	auth := tt(tok)

	p := e.poll("rauc-01", auth)
	e.want(e.do("PUT", e.href(p, "configData"), auth, `{"mode":"merge","data":{"MAC":"00:11:22:33:44:55","hw":"rpi4"}}`), 200, "configData")
	dbPath := e.href(p, "deploymentBase")
	db := e.deploymentBase(dbPath, auth)
	if len(db.Deployment.Chunks) != 1 || len(db.Deployment.Chunks[0].Artifacts) != 1 {
		t.Fatalf("rauc-hawkbit-updater refuses MULTI_CHUNKS/MULTI_ARTIFACTS: %+v", db.Deployment.Chunks)
	}
	a := db.Deployment.Chunks[0].Artifacts[0]
	if a.Hashes["sha1"] != rel.Artifacts[0].SHA1 || db.Deployment.Download == "skip" || db.Deployment.Update == "skip" {
		t.Fatalf("deployment %+v", db)
	}
	fbPath := strings.SplitN(dbPath, "?", 2)[0] + "/feedback"
	e.want(e.do("POST", fbPath, auth, fbProgress("proceeding", 0, 1)), 200, "progress")
	// Download in 4 KiB ranges, as a resuming/streaming client does.
	dl := strings.TrimPrefix(a.Links["download"].Href, e.srv.URL)
	var got []byte
	for off := 0; off < len(bundle); off += 4096 {
		end := min(off+4096, len(bundle)) - 1
		r := e.do("GET", dl, auth, nil, "Range", fmt.Sprintf("bytes=%d-%d", off, end))
		e.want(r, http.StatusPartialContent, "range")
		got = append(got, r.body...)
	}
	if string(got) != string(bundle) {
		t.Fatal("bundle assembled from ranges differs")
	}
	if evs := must(e.store.AssignmentEvents(e.ctx, store.DefaultTenant, as.ID)); len(evs) != 1 {
		t.Fatalf("range requests must not add history: %d events", len(evs))
	}
	e.want(e.do("POST", fbPath, auth, fb("proceeding", "none", "Installing bundle")), 200, "installing")
	e.want(e.do("POST", fbPath, auth, fb("closed", "success", "Software bundle installed successfully.")), 200, "success")
	if got := e.assignment(as.ID); got.State != store.AssignSucceeded {
		t.Fatalf("state %s", got.State)
	}
	if attrs := must(e.store.Device(e.ctx, store.DefaultTenant, d.ID)).Attributes; attrs["hw"] != "rpi4" {
		t.Fatalf("attributes %v", attrs)
	}

	// Cancel of the next action.
	e.clock.Advance(time.Minute)
	as2 := e.assign(d, e.release("4.1.0", store.SeverityHigh, art{name: "update.raucb", typ: store.ArtifactRAUCBundle, data: bundle}), "")
	e.deploymentBase(e.href(e.poll("rauc-01", auth), "deploymentBase"), auth)
	if _, err := e.store.CancelAssignment(e.ctx, store.DefaultTenant, as2.ID, "wrong bundle", admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	cPath := e.href(e.poll("rauc-01", auth), "cancelAction")
	e.want(e.do("GET", cPath, auth, nil), 200, "cancelAction")
	e.want(e.do("POST", cPath+"/feedback", auth, fb("closed", "success")), 200, "cancel ack")
	p = e.poll("rauc-01", auth)
	if p.Links["cancelAction"].Href != "" || p.Links["deploymentBase"].Href != "" {
		t.Fatalf("links after the cancel: %+v", p.Links)
	}
	if e.href(p, "installedBase") == "" {
		t.Fatal("installedBase missing")
	}
}
