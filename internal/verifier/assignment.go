package verifier

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"
	"github.com/updraft/updraft/internal/tufmeta"
)

// assignment is a parsed, not yet verified director document.
type assignment struct {
	meta   *metadata.Metadata[metadata.TargetsType]
	path   string
	file   *metadata.TargetFiles
	sha256 string
	custom tufmeta.AssignmentCustom
}

// parseAssignment decodes a director document: targets metadata with
// exactly one target carrying a SHA-256 and an AssignmentCustom, and no
// delegations.
func parseAssignment(doc []byte) (*assignment, error) {
	m, err := parseDirectorDoc(doc)
	if err != nil {
		return nil, err
	}
	if len(m.Signed.Targets) != 1 || m.Signed.Delegations != nil {
		return nil, refusal(ReasonMalformed, "a director document must name exactly one target and delegate nothing", nil)
	}
	a := &assignment{meta: m}
	for p, f := range m.Signed.Targets {
		a.path, a.file = p, f
	}
	if a.file == nil || a.file.Custom == nil || a.file.Length < 0 {
		return nil, refusal(ReasonMalformed, "director target lacks length or custom fields", nil)
	}
	sum, ok := a.file.Hashes["sha256"]
	if !ok || len(sum) != sha256.Size {
		return nil, refusal(ReasonMalformed, "director target has no sha256", nil)
	}
	a.sha256 = hex.EncodeToString(sum)
	if err := json.Unmarshal(*a.file.Custom, &a.custom); err != nil {
		return nil, refusal(ReasonMalformed, "director custom fields cannot be parsed", err)
	}
	return a, nil
}

// parseFinalize decodes a finalize document: targets metadata with no
// targets and a FinalizeCustom under "custom".
func parseFinalize(doc []byte) (*metadata.Metadata[metadata.TargetsType], tufmeta.FinalizeCustom, error) {
	var fc tufmeta.FinalizeCustom
	m, err := parseDirectorDoc(doc)
	if err != nil {
		return nil, fc, err
	}
	raw, ok := m.Signed.UnrecognizedFields["custom"]
	if !ok || len(m.Signed.Targets) != 0 || m.Signed.Delegations != nil {
		return nil, fc, refusal(ReasonMalformed, "a finalize document has custom fields and no targets", nil)
	}
	b, err := json.Marshal(raw)
	if err == nil {
		err = json.Unmarshal(b, &fc)
	}
	if err != nil || fc.Type != tufmeta.FinalizeType || fc.DeviceID == "" || fc.Version == "" || fc.SecurityVersion < 0 {
		return nil, fc, refusal(ReasonMalformed, "finalize custom fields are not an updraft finalize", err)
	}
	return m, fc, nil
}

func parseDirectorDoc(doc []byte) (*metadata.Metadata[metadata.TargetsType], error) {
	var m *metadata.Metadata[metadata.TargetsType]
	err := guard(func() (err error) {
		m, err = new(metadata.Metadata[metadata.TargetsType]).FromBytes(doc)
		return err
	})
	if err != nil {
		return nil, refusal(ReasonMalformed, "director document cannot be parsed", err)
	}
	if m.Signed.Version < 1 {
		return nil, refusal(ReasonMalformed, "director document version must be at least 1", nil)
	}
	return m, nil
}

// verifyDirector checks a director document's signatures against the
// director keys and threshold of the latest trusted root.
func (c *Client) verifyDirector(m *metadata.Metadata[metadata.TargetsType]) error {
	err := guard(func() error { return c.rootMeta.VerifyDelegate(tufmeta.RoleDirector, m) })
	if err != nil {
		return refusal(ReasonBadSignature, fmt.Sprintf("director document is not signed by the director keys of root version %d", c.rootMeta.Signed.Version), err)
	}
	return nil
}

