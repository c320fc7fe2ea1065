package verifier

import (
	"testing"
)

// FuzzParseAssignment feeds arbitrary bytes to the director document
// parser: it must never panic (go-tuf dereferences nil map entries while
// decoding) and every failure must be a refusal the agent can report.
func FuzzParseAssignment(f *testing.F) {
	f.Add([]byte(`{"signed":{"_type":"targets","version":1,"targets":{"a":null}},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		a, err := parseAssignment(doc)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if a.file == nil || a.file.Custom == nil || len(a.sha256) != 64 || a.meta.Signed.Version < 1 {
			t.Fatalf("parsed an incomplete assignment: %+v", a)
		}
	})
}

// FuzzParseFinalize is FuzzParseAssignment for finalize documents.
func FuzzParseFinalize(f *testing.F) {
	f.Add([]byte(`{"signed":{"_type":"targets","version":1,"custom":null},"signatures":[]}`))
	f.Fuzz(func(t *testing.T, doc []byte) {
		_, fc, err := parseFinalize(doc)
		if err != nil {
			if ReasonOf(err) == "" {
				t.Fatalf("error without a reason: %v", err)
			}
			return
		}
		if fc.DeviceID == "" || fc.Version == "" || fc.SecurityVersion < 0 {
			t.Fatalf("parsed an incomplete finalize: %+v", fc)
		}
	})
}
