package signing_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

func TestUploadStoresPublishesAndAudits(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{})
	res := r.init()
	if !res.Published || res.Snapshot != 1 || res.Timestamp != 1 ||
		!slices.Equal(res.Stored, []signing.RoleVersion{{Role: "root", Version: 1}, {Role: "targets", Version: 1}}) {
		t.Fatalf("init result %+v", res)
	}
	rel, _ := r.release("1.0.0", 1)
	res, err := r.sign(r.svc, rel)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Published || res.Snapshot != 2 || res.Timestamp != 2 || !slices.Equal(res.Stored, []signing.RoleVersion{{Role: line, Version: 1}}) {
		t.Fatalf("upload result %+v", res)
	}
	// What devices fetch: the snapshot lists the new role version, served
	// under its consistent name.
	var snap struct {
		Signed struct {
			Meta map[string]struct{ Version int64 } `json:"meta"`
		}
	}
	if err := json.Unmarshal(r.file(r.svc, "2.snapshot.json"), &snap); err != nil {
		t.Fatal(err)
	}
	if snap.Signed.Meta[line+".json"].Version != 1 || snap.Signed.Meta["targets.json"].Version != 1 {
		t.Fatalf("snapshot meta %+v", snap.Signed.Meta)
	}
	if !bytes.Contains(r.file(r.svc, "1."+line+".json"), []byte("gw-200/rootfs/1.0.0/rootfs.img")) {
		t.Fatal("the role file does not list the release")
	}
	if describe(t, r.file(r.svc, "timestamp.json")).Version != 2 {
		t.Fatal("timestamp.json is not version 2")
	}
	// The superseded snapshot stays downloadable for devices mid-refresh.
	r.file(r.svc, "1.snapshot.json")
	for _, name := range []string{"2.root.json", "3.snapshot.json", "1.timestamp.json", "root.json", "2.gw-300.json", "x"} {
		if _, err := r.svc.MetadataFile(r.ctx, store.DefaultTenant, name); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s: %v, want not found", name, err)
		}
	}
	if _, err := r.svc.MetadataFile(r.ctx, "acme", "timestamp.json"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("another tenant's timestamp: %v", err)
	}
	entries, _, err := r.st.ListAudit(r.ctx, store.DefaultTenant, store.AuditQuery{ObjectType: "tuf_repository"})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if !slices.Equal(actions, []string{"tuf.upload", "tuf.init"}) {
		t.Fatalf("audit %v", actions)
	}
}

// waitIdle waits until the publisher loop is blocked on its timer again.
func waitIdle(t *testing.T, r *rig, want int) {
	t.Helper()
	for i := 0; r.clock.Waiters() != want; i++ {
		if i > 1_000_000 {
			t.Fatalf("the publisher loop never went idle (%d timers)", r.clock.Waiters())
		}
		runtime.Gosched()
	}
}

func TestPublisherLoopResignsBeforeExpiry(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{PublishInterval: time.Hour, KeepSuperseded: 2 * time.Hour})
	r.init()
	if err := r.svc.Start(r.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.svc.Stop)
	waitIdle(t, r, 1)
	ts := func() int64 { return describe(t, r.file(r.svc, "timestamp.json")).Version }
	snap := func() int64 {
		b, err := r.svc.Metadata(r.ctx, "snapshot.json")
		if err != nil {
			t.Fatal(err)
		}
		return describe(t, b).Version
	}
	// Until half the timestamp's lifetime has passed: nothing to do.
	for range 12 {
		r.clock.Advance(time.Hour)
		waitIdle(t, r, 1)
	}
	if ts() != 1 {
		t.Fatalf("timestamp re-signed after 12 hours: version %d", ts())
	}
	r.clock.Advance(time.Hour)
	waitIdle(t, r, 1)
	if ts() != 2 || snap() != 1 {
		t.Fatalf("after 13 hours: timestamp %d, snapshot %d; want 2, 1", ts(), snap())
	}
	exp := describe(t, r.file(r.svc, "timestamp.json")).Expires
	if !exp.After(r.clock.Now().Add(23 * time.Hour)) {
		t.Fatalf("new timestamp expires at %s, only %s from now", exp, exp.Sub(r.clock.Now()))
	}
	// Past half the snapshot's lifetime (3.5 days) both are re-signed.
	for range 3*24 + 12 {
		r.clock.Advance(time.Hour)
		waitIdle(t, r, 1)
	}
	if snap() != 2 {
		t.Fatalf("snapshot after 3.5 days: version %d", snap())
	}
	// Superseded files are pruned after KeepSuperseded.
	if _, err := r.svc.MetadataFile(r.ctx, store.DefaultTenant, "1.snapshot.json"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("1.snapshot.json long after it was superseded: %v", err)
	}
	if h := r.svc.Health(); !h.Leader || h.Degraded {
		t.Fatalf("health %+v", h)
	}
}

