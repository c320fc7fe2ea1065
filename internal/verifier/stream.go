package verifier

import (
	"bytes"
	"crypto/sha256"
	"encoding"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
)

// stream hashes an artifact as it is written.
type stream struct {
	path   string
	length int64
	sum    []byte
	h      hash.Hash
	off    int64
}

// streamState is the serialized progress of a stream.
type streamState struct {
	V      int    `json:"v"`
	Path   string `json:"path"`
	Length int64  `json:"length"`
	SHA256 string `json:"sha256"`
	Offset int64  `json:"offset"`
	Hash   []byte `json:"hash"` // sha256 digest state (encoding.BinaryMarshaler)
}

// NewStream implements Verifier.
func (c *Client) NewStream(t *Target, resume []byte) (Stream, error) {
	return NewStream(t, resume)
}

// NewStream returns a Stream for t, resuming from a State when resume is
// not nil. The state must be for the same target and internally
// consistent; it is a file the agent persisted, so it is checked rather
// than trusted (a bad state only makes Finish fail, never pass).
func NewStream(t *Target, resume []byte) (Stream, error) {
	sum, err := hex.DecodeString(t.SHA256)
	if err != nil || len(sum) != sha256.Size || t.Length < 0 {
		return nil, fmt.Errorf("verifier: stream: target %s has no valid sha256 or length", t.Path)
	}
	s := &stream{path: t.Path, length: t.Length, sum: sum, h: sha256.New()}
	if resume == nil {
		return s, nil
	}
	var st streamState
	if err := json.Unmarshal(resume, &st); err != nil {
		return nil, fmt.Errorf("verifier: stream state: %w", err)
	}
	if st.V != 1 || st.Path != t.Path || st.Length != t.Length || st.SHA256 != t.SHA256 {
		return nil, fmt.Errorf("verifier: stream state is for another target")
	}
	if st.Offset < 0 || st.Offset > t.Length {
		return nil, fmt.Errorf("verifier: stream state offset %d out of range", st.Offset)
	}
	// The digest state ends with the count of bytes hashed; it must agree
	// with the offset.
	if len(st.Hash) < 8 || int64(binary.BigEndian.Uint64(st.Hash[len(st.Hash)-8:])) != st.Offset {
		return nil, fmt.Errorf("verifier: stream state hash does not match its offset")
	}
	if err := s.h.(encoding.BinaryUnmarshaler).UnmarshalBinary(st.Hash); err != nil {
		return nil, fmt.Errorf("verifier: stream state hash: %w", err)
	}
	s.off = st.Offset
	return s, nil
}

// Write refuses the whole write if it would go past the signed length.
func (s *stream) Write(p []byte) (int, error) {
	if int64(len(p)) > s.length-s.off {
		return 0, refusal(ReasonTooLong, fmt.Sprintf("%s: more than the signed %d bytes", s.path, s.length), nil)
	}
	s.h.Write(p)
	s.off += int64(len(p))
	return len(p), nil
}

func (s *stream) Offset() int64 { return s.off }

func (s *stream) State() ([]byte, error) {
	h, err := s.h.(encoding.BinaryMarshaler).MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("verifier: stream state: %w", err)
	}
	return json.Marshal(streamState{V: 1, Path: s.path, Length: s.length, SHA256: hex.EncodeToString(s.sum), Offset: s.off, Hash: h})
}

func (s *stream) Finish() error {
	if s.off != s.length {
		return refusal(ReasonHashMismatch, fmt.Sprintf("%s: %d of %d signed bytes", s.path, s.off, s.length), nil)
	}
	if !bytes.Equal(s.h.Sum(nil), s.sum) {
		return refusal(ReasonHashMismatch, fmt.Sprintf("%s: sha256 differs from the signed one", s.path), nil)
	}
	return nil
}
