package mgmtapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/signing"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/tufmeta"
	"github.com/updraft/updraft/internal/tufrepo"
)

// Body limits of the signed-metadata routes. A change may carry several
// roots, top-level targets and a release role at their own limits.
const (
	maxChangeBody = 8 << 20
	maxKeyBody    = 16 << 10
)

// tufRoutes are the signed-update routes (see docs/security.md).
func (a *API) tufRoutes() []Route {
	p := func(s string) string { return Prefix + s }
	return []Route{
		{"GET", p("/tuf"), ActionRead, nil, a.tufStatus},
		{"GET", p("/tuf/metadata/{name}"), ActionRead, nil, a.tufMetadata},
		{"PUT", p("/tuf/roles/{role}"), ActionWrite, nil, a.tufUploadRole},
		{"POST", p("/tuf/changes"), ActionWrite, nil, a.tufChange},
		{"GET", p("/tuf/online-keys"), ActionRead, nil, a.tufOnlineKeys},
		{"POST", p("/tuf/online-keys"), ActionAdmin, nil, a.tufGenerateKeys},
		{"PUT", p("/tuf/online-keys/{role}"), ActionAdmin, nil, a.tufImportKey},
		{"POST", p("/releases/{id}/finalize"), ActionWrite, nil, a.finalizeRelease},
	}
}

// signer returns the signing service for the caller's tenant.
func (a *API) signer(c *caller) (*signing.Service, error) {
	if a.signing == nil || a.signing.Tenant() != c.tenant() {
		return nil, apierror.New(http.StatusNotFound, "not_configured", "signed updates are not available on this server")
	}
	return a.signing, nil
}

func (a *API) tufStatus(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	st, err := s.Status(r.Context())
	if err != nil {
		return fmt.Errorf("signing status: %w", err)
	}
	return ok(w, st)
}

// tufMetadata serves current or versioned metadata to offline signers:
// "targets.json", "gw-200.json", "root.json", "4.gw-200.json", …
func (a *API) tufMetadata(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	name := r.PathValue("name")
	b, err := s.Metadata(r.Context(), name)
	var in *signing.InputError
	switch {
	case errors.Is(err, signing.ErrNotInitialized):
		return apierror.NotFound("no metadata yet: the server has no TUF repository (updraft keys init)")
	case errors.Is(err, store.ErrNotFound), errors.As(err, &in):
		return apierror.NotFound("no metadata file %q (names are \"<role>.json\" for the current version or \"N.<role>.json\")", name)
	case err != nil:
		return fmt.Errorf("read metadata %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(b)
	return nil
}

// tufUploadRole stores the next version of one role: the body is the
// signed metadata, exactly as `updraft release sign` wrote it. "root"
// takes a root version; anything else is top-level targets or a
// release-signing role.
func (a *API) tufUploadRole(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	role := r.PathValue("role")
	var ch tufrepo.Change
	limits := tufmeta.DefaultLimits()
	has, err := s.HasRole(r.Context(), role)
	switch {
	case errors.Is(err, signing.ErrNotInitialized):
		return apierror.NotFound("the server has no TUF repository yet: upload root version 1 and top-level targets together (POST %s/tuf/changes, as updraft keys init does)", Prefix)
	case err != nil:
		return fmt.Errorf("look up role %s: %w", role, err)
	case !has:
		return apierror.NotFound("no role %q: top-level targets does not delegate it (updraft keys delegate); snapshot and timestamp are signed by the server", role)
	}
	body, err := readBody(w, r, limits.ForRole(role), "the signed metadata")
	if err != nil {
		return err
	}
	if err := checkEnvelope(body); err != nil {
		return err
	}
	if role == metadata.ROOT {
		ch.Roots = [][]byte{body}
	} else {
		ch.Uploads = []tufrepo.Upload{{Role: role, Metadata: body}}
	}
	return a.applyChange(w, r, c, s, ch)
}

// readBody reads a raw body of at most limit bytes; what names it in
// messages.
func readBody(w http.ResponseWriter, r *http.Request, limit int64, what string) ([]byte, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		return nil, apierror.New(http.StatusRequestEntityTooLarge, "too_large", "%s is larger than %d bytes", what, limit)
	case err != nil:
		return nil, &apierror.Error{Status: http.StatusBadRequest, Code: "upload_incomplete", Message: "the request body could not be read", Err: err}
	case len(b) == 0:
		return nil, apierror.BadRequest("send %s as the request body", what)
	}
	return b, nil
}

// checkEnvelope refuses a body that is not one JSON object of TUF's
// shape ({"signed": …, "signatures": […]}) with the same codes as every
// other JSON body; what is inside is for the signing service to judge.
func checkEnvelope(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var env struct {
		Signed     json.RawMessage `json:"signed"`
		Signatures json.RawMessage `json:"signatures"`
	}
	bad := func(format string, args ...any) error {
		return apierror.New(http.StatusBadRequest, "malformed_json", format, args...)
	}
	if err := dec.Decode(&env); err != nil {
		return bad("the body is not TUF metadata (a JSON object with signed and signatures): %s", jsonProblem(err))
	}
	if _, err := dec.Token(); err != io.EOF {
		return bad("the body has data after the metadata object")
	}
	if len(env.Signed) == 0 || len(env.Signatures) == 0 {
		return bad("the body is not TUF metadata: it needs signed and signatures")
	}
	return nil
}

// jsonProblem describes a decoding error without Go type names.
func jsonProblem(err error) string {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return fmt.Sprintf("invalid JSON at byte %d", syn.Offset)
	case errors.As(err, &typ):
		return "not an object"
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "truncated JSON"
	}
	if s, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return "unknown field " + s
	}
	return "invalid JSON"
}