// VerifyAssignment implements Verifier.
func (c *Client) VerifyAssignment(_ context.Context, doc []byte) (*Target, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if int64(len(doc)) > c.cfg.Limits.Director {
		return nil, refusal(ReasonTooLong, fmt.Sprintf("director document is larger than %d bytes", c.cfg.Limits.Director), nil)
	}
	a, err := parseAssignment(doc)
	if err != nil {
		return nil, err
	}
	if err := c.verifyDirector(a.meta); err != nil {
		return nil, err
	}
	if a.custom.DeviceID != c.cfg.DeviceID {
		return nil, refusal(ReasonWrongDevice, fmt.Sprintf("assignment is for device %q", a.custom.DeviceID), nil)
	}
	if a.meta.Signed.IsExpired(now) {
		return nil, refusal(ReasonExpired, fmt.Sprintf("assignment expired at %s", a.meta.Signed.Expires.Format(time.RFC3339)), nil)
	}
	sum := sha256.Sum256(doc)
	docHash := hex.EncodeToString(sum[:])
	counter := a.meta.Signed.Version
	if counter < c.st.DirectorCounter || counter == c.st.DirectorCounter && docHash != c.st.DirectorDocument {
		return nil, refusal(ReasonRollback, fmt.Sprintf("director counter %d, last accepted %d", counter, c.st.DirectorCounter), nil)
	}
	if err := c.trustedCurrent(now); err != nil {
		return nil, err
	}
	dt, _, _, _, err := tufmeta.SplitTargetPath(a.path)
	if err != nil {
		return nil, refusal(ReasonMalformed, "director target path", err)
	}
	if dt != c.cfg.DeviceType {
		return nil, refusal(ReasonWrongHardware, fmt.Sprintf("target %s is not for device type %s", a.path, c.cfg.DeviceType), nil)
	}
	signed, err := c.lookup(a.path)
	if err != nil {
		return nil, err
	}
	var offline tufmeta.TargetCustom
	offSum, ok := signed.Hashes["sha256"]
	if !ok || signed.Custom == nil || json.Unmarshal(*signed.Custom, &offline) != nil {
		return nil, refusal(ReasonMismatch, fmt.Sprintf("signed target %s lacks sha256 or custom fields", a.path), nil)
	}
	switch {
	case signed.Length != a.file.Length:
		return nil, refusal(ReasonMismatch, fmt.Sprintf("%s: director says %d bytes, signed targets %d", a.path, a.file.Length, signed.Length), nil)
	case hex.EncodeToString(offSum) != a.sha256:
		return nil, refusal(ReasonMismatch, fmt.Sprintf("%s: director and signed targets disagree on sha256", a.path), nil)
	case !offline.Equal(a.custom.Target):
		return nil, refusal(ReasonMismatch, fmt.Sprintf("%s: director and signed targets disagree on custom fields", a.path), nil)
	}
	if offline.DeviceType != dt || !offline.Suits(c.cfg.DeviceType, c.cfg.HWRev) {
		return nil, refusal(ReasonWrongHardware, fmt.Sprintf("%s is for %s revisions %v, device is %s revision %s",
			a.path, offline.DeviceType, offline.HWRevs, c.cfg.DeviceType, c.cfg.HWRev), nil)
	}
	if offline.SecurityVersion < c.st.SecurityFloor {
		return nil, refusal(ReasonBelowFloor, fmt.Sprintf("%s has security version %d, device floor is %d", a.path, offline.SecurityVersion, c.st.SecurityFloor), nil)
	}
	return &Target{
		Path: a.path, Length: signed.Length, SHA256: a.sha256, Custom: offline,
		DeviceID: a.custom.DeviceID, AssignmentID: a.custom.AssignmentID, CampaignID: a.custom.CampaignID,
		Counter: counter, Expires: a.meta.Signed.Expires, Windows: a.custom.Windows, Gates: a.custom.Gates,
		Forced: a.custom.Forced, Document: docHash,
	}, nil
}

// trustedCurrent checks that a complete trusted set is loaded and that
// none of it has expired at now.
func (c *Client) trustedCurrent(now time.Time) error {
	tm := c.trusted
	if tm == nil {
		if c.lastRefusal != nil {
			return c.lastRefusal
		}
		return errors.New("verifier: no trusted targets metadata yet: refresh first")
	}
	if c.rootMeta.Signed.IsExpired(now) {
		return refusal(ReasonExpired, fmt.Sprintf("root version %d has expired", c.rootMeta.Signed.Version), nil)
	}
	if tm.Timestamp.Signed.IsExpired(now) {
		return refusal(ReasonExpired, fmt.Sprintf("timestamp version %d expired at %s", tm.Timestamp.Signed.Version, tm.Timestamp.Signed.Expires.Format(time.RFC3339)), nil)
	}
	if tm.Snapshot.Signed.IsExpired(now) {
		return refusal(ReasonExpired, fmt.Sprintf("snapshot version %d has expired", tm.Snapshot.Signed.Version), nil)
	}
	for name, m := range tm.Targets {
		if m.Signed.IsExpired(now) {
			return refusal(ReasonExpired, fmt.Sprintf("%s version %d has expired", name, m.Signed.Version), nil)
		}
	}
	return nil
}

