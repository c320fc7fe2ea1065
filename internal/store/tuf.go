package store

import (
	"context"
	"strconv"
	"time"
)

// TUFFile is one signed metadata file of a tenant's TUF repository. Files
// are immutable: a role changes by adding its next version.
type TUFFile struct {
	// Role is root, targets, snapshot, timestamp or a delegated
	// (release-signing) role.
	Role    string    `json:"role"`
	Version int64     `json:"version"`
	Data    []byte    `json:"-"`
	Expires time.Time `json:"expires"`
	// CreatedAt is when the file was stored; SupersededAt when a newer
	// version of its role was (nil while it is current).
	CreatedAt    time.Time  `json:"created_at"`
	SupersededAt *time.Time `json:"superseded_at,omitempty"`
}

// Name is the file's consistent-snapshot name, "N.<role>.json".
func (f TUFFile) Name() string {
	return strconv.FormatInt(f.Version, 10) + "." + f.Role + ".json"
}

// TUFState is a tenant's current TUF repository.
type TUFState struct {
	// Generation grows with every write; TUFWrite compares it.
	Generation int64
	// Roots holds every root version, oldest first.
	Roots []TUFFile
	// Current holds the highest version of every other role.
	Current   []TUFFile
	UpdatedAt time.Time
}

// TUFWrite adds metadata files to a tenant's repository.
type TUFWrite struct {
	// Generation is the generation the writer read (0: the repository does
	// not exist yet and this write creates it). If another write committed
	// in between, the write fails with ErrConflict and changes nothing.
	Generation int64
	// Lease, when set, fences the write: it commits only while the lease is
	// held with its epoch (ErrLeaseLost otherwise). The publisher of online
	// metadata sets it so that two replicas never publish the same version.
	Lease *Lease
	// Files are the new files. A file whose role and version exist already
	// is ErrConflict. Older versions of each role are marked superseded.
	Files []TUFFile
	// Action, when set, is recorded in the audit log by By with Details.
	Action  string
	By      Actor
	Details any
	Now     time.Time
}

// OnlineKey is one of the server's online signing keys (snapshot,
// timestamp or director). The private half is sealed by the signing
// service before it reaches the store.
type OnlineKey struct {
	TenantID string `json:"tenant_id"`
	// KeyID is the TUF key id.
	KeyID string `json:"key_id"`
	Role  string `json:"role"`
	// PublicKey is the TUF key record (JSON).
	PublicKey string    `json:"public_key"`
	Sealed    []byte    `json:"-"`
	CreatedAt time.Time `json:"created_at"`
}

// Director document kinds.
const (
	DirectorAssignment = "assignment" // Key is the assignment id
	DirectorFinalize   = "finalize"   // Key is the finalized version
)

// DirectorDocument is a director-signed document kept for one device, so
// the same bytes are handed out again on every check-in.
type DirectorDocument struct {
	TenantID string
	DeviceID string
	Kind     string // DirectorAssignment or DirectorFinalize
	Key      string
	// Subject is what the document was signed for (the target path of an
	// assignment, the security version of a finalize): a stored document
	// whose subject differs from what would be signed now is replaced.
	Subject   string
	Counter   int64
	Expires   time.Time
	Doc       []byte
	CreatedAt time.Time
}

// FinalizedRelease is a release an operator finalized: devices that run it
// may raise their security floor to its security version.
type FinalizedRelease struct {
	TenantID        string    `json:"tenant_id"`
	ReleaseID       string    `json:"release_id"`
	Version         string    `json:"version"`
	SecurityVersion int64     `json:"security_version"`
	FinalizedAt     time.Time `json:"finalized_at"`
}

// TUF holds the signed-update state: the TUF repository's metadata files,
// the online keys, the director's per-device counters and documents, and
// finalized releases.
type TUF interface {
	// TUFState returns the tenant's current repository, ErrNotFound if it
	// has none yet.
	TUFState(ctx context.Context, tenant string) (TUFState, error)
	// TUFGeneration returns the repository's generation, 0 if it has none:
	// one cheap read that tells a replica whether its copy is current.
	TUFGeneration(ctx context.Context, tenant string) (int64, error)
	// TUFFile returns one stored file by role and version; version 0 means
	// the role's current one. ErrNotFound if there is none (or it was pruned).
	TUFFile(ctx context.Context, tenant, role string, version int64) (TUFFile, error)
	// WriteTUF stores new files in one transaction and returns the new
	// generation (see TUFWrite for the checks).
	WriteTUF(ctx context.Context, tenant string, w TUFWrite) (int64, error)
	// PruneTUFFiles deletes files, other than roots, superseded before
	// before, and returns how many.
	PruneTUFFiles(ctx context.Context, tenant string, before time.Time) (int64, error)

	// OnlineKeys lists the tenant's online keys, oldest first.
	OnlineKeys(ctx context.Context, tenant string) ([]OnlineKey, error)
	// AddOnlineKey stores a new online key (audited); an existing key id is
	// ErrConflict.
	AddOnlineKey(ctx context.Context, k OnlineKey, by Actor, now time.Time) (OnlineKey, error)

	// DirectorDocument returns the stored document, ErrNotFound if none.
	DirectorDocument(ctx context.Context, tenant, deviceID, kind, key string) (DirectorDocument, error)
	// SignDirectorDocument stores a newly signed document in one
	// transaction: when a document for (device, kind, key) is stored and
	// reuse accepts it, that one is returned and nothing is signed;
	// otherwise the device's director counter is incremented, sign is
	// called with the new value, and its result replaces the stored
	// document. The increment and the stored document commit together, so
	// no counter is ever handed out twice.
	SignDirectorDocument(ctx context.Context, tenant, deviceID, kind, key string,
		reuse func(DirectorDocument) bool, sign func(counter int64) (DirectorDocument, error), now time.Time) (DirectorDocument, error)
	// DirectorCounter returns the device's last counter, 0 if none.
	DirectorCounter(ctx context.Context, tenant, deviceID string) (int64, error)

	// FinalizeRelease records that a published release is finalized
	// (audited); finalizing it again returns the first record.
	// A draft is ErrConflict.
	FinalizeRelease(ctx context.Context, tenant, releaseID string, by Actor, now time.Time) (FinalizedRelease, error)
	// FinalizedReleases lists the tenant's finalized releases.
	FinalizedReleases(ctx context.Context, tenant string) ([]FinalizedRelease, error)
}
