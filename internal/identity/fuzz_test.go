package identity

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
)

// The seed corpora live in testdata/fuzz/<FuzzName>; they include valid,
// signed requests and tokens made at testNow() with keys whose private
// halves were thrown away, so the fuzzer starts from inputs that reach the
// signature and MAC checks.

func FuzzParseEnrollment(f *testing.F) {
	f.Add([]byte(`{}`), "")
	f.Add([]byte(`{"identity":{"serial":"a","device_type":"b","hw_rev":"c","region":"d"},"public_key":"","nonce":"","timestamp":""}`), "AAAA")
	f.Fuzz(func(t *testing.T, body []byte, sig string) {
		e, err := ParseEnrollment(body, sig, testNow(), time.Minute)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) && !errors.Is(err, ErrStaleRequest) &&
				!errors.Is(err, ErrMissingSignature) && !errors.Is(err, ErrBadSignature) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		if err := e.Identity.Validate(); err != nil {
			t.Fatalf("accepted an invalid identity: %v", err)
		}
		again, err := ParsePublicKeyPEM([]byte(e.PublicKey.PEM))
		if err != nil || again.Fingerprint != e.PublicKey.Fingerprint {
			t.Fatalf("accepted key does not round-trip: %v", err)
		}
		raw, err := DecodeSignature(sig)
		if err != nil || e.PublicKey.Verify(body, raw) != nil {
			t.Fatal("accepted a request whose signature does not verify")
		}
	})
}

