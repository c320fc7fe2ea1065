package tufrepo

import (
	"errors"
	"fmt"
)

// Errors returned by the checks. The server maps ErrStaleVersion to 409
// Conflict and the others to 400 (or 422), never echoing internal detail.
var (
	ErrMalformed         = errors.New("malformed metadata")
	ErrTooLarge          = errors.New("metadata larger than its limit")
	ErrBadSignature      = errors.New("not signed by a threshold of the role's keys")
	ErrStaleVersion      = errors.New("stale role version")
	ErrExpired           = errors.New("metadata expired")
	ErrNotDelegated      = errors.New("role is not delegated")
	ErrOutsideDelegation = errors.New("target outside the role's delegated paths")
	ErrBadTarget         = errors.New("invalid target")
	ErrArtifactMismatch  = errors.New("target does not match the uploaded artifact")
	ErrInconsistent      = errors.New("repository would be inconsistent")
)

// StaleVersionError is an upload whose version is not the stored version
// plus one: another signer got there first, or the signer started from old
// metadata. It matches ErrStaleVersion.
type StaleVersionError struct {
	Role     string
	Stored   int64 // 0: none stored yet
	Uploaded int64
}

func (e *StaleVersionError) Error() string {
	return fmt.Sprintf("%s: uploaded version %d, stored version is %d (want %d): fetch the current metadata and sign again",
		e.Role, e.Uploaded, e.Stored, e.Stored+1)
}

// Is makes errors.Is(err, ErrStaleVersion) true.
func (e *StaleVersionError) Is(target error) bool { return target == ErrStaleVersion }
