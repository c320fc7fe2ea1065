package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"strings"
	"testing"
)

func mustSign(t *testing.T, s crypto.Signer, body []byte) string {
	t.Helper()
	h, err := SignBody(s, body)
	if err != nil {
		t.Fatalf("SignBody: %v", err)
	}
	return h
}

func mustDecode(t *testing.T, header string) []byte {
	t.Helper()
	sig, err := DecodeSignature(header)
	if err != nil {
		t.Fatalf("DecodeSignature: %v", err)
	}
	return sig
}

func TestDecodeSignature(t *testing.T) {
	t.Parallel()
	// 0xfb 0xff 0xfe encodes to characters that differ between the two
	// base64 alphabets.
	raw := []byte{0xfb, 0xff, 0xfe, 0x01, 0x02}
	cases := []struct {
		name   string
		header string
		want   []byte
		err    error
	}{
		{"std padded", base64.StdEncoding.EncodeToString(raw), raw, nil},
		{"std unpadded", base64.RawStdEncoding.EncodeToString(raw), raw, nil},
		{"url padded", base64.URLEncoding.EncodeToString(raw), raw, nil},
		{"url unpadded", base64.RawURLEncoding.EncodeToString(raw), raw, nil},
		{"surrounding space", "  " + base64.StdEncoding.EncodeToString(raw) + " ", raw, nil},
		{"empty", "", nil, ErrMissingSignature},
		{"blank", "   ", nil, ErrMissingSignature},
		{"not base64", "sig!", nil, ErrBadSignature},
		{"mixed alphabets", "+_8=", nil, ErrBadSignature},
		{"inner space", "+/8 A", nil, ErrBadSignature},
		{"inner newline", "+/8\r\nA", nil, ErrBadSignature},
		{"nonzero trailing bits", "+/9", nil, ErrBadSignature},
		{"only padding", "==", nil, ErrBadSignature},
		{"too long", strings.Repeat("A", maxSignatureHeaderLen+4), nil, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeSignature(tc.header)
			if !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want %v", err, tc.err)
			}
			if !bytes.Equal(got, tc.want) {
				t.Errorf("got %x, want %x", got, tc.want)
			}
		})
	}
}

func TestSignBodyRoundTrip(t *testing.T) {
	t.Parallel()
	body := []byte(`{"a":1}`)
	for _, sc := range acceptedSigners(t) {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			header := mustSign(t, sc.signer, body)
			if _, err := base64.StdEncoding.DecodeString(header); err != nil {
				t.Errorf("header %q is not padded standard base64", header)
			}
			pk, err := NewPublicKey(sc.signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			if err := pk.Verify(body, mustDecode(t, header)); err != nil {
				t.Errorf("Verify: %v", err)
			}
		})
	}
}

func TestSignBodyRefusesUnacceptedKeys(t *testing.T) {
	t.Parallel()
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for name, s := range map[string]crypto.Signer{"p-384": p384, "rsa-1024": genRSA(t, 1024)} {
		if _, err := SignBody(s, []byte("x")); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("%s: got %v, want ErrUnsupportedKey", name, err)
		}
	}
}
