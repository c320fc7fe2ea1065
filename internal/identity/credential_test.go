package identity

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCredentialKinds(t *testing.T) {
	t.Parallel()
	cases := []struct {
		in   string
		ok   bool
		auth bool
	}{
		{"pubkey", true, true},
		{"token", true, true},
		{"cert", true, false},
		{"", false, false},
		{"PUBKEY", false, false},
		{"password", false, false},
	}
	for _, tc := range cases {
		k, err := ParseCredentialKind(tc.in)
		if (err == nil) != tc.ok {
			t.Errorf("ParseCredentialKind(%q) = %v", tc.in, err)
		}
		if !tc.ok && !errors.Is(err, ErrUnknownCredentialKind) {
			t.Errorf("ParseCredentialKind(%q) error %v is not ErrUnknownCredentialKind", tc.in, err)
		}
		if CredentialKind(tc.in).AuthSupported() != tc.auth {
			t.Errorf("%q: AuthSupported = %v, want %v", tc.in, !tc.auth, tc.auth)
		}
		if tc.ok && k.String() != tc.in {
			t.Errorf("String() = %q", k.String())
		}
	}
}

// selfSigned makes a device certificate for a P-256 key.
func selfSigned(t *testing.T) ([]byte, *ecdsa.PrivateKey) {
	t.Helper()
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(4711),
		Subject:      pkix.Name{CommonName: "GW200-000123"},
		NotBefore:    testNow(),
		NotAfter:     testNow().Add(365 * 24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), k
}

func TestParseCertificatePEM(t *testing.T) {
	t.Parallel()
	p, k := selfSigned(t)
	c, err := ParseCertificatePEM(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.Subject != "CN=GW200-000123" || c.SerialNumber != "4711" || !c.NotBefore.Equal(testNow()) {
		t.Errorf("certificate %+v", c)
	}
	if c.KeyFingerprint != fingerprintOf(t, &k.PublicKey) {
		t.Errorf("key fingerprint %s does not match the public key's", c.KeyFingerprint)
	}
	if c.PEM != string(p) {
		t.Errorf("canonical PEM differs from input")
	}
	pub := pkixPEM(t, &k.PublicKey)
	for name, in := range map[string][]byte{
		"public key":  pub,
		"two certs":   append(append([]byte{}, p...), p...),
		"garbage der": pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: []byte("x")}),
		"empty":       nil,
		"too long":    append([]byte(strings.Repeat(" ", MaxCertificatePEMBytes)), p...),
	} {
		if _, err := ParseCertificatePEM(in); !errors.Is(err, ErrMalformedCertificate) {
			t.Errorf("%s: got %v, want ErrMalformedCertificate", name, err)
		}
	}
}

func TestCredentialStorageForms(t *testing.T) {
	t.Parallel()
	k := newEd25519(t)
	pk, err := NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	certPEM, _ := selfSigned(t)
	cert, err := ParseCertificatePEM(certPEM)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := GenerateTargetToken()
	if err != nil {
		t.Fatal(err)
	}
	keyCred, certCred, tokCred := pk.Credential(), cert.Credential(), TargetTokenCredential(tok)

	for name, c := range map[string]Credential{"pubkey": keyCred, "cert": certCred, "token": tokCred} {
		if err := c.Validate(); err != nil {
			t.Errorf("%s: Validate: %v", name, err)
		}
	}
	if keyCred.Algorithm != AlgEd25519 || tokCred.Material != "" || strings.Contains(tokCred.Fingerprint, tok) {
		t.Errorf("unexpected storage forms: %+v %+v", keyCred, tokCred)
	}

	got, err := keyCred.PublicKey()
	if err != nil || got.Fingerprint != pk.Fingerprint {
		t.Errorf("PublicKey() = %v, %v", got, err)
	}
	if _, err := certCred.PublicKey(); !errors.Is(err, ErrUnsupportedCredential) {
		t.Errorf("certificate PublicKey(): got %v, want ErrUnsupportedCredential", err)
	}
	if _, err := tokCred.PublicKey(); err == nil {
		t.Error("target token has a public key")
	}
	if !tokCred.MatchTargetToken(tok) || tokCred.MatchTargetToken(tok+"x") || keyCred.MatchTargetToken(tok) {
		t.Error("MatchTargetToken gives wrong answers")
	}

	otherPK, err := NewPublicKey(newEd25519(t).Public())
	if err != nil {
		t.Fatal(err)
	}
	broken := map[string]Credential{
		"unknown kind":          {Kind: "password", Fingerprint: keyCred.Fingerprint},
		"short fingerprint":     {Kind: KindToken, Fingerprint: "abc"},
		"upper-case hex":        {Kind: KindToken, Fingerprint: strings.ToUpper(tokCred.Fingerprint)},
		"token with material":   {Kind: KindToken, Fingerprint: tokCred.Fingerprint, Material: tok},
		"key fingerprint swap":  {Kind: KindPublicKey, Fingerprint: otherPK.Fingerprint, Material: pk.PEM},
		"key wrong algorithm":   {Kind: KindPublicKey, Algorithm: AlgRSA, Fingerprint: pk.Fingerprint, Material: pk.PEM},
		"key bad material":      {Kind: KindPublicKey, Fingerprint: pk.Fingerprint, Material: "x"},
		"cert fingerprint swap": {Kind: KindCertificate, Fingerprint: pk.Fingerprint, Material: cert.PEM},
		"cert bad material":     {Kind: KindCertificate, Fingerprint: cert.Fingerprint, Material: pk.PEM},
	}
	for name, c := range broken {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: Validate accepted %+v", name, c)
		}
	}
}