func TestRestartLosesNothing(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{})
	r.init()
	rel, _ := r.release("1.0.0", 1)
	if _, err := r.sign(r.svc, rel); err != nil {
		t.Fatal(err)
	}
	d := r.device("A", "0.9.0")
	asg, _, err := r.st.Assign(r.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.ID, ReleaseID: rel.ID, Now: r.clock.Now()}, admin)
	if err != nil {
		t.Fatal(err)
	}
	doc, err := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if err != nil || doc == nil {
		t.Fatalf("assignment document: %s, %v", doc, err)
	}
	files := map[string][]byte{}
	for _, n := range []string{"1.root.json", "1.targets.json", "1.gw-200.json", "2.snapshot.json", "timestamp.json"} {
		files[n] = r.file(r.svc, n)
	}
	// A new process with the same database and key-encryption key.
	again := r.replica("replica-restarted", signing.Options{}, nil)
	if err := again.Start(r.ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(again.Stop)
	for n, b := range files {
		if !bytes.Equal(r.file(again, n), b) {
			t.Errorf("%s changed across the restart", n)
		}
	}
	doc2, err := again.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if err != nil || !bytes.Equal(doc, doc2) {
		t.Fatalf("the device gets another document after the restart: %v", err)
	}
	// It signs with the stored keys and continues the version sequence.
	r.clock.Advance(13 * time.Hour)
	if _, err := r.svc.PublishNow(r.ctx); err != nil { // the old process still holds the lease
		t.Fatal(err)
	}
	r.svc.Stop()
	r.clock.Advance(5 * time.Minute)
	if leader, err := again.PublishNow(r.ctx); err != nil || !leader {
		t.Fatalf("new process publish: leader %v, %v", leader, err)
	}
	r.clock.Advance(13 * time.Hour)
	if _, err := again.PublishNow(r.ctx); err != nil {
		t.Fatal(err)
	}
	if v := describe(t, r.file(again, "timestamp.json")).Version; v != 4 {
		t.Fatalf("timestamp version %d after two re-signs, want 4", v)
	}
	if h := again.Health(); h.Degraded || !h.Leader {
		t.Fatalf("health after restart: %+v", h)
	}
}

