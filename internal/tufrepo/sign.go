package tufrepo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/secure-systems-lab/go-securesystemslib/cjson"
	"github.com/theupdateframework/go-tuf/v2/metadata"
)

// Info describes a metadata file without verifying it.
type Info struct {
	Type    string // root, timestamp, snapshot or targets
	Version int64
	Expires time.Time
	// KeyIDs of the signatures present (valid or not).
	KeyIDs []string
}

// Describe parses b far enough to tell its type, version, expiry and
// signers. It does not verify signatures.
func Describe(b []byte) (Info, error) {
	var probe struct {
		Signed struct {
			Type    string    `json:"_type"`
			Version int64     `json:"version"`
			Expires time.Time `json:"expires"`
		} `json:"signed"`
		Signatures []struct {
			KeyID string `json:"keyid"`
		} `json:"signatures"`
	}
	if err := json.Unmarshal(b, &probe); err != nil {
		return Info{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	switch probe.Signed.Type {
	case metadata.ROOT, metadata.TIMESTAMP, metadata.SNAPSHOT, metadata.TARGETS:
	default:
		return Info{}, fmt.Errorf("%w: unknown metadata type %q", ErrMalformed, probe.Signed.Type)
	}
	info := Info{Type: probe.Signed.Type, Version: probe.Signed.Version, Expires: probe.Signed.Expires}
	for _, s := range probe.Signatures {
		info.KeyIDs = append(info.KeyIDs, s.KeyID)
	}
	return info, nil
}

// Sign adds the signers' signatures to metadata b (of any role type),
// replacing any earlier signature by the same key, and returns the new
// bytes. Threshold signing: each key holder signs the same unsigned bytes
// and Combine merges the results, or one holder passes the output of Sign
// to the next.
func Sign(b []byte, signers ...Signer) ([]byte, error) {
	info, err := Describe(b)
	if err != nil {
		return nil, err
	}
	switch info.Type {
	case metadata.ROOT:
		return signAs[metadata.RootType](b, signers)
	case metadata.TIMESTAMP:
		return signAs[metadata.TimestampType](b, signers)
	case metadata.SNAPSHOT:
		return signAs[metadata.SnapshotType](b, signers)
	default:
		return signAs[metadata.TargetsType](b, signers)
	}
}

func signAs[T metadata.Roles](b []byte, signers []Signer) ([]byte, error) {
	m, err := parse[T](b)
	if err != nil {
		return nil, err
	}
	if err := signMeta(m, signers); err != nil {
		return nil, err
	}
	return encode(m)
}

func signMeta[T metadata.Roles](m *metadata.Metadata[T], signers []Signer) error {
	for _, s := range signers {
		k, err := SignerKey(s)
		if err != nil {
			return err
		}
		id, err := KeyID(k)
		if err != nil {
			return err
		}
		m.Signatures = slices.DeleteFunc(m.Signatures, func(sig metadata.Signature) bool { return sig.KeyID == id })
		if _, err := m.Sign(s); err != nil {
			return fmt.Errorf("sign with key %s: %w", id, err)
		}
	}
	return nil
}

// Combine merges the signatures of several copies of the same metadata
// (signed separately by threshold key holders). Every copy must carry the
// same signed content.
func Combine(docs ...[]byte) ([]byte, error) {
	if len(docs) == 0 {
		return nil, fmt.Errorf("combine: no metadata given")
	}
	info, err := Describe(docs[0])
	if err != nil {
		return nil, err
	}
	switch info.Type {
	case metadata.ROOT:
		return combineAs[metadata.RootType](docs)
	case metadata.TIMESTAMP:
		return combineAs[metadata.TimestampType](docs)
	case metadata.SNAPSHOT:
		return combineAs[metadata.SnapshotType](docs)
	default:
		return combineAs[metadata.TargetsType](docs)
	}
}

func combineAs[T metadata.Roles](docs [][]byte) ([]byte, error) {
	first, err := parse[T](docs[0])
	if err != nil {
		return nil, err
	}
	want, err := cjson.EncodeCanonical(first.Signed)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	for i, d := range docs[1:] {
		m, err := parse[T](d)
		if err != nil {
			return nil, fmt.Errorf("combine: copy %d: %w", i+2, err)
		}
		got, err := cjson.EncodeCanonical(m.Signed)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
		}
		if !bytes.Equal(got, want) {
			return nil, fmt.Errorf("combine: copy %d has different signed content than the first", i+2)
		}
		for _, s := range m.Signatures {
			if !slices.ContainsFunc(first.Signatures, func(f metadata.Signature) bool { return f.KeyID == s.KeyID }) {
				first.Signatures = append(first.Signatures, s)
			}
		}
	}
	return encode(first)
}

// parse decodes metadata of type T. go-tuf dereferences nil entries of
// attacker-controlled maps while decoding, so a panic becomes ErrMalformed.
func parse[T metadata.Roles](b []byte) (m *metadata.Metadata[T], err error) {
	defer func() {
		if r := recover(); r != nil {
			m, err = nil, fmt.Errorf("%w: %v", ErrMalformed, r)
		}
	}()
	m, err = new(metadata.Metadata[T]).FromBytes(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

func encode[T metadata.Roles](m *metadata.Metadata[T]) ([]byte, error) {
	b, err := m.ToBytes(false)
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	return b, nil
}

// verify checks that delegated is signed by a threshold of the keys the
// delegator (root or targets metadata) gives role, turning go-tuf's errors
// (and panics on malformed key records) into ErrBadSignature.
func verify[D metadata.Roles](delegator *metadata.Metadata[D], role string, delegated any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrBadSignature, role, r)
		}
	}()
	if err := delegator.VerifyDelegate(role, delegated); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrBadSignature, role, err)
	}
	return nil
}

// expiry normalizes an expiry time the way TUF writes it: UTC, whole seconds.
func expiry(t time.Time) time.Time { return t.UTC().Truncate(time.Second) }
