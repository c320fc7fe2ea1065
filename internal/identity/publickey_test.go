package identity

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// signerCase is a freshly generated device key of one accepted kind.
type signerCase struct {
	name   string
	signer crypto.Signer
	alg    string
	bits   int
}

// acceptedSigners generates one key of every accepted algorithm, including
// the RSA-3072 key mender-client uses.
func acceptedSigners(t *testing.T) []signerCase {
	t.Helper()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return []signerCase{
		{"ed25519", ed, AlgEd25519, 256},
		{"ecdsa-p256", p256, AlgECDSAP256, 256},
		{"rsa-2048", genRSA(t, 2048), AlgRSA, 2048},
		{"rsa-3072", genRSA(t, 3072), AlgRSA, 3072},
	}
}

func genRSA(t *testing.T, bits int) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatalf("generate rsa-%d: %v", bits, err)
	}
	return k
}

func pkixPEM(t *testing.T, pub crypto.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func fingerprintOf(t *testing.T, pub crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:])
}

func TestParsePublicKeyPEMAccepted(t *testing.T) {
	t.Parallel()
	for _, sc := range acceptedSigners(t) {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			pk, err := ParsePublicKeyPEM(pkixPEM(t, sc.signer.Public()))
			if err != nil {
				t.Fatalf("ParsePublicKeyPEM: %v", err)
			}
			if pk.Algorithm != sc.alg || pk.Bits != sc.bits {
				t.Errorf("got %s/%d, want %s/%d", pk.Algorithm, pk.Bits, sc.alg, sc.bits)
			}
			if want := fingerprintOf(t, sc.signer.Public()); pk.Fingerprint != want {
				t.Errorf("fingerprint %s, want %s", pk.Fingerprint, want)
			}
			again, err := ParsePublicKeyPEM([]byte(pk.PEM))
			if err != nil || again.Fingerprint != pk.Fingerprint || again.PEM != pk.PEM {
				t.Errorf("canonical PEM does not round-trip: %v", err)
			}
		})
	}
}

func TestParsePublicKeyPEMPKCS1MatchesPKIX(t *testing.T) {
	t.Parallel()
	k := genRSA(t, 3072)
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&k.PublicKey)})
	a, err := ParsePublicKeyPEM(pkcs1)
	if err != nil {
		t.Fatalf("pkcs1: %v", err)
	}
	b, err := ParsePublicKeyPEM(pkixPEM(t, &k.PublicKey))
	if err != nil {
		t.Fatalf("pkix: %v", err)
	}
	if a.Fingerprint != b.Fingerprint || a.PEM != b.PEM || a.Bits != 3072 {
		t.Errorf("pkcs1 and pkix forms differ: %+v vs %+v", a, b)
	}
	if !strings.HasPrefix(a.PEM, "-----BEGIN PUBLIC KEY-----\n") {
		t.Errorf("canonical PEM is not PKIX: %q", a.PEM)
	}
}

