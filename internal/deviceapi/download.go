package deviceapi

import (
	"errors"
	"net/http"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/download"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// handleDownload serves GET/HEAD /api/device/v1/artifacts/{artifact}/download
// with a signed query. No Authorization header is needed: the signature
// binds tenant, device, artifact and expiry. The device must still be
// accepted, so decommissioning also stops downloads through URLs handed out
// earlier. Range, If-Range, ETag, 206 and 416 come from download.Serve,
// which sends local files with sendfile.
func (a *API) handleDownload(w http.ResponseWriter, r *http.Request) {
	if err := a.download(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) download(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("artifact")
	c, err := a.urls.Verify(r.URL.Query(), id)
	switch {
	case errors.Is(err, signedurl.ErrExpired):
		return &apierror.Error{Status: http.StatusGone, Code: "url_expired",
			Message: "this download URL has expired; check in for a fresh one (resume with Range from where you stopped)", Err: err}
	case err != nil:
		return &apierror.Error{Status: http.StatusForbidden, Code: "bad_url",
			Message: "this download URL is not valid; use the URL from the check-in response unchanged", Err: err}
	}
	ctx := r.Context()
	d, err := a.store.Device(ctx, c.Tenant, c.Device)
	if errors.Is(err, store.ErrNotFound) {
		return apierror.New(http.StatusForbidden, "unknown_device", "the device this URL was issued to is not registered any more")
	} else if err != nil {
		return err
	}
	if d.State != store.DeviceAccepted {
		return notAccepted(d.State)
	}
	art, err := a.store.Artifact(ctx, c.Tenant, id)
	if errors.Is(err, store.ErrNotFound) {
		return apierror.NotFound("artifact %s does not exist any more", id)
	} else if err != nil {
		return err
	}
	obj, err := a.blobs.Open(ctx, art.SHA256)
	if errors.Is(err, blob.ErrNotFound) {
		a.log.ErrorContext(ctx, "artifact content is missing from the blob store", "artifact_id", art.ID, "sha256", art.SHA256)
		return apierror.NotFound("the content of artifact %s is missing on the server", id)
	} else if err != nil {
		return err
	}
	defer obj.Close()
	a.seen.touch(d.TenantID, d.ID, a.clock.Now())
	download.Serve(w, r, obj, art.Name)
	return nil
}
