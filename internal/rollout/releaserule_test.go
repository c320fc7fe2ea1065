package rollout_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
)

// problemWith returns the message of the problem on field, "" if none.
func problemWith(err error, field string) string {
	var ps campaign.Problems
	if !errors.As(err, &ps) {
		return ""
	}
	for _, p := range ps {
		if p.Field == field {
			return p.Message
		}
	}
	return ""
}

func TestStagedReleaseRule(t *testing.T) {
	t.Parallel()
	s := newSim(t, openStore(t), 3)
	fleet(s, 40, 4)
	s.release("2.0.0", 2, store.SeverityMedium, "gw", "B", "C")
	prod := baseSpec("prod", "2.0.0")
	prod.RequireStagedRelease = true
	overrides := func() int {
		t.Helper()
		es, _, err := s.st.ListAudit(s.ctx, store.DefaultTenant, store.AuditQuery{Action: "campaign.override_staging"})
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	create := func(spec campaign.Spec) error {
		_, _, err := campaign.Create(s.ctx, s.st, store.DefaultTenant, spec, admin, s.clock.Now())
		return err
	}

	if err := create(prod); !strings.Contains(problemWith(err, "release"), "has not completed staging") {
		t.Fatalf("production campaign of an unstaged release: err = %v, want the release rule's refusal", err)
	}
	free := prod
	free.RequireStagedRelease = false
	if err := create(free); err != nil {
		t.Fatalf("without the rule: %v", err)
	}
	forced := prod
	forced.OverrideStaging = true
	if err := create(forced); err != nil {
		t.Fatalf("override: %v", err)
	}
	if n := overrides(); n != 1 {
		t.Fatalf("override audited %d times, want 1", n)
	}

	staging := baseSpec("lab first", "2.0.0")
	staging.RequireStagedRelease = true // its own staging waves satisfy the rule
	staging.Plan.Staging = []campaign.StagingWave{{Name: "lab", Selector: "tag:lab"}}
	c := s.start(staging)
	s.runUntil(24*time.Hour, "staging waits for approval", func() bool {
		return s.campaign(c.ID).State == store.CampaignWaitingApproval
	})
	if err := create(prod); problemWith(err, "release") == "" {
		t.Fatalf("staging not yet approved: err = %v, want a refusal", err)
	}
	if _, err := campaign.Approve(s.ctx, s.st, store.DefaultTenant, c.ID, admin, s.clock.Now()); err != nil {
		t.Fatal(err)
	}
	s.runUntil(24*time.Hour, "staging passed", func() bool { return s.campaign(c.ID).Step >= 1 })
	if got, err := campaign.StagedBy(s.ctx, s.st, store.DefaultTenant, c.ReleaseID); err != nil || got != c.ID {
		t.Fatalf("StagedBy = %q, %v; want %s", got, err, c.ID)
	}
	if err := create(prod); err != nil {
		t.Fatalf("after staging passed: %v", err)
	}
	if err := create(forced); err != nil {
		t.Fatal(err)
	}
	if n := overrides(); n != 1 {
		t.Fatalf("an override that overrode nothing was audited (%d entries, want 1)", n)
	}
}

// ddiDevice enrolls and accepts a hawkBit (DDI) device.
func ddiDevice(s *sim, deviceType, rev string) {
	s.t.Helper()
	s.n++
	serial := fmt.Sprintf("DDI-%05d", s.n)
	d, err := s.st.Enroll(s.ctx, store.EnrollParams{
		TenantID: store.DefaultTenant, Serial: serial, DeviceType: deviceType, HWRev: rev, Protocol: store.ProtocolDDI,
		Key: store.Credential{Kind: store.CredPublicKey, Algorithm: "ed25519", Fingerprint: "fp-" + serial, Material: "key of " + serial},
		Now: s.clock.Now(), PendingTTL: 24 * time.Hour, MaxPending: 100000,
	})
	if err != nil {
		s.t.Fatal(err)
	}
	if _, err := s.st.AcceptDevice(s.ctx, store.DefaultTenant, d.ID, admin, s.clock.Now()); err != nil {
		s.t.Fatal(err)
	}
}

func TestDDITargetsNeedASuitableArtifact(t *testing.T) {
	t.Parallel()
	type art struct {
		typ             store.ArtifactType
		component, name string
		revs            []string
	}
	swu := art{store.ArtifactSWU, "", "update.swu", []string{"1.0"}}
	cases := []struct {
		name     string
		selector string
		arts     []art
		refused  bool
	}{
		{"swu for SWUpdate", "", []art{swu}, false},
		{"swu among other artifacts", "", []art{swu, {store.ArtifactFile, "cfg", "cfg.tar", []string{"1.0"}}}, false},
		{"single RAUC bundle", "", []art{{store.ArtifactRAUCBundle, "", "bundle.raucb", []string{"1.0"}}}, false},
		{"single bApp for Zephyr", "", []art{{store.ArtifactFile, "bApp", "zephyr.signed.bin", []string{"1.0"}}}, false},
		{"raw image only", "", []art{{store.ArtifactRawImage, "rootfs", "rootfs.img", []string{"1.0"}}}, true},
		{"two RAUC bundles", "", []art{
			{store.ArtifactRAUCBundle, "a", "a.raucb", []string{"1.0"}},
			{store.ArtifactRAUCBundle, "b", "b.raucb", []string{"1.0"}},
		}, true},
		{"swu type without the .swu name", "", []art{{store.ArtifactSWU, "", "update.bin", []string{"1.0"}}}, true},
		{"swu for another revision", "", []art{{store.ArtifactRawImage, "rootfs", "rootfs.img", []string{"1.0"}}, {store.ArtifactSWU, "", "u.swu", []string{"2.0"}}}, true},
		{"selector leaves DDI devices out", `protocol == "native"`, []art{{store.ArtifactRawImage, "rootfs", "rootfs.img", []string{"1.0"}}}, false},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			s := newSim(t, openStore(t), uint64(10+i))
			s.device("board", "1.0", "")
			for range 3 {
				ddiDevice(s, "board", "1.0")
			}
			rel, err := s.st.CreateRelease(s.ctx, store.NewRelease{TenantID: store.DefaultTenant, Version: "2.0.0", SecurityVersion: 1, Severity: store.SeverityMedium}, admin, s.clock.Now())
			if err != nil {
				t.Fatal(err)
			}
			for _, a := range c.arts {
				if _, err := s.st.AddArtifact(s.ctx, store.Artifact{
					TenantID: store.DefaultTenant, ReleaseID: rel.ID, DeviceType: "board", HWRevs: a.revs, Type: a.typ,
					Component: a.component, Name: a.name, Size: 4,
					SHA256: strings.Repeat("a", 64), SHA1: strings.Repeat("b", 40), MD5: strings.Repeat("c", 32),
				}, admin, s.clock.Now()); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := s.st.PublishRelease(s.ctx, store.DefaultTenant, rel.ID, admin, s.clock.Now()); err != nil {
				t.Fatal(err)
			}
			spec := baseSpec("ddi", "2.0.0")
			spec.Selector = c.selector
			spec.Plan = campaign.Plan{Waves: []float64{100}, NoControl: true}
			_, _, err = campaign.Create(s.ctx, s.st, store.DefaultTenant, spec, admin, s.clock.Now())
			msg := problemWith(err, "release")
			switch {
			case c.refused && !strings.Contains(msg, "3 targeted DDI (hawkBit) devices are board rev \"1.0\""):
				t.Fatalf("err = %v, want a refusal naming the 3 DDI devices and their hardware", err)
			case !c.refused && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
}
