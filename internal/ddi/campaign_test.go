package ddi_test

import (
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/rollout"
	"github.com/updraft/updraft/internal/store"
)

// runCampaign creates and starts a one-wave campaign of version over every
// accepted device and lets the rollout engine dispatch it.
func (e *env) runCampaign(version string) (store.Campaign, *rollout.Engine) {
	e.t.Helper()
	spec := campaign.Spec{Name: "ddi-" + version, Release: version, Seed: 7,
		Plan:   campaign.Plan{Waves: []float64{100}, NoControl: true},
		Health: campaign.Health{MinSoak: campaign.Duration(time.Hour)}}
	c, _, err := campaign.Create(e.ctx, e.store, store.DefaultTenant, spec, admin, e.clock.Now())
	if err != nil {
		e.t.Fatalf("create campaign: %v", err)
	}
	if c, err = campaign.Start(e.ctx, e.store, store.DefaultTenant, c.ID, admin, e.clock.Now()); err != nil {
		e.t.Fatalf("start campaign: %v", err)
	}
	eng, err := rollout.New(rollout.Config{Store: e.store, Clock: e.clock, Holder: "ddi-test", Interval: time.Minute, LeaseTTL: 10 * time.Minute, Lag: -1})
	if err != nil {
		e.t.Fatal(err)
	}
	e.tick(eng)
	return c, eng
}

func (e *env) tick(eng *rollout.Engine) {
	e.t.Helper()
	e.clock.Advance(time.Minute)
	if _, err := eng.Tick(e.ctx); err != nil {
		e.t.Fatalf("tick: %v", err)
	}
}

func (e *env) campaignDevice(c store.Campaign, d store.Device) store.CampaignDevice {
	e.t.Helper()
	cd, err := e.store.CampaignDevice(e.ctx, store.DefaultTenant, c.ID, d.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return cd
}

// TestCampaignCountsDDIOutcomes checks that DDI devices take part in a
// campaign: the engine's assignments reach them as actions, and their
// feedback is what the campaign counts.
func TestCampaignCountsDDIOutcomes(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	good, tokGood := e.device("ddi-good")
	bad, tokBad := e.device("ddi-bad")
	e.release("5.0.0", store.SeverityMedium, swu)
	c, eng := e.runCampaign("5.0.0")
	for _, dev := range []struct {
		d        store.Device
		cid, tok string
		finished string
	}{{good, "ddi-good", tokGood, "success"}, {bad, "ddi-bad", tokBad, "failure"}} {
		dbPath := e.href(e.poll(dev.cid, tt(dev.tok)), "deploymentBase")
		e.deploymentBase(dbPath, tt(dev.tok))
		e.want(e.do("POST", strings.SplitN(dbPath, "?", 2)[0]+"/feedback", tt(dev.tok), fb("closed", dev.finished)), 200, dev.cid+" feedback")
	}
	e.tick(eng)
	if got := e.campaignDevice(c, good).State; got != store.CDSucceeded {
		t.Fatalf("campaign counts the succeeding DDI device as %s", got)
	}
	if got := e.campaignDevice(c, bad).State; got != store.CDFailed {
		t.Fatalf("campaign counts the failing DDI device as %s", got)
	}
}
