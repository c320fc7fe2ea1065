package blob

import (
	"bytes"
	"errors"
	"testing"
)

const abcKey = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"

func TestParseSums(t *testing.T) {
	t.Parallel()
	good := Info{Key: abcKey, Size: 3, SHA256: abcKey, SHA1: "a9993e364706816aba3e25717850c26c9cd0d89d", MD5: "900150983cd24fb0d6963f7d28e17f72"}
	tests := []struct {
		name    string
		raw     string
		wantErr bool
	}{
		{"written by encodeSums", string(encodeSums(good)), false},
		{"empty", "", true},
		{"trailing object", string(encodeSums(good)) + "{}", true},
		{"unknown field", `{"size":3,"sha256":"` + abcKey + `","sha1":"a9993e364706816aba3e25717850c26c9cd0d89d","md5":"900150983cd24fb0d6963f7d28e17f72","x":1}`, true},
		{"other key", `{"size":3,"sha256":"` + abcKey[:63] + `0","sha1":"a9993e364706816aba3e25717850c26c9cd0d89d","md5":"900150983cd24fb0d6963f7d28e17f72"}`, true},
		{"negative size", `{"size":-3,"sha256":"` + abcKey + `","sha1":"a9993e364706816aba3e25717850c26c9cd0d89d","md5":"900150983cd24fb0d6963f7d28e17f72"}`, true},
		{"short sha1", `{"size":3,"sha256":"` + abcKey + `","sha1":"a9993e","md5":"900150983cd24fb0d6963f7d28e17f72"}`, true},
		{"upper-case md5", `{"size":3,"sha256":"` + abcKey + `","sha1":"a9993e364706816aba3e25717850c26c9cd0d89d","md5":"900150983CD24FB0D6963F7D28E17F72"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := parseSums([]byte(tt.raw), abcKey)
			if tt.wantErr {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("parseSums error = %v, want ErrCorrupt", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != good {
				t.Fatalf("parseSums = %+v, want %+v", got, good)
			}
		})
	}
}

// FuzzParseSums feeds arbitrary digest files to the parser: it must never
// panic, must only accept records for the key it was given, and whatever it
// accepts must survive a round trip through encodeSums.
func FuzzParseSums(f *testing.F) {
	f.Add(encodeSums(Info{Key: abcKey, Size: 3, SHA256: abcKey, SHA1: "a9993e364706816aba3e25717850c26c9cd0d89d", MD5: "900150983cd24fb0d6963f7d28e17f72"}))
	f.Fuzz(func(t *testing.T, raw []byte) {
		info, err := parseSums(raw, abcKey)
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("error %v does not wrap ErrCorrupt", err)
			}
			return
		}
		if info.Key != abcKey || info.SHA256 != abcKey || info.Size < 0 {
			t.Fatalf("accepted %+v for key %s", info, abcKey)
		}
		again, err := parseSums(encodeSums(info), abcKey)
		if err != nil || again != info {
			t.Fatalf("round trip: %+v, %v; want %+v", again, err, info)
		}
		if !bytes.Equal(encodeSums(again), encodeSums(info)) {
			t.Fatal("encoding is not stable")
		}
	})
}
