package deviceapi

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/store"
)

// MetadataSource serves TUF metadata files by consistent-snapshot name
// ("timestamp.json", "3.root.json", "5.gw-200.json"). A name that does
// not exist is an error matching store.ErrNotFound. internal/signing
// implements it.
type MetadataSource interface {
	MetadataFile(ctx context.Context, tenant, name string) ([]byte, error)
}

// FinalizeSigner returns the director-signed finalize document for a
// device, or nil when it needs none. reportedFloor is the security floor
// the device reported at check-in (nil: not reported). internal/signing
// implements it.
type FinalizeSigner interface {
	FinalizeFor(ctx context.Context, d store.Device, reportedFloor *int64) (json.RawMessage, error)
}

// handleTUF serves GET /api/device/v1/tuf/{name} to accepted devices with
// their token. A missing file is 404 (in the API's JSON error format):
// that is how a device's root walk learns there is no newer root.
// timestamp.json changes and must be revalidated; every other name is a
// consistent-snapshot file whose content never changes.
func (a *API) handleTUF(w http.ResponseWriter, r *http.Request) {
	if err := a.serveTUF(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) serveTUF(w http.ResponseWriter, r *http.Request) error {
	claims, err := a.verifyToken(r)
	if err != nil {
		return err
	}
	if _, err := a.checkDevice(r.Context(), claims); err != nil {
		return err
	}
	name := r.PathValue("name")
	if a.metadata == nil {
		return apierror.NotFound("no metadata file %q: this server does not publish signed metadata", name)
	}
	b, err := a.metadata.MetadataFile(r.Context(), claims.Tenant, name)
	if errors.Is(err, store.ErrNotFound) {
		return apierror.NotFound("no metadata file %q", name)
	}
	if err != nil {
		return err
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	if name == "timestamp.json" {
		h.Set("Cache-Control", "private, no-cache")
	} else {
		h.Set("Cache-Control", "private, max-age=31536000, immutable")
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b) // discarded for HEAD
	return nil
}

// finalizeFor asks the finalize signer, if any, for d's finalize document.
// A failure is logged and the check-in goes on without it: the device gets
// its work and cancels, and the next check-in tries again.
func (a *API) finalizeFor(ctx context.Context, d store.Device, floor *int64) json.RawMessage {
	if a.finalizer == nil {
		return nil
	}
	doc, err := a.finalizer.FinalizeFor(ctx, d, floor)
	if err != nil {
		a.log.WarnContext(ctx, "could not sign a finalize document", "device_id", d.ID, "version", d.Version, "err", err)
		return nil
	}
	return doc
}