// lookup finds the signed entry for p the way TUF does: top-level targets
// first, then the delegations in order, trusting a role only for the paths
// delegated to it and stopping at a terminating delegation.
func (c *Client) lookup(p string) (*metadata.TargetFiles, error) {
	top := c.trusted.Targets[metadata.TARGETS]
	if f, ok := top.Signed.Targets[p]; ok && f != nil {
		return f, nil
	}
	if top.Signed.Delegations != nil {
		for _, r := range top.Signed.Delegations.Roles {
			if ok, _ := r.IsDelegatedPath(p); !ok {
				continue
			}
			if m := c.trusted.Targets[r.Name]; m != nil {
				if f, ok := m.Signed.Targets[p]; ok && f != nil {
					return f, nil
				}
			}
			if r.Terminating {
				break
			}
		}
	}
	for name, m := range c.trusted.Targets {
		if _, ok := m.Signed.Targets[p]; ok && name != metadata.TARGETS {
			return nil, refusal(ReasonUnsafeDelegate, fmt.Sprintf("%s is signed only by role %s, which is not delegated that path", p, name), nil)
		}
	}
	return nil, refusal(ReasonNotInTargets, fmt.Sprintf("%s is not in the signed targets", p), nil)
}

// Accept implements Verifier: it persists the document's counter so no
// older document can be used again.
func (c *Client) Accept(t *Target) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t == nil || t.Document == "" {
		return errors.New("verifier: accept: target did not come from VerifyAssignment")
	}
	if t.Counter < c.st.DirectorCounter || t.Counter == c.st.DirectorCounter && t.Document != c.st.DirectorDocument {
		return refusal(ReasonRollback, fmt.Sprintf("director counter %d, last accepted %d", t.Counter, c.st.DirectorCounter), nil)
	}
	prev := c.st
	c.st.DirectorCounter, c.st.DirectorDocument = t.Counter, t.Document
	if err := c.saveState(); err != nil {
		c.st = prev
		return err
	}
	return nil
}

// Finalize implements Verifier. The finalize must be signed by the
// director, name this device, not have expired, name the version the
// device runs, and agree with an offline-signed target of that version for
// this hardware on its security version — so a compromised director cannot
// push the floor above what the operator signed and lock devices out of
// every update. The floor never goes down; a repeated finalize is a no-op.
func (c *Client) Finalize(_ context.Context, doc []byte, runningVersion string) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if int64(len(doc)) > c.cfg.Limits.Director {
		return refusal(ReasonTooLong, fmt.Sprintf("finalize document is larger than %d bytes", c.cfg.Limits.Director), nil)
	}
	m, fc, err := parseFinalize(doc)
	if err != nil {
		return err
	}
	if err := c.verifyDirector(m); err != nil {
		return err
	}
	if fc.DeviceID != c.cfg.DeviceID {
		return refusal(ReasonWrongDevice, fmt.Sprintf("finalize is for device %q", fc.DeviceID), nil)
	}
	if m.Signed.IsExpired(now) {
		return refusal(ReasonExpired, fmt.Sprintf("finalize expired at %s", m.Signed.Expires.Format(time.RFC3339)), nil)
	}
	if fc.Version != runningVersion {
		return refusal(ReasonMismatch, fmt.Sprintf("finalize is for version %s, device runs %s", fc.Version, runningVersion), nil)
	}
	if err := c.trustedCurrent(now); err != nil {
		return err
	}
	if !c.signedRelease(fc.Version, fc.SecurityVersion) {
		return refusal(ReasonNotInTargets, fmt.Sprintf("no signed target of version %s with security version %d for %s revision %s",
			fc.Version, fc.SecurityVersion, c.cfg.DeviceType, c.cfg.HWRev), nil)
	}
	if fc.SecurityVersion <= c.st.SecurityFloor {
		return nil
	}
	prev := c.st
	c.st.SecurityFloor = fc.SecurityVersion
	if err := c.saveState(); err != nil {
		c.st = prev
		return err
	}
	c.cfg.Logger.Info("verifier: security floor raised", "floor", fc.SecurityVersion, "version", fc.Version)
	return nil
}

// signedRelease reports whether the trusted targets hold, for this
// device's hardware, a target of the version with that security version.
func (c *Client) signedRelease(version string, securityVersion int64) bool {
	for path := range c.candidates() {
		f, err := c.lookup(path)
		if err != nil || f.Custom == nil {
			continue
		}
		var tc tufmeta.TargetCustom
		if json.Unmarshal(*f.Custom, &tc) != nil {
			continue
		}
		if dt, _, _, _, err := tufmeta.SplitTargetPath(path); err != nil || dt != c.cfg.DeviceType {
			continue
		}
		if tc.Version == version && tc.SecurityVersion == securityVersion && tc.Suits(c.cfg.DeviceType, c.cfg.HWRev) {
			return true
		}
	}
	return false
}

// candidates is the set of target paths in any trusted role.
func (c *Client) candidates() map[string]bool {
	out := map[string]bool{}
	for _, m := range c.trusted.Targets {
		for p := range m.Signed.Targets {
			out[p] = true
		}
	}
	return out
}
