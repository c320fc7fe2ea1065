package blob

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// maxSumsSize bounds how much of a digest file is read; a real one is about
// 200 bytes.
const maxSumsSize = 4 << 10

// sums is the on-disk record of a blob's size and digests, kept next to its
// content so that Stat can answer without rehashing.
type sums struct {
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
	SHA1   string `json:"sha1"`
	MD5    string `json:"md5"`
}

func encodeSums(info Info) []byte {
	b, err := json.Marshal(sums{Size: info.Size, SHA256: info.SHA256, SHA1: info.SHA1, MD5: info.MD5})
	if err != nil {
		// Marshalling a struct of strings and an int cannot fail.
		panic(fmt.Sprintf("encode blob digests: %v", err))
	}
	return append(b, '\n')
}

// parseSums decodes a digest file and checks it against the key it was
// found under. Any deviation is reported as ErrCorrupt.
func parseSums(raw []byte, key string) (Info, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s sums
	if err := dec.Decode(&s); err != nil {
		return Info{}, fmt.Errorf("decode digests: %v: %w", err, ErrCorrupt)
	}
	if _, err := dec.Token(); err != io.EOF {
		return Info{}, fmt.Errorf("decode digests: trailing data: %w", ErrCorrupt)
	}
	switch {
	case s.SHA256 != key:
		return Info{}, fmt.Errorf("digests are for %q: %w", s.SHA256, ErrCorrupt)
	case s.Size < 0:
		return Info{}, fmt.Errorf("negative size %d: %w", s.Size, ErrCorrupt)
	case len(s.SHA1) != 40 || !isLowerHex(s.SHA1):
		return Info{}, fmt.Errorf("bad sha1 %q: %w", s.SHA1, ErrCorrupt)
	case len(s.MD5) != 32 || !isLowerHex(s.MD5):
		return Info{}, fmt.Errorf("bad md5 %q: %w", s.MD5, ErrCorrupt)
	}
	return Info{Key: key, Size: s.Size, SHA256: s.SHA256, SHA1: s.SHA1, MD5: s.MD5}, nil
}
