package mgmtapi

import (
	"time"

	"github.com/updraft/updraft/internal/store"
)

// The API answers with the store's types where their JSON form is the
// contract; these helpers only make empty lists and maps [] and {} instead
// of null, as the OpenAPI document promises.

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func deviceView(d store.Device) store.Device {
	d.Tags = nonNil(d.Tags)
	d.Groups = nonNil(d.Groups)
	if d.Attributes == nil {
		d.Attributes = map[string]string{}
	}
	return d
}

func releaseView(r store.Release) store.Release {
	r.CVEs = nonNil(r.CVEs)
	r.AffectedBy = nonNil(r.AffectedBy)
	r.Artifacts = nonNil(r.Artifacts)
	for i := range r.Artifacts {
		r.Artifacts[i] = artifactView(r.Artifacts[i])
	}
	return r
}

func artifactView(a store.Artifact) store.Artifact {
	a.HWRevs = nonNil(a.HWRevs)
	return a
}

// credentialView is a device credential without its key material: enough
// to recognize and revoke it.
type credentialView struct {
	ID            string                `json:"id"`
	DeviceID      string                `json:"device_id,omitempty"`
	Kind          store.CredentialKind  `json:"kind"`
	Algorithm     string                `json:"algorithm,omitempty"`
	Fingerprint   string                `json:"fingerprint"`
	State         store.CredentialState `json:"state"`
	PreauthSerial string                `json:"preauth_serial,omitempty"`
	CreatedAt     time.Time             `json:"created_at"`
	RevokedAt     *time.Time            `json:"revoked_at,omitempty"`
}

func credView(c store.Credential) credentialView {
	return credentialView{
		ID: c.ID, DeviceID: c.DeviceID, Kind: c.Kind, Algorithm: c.Algorithm,
		Fingerprint: c.Fingerprint, State: c.State, PreauthSerial: c.PreauthSerial,
		CreatedAt: c.CreatedAt, RevokedAt: c.RevokedAt,
	}
}

// deviceDetail is GET /devices/{id}: the device, its credentials and its
// active assignment.
type deviceDetail struct {
	store.Device
	Credentials      []credentialView  `json:"credentials"`
	ActiveAssignment *store.Assignment `json:"active_assignment,omitempty"`
}

// assignmentDetail is GET /assignments/{id}: the assignment and every
// status report stored for it, oldest first.
type assignmentDetail struct {
	store.Assignment
	Events []store.AssignmentEvent `json:"events"`
}

// assignResult is the answer to an assignment: the new assignment and the
// one it superseded, if any.
type assignResult struct {
	Assignment store.Assignment  `json:"assignment"`
	Superseded *store.Assignment `json:"superseded,omitempty"`
}
