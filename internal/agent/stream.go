package agent

import (
	"github.com/updraft/updraft/internal/verifier"
)

// newStream returns the verifying stream for t, resumed from state. In
// unsigned mode the verifier package's stream still checks the length and
// SHA-256 the check-in named.
func (a *Agent) newStream(t *verifier.Target, state []byte) (verifier.Stream, error) {
	if a.cfg.Verifier != nil {
		return a.cfg.Verifier.NewStream(t, state)
	}
	return verifier.NewStream(t, state)
}