// verifyDirector checks doc against the director keys of root and returns
// its version (the counter) and custom object.
func verifyDirector(t *testing.T, root, doc []byte) (int64, tufmeta.AssignmentCustom) {
	t.Helper()
	rm, err := metadata.Root().FromBytes(root)
	if err != nil {
		t.Fatal(err)
	}
	m, err := metadata.Targets().FromBytes(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := rm.VerifyDelegate(tufmeta.RoleDirector, m); err != nil {
		t.Fatalf("director document does not verify under root %d: %v", rm.Signed.Version, err)
	}
	var c tufmeta.AssignmentCustom
	for _, f := range m.Signed.Targets {
		if f.Custom != nil {
			_ = json.Unmarshal(*f.Custom, &c)
		}
	}
	return m.Signed.Version, c
}

func TestDirectorDocuments(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := newRig(t, "sqlite", signing.Options{DirectorLifetime: 8 * 24 * time.Hour})
	r.svc = r.replica("replica-a", signing.Options{DirectorLifetime: 8 * 24 * time.Hour}, reg)
	r.init()
	rel, _ := r.release("1.0.0", 1)
	unsignedRel, _ := r.release("1.1.0", 1)
	if _, err := r.sign(r.svc, rel); err != nil {
		t.Fatal(err)
	}
	d := r.device("A", "0.9.0")
	asg, _, err := r.st.Assign(r.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.ID, ReleaseID: rel.ID, CampaignID: "spring", Now: r.clock.Now()}, admin)
	if err != nil {
		t.Fatal(err)
	}
	root := func() []byte { b, _ := r.svc.Metadata(r.ctx, "root.json"); return b }
	doc, err := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if err != nil {
		t.Fatal(err)
	}
	counter, c := verifyDirector(t, root(), doc)
	if counter != 1 || c.DeviceID != d.ID || c.AssignmentID != asg.ID || c.CampaignID != "spring" || c.Forced || len(c.Windows) != 0 ||
		c.Target.Version != "1.0.0" || c.Target.Component != "rootfs" {
		t.Fatalf("document counter %d custom %+v", counter, c)
	}
	// The same bytes on every check-in…
	r.clock.Advance(5 * 24 * time.Hour)
	again, _ := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if !bytes.Equal(doc, again) {
		t.Fatal("a second check-in got another document")
	}
	// …until less than a quarter of its lifetime is left.
	r.clock.Advance(24*time.Hour + time.Minute)
	renewed, _ := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if n, _ := verifyDirector(t, root(), renewed); bytes.Equal(renewed, doc) || n != 2 {
		t.Fatalf("renewed document counter %d", n)
	}
	// Nothing signed for artifacts the offline keys never signed, or for
	// other hardware.
	if doc, err := r.svc.SignAssignment(r.ctx, d, asg, unsignedRel, unsignedRel.Artifacts[0]); err != nil || doc != nil {
		t.Fatalf("unsigned release: %s, %v", doc, err)
	}
	other := r.device("B", "0.9.0")
	if doc, err := r.svc.SignAssignment(r.ctx, other, asg, rel, rel.Artifacts[0]); err != nil || doc != nil {
		t.Fatalf("other hardware: %s, %v", doc, err)
	}
	if got := metricValue(t, reg, "updraft_tuf_unsigned_assignments_total"); got != 2 {
		t.Fatalf("unsigned assignments counted %v, want 2", got)
	}
	// Director key rotation: root 2 names a new director key; the stored
	// document is replaced by one the new key signs.
	keys, err := r.svc.GenerateOnlineKeys(r.ctx, []string{tufmeta.RoleDirector}, admin)
	if err != nil {
		t.Fatal(err)
	}
	next, err := tufrepo.NextRoot(root(), r.clock.Now().AddDate(1, 0, 0), map[string]tufrepo.RoleKeys{
		tufmeta.RoleDirector: {Keys: []*metadata.Key{keys[0].PublicKey}, Threshold: 1}})
	if err != nil {
		t.Fatal(err)
	}
	if next, err = tufrepo.Sign(next, r.root); err != nil {
		t.Fatal(err)
	}
	if _, err := r.svc.Apply(r.ctx, tufrepo.Change{Roots: [][]byte{next}}, admin); err != nil {
		t.Fatal(err)
	}
	rotated, _ := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if n, _ := verifyDirector(t, next, rotated); n != 3 {
		t.Fatalf("document after rotation has counter %d, want 3", n)
	}
	if c, _ := r.st.DirectorCounter(r.ctx, store.DefaultTenant, d.ID); c != 3 {
		t.Fatalf("stored counter %d", c)
	}
}

// metricValue sums the values of a counter or gauge family.
func metricValue(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var v float64
		for _, m := range mf.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
		return v
	}
	t.Fatalf("no metric %s", name)
	return 0
}

