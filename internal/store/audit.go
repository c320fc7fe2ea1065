package store

import (
	"errors"
	"fmt"
)

// ErrAuditBroken matches every *AuditBrokenError: the audit chain does not
// verify, i.e. the log was tampered with. It is never a database failure.
var ErrAuditBroken = errors.New("audit chain broken")

// AuditBrokenError is what VerifyAudit returns when the stored chain does
// not verify: an altered entry, a gap in the sequence, or entries removed
// from the end. Its text names only sequence numbers and the kind of
// break, so it is safe to show to any operator.
type AuditBrokenError struct {
	// Seq is the first entry that fails; for a removed tail, the first
	// missing one.
	Seq int64
	// Problem says what is wrong, e.g. "content does not match its hash
	// (altered)".
	Problem string
}

func (e *AuditBrokenError) Error() string {
	return fmt.Sprintf("audit entry %d: %s", e.Seq, e.Problem)
}

// Is makes errors.Is(err, ErrAuditBroken) true.
func (e *AuditBrokenError) Is(target error) bool { return target == ErrAuditBroken }
