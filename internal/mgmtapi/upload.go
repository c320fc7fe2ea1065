package mgmtapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"slices"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/store"
)

// SHA256Header optionally carries the hex SHA-256 the uploader expects; the
// server compares it with what it received before storing anything.
const SHA256Header = "X-Updraft-SHA256"

// artifactParams are the query parameters of PUT /releases/{id}/artifacts.
var artifactParams = []string{"device_type", "hw_revs", "type", "component", "name", "compression", "from_version"}

var artifactTypes = []store.ArtifactType{
	store.ArtifactRawImage, store.ArtifactFile, store.ArtifactArchive, store.ArtifactScript,
	store.ArtifactSWU, store.ArtifactRAUCBundle, store.ArtifactMender, store.ArtifactDelta,
}

// errDigestMismatch fails the blob write when the content does not hash to
// the uploader's SHA-256, so that the blob store discards it.
var errDigestMismatch = errors.New("content does not match " + SHA256Header)

// artifactFromQuery validates the artifact's key and name before a single
// byte of content is read, so a bad request costs no upload.
func artifactFromQuery(r *http.Request) (store.Artifact, error) {
	q := r.URL.Query()
	a := store.Artifact{
		DeviceType:  q.Get("device_type"),
		Type:        store.ArtifactType(q.Get("type")),
		Component:   q.Get("component"),
		Name:        q.Get("name"),
		Compression: q.Get("compression"),
		FromVersion: q.Get("from_version"),
	}
	bad := func(format string, args ...any) error {
		return apierror.New(http.StatusBadRequest, "bad_parameter", format, args...)
	}
	if a.DeviceType == "" {
		return a, bad("device_type is required")
	}
	if err := checkLabel("device_type", a.DeviceType); err != nil {
		return a, err
	}
	for _, rev := range strings.Split(q.Get("hw_revs"), ",") {
		rev = strings.TrimSpace(rev)
		if rev == "" {
			continue
		}
		if err := checkLabel("hardware revision", rev); err != nil {
			return a, err
		}
		if !slices.Contains(a.HWRevs, rev) {
			a.HWRevs = append(a.HWRevs, rev)
		}
	}
	if len(a.HWRevs) == 0 {
		return a, bad("hw_revs is required: the hardware revisions the artifact suits, comma-separated (e.g. hw_revs=B,C)")
	}
	if !slices.Contains(artifactTypes, a.Type) {
		return a, bad("type %q is not one of raw-image, file, archive, script, swu, rauc-bundle, mender, delta", a.Type)
	}
	if a.Name == "" {
		return a, bad("name is required: the artifact's file name")
	}
	if err := checkLabel("name", a.Name); err != nil {
		return a, err
	}
	if strings.ContainsAny(a.Name, `/\`) || a.Name == "." || a.Name == ".." {
		return a, bad("name %q must be a plain file name", a.Name)
	}
	for _, f := range []struct{ name, v string }{{"component", a.Component}, {"compression", a.Compression}} {
		if f.v != "" {
			if err := checkLabel(f.name, f.v); err != nil {
				return a, err
			}
		}
	}
	switch {
	case a.Type == store.ArtifactDelta:
		if err := checkVersion("from_version", a.FromVersion); err != nil {
			return a, err
		}
	case a.FromVersion != "":
		return a, bad("from_version is only for delta artifacts (type is %s)", a.Type)
	}
	return a, nil
}

// overlaps reports whether existing and a share device type, a revision,
// type, component and from-version: the store would refuse a.
func overlaps(existing, a store.Artifact) bool {
	if existing.DeviceType != a.DeviceType || existing.Type != a.Type ||
		existing.Component != a.Component || existing.FromVersion != a.FromVersion {
		return false
	}
	for _, rev := range a.HWRevs {
		if slices.Contains(existing.HWRevs, rev) {
			return true
		}
	}
	return false
}

// uploadArtifact streams the request body into the blob store under its
// SHA-256 and records it as an artifact of a draft release. Whatever goes
// wrong (too large, interrupted, digest mismatch, a conflicting artifact),
// no artifact is recorded. Content that never completed leaves nothing;
// complete content that is then refused (empty, conflicting) stays as an
// unreferenced blob until the blob collector deletes it.
func (a *API) uploadArtifact(w http.ResponseWriter, r *http.Request, c *caller) error {
	art, err := artifactFromQuery(r)
	if err != nil {
		return err
	}
	want := strings.ToLower(r.Header.Get(SHA256Header))
	if want != "" && !blob.ValidKey(want) {
		return apierror.BadRequest("%s must be 64 hex digits", SHA256Header)
	}
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	if rel.State != store.ReleaseDraft {
		return fmt.Errorf("release %s: %w", rel.Version, store.ErrImmutable)
	}
	for _, ex := range rel.Artifacts {
		if overlaps(ex, art) {
			return apierror.Conflict("release %s already has artifact %s (%s) for device type %s, one of revisions %s, type %s, component %q",
				rel.Version, ex.Name, ex.ID, art.DeviceType, strings.Join(art.HWRevs, ","), art.Type, art.Component)
		}
	}
	if r.ContentLength > a.maxSize {
		return tooLarge(a.maxSize)
	}

	body := &uploadReader{r: r.Body}
	if want != "" {
		body.h = sha256.New()
		body.want = want
	}
	info, err := a.blobs.Put(r.Context(), body, a.maxSize)
	switch {
	case errors.Is(err, blob.ErrTooLarge):
		return tooLarge(a.maxSize)
	case errors.Is(err, errDigestMismatch):
		return apierror.New(http.StatusBadRequest, "digest_mismatch", "the uploaded content's SHA-256 is %s, not %s as %s says; nothing was stored", body.got, want, SHA256Header)
	case body.err != nil:
		var mbe *http.MaxBytesError
		if errors.As(body.err, &mbe) {
			return tooLarge(a.maxSize)
		}
		return &apierror.Error{Status: http.StatusBadRequest, Code: "upload_incomplete",
			Message: "the upload ended before the content was complete; nothing was stored", Err: body.err}
	case err != nil:
		return fmt.Errorf("store artifact content: %w", err)
	}
	// A refused upload leaves its blob to the collector (internal/blobgc):
	// deleting it here could pull it from under a concurrent upload of the
	// same content.
	ctx := context.WithoutCancel(r.Context())
	if info.Size == 0 {
		return apierror.BadRequest("the artifact is empty; send its content as the request body")
	}
	art.TenantID = c.tenant()
	art.ReleaseID = rel.ID
	art.Size, art.SHA256, art.SHA1, art.MD5 = info.Size, info.SHA256, info.SHA1, info.MD5
	added, err := a.store.AddArtifact(ctx, art, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("add artifact %s to release %s: %w", art.Name, rel.Version, err)
	}
	return created(w, artifactView(added))
}

func tooLarge(limit int64) error {
	return apierror.New(http.StatusRequestEntityTooLarge, "too_large", "the artifact exceeds the upload limit of %d bytes; nothing was stored", limit)
}

// uploadReader remembers read errors (a client that went away) and, when an
// expected digest is set, fails at the end of a content that does not
// match, before the blob store can publish it.
type uploadReader struct {
	r    io.Reader
	err  error
	h    hash.Hash
	want string
	got  string
}

func (u *uploadReader) Read(p []byte) (int, error) {
	n, err := u.r.Read(p)
	if u.h != nil {
		u.h.Write(p[:n])
	}
	switch {
	case err == io.EOF && u.h != nil:
		u.got = hex.EncodeToString(u.h.Sum(nil))
		if subtle.ConstantTimeCompare([]byte(u.got), []byte(u.want)) != 1 {
			return n, errDigestMismatch
		}
	case err != nil && err != io.EOF:
		u.err = err
	}
	return n, err
}
