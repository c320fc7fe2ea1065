package tufrepo_test

import (
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
	"github.com/updraft/updraft/internal/tufrepo/tufrepotest"
)

// FuzzVerifyUpload feeds arbitrary uploaded metadata to the server's
// upload check for a release-signing role and for top-level targets: it
// must never panic and must refuse anything not signed by the role's keys.
func FuzzVerifyUpload(f *testing.F) {
	r, _ := fixture(f)
	f.Add(r.SignRelease("gw-200", tufrepotest.Artifacts("gw-200", tufrepotest.Release{Version: "1.0.0"})).Metadata, false)
	f.Add(r.Repo.Targets[metadata.TARGETS], true)
	f.Add([]byte(`{"signed":{"_type":"targets","version":2,"targets":{"a":null}},"signatures":[]}`), false)
	f.Fuzz(func(t *testing.T, b []byte, top bool) {
		u := tufrepo.Upload{Role: "gw-200", Metadata: b}
		delegator := r.Repo.Targets[metadata.TARGETS]
		if top {
			u.Role, delegator = metadata.TARGETS, r.Repo.Root()
		}
		if err := tufrepo.VerifyUpload(delegator, r.Repo.Targets[u.Role], u, start, tufmeta.Limits{}); err == nil {
			t.Fatalf("accepted %d arbitrary bytes", len(b))
		}
		_, _ = tufrepo.Describe(b)
		_, _ = tufrepo.Targets(b)
		_, _ = tufrepo.Delegations(b)
	})
}
