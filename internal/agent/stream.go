package agent

import (
	"crypto/sha256"
	"encoding"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"

	"github.com/updraft/updraft/internal/verifier"
)

// newStream returns the verifying stream for t, resumed from state.
func (a *Agent) newStream(t *verifier.Target, state []byte) (verifier.Stream, error) {
	if a.cfg.Verifier != nil {
		return a.cfg.Verifier.NewStream(t, state)
	}
	return newHashStream(t, state)
}

// hashStream checks length and SHA-256 in unsigned mode; its state
// survives reboots through the hash's binary marshaling.
type hashStream struct {
	length int64
	want   string
	n      int64
	h      hash.Hash
}

type hashStreamState struct {
	Offset int64  `json:"offset"`
	Hash   []byte `json:"hash"`
}

func newHashStream(t *verifier.Target, state []byte) (*hashStream, error) {
	s := &hashStream{length: t.Length, want: t.SHA256, h: sha256.New()}
	if len(state) == 0 {
		return s, nil
	}
	var st hashStreamState
	if err := json.Unmarshal(state, &st); err != nil {
		return nil, fmt.Errorf("resume hash state: %w", err)
	}
	if st.Offset < 0 || st.Offset > t.Length {
		return nil, fmt.Errorf("resume hash state: offset %d outside 0..%d", st.Offset, t.Length)
	}
	if err := s.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return nil, fmt.Errorf("resume hash state: %w", err)
	}
	s.n = st.Offset
	return s, nil
}

func (s *hashStream) Write(p []byte) (int, error) {
	if s.n+int64(len(p)) > s.length {
		return 0, &verifier.Refusal{Reason: verifier.ReasonTooLong, Detail: fmt.Sprintf("more than the signed %d bytes", s.length)}
	}
	s.h.Write(p)
	s.n += int64(len(p))
	return len(p), nil
}

func (s *hashStream) Offset() int64 { return s.n }

func (s *hashStream) State() ([]byte, error) {
	b, err := s.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, err
	}
	return json.Marshal(hashStreamState{Offset: s.n, Hash: b})
}

func (s *hashStream) Finish() error {
	if s.n != s.length {
		return &verifier.Refusal{Reason: verifier.ReasonHashMismatch, Detail: fmt.Sprintf("%d bytes, want %d", s.n, s.length)}
	}
	if got := hex.EncodeToString(s.h.Sum(nil)); got != s.want {
		return &verifier.Refusal{Reason: verifier.ReasonHashMismatch, Detail: fmt.Sprintf("SHA-256 %s, want %s", got, s.want)}
	}
	return nil
}
