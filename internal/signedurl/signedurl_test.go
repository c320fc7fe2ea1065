package signedurl_test

import (
	"bytes"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/signedurl"
)

var (
	t0    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	key1  = signedurl.Key{ID: "k1", Secret: bytes.Repeat([]byte{1}, 32)}
	key2  = signedurl.Key{ID: "k2", Secret: bytes.Repeat([]byte{2}, 32)}
	param = signedurl.Params{Tenant: "default", Device: "dev-42", Artifact: "art-7"}
)

func newSigner(t *testing.T, c clock.Clock, current signedurl.Key, accepted ...signedurl.Key) *signedurl.Signer {
	t.Helper()
	s, err := signedurl.NewSigner(c, current, accepted...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func sign(t *testing.T, s *signedurl.Signer, p signedurl.Params, exp time.Time) url.Values {
	t.Helper()
	raw, err := s.Sign(p, exp)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	return q
}

func TestSignVerifyRoundTrip(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	s := newSigner(t, c, key1)
	p := signedurl.Params{Tenant: "acme corp/ü", Device: "serial&=?#%00", Artifact: "a/b c"}
	exp := t0.Add(15*time.Minute + 500*time.Millisecond)
	raw, err := s.Sign(p, exp)
	if err != nil {
		t.Fatal(err)
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 5 {
		t.Fatalf("query %q has %d parameters, want 5", raw, len(q))
	}
	got, err := s.Verify(q, p.Artifact)
	if err != nil {
		t.Fatal(err)
	}
	want := signedurl.Claims{Params: p, Expires: exp.Truncate(time.Second), KeyID: "k1"}
	if got != want {
		t.Fatalf("Verify = %+v, want %+v", got, want)
	}
}

func TestVerifyExpiry(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	s := newSigner(t, c, key1)
	exp := t0.Add(10 * time.Minute)
	q := sign(t, s, param, exp)
	tests := []struct {
		at      time.Duration // after t0
		wantErr error
	}{
		{0, nil},
		{10*time.Minute - time.Nanosecond, nil},
		{10 * time.Minute, signedurl.ErrExpired},
		{time.Hour, signedurl.ErrExpired},
	}
	for _, tt := range tests {
		c.Set(t0.Add(tt.at))
		if _, err := s.Verify(q, param.Artifact); !errors.Is(err, tt.wantErr) {
			t.Errorf("at t0+%v: error = %v, want %v", tt.at, err, tt.wantErr)
		}
	}
}

func TestVerifyRejectsTampering(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	s := newSigner(t, c, key1, key2)
	exp := t0.Add(time.Hour)
	tests := []struct {
		name     string
		edit     func(q url.Values)
		artifact string
		wantErr  error
	}{
		{"other artifact", func(url.Values) {}, "art-8", signedurl.ErrBadSignature},
		{"other device", func(q url.Values) { q.Set("d", "dev-43") }, "", signedurl.ErrBadSignature},
		{"other tenant", func(q url.Values) { q.Set("t", "other") }, "", signedurl.ErrBadSignature},
		{"later expiry", func(q url.Values) { q.Set("e", "4102444800") }, "", signedurl.ErrBadSignature},
		{"other known key", func(q url.Values) { q.Set("k", "k2") }, "", signedurl.ErrBadSignature},
		{"unknown key", func(q url.Values) { q.Set("k", "k9") }, "", signedurl.ErrUnknownKey},
		{"flipped signature", func(q url.Values) {
			sig := []byte(q.Get("s"))
			if sig[0] == 'A' {
				sig[0] = 'B'
			} else {
				sig[0] = 'A'
			}
			q.Set("s", string(sig))
		}, "", signedurl.ErrBadSignature},
		// Moving bytes between fields must not keep the MAC valid.
		{"shifted boundary", func(q url.Values) { q.Set("t", "defaultd"); q.Set("d", "ev-42") }, "", signedurl.ErrBadSignature},
		{"extra parameter ignored", func(q url.Values) { q.Set("cachebust", "1") }, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := sign(t, s, param, exp)
			tt.edit(q)
			art := tt.artifact
			if art == "" {
				art = param.Artifact
			}
			if _, err := s.Verify(q, art); !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify error = %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestVerifyMalformed(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	s := newSigner(t, c, key1)
	good := sign(t, s, param, t0.Add(time.Hour))
	tests := []struct {
		name     string
		edit     func(q url.Values)
		artifact string
	}{
		{"no tenant", func(q url.Values) { q.Del("t") }, ""},
		{"no device", func(q url.Values) { q.Del("d") }, ""},
		{"no expiry", func(q url.Values) { q.Del("e") }, ""},
		{"no key id", func(q url.Values) { q.Del("k") }, ""},
		{"no signature", func(q url.Values) { q.Del("s") }, ""},
		{"empty device", func(q url.Values) { q.Set("d", "") }, ""},
		{"repeated device", func(q url.Values) { q.Add("d", "dev-42") }, ""},
		{"repeated signature", func(q url.Values) { q.Add("s", q.Get("s")) }, ""},
		{"long device", func(q url.Values) { q.Set("d", strings.Repeat("x", signedurl.MaxDeviceLen+1)) }, ""},
		{"long tenant", func(q url.Values) { q.Set("t", strings.Repeat("x", signedurl.MaxTenantLen+1)) }, ""},
		{"empty artifact", func(url.Values) {}, "-"},
		{"long artifact", func(url.Values) {}, strings.Repeat("a", signedurl.MaxArtifactLen+1)},
		{"expiry with sign", func(q url.Values) { q.Set("e", "+"+q.Get("e")) }, ""},
		{"expiry with leading zero", func(q url.Values) { q.Set("e", "0"+q.Get("e")) }, ""},
		{"negative expiry", func(q url.Values) { q.Set("e", "-5") }, ""},
		{"zero expiry", func(q url.Values) { q.Set("e", "0") }, ""},
		{"expiry overflow", func(q url.Values) { q.Set("e", "99999999999999999999") }, ""},
		{"expiry not a number", func(q url.Values) { q.Set("e", "soon") }, ""},
		{"key id with slash", func(q url.Values) { q.Set("k", "k/1") }, ""},
		{"key id too long", func(q url.Values) { q.Set("k", strings.Repeat("k", signedurl.MaxKeyIDLen+1)) }, ""},
		{"signature padded", func(q url.Values) { q.Set("s", q.Get("s")+"=") }, ""},
		{"signature short", func(q url.Values) { q.Set("s", q.Get("s")[:42]) }, ""},
		{"signature std alphabet", func(q url.Values) { q.Set("s", "+"+q.Get("s")[1:]) }, ""},
		{"signature non-canonical tail", func(q url.Values) {
			// The last character carries 2 spare bits; a set spare bit
			// must not decode to the same MAC.
			sig := []byte(q.Get("s"))
			sig[len(sig)-1] = 'B'
			q.Set("s", string(sig))
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			q := url.Values{}
			for k, v := range good {
				q[k] = append([]string(nil), v...)
			}
			tt.edit(q)
			art := param.Artifact
			switch tt.artifact {
			case "":
			case "-":
				art = ""
			default:
				art = tt.artifact
			}
			_, err := s.Verify(q, art)
			if !errors.Is(err, signedurl.ErrMalformed) {
				t.Fatalf("Verify error = %v, want ErrMalformed", err)
			}
		})
	}
}

func TestKeyRotation(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	exp := t0.Add(time.Hour)
	before := newSigner(t, c, key1)        // only k1
	during := newSigner(t, c, key2, key1)  // signs k2, still accepts k1
	after := newSigner(t, c, key2)         // k1 retired
	fromOld := sign(t, before, param, exp) // issued before rotation
	fromNew := sign(t, during, param, exp) // issued after rotation
	if got := fromNew.Get("k"); got != "k2" {
		t.Fatalf("rotated signer used key %q, want k2", got)
	}
	tests := []struct {
		name    string
		s       *signedurl.Signer
		q       url.Values
		wantErr error
	}{
		{"old url, rotating signer", during, fromOld, nil},
		{"new url, rotating signer", during, fromNew, nil},
		{"old url, old key retired", after, fromOld, signedurl.ErrUnknownKey},
		{"new url, signer without new key", before, fromNew, signedurl.ErrUnknownKey},
	}
	for _, tt := range tests {
		if _, err := tt.s.Verify(tt.q, param.Artifact); !errors.Is(err, tt.wantErr) {
			t.Errorf("%s: error = %v, want %v", tt.name, err, tt.wantErr)
		}
	}
	// The same id with another secret is a different key: URLs fail.
	impostor := newSigner(t, c, signedurl.Key{ID: "k1", Secret: bytes.Repeat([]byte{9}, 32)})
	if _, err := impostor.Verify(fromOld, param.Artifact); !errors.Is(err, signedurl.ErrBadSignature) {
		t.Errorf("other secret under same id: error = %v, want ErrBadSignature", err)
	}
}

func TestNewSignerValidatesKeys(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	tests := []struct {
		name     string
		current  signedurl.Key
		accepted []signedurl.Key
		ok       bool
	}{
		{"one key", key1, nil, true},
		{"same key twice", key1, []signedurl.Key{key1, key2}, true},
		{"short secret", signedurl.Key{ID: "k", Secret: make([]byte, 31)}, nil, false},
		{"short accepted secret", key1, []signedurl.Key{{ID: "old", Secret: []byte("x")}}, false},
		{"empty id", signedurl.Key{Secret: key1.Secret}, nil, false},
		{"id with space", signedurl.Key{ID: "k 1", Secret: key1.Secret}, nil, false},
		{"id reused with other secret", key1, []signedurl.Key{{ID: "k1", Secret: key2.Secret}}, false},
	}
	for _, tt := range tests {
		_, err := signedurl.NewSigner(c, tt.current, tt.accepted...)
		if (err == nil) != tt.ok {
			t.Errorf("%s: NewSigner error = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
}

func TestSignerCopiesSecrets(t *testing.T) {
	t.Parallel()
	c := clock.NewFake(t0)
	k := signedurl.Key{ID: "k", Secret: bytes.Repeat([]byte{5}, 32)}
	s := newSigner(t, c, k)
	q := sign(t, s, param, t0.Add(time.Hour))
	k.Secret[0] ^= 0xff // the caller reuses its buffer
	if _, err := s.Verify(q, param.Artifact); err != nil {
		t.Fatalf("Verify after caller changed its secret buffer: %v", err)
	}
}

func TestSignRejectsBadInput(t *testing.T) {
	t.Parallel()
	s := newSigner(t, clock.NewFake(t0), key1)
	tests := []struct {
		name string
		p    signedurl.Params
		exp  time.Time
	}{
		{"no tenant", signedurl.Params{Device: "d", Artifact: "a"}, t0},
		{"no device", signedurl.Params{Tenant: "t", Artifact: "a"}, t0},
		{"no artifact", signedurl.Params{Tenant: "t", Device: "d"}, t0},
		{"long device", signedurl.Params{Tenant: "t", Device: strings.Repeat("d", signedurl.MaxDeviceLen+1), Artifact: "a"}, t0},
		{"expiry at epoch", param, time.Unix(0, 0)},
	}
	for _, tt := range tests {
		if q, err := s.Sign(tt.p, tt.exp); err == nil {
			t.Errorf("%s: Sign = %q, want error", tt.name, q)
		}
	}
}

func TestGenerateKey(t *testing.T) {
	t.Parallel()
	a, err := signedurl.GenerateKey("2025-06")
	if err != nil {
		t.Fatal(err)
	}
	b, err := signedurl.GenerateKey("2025-07")
	if err != nil {
		t.Fatal(err)
	}
	if len(a.Secret) < signedurl.MinSecretLen || bytes.Equal(a.Secret, b.Secret) {
		t.Fatalf("generated secrets are short or equal: %x %x", a.Secret, b.Secret)
	}
	if _, err := signedurl.NewSigner(clock.NewFake(t0), a, b); err != nil {
		t.Fatal(err)
	}
	if _, err := signedurl.GenerateKey("bad id"); err == nil {
		t.Fatal("GenerateKey accepted an id with a space")
	}
}
