package signing

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/campaign"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// SignAssignment implements deviceapi.AssignmentSigner: the director
// document for a device's assignment, signed with the next value of the
// device's director counter and stored, or the stored one while it is
// still good (same target, same director keys, more than a quarter of its
// lifetime left), so a device resuming after a restart sees the document
// it accepted.
//
// The document carries the target exactly as the offline-signed metadata
// lists it. When there is nothing it may sign — no repository yet, no
// signed target at the artifact's path, a signed target that does not
// match the artifact's bytes or the device's hardware, no director key —
// it returns nil: the device gets the assignment without a signed
// document, which a verifying device refuses. For a campaign's assignment
// the document carries the campaign's windows, gate overrides and forced
// flag (campaign.AssignmentTerms); when they change (a critical release's
// deadline passes) the document is signed again.
func (s *Service) SignAssignment(ctx context.Context, d store.Device, a store.Assignment, r store.Release, art store.Artifact) (json.RawMessage, error) {
	if d.TenantID != s.tenant {
		return nil, nil
	}
	path := TargetPath(art, r.Version)
	now := s.clock.Now()
	st, err := s.current(ctx)
	if err != nil {
		return nil, err
	}
	t, ok := st.targets[path]
	if !ok {
		// Perhaps another replica stored the signed metadata just now.
		if st, err = s.refresh(ctx); err != nil {
			return nil, err
		}
		if st.repo == nil {
			return nil, nil // signed updates are not set up: nothing to say
		}
		if t, ok = st.targets[path]; !ok {
			s.unsigned(ctx, d, a, "no offline-signed target at "+path)
			return nil, nil
		}
	}
	switch {
	case t.Length != art.Size || t.SHA256 != art.SHA256:
		s.unsigned(ctx, d, a, fmt.Sprintf("the signed target %s does not match the artifact's length and SHA-256", path))
		return nil, nil
	case !t.Custom.Suits(d.DeviceType, d.HWRev):
		s.unsigned(ctx, d, a, fmt.Sprintf("the signed target %s is not for %s revision %s", path, d.DeviceType, d.HWRev))
		return nil, nil
	}
	signers := s.signersFor(ctx, st.repo.Root(), tufmeta.RoleDirector, true)
	if len(signers) == 0 {
		s.unsigned(ctx, d, a, "no director key listed in the latest root is held by this server")
		return nil, nil
	}
	terms, err := s.terms(ctx, a, r, now)
	if err != nil {
		var bad *badCampaign
		if errors.As(err, &bad) {
			s.unsigned(ctx, d, a, err.Error())
			return nil, nil
		}
		return nil, err
	}
	subject := path + " " + keyIDsOf(signers) + " " + digest(terms)
	doc, err := s.directorDoc(ctx, d.ID, store.DirectorAssignment, a.ID, subject, now, func(counter int64, exp time.Time) ([]byte, error) {
		return tufrepo.SignAssignment(tufrepo.Assignment{
			DeviceID: d.ID, AssignmentID: a.ID, CampaignID: a.CampaignID, Target: t,
			Counter: counter, Expires: exp, Windows: terms.Windows, Gates: terms.Gates, Forced: terms.Forced,
		}, signers...)
	})
	if err != nil {
		return nil, fmt.Errorf("director document for assignment %s: %w", a.ID, err)
	}
	return doc, nil
}

// terms are the campaign's instructions the document carries: its
// maintenance windows, gate overrides and, for a critical release past the
// deadline, forced. An assignment outside a campaign has none.
func (s *Service) terms(ctx context.Context, a store.Assignment, r store.Release, now time.Time) (campaign.Terms, error) {
	if a.CampaignID == "" {
		return campaign.Terms{}, nil
	}
	c, err := s.store.Campaign(ctx, s.tenant, a.CampaignID)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return campaign.Terms{}, nil
	case err != nil:
		return campaign.Terms{}, fmt.Errorf("read campaign %s: %w", a.CampaignID, err)
	}
	t, err := campaign.AssignmentTerms(c, r, now)
	if err != nil {
		return campaign.Terms{}, &badCampaign{err}
	}
	return t, nil
}

// badCampaign is a campaign whose terms cannot be read: signing without
// them would drop its windows and gates, so nothing is signed.
type badCampaign struct{ err error }

func (e *badCampaign) Error() string { return "campaign terms: " + e.err.Error() }

