// Package verifier is the device side of Updraft's update security: it keeps
// trusted TUF metadata (root chain, timestamp, snapshot, the device's
// product-line targets), checks the director-signed assignment against the
// offline-signed targets and the device's hardware and security floor,
// verifies artifact bytes as they stream, and raises the security floor only
// on a director-signed finalize.
//
// It is imported by the agent and must not import server packages. All
// persistent state goes through an injected devfs.FS with atomic writes;
// time comes from an injected clock.Clock, bounded below by a persisted
// clock floor so a device whose clock is set back cannot be fooled about
// expiry.
package verifier

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/updraft/updraft/internal/tufmeta"
)

// Verifier is what the agent needs from update security.
type Verifier interface {
	// Refresh brings the trusted metadata up to date through the fetcher:
	// root chain, timestamp, snapshot, then the targets roles that cover the
	// device's paths. It refuses rollback, freeze, mix-and-match, oversize
	// metadata and bad signatures with a *Refusal.
	Refresh(ctx context.Context) error
	// VerifyAssignment checks a director document (JSON bytes as received in
	// the check-in response) and returns the target to install, or a
	// *Refusal saying why not. It does not change trusted state; Accept does.
	VerifyAssignment(ctx context.Context, doc []byte) (*Target, error)
	// Accept records that the agent has started acting on t: the director
	// counter advances so an older document can never be replayed.
	Accept(t *Target) error
	// NewStream returns a verifier for t's bytes, resuming from a state
	// returned earlier by Stream.State (nil: from the start).
	NewStream(t *Target, resume []byte) (Stream, error)
	// Finalize checks a director-signed finalize document and raises the
	// security floor to its security version when the device runs its version.
	Finalize(ctx context.Context, doc []byte, runningVersion string) error
	// Floor is the current security floor.
	Floor() int64
}

// Stream checks bytes against a target's signed length and SHA-256 as they
// flow; it never holds the artifact in memory.
type Stream interface {
	// Write consumes the next bytes; it fails with a Refusal (ReasonTooLong)
	// as soon as more bytes arrive than the signed length.
	io.Writer
	// Offset is the number of bytes consumed.
	Offset() int64
	// State serializes the progress (offset and hash state) so a download
	// can resume after a reboot.
	State() ([]byte, error)
	// Finish checks length and SHA-256 once every byte was written.
	Finish() error
}

// Target is an assignment that passed every check.
type Target struct {
	Path         string
	Length       int64
	SHA256       string // lowercase hex
	Custom       tufmeta.TargetCustom
	DeviceID     string
	AssignmentID string
	CampaignID   string
	// Counter is the director document's version.
	Counter int64
	// Document is the SHA-256 (lowercase hex) of the director document.
	// After Accept, the same document (same counter, same hash) still
	// verifies, so an agent can resume after a restart; any other document
	// with that counter or a lower one is refused as a replay.
	Document string
	Expires  time.Time
	Windows  []tufmeta.Window
	Gates    tufmeta.GateOverrides
	Forced   bool
}

// Reason classifies a refusal; agents report it to the server.
type Reason string

// Refusal reasons, one per attack class.
const (
	ReasonBadSignature   Reason = "bad-signature"  // not signed by a threshold of trusted keys
	ReasonNotInTargets   Reason = "not-in-targets" // director names a target the offline roles never signed
	ReasonMismatch       Reason = "mismatch"       // director and targets disagree (hashes, length, custom fields)
	ReasonWrongDevice    Reason = "wrong-device"   // document for another device
	ReasonWrongHardware  Reason = "wrong-hardware" // target is for another device type or revision
	ReasonRollback       Reason = "rollback"       // metadata version or director counter went backwards
	ReasonBelowFloor     Reason = "below-floor"    // security version below the device's floor
	ReasonExpired        Reason = "expired"        // metadata or document expired (freeze)
	ReasonMixAndMatch    Reason = "mix-and-match"  // snapshot/targets versions or hashes disagree
	ReasonTooLong        Reason = "too-long"       // more bytes than signed, or metadata over its size limit
	ReasonHashMismatch   Reason = "hash-mismatch"  // artifact bytes do not match the signed hash or length
	ReasonUnsafeDelegate Reason = "delegation"     // a role signed outside its delegated paths
	ReasonMalformed      Reason = "malformed"      // cannot be parsed
)

// Refusal is why the verifier refused something. Agents report Reason and
// Detail to the server.
type Refusal struct {
	Reason Reason
	Detail string
	Err    error
}

func (r *Refusal) Error() string {
	if r.Err != nil {
		return fmt.Sprintf("refused (%s): %s: %v", r.Reason, r.Detail, r.Err)
	}
	return fmt.Sprintf("refused (%s): %s", r.Reason, r.Detail)
}

func (r *Refusal) Unwrap() error { return r.Err }

// ReasonOf returns the refusal reason of err, or "" if err is no refusal.
func ReasonOf(err error) Reason {
	var r *Refusal
	if errors.As(err, &r) {
		return r.Reason
	}
	return ""
}

// Fetcher downloads metadata from the server. Get returns the bytes of the
// named metadata file ("2.root.json", "timestamp.json", "3.snapshot.json",
// "5.targets.json", "4.gw-200.json") read up to maxLength; a missing file is
// reported as go-tuf's *metadata.ErrDownloadHTTP with StatusCode 404 so the
// root walk ends cleanly.
type Fetcher interface {
	Get(ctx context.Context, name string, maxLength int64) ([]byte, error)
}
