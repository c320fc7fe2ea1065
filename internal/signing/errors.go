package signing

import (
	"errors"

	"github.com/updraft/updraft/internal/store"
)

// ErrNotInitialized means the tenant has no TUF repository yet: run
// `updraft keys init`.
var ErrNotInitialized = errors.New("no TUF repository yet: run updraft keys init")

// ErrNoSuchFile is a metadata file that does not exist (or was pruned). It
// matches store.ErrNotFound so API layers answer 404.
var ErrNoSuchFile = &noSuchFile{}

type noSuchFile struct{}

func (*noSuchFile) Error() string { return "no such metadata file" }

// Is makes errors.Is(err, store.ErrNotFound) true.
func (*noSuchFile) Is(target error) bool { return target == store.ErrNotFound }

// InputError is a request refused because of what the caller sent, with a
// stable code and a message that is safe to show to the caller. The
// tufrepo errors (bad signature, stale version, …) are returned as they
// are; API layers map those themselves.
type InputError struct {
	Code string
	Msg  string
	Err  error
}

func (e *InputError) Error() string { return e.Msg }

func (e *InputError) Unwrap() error { return e.Err }