// digest names terms in a stored document's subject, so a change of
// windows, gates or forcing re-signs the document.
func digest(t campaign.Terms) string {
	b, _ := json.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

func (s *Service) unsigned(ctx context.Context, d store.Device, a store.Assignment, why string) {
	s.m.unsigned.Inc()
	s.log.WarnContext(ctx, "signing: assignment handed out without a director document",
		"device_id", d.ID, "assignment_id", a.ID, "reason", why)
}

// directorDoc returns the stored document for (device, kind, key) when it
// has the same subject and more than a quarter of its lifetime left, and
// otherwise signs a new one with the device's next counter.
func (s *Service) directorDoc(ctx context.Context, deviceID, kind, key, subject string, now time.Time,
	sign func(counter int64, expires time.Time) ([]byte, error)) ([]byte, error) {
	usable := func(doc store.DirectorDocument) bool {
		return doc.Subject == subject && doc.Expires.Sub(now) > s.opts.DirectorLifetime/4
	}
	doc, err := s.store.DirectorDocument(ctx, s.tenant, deviceID, kind, key)
	switch {
	case err == nil && usable(doc):
		return doc.Doc, nil
	case err != nil && !errors.Is(err, store.ErrNotFound):
		return nil, err
	}
	exp := now.Add(s.opts.DirectorLifetime).Truncate(time.Second)
	doc, err = s.store.SignDirectorDocument(ctx, s.tenant, deviceID, kind, key, usable, func(counter int64) (store.DirectorDocument, error) {
		b, err := sign(counter, exp)
		if err != nil {
			return store.DirectorDocument{}, err
		}
		return store.DirectorDocument{Subject: subject, Counter: counter, Expires: exp, Doc: b}, nil
	}, now)
	if err != nil {
		return nil, err
	}
	s.m.documents.WithLabelValues(kind).Inc()
	return doc.Doc, nil
}

// FinalizeFor returns the finalize document for a device that runs a
// finalized release, or nil. The security version is the one the
// offline-signed targets give that version for the device's hardware
// (the device checks exactly that). A device that reported a security
// floor at or above it needs none. The document is stored and handed out
// again until it nears expiry.
//
// Finalized releases are cached and re-read when the cache is a publish
// interval old, so another replica's finalize reaches devices within one
// interval.
func (s *Service) FinalizeFor(ctx context.Context, d store.Device, reportedFloor *int64) (json.RawMessage, error) {
	if d.TenantID != s.tenant || d.Version == "" {
		return nil, nil
	}
	s.mu.RLock()
	stale := s.clock.Now().Sub(s.finalAt) >= s.opts.PublishInterval
	s.mu.RUnlock()
	if stale {
		if err := s.loadFinalized(ctx); err != nil {
			return nil, err
		}
	}
	s.mu.RLock()
	_, finalized := s.finalized[d.Version]
	s.mu.RUnlock()
	if !finalized {
		return nil, nil
	}
	st, err := s.current(ctx)
	if err != nil || st.repo == nil {
		return nil, err
	}
	sec, ok := signedSecurityVersion(st, d)
	if !ok {
		return nil, nil
	}
	if reportedFloor != nil && *reportedFloor >= sec {
		return nil, nil
	}
	signers := s.signersFor(ctx, st.repo.Root(), tufmeta.RoleDirector, true)
	if len(signers) == 0 {
		return nil, nil
	}
	now := s.clock.Now()
	subject := strconv.FormatInt(sec, 10) + " " + keyIDsOf(signers)
	doc, err := s.directorDoc(ctx, d.ID, store.DirectorFinalize, d.Version, subject, now, func(counter int64, exp time.Time) ([]byte, error) {
		return tufrepo.SignFinalize(tufrepo.Finalize{DeviceID: d.ID, Version: d.Version, SecurityVersion: sec, Counter: counter, Expires: exp}, signers...)
	})
	if err != nil {
		return nil, fmt.Errorf("finalize document for device %s: %w", d.ID, err)
	}
	return doc, nil
}

// signedSecurityVersion is the highest security version the trusted
// targets give d's version for its hardware.
func signedSecurityVersion(st *state, d store.Device) (int64, bool) {
	var best int64
	found := false
	for _, t := range st.byRelease[d.DeviceType+"/"+d.Version] {
		if t.Custom.Suits(d.DeviceType, d.HWRev) && (!found || t.Custom.SecurityVersion > best) {
			best, found = t.Custom.SecurityVersion, true
		}
	}
	return best, found
}

// FinalizeRelease records that an operator finalized a published release:
// devices running it get a finalize document at their next check-in (on
// this replica at once, on others within a publish interval).
func (s *Service) FinalizeRelease(ctx context.Context, releaseID string, by store.Actor) (store.FinalizedRelease, error) {
	f, err := s.store.FinalizeRelease(ctx, s.tenant, releaseID, by, s.clock.Now())
	if err != nil {
		return store.FinalizedRelease{}, err
	}
	if err := s.loadFinalized(ctx); err != nil {
		s.log.WarnContext(ctx, "signing: reload finalized releases", "err", err)
	}
	return f, nil
}