func TestParsePublicKeyPEMRefused(t *testing.T) {
	t.Parallel()
	rsa1024 := genRSA(t, 1024)
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p521, err := ecdsa.GenerateKey(elliptic.P521(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	x25519, err := ecdh.X25519().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	edPub := pkixPEM(t, ed.Public())
	privDER, err := x509.MarshalPKCS8PrivateKey(ed)
	if err != nil {
		t.Fatal(err)
	}
	bigN := new(big.Int).Lsh(big.NewInt(1), 8200)
	bigN.Add(bigN, big.NewInt(1))

	cases := []struct {
		name    string
		pem     []byte
		want    error
		wantMsg string
	}{
		{"rsa-1024", pkixPEM(t, &rsa1024.PublicKey), ErrUnsupportedKey, "1024 bits is too small"},
		{"rsa-1024 pkcs1", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsa1024.PublicKey)}), ErrUnsupportedKey, "at least 2048"},
		{"rsa-8201", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: bigN, E: 65537})}), ErrUnsupportedKey, "too large"},
		{"p-384", pkixPEM(t, &p384.PublicKey), ErrUnsupportedKey, "P-384"},
		{"p-521", pkixPEM(t, &p521.PublicKey), ErrUnsupportedKey, "P-521"},
		{"x25519", pkixPEM(t, x25519.PublicKey()), ErrUnsupportedKey, "key type"},
		{"private key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: privDER}), ErrMalformedKey, "private key"},
		{"certificate", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte{1}}), ErrMalformedKey, "certificate"},
		{"other block", pem.EncodeToMemory(&pem.Block{Type: "DH PARAMETERS", Bytes: []byte{1}}), ErrMalformedKey, "DH PARAMETERS"},
		{"pkcs1 bytes in pkix block", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsa1024.PublicKey)}), ErrMalformedKey, ""},
		{"garbage der", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte("nope")}), ErrMalformedKey, ""},
		{"empty", nil, ErrMalformedKey, "not a pem block"},
		{"not pem", []byte("ssh-ed25519 AAAAC3Nza"), ErrMalformedKey, "not a pem block"},
		{"leading text", append([]byte("key:\n"), edPub...), ErrMalformedKey, "not a pem block"},
		{"two blocks", append(append([]byte{}, edPub...), edPub...), ErrMalformedKey, "exactly one pem block"},
		{"broken block before a good one", append([]byte("-----BEGIN PUBLIC KEY-----\nAAAA\n"), edPub...), ErrMalformedKey, "exactly one pem block"},
		{"trailing text", append(append([]byte{}, edPub...), "x"...), ErrMalformedKey, "after the pem block"},
		{"headers", pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Headers: map[string]string{"Proc-Type": "4,ENCRYPTED"}, Bytes: []byte{1}}), ErrMalformedKey, "headers"},
		{"truncated", edPub[:len(edPub)-10], ErrMalformedKey, ""},
		{"too long", append(bytes.Repeat([]byte(" "), MaxPublicKeyPEMBytes), edPub...), ErrMalformedKey, "longer than"},
		{"even rsa exponent", pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsa.PublicKey{N: genRSA(t, 2048).N, E: 65536})}), ErrUnsupportedKey, "exponent"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pk, err := ParsePublicKeyPEM(tc.pem)
			if err == nil {
				t.Fatalf("accepted %s key", pk.Algorithm)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("error %q is not %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("error %q does not mention %q", err, tc.wantMsg)
			}
		})
	}
}

func TestParsePublicKeyPEMToleratesWhiteSpace(t *testing.T) {
	t.Parallel()
	_, ed, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	p := pkixPEM(t, ed.Public())
	for _, in := range [][]byte{p, bytes.TrimSpace(p), append([]byte("\n\t "), append(p, "\r\n\n"...)...)} {
		if _, err := ParsePublicKeyPEM(in); err != nil {
			t.Errorf("ParsePublicKeyPEM(%q): %v", in, err)
		}
	}
}

func TestVerify(t *testing.T) {
	t.Parallel()
	body := []byte(`{"identity":{"serial":"S-1"},"nonce":"abc"}`)
	for _, sc := range acceptedSigners(t) {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			pk, err := NewPublicKey(sc.signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			sig := mustDecode(t, mustSign(t, sc.signer, body))
			if err := pk.Verify(body, sig); err != nil {
				t.Fatalf("valid signature refused: %v", err)
			}
			other := append(append([]byte{}, body...), ' ')
			flipped := append([]byte{}, sig...)
			flipped[len(flipped)/2] ^= 0x01
			bad := map[string]struct{ body, sig []byte }{
				"body with extra space": {other, sig},
				"flipped bit":           {body, flipped},
				"truncated":             {body, sig[:len(sig)-1]},
				"extended":              {body, append(append([]byte{}, sig...), 0)},
				"empty":                 {body, nil},
			}
			for name, b := range bad {
				if err := pk.Verify(b.body, b.sig); !errors.Is(err, ErrBadSignature) {
					t.Errorf("%s: got %v, want ErrBadSignature", name, err)
				}
			}
		})
	}
}

