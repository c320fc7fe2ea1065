package ddi

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/download"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
)

// md5Suffix names the MD5SUM resource of an artifact.
const md5Suffix = ".MD5SUM"

// moduleArtifacts resolves {moduleId} (the action id) to the artifacts the
// device may fetch for it. Any action of the device will do, finished or
// not, so an interrupted download can resume.
func (a *API) moduleArtifacts(r *http.Request, d store.Device) ([]store.Artifact, int64, error) {
	raw := r.PathValue("moduleId")
	id, err := strconv.ParseInt(raw, 10, 64)
	if err != nil || id <= 0 {
		return nil, 0, apierror.NotFound("no software module %q", raw)
	}
	aid, err := a.cfg.Store.DDIActionAssignment(r.Context(), d.TenantID, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, apierror.NotFound("no software module %d", id)
	} else if err != nil {
		return nil, 0, err
	}
	as, err := a.cfg.Store.Assignment(r.Context(), d.TenantID, aid)
	if err != nil {
		return nil, 0, err
	}
	if as.DeviceID != d.ID {
		return nil, 0, apierror.NotFound("no software module %d", id)
	}
	rel, err := a.cfg.Store.Release(r.Context(), d.TenantID, as.ReleaseID)
	if err != nil {
		return nil, 0, err
	}
	return artifactsFor(rel, d), id, nil
}

// handleListArtifacts lists a software module's artifacts.
func (a *API) handleListArtifacts(w http.ResponseWriter, r *http.Request) error {
	c, d, err := a.authAccepted(r)
	if err != nil {
		return err
	}
	arts, id, err := a.moduleArtifacts(r, d)
	if err != nil {
		return err
	}
	out := []artifact{}
	for _, art := range arts {
		href := fmt.Sprintf("%s/softwaremodules/%d/artifacts/%s", a.base(c), id, url.PathEscape(art.Name))
		out = append(out, artifact{Filename: art.Name, Hashes: hashes{SHA1: art.SHA1, MD5: art.MD5, SHA256: art.SHA256}, Size: art.Size,
			Links: map[string]link{"download": {Href: href}, "download-http": {Href: href}, "md5sum": {Href: href + md5Suffix}, "md5sum-http": {Href: href + md5Suffix}}})
	}
	apierror.WriteJSON(w, http.StatusOK, out)
	return nil
}

// handleDownload serves an artifact (Range, If-Range, ETag through
// download.Serve) or its .MD5SUM file. It accepts the DDI credentials or,
// when a signer is configured, a signed URL bound to the device and the
// artifact.
func (a *API) handleDownload(w http.ResponseWriter, r *http.Request) {
	if err := a.download(w, r); err != nil {
		apierror.Write(w, r, a.log, err)
	}
}

func (a *API) download(w http.ResponseWriter, r *http.Request) error {
	d, signed, err := a.downloader(r)
	if err != nil {
		return err
	}
	arts, _, err := a.moduleArtifacts(r, d)
	if err != nil {
		return err
	}
	file := r.PathValue("file")
	art, found := findArtifact(arts, file)
	md5 := false
	if !found && strings.HasSuffix(file, md5Suffix) {
		art, found = findArtifact(arts, strings.TrimSuffix(file, md5Suffix))
		md5 = true
	}
	if !found {
		return apierror.NotFound("no artifact %q in this software module", file)
	}
	if signed {
		cl, err := a.cfg.URLs.Verify(r.URL.Query(), art.ID)
		if err != nil || cl.Tenant != d.TenantID || cl.Device != d.ID {
			return apierror.Forbidden("this download URL is not valid; poll for a fresh one")
		}
	}
	if md5 {
		body := art.MD5 + "  " + art.Name + "\n"
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		w.WriteHeader(http.StatusOK)
		if r.Method != http.MethodHead {
			_, _ = w.Write([]byte(body))
		}
		return nil
	}
	obj, err := a.cfg.Blobs.Open(r.Context(), art.SHA256)
	if errors.Is(err, blob.ErrNotFound) {
		a.log.ErrorContext(r.Context(), "artifact content is missing from the blob store", "artifact_id", art.ID, "sha256", art.SHA256)
		return apierror.NotFound("the content of artifact %q is missing on the server", art.Name)
	} else if err != nil {
		return err
	}
	defer obj.Close()
	download.Serve(w, r, obj, art.Name)
	return nil
}

// downloader authenticates a download: DDI credentials, or a signed URL
// alone when a signer is configured (the URL names the device).
func (a *API) downloader(r *http.Request) (d store.Device, signed bool, err error) {
	q := r.URL.Query()
	if r.Header.Get("Authorization") == "" && a.cfg.URLs != nil && q.Has(signedurl.ParamSignature) {
		seg := r.PathValue("tenant")
		tenant, ok := a.tenantOf(seg)
		if !ok {
			return store.Device{}, false, apierror.NotFound("unknown tenant %q", seg)
		}
		id := q.Get(signedurl.ParamDevice)
		d, err = a.cfg.Store.Device(r.Context(), tenant, id)
		if errors.Is(err, store.ErrNotFound) {
			return store.Device{}, false, apierror.Forbidden("this download URL is not valid; poll for a fresh one")
		} else if err != nil {
			return store.Device{}, false, err
		}
		if d.Serial != r.PathValue("controllerId") {
			return store.Device{}, false, apierror.Forbidden("this download URL is not valid; poll for a fresh one")
		}
		if d.State != store.DeviceAccepted {
			return store.Device{}, false, apierror.Forbidden("controller %q is %s", d.Serial, d.State)
		}
		return d, true, nil // the signature is checked against the artifact in download
	}
	_, d, err = a.authAccepted(r)
	return d, false, err
}

func findArtifact(arts []store.Artifact, name string) (store.Artifact, bool) {
	for _, art := range arts {
		if art.Name == name {
			return art, true
		}
	}
	return store.Artifact{}, false
}