// changeRequest is a batch of signed metadata stored together: key
// rotations need a new root with targets signed by the new key, or new
// top-level targets with the release role re-signed by its new key.
type changeRequest struct {
	// Roots are new root versions, oldest first, each the JSON document.
	Roots []json.RawMessage `json:"roots"`
	// Targets are targets metadata of "targets" or release roles.
	Targets []struct {
		Role     string          `json:"role"`
		Metadata json.RawMessage `json:"metadata"`
	} `json:"targets"`
}

func (a *API) tufChange(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	var req changeRequest
	if err := decodeBody(w, r, maxChangeBody, &req); err != nil {
		return err
	}
	var ch tufrepo.Change
	for _, root := range req.Roots {
		ch.Roots = append(ch.Roots, []byte(root))
	}
	for i, t := range req.Targets {
		if t.Role == "" || len(t.Metadata) == 0 {
			return apierror.BadRequest("targets[%d] needs a role and its metadata", i)
		}
		ch.Uploads = append(ch.Uploads, tufrepo.Upload{Role: t.Role, Metadata: []byte(t.Metadata)})
	}
	if len(ch.Roots) == 0 && len(ch.Uploads) == 0 {
		return apierror.BadRequest("the change is empty: give roots, targets or both")
	}
	return a.applyChange(w, r, c, s, ch)
}

func (a *API) applyChange(w http.ResponseWriter, r *http.Request, c *caller, s *signing.Service, ch tufrepo.Change) error {
	res, err := s.Apply(r.Context(), ch, c.actor)
	if err != nil {
		return tufError(err)
	}
	return ok(w, res)
}

// tufError maps the signing service's refusals to API errors. The
// messages describe the caller's own metadata (which role, version, path
// or signature is wrong), never server internals.
func tufError(err error) error {
	var stale *tufrepo.StaleVersionError
	var in *signing.InputError
	switch {
	case errors.As(err, &stale):
		return &apierror.Error{Status: http.StatusConflict, Code: "stale_version", Message: stale.Error(), Err: err}
	case errors.As(err, &in):
		return &apierror.Error{Status: http.StatusBadRequest, Code: in.Code, Message: in.Msg, Err: err}
	case errors.Is(err, signing.ErrNotInitialized):
		return &apierror.Error{Status: http.StatusConflict, Code: "not_initialized", Message: err.Error(), Err: err}
	}
	for _, m := range []struct {
		target error
		status int
		code   string
	}{
		{tufrepo.ErrTooLarge, http.StatusRequestEntityTooLarge, "too_large"},
		{tufrepo.ErrBadSignature, http.StatusBadRequest, "bad_signature"},
		{tufrepo.ErrArtifactMismatch, http.StatusBadRequest, "artifact_mismatch"},
		{tufrepo.ErrOutsideDelegation, http.StatusBadRequest, "outside_delegation"},
		{tufrepo.ErrNotDelegated, http.StatusBadRequest, "not_delegated"},
		{tufrepo.ErrExpired, http.StatusBadRequest, "expired"},
		{tufrepo.ErrInconsistent, http.StatusBadRequest, "inconsistent"},
		{tufrepo.ErrBadTarget, http.StatusBadRequest, "bad_target"},
		{tufrepo.ErrMalformed, http.StatusBadRequest, "bad_metadata"},
	} {
		if errors.Is(err, m.target) {
			return &apierror.Error{Status: m.status, Code: m.code, Message: err.Error(), Err: err}
		}
	}
	return err
}

func (a *API) tufOnlineKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	keys, err := s.OnlineKeys(r.Context())
	if err != nil {
		return fmt.Errorf("list online keys: %w", err)
	}
	writeList(w, nonNil(keys), "")
	return nil
}

func (a *API) tufGenerateKeys(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	var req struct {
		Roles []string `json:"roles"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	keys, err := s.GenerateOnlineKeys(r.Context(), req.Roles, c.actor)
	if err != nil {
		return tufError(err)
	}
	w.Header().Set("Cache-Control", "no-store")
	apierror.WriteJSON(w, http.StatusCreated, map[string]any{"items": keys})
	return nil
}

func (a *API) tufImportKey(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	role := r.PathValue("role")
	if !slices.Contains(signing.OnlineRoles, role) {
		return apierror.NotFound("no online role %q: the server holds keys for snapshot, timestamp and director", role)
	}
	body, err := readBody(w, r, maxKeyBody, "the private key (PKCS#8 PEM)")
	if err != nil {
		return err
	}
	k, err := s.ImportOnlineKey(r.Context(), role, body, c.actor)
	if err != nil {
		return tufError(err)
	}
	return created(w, k)
}

// finalizeRelease records that a release has proven itself: devices
// running it get a director-signed finalize document at their next
// check-in and raise their security floor to its signed security version.
func (a *API) finalizeRelease(w http.ResponseWriter, r *http.Request, c *caller) error {
	s, err := a.signer(c)
	if err != nil {
		return err
	}
	rel, err := a.findRelease(r, c, r.PathValue("id"))
	if err != nil {
		return err
	}
	f, err := s.FinalizeRelease(r.Context(), rel.ID, c.actor)
	if err != nil {
		return fmt.Errorf("finalize release %s: %w", rel.Version, err)
	}
	return ok(w, f)
}