func TestFinalizeDocuments(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{})
	r.init()
	rel, _ := r.release("2.0.0", 5)
	if _, err := r.sign(r.svc, rel); err != nil {
		t.Fatal(err)
	}
	d := r.device("A", "2.0.0")
	old := r.device("A", "1.0.0")
	if doc, err := r.svc.FinalizeFor(r.ctx, d, nil); err != nil || doc != nil {
		t.Fatalf("before finalize: %s, %v", doc, err)
	}
	if _, err := r.svc.FinalizeRelease(r.ctx, rel.ID, admin); err != nil {
		t.Fatal(err)
	}
	doc, err := r.svc.FinalizeFor(r.ctx, d, nil)
	if err != nil || doc == nil {
		t.Fatalf("finalize document: %s, %v", doc, err)
	}
	root, _ := r.svc.Metadata(r.ctx, "root.json")
	rm, _ := metadata.Root().FromBytes(root)
	m, err := metadata.Targets().FromBytes(doc)
	if err != nil || rm.VerifyDelegate(tufmeta.RoleDirector, m) != nil {
		t.Fatalf("finalize document does not verify: %v", err)
	}
	var fc tufmeta.FinalizeCustom
	b, _ := json.Marshal(m.Signed.UnrecognizedFields["custom"])
	if err := json.Unmarshal(b, &fc); err != nil || fc.DeviceID != d.ID || fc.Version != "2.0.0" || fc.SecurityVersion != 5 || fc.Type != tufmeta.FinalizeType {
		t.Fatalf("finalize custom %+v, %v", fc, err)
	}
	again, _ := r.svc.FinalizeFor(r.ctx, d, nil)
	if !bytes.Equal(doc, again) {
		t.Fatal("finalize document changed between check-ins")
	}
	for _, floor := range []int64{5, 9} {
		if doc, err := r.svc.FinalizeFor(r.ctx, d, &floor); err != nil || doc != nil {
			t.Fatalf("device at floor %d: %s, %v", floor, doc, err)
		}
	}
	four := int64(4)
	if doc, _ := r.svc.FinalizeFor(r.ctx, d, &four); !bytes.Equal(doc, again) {
		t.Fatal("a device below the floor does not get the finalize")
	}
	if doc, _ := r.svc.FinalizeFor(r.ctx, old, nil); doc != nil {
		t.Fatal("a device on another version got a finalize")
	}
	// Another replica sees the finalize within a publish interval.
	other := r.replica("replica-b", signing.Options{}, nil)
	if doc, _ := other.FinalizeFor(r.ctx, d, nil); !bytes.Equal(doc, again) {
		t.Fatal("another replica hands out another finalize document")
	}
}

func TestWrongKeyEncryptionKey(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{})
	r.init()
	r.kek[0] ^= 0xff
	bad := r.replica("replica-bad", signing.Options{}, nil)
	if err := bad.Start(r.ctx); err != nil {
		t.Fatalf("start with another KEK: %v", err)
	}
	t.Cleanup(bad.Stop)
	r.svc.Stop()
	keys, err := bad.OnlineKeys(r.ctx)
	if err != nil || len(keys) != 3 || keys[0].Usable || !strings.Contains(keys[0].Problem, "key-encryption key") {
		t.Fatalf("keys %+v, %v", keys, err)
	}
	// It still serves what is stored…
	r.file(bad, "timestamp.json")
	// …but cannot sign, and says so.
	r.clock.Advance(13 * time.Hour)
	if _, err := bad.PublishNow(r.ctx); err == nil {
		t.Fatal("publishing without usable keys succeeded")
	}
	h := bad.Health()
	if !h.Degraded || !strings.Contains(strings.Join(h.Warnings, "\n"), "cannot be decrypted") {
		t.Fatalf("health %+v", h)
	}
}

