package mgmtapi

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/store"
)

// maxNotesLen bounds release notes (the store enforces the same limit).
const maxNotesLen = 64 << 10

// checkVersion refuses anything but a strict semantic version.
func checkVersion(field, v string) error {
	if v == "" {
		return apierror.New(http.StatusBadRequest, "bad_version", "%s is required: a semantic version such as 1.2.0", field)
	}
	if _, err := semver.Parse(v); err != nil {
		return apierror.New(http.StatusBadRequest, "bad_version", "%s: %s; see https://semver.org", field, err.Error())
	}
	return nil
}

func parseSeverity(s string) (store.Severity, error) {
	switch sev := store.Severity(s); sev {
	case store.SeverityLow, store.SeverityMedium, store.SeverityHigh, store.SeverityCritical:
		return sev, nil
	case "":
		return "", nil // the store's default (low)
	}
	return "", apierror.BadRequest("severity %q is not one of low, medium, high, critical", s)
}

func (a *API) createRelease(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Version         string   `json:"version"`
		Notes           string   `json:"notes"`
		SecurityVersion int64    `json:"security_version"`
		Severity        string   `json:"severity"`
		CVEs            []string `json:"cves"`
	}
	if err := decodeBody(w, r, maxReleaseBody, &req); err != nil {
		return err
	}
	if err := checkVersion("version", req.Version); err != nil {
		return err
	}
	if len(req.Notes) > maxNotesLen {
		return apierror.BadRequest("notes are longer than %d bytes", maxNotesLen)
	}
	if req.SecurityVersion < 0 {
		return apierror.BadRequest("security_version must not be negative")
	}
	sev, err := parseSeverity(req.Severity)
	if err != nil {
		return err
	}
	rel, err := a.store.CreateRelease(r.Context(), store.NewRelease{
		TenantID:        c.tenant(),
		Version:         req.Version,
		Notes:           req.Notes,
		SecurityVersion: req.SecurityVersion,
		Severity:        sev,
		CVEs:            nonNil(req.CVEs),
	}, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("create release %s: %w", req.Version, err)
	}
	return created(w, releaseView(rel))
}

func (a *API) listReleases(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	rels, next, err := a.store.ListReleases(r.Context(), c.tenant(), p)
	if err != nil {
		return fmt.Errorf("list releases: %w", err)
	}
	for i := range rels {
		rels[i] = releaseView(rels[i])
	}
	writeList(w, rels, next)
	return nil
}

func (a *API) getRelease(w http.ResponseWriter, r *http.Request, c *caller) error {
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	return ok(w, releaseView(rel))
}

func (a *API) publishRelease(w http.ResponseWriter, r *http.Request, c *caller) error {
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	rel, err = a.store.PublishRelease(r.Context(), c.tenant(), rel.ID, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("publish release %s: %w", r.PathValue("id"), err)
	}
	return ok(w, releaseView(rel))
}

// deleteRelease removes a draft. Its blobs stay: another upload may be
// adopting the same content right now, so only the blob collector
// (internal/blobgc) deletes blobs, once unreferenced and idle.
func (a *API) deleteRelease(w http.ResponseWriter, r *http.Request, c *caller) error {
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if err := a.store.DeleteDraft(r.Context(), c.tenant(), rel.ID, c.actor, a.now()); err != nil {
		return fmt.Errorf("delete release %s: %w", rel.Version, err)
	}
	return noContent(w)
}

func (a *API) markBad(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Bad    *bool  `json:"bad"`
		Reason string `json:"reason"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if req.Bad == nil {
		return apierror.BadRequest("bad is required: true to mark the release bad, false to clear the mark")
	}
	if *req.Bad && strings.TrimSpace(req.Reason) == "" {
		return apierror.BadRequest("reason is required when marking a release bad")
	}
	if len(req.Reason) > maxReasonLen {
		return apierror.BadRequest("reason is longer than %d bytes", maxReasonLen)
	}
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	rel, err = a.store.MarkBad(r.Context(), c.tenant(), rel.ID, *req.Bad, req.Reason, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("mark release %s: %w", rel.Version, err)
	}
	return ok(w, releaseView(rel))
}

func (a *API) markAffected(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		CVEs *[]string `json:"cves"`
	}
	if err := decodeBody(w, r, maxReleaseBody, &req); err != nil {
		return err
	}
	if req.CVEs == nil {
		return apierror.BadRequest("cves is required: the CVE ids found to affect the release (an empty list clears them)")
	}
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	rel, err = a.store.MarkAffected(r.Context(), c.tenant(), rel.ID, nonNil(*req.CVEs), c.actor, a.now())
	if err != nil {
		return fmt.Errorf("mark release %s affected: %w", rel.Version, err)
	}
	return ok(w, releaseView(rel))
}
