package cli

import (
	"context"
	"crypto/md5"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"

	"github.com/updraft/updraft/internal/client/clienttest"
	"github.com/updraft/updraft/internal/store"
)

// publishRelease stores a published release with one raw image.
func publishRelease(t *testing.T, s *clienttest.Server, version, deviceType string, revs ...string) store.Release {
	t.Helper()
	ctx := context.Background()
	by := clienttest.Setup()
	r, err := s.Store.CreateRelease(ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: version}, by, s.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	content := []byte(version)
	s256, s1, m5 := sha256.Sum256(content), sha1.Sum(content), md5.Sum(content)
	if _, err := s.Store.AddArtifact(ctx, store.Artifact{TenantID: store.DefaultTenant, ReleaseID: r.ID, DeviceType: deviceType, HWRevs: revs,
		Type: store.ArtifactRawImage, Name: "img", Size: int64(len(content)),
		SHA256: hex.EncodeToString(s256[:]), SHA1: hex.EncodeToString(s1[:]), MD5: hex.EncodeToString(m5[:])}, by, s.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r, err = s.Store.PublishRelease(ctx, store.DefaultTenant, r.ID, by, s.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	return r
}

func TestCampaignCommands(t *testing.T) {
	t.Parallel()
	f := setup(t)
	for _, serial := range []string{"GW-1", "GW-2", "GW-3"} {
		f.srv.Enroll(clienttest.Device{Serial: serial, DeviceType: "gw-200", HWRev: "B", Accept: true})
	}
	f.srv.Enroll(clienttest.Device{Serial: "GW-D", DeviceType: "gw-200", HWRev: "D", Accept: true})
	publishRelease(t, f.srv, "1.4.0", "gw-200", "B")

	f.steps([]step{
		{args: []string{"campaign", "create", "--preview", "--selector", `hw_rev == "B"`, "--strata", "hw_rev", "pilot", "1.4.0"},
			stdout: []string{"matches 3 devices: 3 hw_rev=B", "gw-200 rev B: 3 devices, ok"}},
		// Refused before anything starts: rev D has no artifact.
		{args: []string{"campaign", "create", "everyone", "1.4.0"}, code: 1,
			stderr: []string{"the campaign cannot start", "rev D, for which release 1.4.0 has no artifact"}},
		{args: []string{"campaign", "create", "--selector", `hw_rev == "B"`, "--waves", "50,100", "--window", "02:00/3h,sat,sun", "--per-minute", "10", "--start", "pilot", "1.4.0"},
			stdout: []string{"created campaign pilot", "running"}},
		{args: []string{"campaign", "create", "--waves", "5,1", "late", "1.4.0"}, code: 1, stderr: []string{"wave percentages must grow"}},
		{args: []string{"campaign", "list"}, stdout: []string{"pilot", "rollout", "1.4.0", "running"}},
	})
	r := f.run(runOpts{}, "campaign", "list", "-o", "json")
	var l struct{ Items []store.Campaign }
	if err := json.Unmarshal([]byte(r.stdout), &l); err != nil || len(l.Items) != 1 {
		t.Fatalf("list -o json: %v %s", err, r.stdout)
	}
	id := l.Items[0].ID
	var spec struct {
		Schedule struct {
			Windows []struct{ Start string }
		}
	}
	if err := json.Unmarshal(l.Items[0].Spec, &spec); err != nil || len(spec.Schedule.Windows) != 1 || spec.Schedule.Windows[0].Start != "02:00" {
		t.Fatalf("stored spec %s: the window did not arrive", l.Items[0].Spec)
	}
	f.steps([]step{
		{args: []string{"campaign", "show", id}, stdout: []string{"pilot (" + id + ")", "release 1.4.0", "wave 1", "wave 2", "STEP"}},
		{args: []string{"campaign", "watch", "--count", "1", id}, stdout: []string{"pilot", "wave 1"}},
		{args: []string{"campaign", "pause", id}, stdout: []string{"campaign pilot: paused"}},
		{args: []string{"campaign", "pause", id}, code: 1, stderr: []string{"cannot be paused"}},
		{args: []string{"campaign", "resume", id}, stdout: []string{"campaign pilot: running"}},
		{args: []string{"campaign", "approve", id}, stdout: []string{"approved through step 0"}},
		{args: []string{"campaign", "abort", "--reason", "wrong build", id}, stdout: []string{"aborted (wrong build)"}},
		{args: []string{"campaign", "show", "nosuch"}, code: 1, stderr: []string{"not found"}},
	})
	entries, _, err := f.srv.Store.ListAudit(context.Background(), store.DefaultTenant, store.AuditQuery{ObjectID: id, Page: store.Page{Limit: 100}})
	if err != nil {
		t.Fatal(err)
	}
	var actions []string
	for _, e := range entries {
		actions = append(actions, e.Action)
	}
	if got := strings.Join(actions, " "); !strings.Contains(got, "campaign.abort") || !strings.Contains(got, "campaign.approve") {
		t.Fatalf("audit of the campaign: %s", got)
	}
}