func TestExpiryWarningsAndMetrics(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{ExpiryWarning: 30 * 24 * time.Hour})
	if h := r.svc.Health(); h.Initialized || h.Degraded || len(h.Warnings) != 1 {
		t.Fatalf("health before setup %+v", h)
	}
	r.init()
	if h := r.svc.Health(); !h.Initialized || h.Degraded {
		t.Fatalf("health after setup %+v", h)
	}
	expiry := func(role string) float64 {
		t.Helper()
		mfs, err := r.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "updraft_tuf_metadata_expiry_seconds" {
				continue
			}
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "role" && l.GetValue() == role {
						return m.GetGauge().GetValue()
					}
				}
			}
		}
		t.Fatalf("no expiry gauge for %s", role)
		return 0
	}
	if got := expiry("targets"); got != (365 * 24 * time.Hour).Seconds() {
		t.Fatalf("targets expires in %v s", got)
	}
	// 340 days later, with the publisher doing its job, only the offline
	// roles need attention.
	for range 10 {
		r.clock.Advance(34 * 24 * time.Hour)
		if _, err := r.svc.PublishNow(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	h := r.svc.Health()
	w := strings.Join(h.Warnings, "\n")
	if !h.Degraded || !strings.Contains(w, "targets version 1 expires in 25 days") || !strings.Contains(w, "root version 1") || strings.Contains(w, "timestamp") {
		t.Fatalf("health %+v", h)
	}
	if got := expiry("timestamp"); got <= 12*3600 {
		t.Fatalf("timestamp expires in %v s", got)
	}
	// Expired targets stop the fleet: the warning says so.
	r.clock.Advance(26 * 24 * time.Hour)
	if w := strings.Join(r.svc.Health().Warnings, "\n"); !strings.Contains(w, "targets version 1 expired") || expiry("targets") >= 0 {
		t.Fatalf("warnings %s", w)
	}
}

// TestExpiryWebhooks: roles that need an operator are announced to the
// webhooks subscribed to signing.metadata_expiring, once a day per role
// version, and nothing is sent while everything is fresh.
func TestExpiryWebhooks(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{ExpiryWarning: 30 * 24 * time.Hour})
	r.init()
	hook, err := r.st.CreateWebhook(r.ctx, store.Webhook{TenantID: store.DefaultTenant, URL: "https://hooks.example.com/updraft",
		Secret: "sixteen bytes!!!", Events: []string{signing.EventMetadataExpiring}}, store.System, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	deliveries := func() []store.WebhookDelivery {
		t.Helper()
		d, _, err := r.st.ListWebhookDeliveries(r.ctx, store.DefaultTenant, hook.ID, store.Page{Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	if n, err := r.svc.NotifyExpiries(r.ctx); err != nil || n != 0 || len(deliveries()) != 0 {
		t.Fatalf("fresh repository: %d events, %v, %d deliveries; want none", n, err, len(deliveries()))
	}
	// 340 days on, with the publisher re-signing the online roles, root and
	// targets come within the 30-day warning.
	for range 10 {
		r.clock.Advance(34 * 24 * time.Hour)
		if _, err := r.svc.PublishNow(r.ctx); err != nil {
			t.Fatal(err)
		}
	}
	n, err := r.svc.NotifyExpiries(r.ctx)
	if err != nil || n < 2 {
		t.Fatalf("near expiry: %d events, %v; want root and targets", n, err)
	}
	var roles []string
	for _, d := range deliveries() {
		if d.Event != signing.EventMetadataExpiring {
			t.Fatalf("delivery of %q", d.Event)
		}
		roles = append(roles, string(d.Payload))
	}
	all := strings.Join(roles, "\n")
	if !strings.Contains(all, `"role":"targets"`) || !strings.Contains(all, `"role":"root"`) || strings.Contains(all, `"role":"timestamp"`) {
		t.Fatalf("expiry events: %s", all)
	}
	if n, _ := r.svc.NotifyExpiries(r.ctx); n != 0 {
		t.Fatalf("announced again within a day: %d events", n)
	}
	r.clock.Advance(25 * time.Hour)
	if n, _ := r.svc.NotifyExpiries(r.ctx); n < 2 {
		t.Fatalf("not announced again after a day: %d events", n)
	}
}

// TestTwoReplicasNeverPublishConflictingVersions races two replicas on one
// PostgreSQL database: every round both try to publish (each due to
// re-sign) while uploads land on either, and sometimes the leader pauses
// past its lease. Every stored version of every role is signed once, the
// timestamp versions form one gap-free sequence, and the timestamp a
// device sees never goes backwards whichever replica it asks.
func TestTwoReplicasNeverPublishConflictingVersions(t *testing.T) {
	t.Parallel()
	opts := signing.Options{PublishInterval: time.Hour, LeaseTTL: 24 * time.Hour}
	r := newRig(t, "postgres", opts)
	r.svc = r.replica("replica-a", opts, nil)
	b := r.replica("replica-b", opts, nil)
	r.init()
	replicas := []*signing.Service{r.svc, b}
	var seen int64
	leaders := map[int]int{}
	leader := -1
	for round := range 24 {
		// Past half the timestamp's lifetime: both would re-sign.
		r.clock.Advance(12*time.Hour + time.Minute)
		if round%5 == 4 {
			// The leader pauses past its lease; the other takes over.
			r.clock.Advance(opts.LeaseTTL)
			if ok, err := replicas[1-leader].PublishNow(r.ctx); err != nil || !ok {
				t.Fatalf("round %d: takeover: %v, %v", round, ok, err)
			}
		}
		var wg sync.WaitGroup
		results := make([]bool, 2)
		errs := make([]error, 3)
		for i, s := range replicas {
			wg.Go(func() { results[i], errs[i] = s.PublishNow(r.ctx) })
		}
		if round%3 == 0 {
			rel, _ := r.release(fmt.Sprintf("1.%d.0", round/3), int64(round))
			wg.Go(func() { _, errs[2] = r.sign(replicas[round%2], rel) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("round %d: %d: %v", round, i, err)
			}
		}
		if results[0] == results[1] {
			t.Fatalf("round %d: leaders %v: exactly one replica must lead", round, results)
		}
		now := 1
		if results[0] {
			now = 0
		}
		if leader >= 0 && now != leader && round%5 != 4 {
			t.Fatalf("round %d: leadership moved while the leader kept its lease", round)
		}
		leader = now
		leaders[leader]++
		// Every replica serves the newest timestamp, never an older one.
		for _, s := range replicas {
			v := describe(t, r.file(s, "timestamp.json")).Version
			if v < seen {
				t.Fatalf("round %d: a replica served timestamp %d after %d", round, v, seen)
			}
			seen = v
		}
	}
	if leaders[0] == 0 || leaders[1] == 0 {
		t.Fatalf("leadership never moved: %v", leaders)
	}
	for _, role := range []string{"timestamp", "snapshot", line} {
		rows, err := r.st.DB().QueryContext(r.ctx, `SELECT version, data FROM tuf_files WHERE role = '`+role+`' ORDER BY version`)
		if err != nil {
			t.Fatal(err)
		}
		var versions []int64
		for rows.Next() {
			var v int64
			var data string
			if err := rows.Scan(&v, &data); err != nil {
				t.Fatal(err)
			}
			if got := describe(t, []byte(data)).Version; got != v {
				t.Fatalf("%s stored as version %d holds version %d", role, v, got)
			}
			versions = append(versions, v)
		}
		rows.Close()
		for i, v := range versions {
			if v != int64(i+1) {
				t.Fatalf("%s versions %v: not one gap-free sequence", role, versions)
			}
		}
		if role == "timestamp" && int64(len(versions)) != seen {
			t.Fatalf("timestamps stored %d, devices saw up to %d", len(versions), seen)
		}
	}
	// A paused leader's publish after a takeover stores nothing.
	cur := describe(t, r.file(b, "timestamp.json")).Version
	r.clock.Advance(13 * time.Hour)
	leaderB, _ := b.PublishNow(r.ctx)
	leaderA, _ := r.svc.PublishNow(r.ctx)
	if leaderA == leaderB {
		t.Fatalf("after the rounds: leaders a=%v b=%v", leaderA, leaderB)
	}
	if v := describe(t, r.file(r.svc, "timestamp.json")).Version; v != cur+1 {
		t.Fatalf("timestamp %d after one more round, want %d", v, cur+1)
	}
}

// TestCampaignTermsAndFinalize: a campaign's assignment carries its
// windows and gate overrides, is signed again (forced) once a critical
// release's deadline passes, and finalizing the campaign finalizes its
// release for every device that runs it.
func TestCampaignTermsAndFinalize(t *testing.T) {
	t.Parallel()
	r := newRig(t, "sqlite", signing.Options{})
	r.init()
	rel, _ := r.release("3.0.0", 9)
	if _, err := r.sign(r.svc, rel); err != nil {
		t.Fatal(err)
	}
	deadline := r.clock.Now().Add(48 * time.Hour)
	spec := campaign.Spec{Name: "spring", Release: "3.0.0", Gates: tufmeta.GateOverrides{MinBattery: 40, AllowMetered: true},
		Schedule: campaign.Schedule{Deadline: &deadline, Windows: []tufmeta.Window{{Days: []time.Weekday{time.Saturday}, Start: "02:00", Duration: tufmeta.Duration(3 * time.Hour)}}}}
	raw, err := json.Marshal(spec)
	if err != nil {
		t.Fatal(err)
	}
	c, err := r.st.CreateCampaign(r.ctx, store.Campaign{TenantID: store.DefaultTenant, Name: "spring", Kind: store.CampaignKindRollout,
		ReleaseID: rel.ID, Spec: raw, State: store.CampaignRunning}, admin, r.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	d := r.device("A", "2.0.0")
	asg, _, err := r.st.Assign(r.ctx, store.AssignParams{TenantID: store.DefaultTenant, DeviceID: d.ID, ReleaseID: rel.ID, CampaignID: c.ID, Now: r.clock.Now()}, admin)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := r.svc.Metadata(r.ctx, "root.json")
	doc, err := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if err != nil || doc == nil {
		t.Fatalf("campaign assignment: %s, %v", doc, err)
	}
	n, got := verifyDirector(t, root, doc)
	if n != 1 || got.CampaignID != c.ID || got.Forced || got.Gates != spec.Gates || len(got.Windows) != 1 || got.Windows[0].Start != "02:00" {
		t.Fatalf("document %d: %+v", n, got)
	}
	// Past the deadline the terms of a critical release change: forced.
	r.clock.Advance(49 * time.Hour)
	rel.Severity = store.SeverityCritical
	forced, _ := r.svc.SignAssignment(r.ctx, d, asg, rel, rel.Artifacts[0])
	if n, got := verifyDirector(t, root, forced); n != 2 || !got.Forced {
		t.Fatalf("after the deadline: counter %d, %+v", n, got)
	}
	// Finalizing the campaign finalizes its release.
	running := r.device("A", "3.0.0")
	if doc, _ := r.svc.FinalizeFor(r.ctx, running, nil); doc != nil {
		t.Fatal("finalize before the campaign was finalized")
	}
	if _, err := campaign.Finalize(r.ctx, r.st, store.DefaultTenant, c.ID, admin, r.clock.Now()); err != nil {
		t.Fatal(err)
	}
	r.clock.Advance(time.Minute) // past the cache's publish interval
	doc, err = r.svc.FinalizeFor(r.ctx, running, nil)
	if err != nil || doc == nil {
		t.Fatalf("finalize after the campaign was finalized: %s, %v", doc, err)
	}
	if !bytes.Contains(doc, []byte(`"security_version":9`)) {
		t.Fatalf("finalize document %s", doc)
	}
}