func FuzzDecodeRenewal(f *testing.F) {
	f.Add([]byte(`{"device_id":"d","nonce":"0123456789abcdef","timestamp":"2025-06-01T12:00:00Z"}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		p, err := DecodeRenewal(body)
		if err != nil {
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("unclassified error %T: %v", err, err)
			}
			return
		}
		if !isName(p.DeviceID, MaxDeviceIDLen) || checkNonce("nonce", p.nonce) != nil {
			t.Fatalf("accepted invalid renewal %+v", p)
		}
	})
}

// fuzzIssuer verifies the seed tokens: its secret is fixed so the corpus
// stays valid.
func fuzzIssuer() *Issuer {
	return &Issuer{
		Keys:  TokenKeys{Current: TokenKey{ID: "fz", Secret: []byte("updraft-fuzz-token-key-0123456789abcdef")}},
		Clock: clock.NewFake(testNow().Add(30 * time.Minute)),
		TTL:   time.Hour,
	}
}

func FuzzVerifyToken(f *testing.F) {
	f.Add("udt1.fz.e30.AAAA")
	is := fuzzIssuer()
	now := is.Clock.Now()
	f.Fuzz(func(t *testing.T, token string) {
		c, err := is.Verify(token)
		switch {
		case err == nil:
			if !c.Expiry.After(now) {
				t.Fatalf("accepted an expired token: %+v", c)
			}
		case errors.Is(err, ErrTokenExpired):
			if c.Expiry.After(now) {
				t.Fatalf("expired token not yet past expiry: %+v", c)
			}
		case errors.Is(err, ErrTokenInvalid):
			return
		default:
			t.Fatalf("unclassified error %v", err)
		}
		if !isName(c.Tenant, MaxNameLen) || !isName(c.DeviceID, MaxDeviceIDLen) || c.Epoch < 0 {
			t.Fatalf("genuine token with invalid claims %+v", c)
		}
		// Only the issuer can produce genuine tokens, so re-issuing the
		// same claims at the same time must give the same token.
		replay := &Issuer{Keys: is.Keys, Clock: clock.NewFake(c.IssuedAt), TTL: c.Expiry.Sub(c.IssuedAt)}
		again, _, err := replay.Issue(c)
		if err != nil || again != token {
			t.Fatalf("genuine token %q is not canonical (reissued %q, %v)", token, again, err)
		}
	})
}

func FuzzParsePublicKeyPEM(f *testing.F) {
	f.Add([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		pk, err := ParsePublicKeyPEM(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedKey) && !errors.Is(err, ErrUnsupportedKey) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := ParsePublicKeyPEM([]byte(pk.PEM))
		if err != nil || again.Fingerprint != pk.Fingerprint || again.PEM != pk.PEM || again.Algorithm != pk.Algorithm {
			t.Fatalf("canonical form does not round-trip: %v", err)
		}
		if pk.Algorithm == AlgRSA && (pk.Bits < MinRSABits || pk.Bits > MaxRSABits) {
			t.Fatalf("accepted rsa-%d", pk.Bits)
		}
	})
}

func FuzzDecodeSignature(f *testing.F) {
	f.Add("+/8=")
	f.Add("-_8")
	f.Fuzz(func(t *testing.T, header string) {
		sig, err := DecodeSignature(header)
		if err != nil {
			if !errors.Is(err, ErrBadSignature) && !errors.Is(err, ErrMissingSignature) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := DecodeSignature(EncodeSignature(sig))
		if err != nil || !bytes.Equal(again, sig) {
			t.Fatalf("signature does not round-trip: %v", err)
		}
	})
}

func FuzzParseCertificatePEM(f *testing.F) {
	f.Add([]byte("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := ParseCertificatePEM(data)
		if err != nil {
			if !errors.Is(err, ErrMalformedCertificate) {
				t.Fatalf("unclassified error: %v", err)
			}
			return
		}
		again, err := ParseCertificatePEM([]byte(c.PEM))
		if err != nil || again.Fingerprint != c.Fingerprint {
			t.Fatalf("canonical form does not round-trip: %v", err)
		}
	})
}

// readSeed reads the string and []byte values of a corpus file.
func readSeed(t *testing.T, fuzz, name string) []string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", "fuzz", fuzz, name))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if lines[0] != "go test fuzz v1" {
		t.Fatalf("%s/%s: not a corpus file", fuzz, name)
	}
	var vals []string
	for _, l := range lines[1:] {
		l = strings.TrimSuffix(strings.TrimPrefix(strings.TrimPrefix(l, "[]byte("), "string("), ")")
		v, err := strconv.Unquote(l)
		if err != nil {
			t.Fatalf("%s/%s: %v", fuzz, name, err)
		}
		vals = append(vals, v)
	}
	return vals
}

// TestFuzzSeedsReachTheChecks keeps the valid seeds valid: if validation
// rules change and a seed stops parsing, the fuzzers would silently stop
// exercising the signature and MAC paths.
func TestFuzzSeedsReachTheChecks(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"valid-ed25519", "valid-p256-minimal", "valid-rsa3072-pkcs1v15"} {
		v := readSeed(t, "FuzzParseEnrollment", name)
		if _, err := ParseEnrollment([]byte(v[0]), v[1], testNow(), time.Minute); err != nil {
			t.Errorf("FuzzParseEnrollment/%s: %v", name, err)
		}
	}
	v := readSeed(t, "FuzzParseEnrollment", "stale")
	if _, err := ParseEnrollment([]byte(v[0]), v[1], testNow(), time.Minute); !errors.Is(err, ErrStaleRequest) {
		t.Errorf("FuzzParseEnrollment/stale: %v", err)
	}
	if _, err := DecodeRenewal([]byte(readSeed(t, "FuzzDecodeRenewal", "valid")[0])); err != nil {
		t.Errorf("FuzzDecodeRenewal/valid: %v", err)
	}
	is := fuzzIssuer()
	if _, err := is.Verify(readSeed(t, "FuzzVerifyToken", "valid")[0]); err != nil {
		t.Errorf("FuzzVerifyToken/valid: %v", err)
	}
	if _, err := is.Verify(readSeed(t, "FuzzVerifyToken", "expired")[0]); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("FuzzVerifyToken/expired: %v", err)
	}
	for _, name := range []string{"ed25519", "p256", "rsa3072", "rsa3072.pkcs1.pem"} {
		if _, err := ParsePublicKeyPEM([]byte(readSeed(t, "FuzzParsePublicKeyPEM", name)[0])); err != nil {
			t.Errorf("FuzzParsePublicKeyPEM/%s: %v", name, err)
		}
	}
	if _, err := ParseCertificatePEM([]byte(readSeed(t, "FuzzParseCertificatePEM", "p256-self-signed")[0])); err != nil {
		t.Errorf("FuzzParseCertificatePEM: %v", err)
	}
}