func TestVerifyAlternativeEncodings(t *testing.T) {
	t.Parallel()
	body := []byte("exact raw body")
	h := sha256.Sum256(body)

	p256, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	r, s, err := ecdsa.Sign(rand.Reader, p256, h[:])
	if err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, 64)
	r.FillBytes(raw[:32])
	s.FillBytes(raw[32:])

	rk := genRSA(t, 3072)
	pss, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, h[:], &rsa.PSSOptions{SaltLength: rsa.PSSSaltLengthEqualsHash})
	if err != nil {
		t.Fatal(err)
	}
	pssMax, err := rsa.SignPSS(rand.Reader, rk, crypto.SHA256, h[:], nil)
	if err != nil {
		t.Fatal(err)
	}
	h1 := sha1.Sum(body)
	sha1Sig, err := rsa.SignPKCS1v15(rand.Reader, rk, crypto.SHA1, h1[:])
	if err != nil {
		t.Fatal(err)
	}
	otherECDSA, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	otherSig, err := ecdsa.SignASN1(rand.Reader, otherECDSA, h[:])
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name string
		pub  crypto.PublicKey
		sig  []byte
		ok   bool
	}{
		{"ecdsa raw r||s", &p256.PublicKey, raw, true},
		{"ecdsa raw r||s swapped", &p256.PublicKey, append(append([]byte{}, raw[32:]...), raw[:32]...), false},
		{"ecdsa other key", &p256.PublicKey, otherSig, false},
		{"rsa pss salt=hash", &rk.PublicKey, pss, true},
		{"rsa pss max salt", &rk.PublicKey, pssMax, true},
		{"rsa pkcs1v15 over sha1", &rk.PublicKey, sha1Sig, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			pk, err := NewPublicKey(tc.pub)
			if err != nil {
				t.Fatal(err)
			}
			err = pk.Verify(body, tc.sig)
			if tc.ok && err != nil {
				t.Errorf("refused: %v", err)
			}
			if !tc.ok && !errors.Is(err, ErrBadSignature) {
				t.Errorf("got %v, want ErrBadSignature", err)
			}
		})
	}
}

// TestOpenSSLVectors checks keys, fingerprints and signatures made by
// OpenSSL, so the server agrees with devices that do not use Go.
func TestOpenSSLVectors(t *testing.T) {
	t.Parallel()
	dir := filepath.Join("testdata", "openssl")
	read := func(name string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	body := read("body.json")
	fps := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(read("fingerprints.txt"))), "\n") {
		f := strings.Fields(line)
		fps[f[1]] = f[0]
	}

	cases := []struct {
		key, sig string
		alg      string
	}{
		{"rsa3072.pub.pem", "rsa3072-pkcs1v15.sig.b64", AlgRSA},
		{"rsa3072.pkcs1.pem", "rsa3072-pkcs1v15.sig.b64", AlgRSA},
		{"rsa3072.pub.pem", "rsa3072-pss.sig.b64", AlgRSA},
		{"p256.pub.pem", "p256-der.sig.b64", AlgECDSAP256},
		{"ed25519.pub.pem", "ed25519.sig.b64", AlgEd25519},
	}
	for _, tc := range cases {
		t.Run(tc.key+"/"+tc.sig, func(t *testing.T) {
			t.Parallel()
			pk, err := ParsePublicKeyPEM(read(tc.key))
			if err != nil {
				t.Fatal(err)
			}
			if pk.Algorithm != tc.alg {
				t.Errorf("algorithm %s, want %s", pk.Algorithm, tc.alg)
			}
			wantFP := fps[tc.key]
			if tc.key == "rsa3072.pkcs1.pem" {
				wantFP = fps["rsa3072.pub.pem"]
			}
			if pk.Fingerprint != wantFP {
				t.Errorf("fingerprint %s, openssl says %s", pk.Fingerprint, wantFP)
			}
			sig, err := DecodeSignature(string(read(tc.sig)))
			if err != nil {
				t.Fatal(err)
			}
			if err := pk.Verify(body, sig); err != nil {
				t.Errorf("openssl signature refused: %v", err)
			}
			if err := pk.Verify(slices.Concat(body, []byte{'\n'}), sig); !errors.Is(err, ErrBadSignature) {
				t.Errorf("signature accepted for a different body: %v", err)
			}
		})
	}
	for _, refused := range []string{"p384.pub.pem", "rsa1024.pub.pem"} {
		if _, err := ParsePublicKeyPEM(read(refused)); !errors.Is(err, ErrUnsupportedKey) {
			t.Errorf("%s: got %v, want ErrUnsupportedKey", refused, err)
		}
	}
}

func TestNewPublicKeyForms(t *testing.T) {
	t.Parallel()
	pub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	a, err := NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	b, err := NewPublicKey(&pub)
	if err != nil {
		t.Fatal(err)
	}
	if a.Fingerprint != b.Fingerprint {
		t.Error("value and pointer forms differ")
	}
	for name, k := range map[string]crypto.PublicKey{
		"nil":            nil,
		"nil rsa":        (*rsa.PublicKey)(nil),
		"nil ecdsa":      (*ecdsa.PublicKey)(nil),
		"short ed25519":  ed25519.PublicKey(pub[:31]),
		"unknown type":   "key",
		"nil ed25519ptr": (*ed25519.PublicKey)(nil),
	} {
		if _, err := NewPublicKey(k); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if got := a.CryptoPublicKey(); !pub.Equal(got) {
		t.Errorf("CryptoPublicKey = %v", got)
	}
}
