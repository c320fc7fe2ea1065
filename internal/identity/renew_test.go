package identity

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestSignAndParseRenewal(t *testing.T) {
	t.Parallel()
	for _, sc := range acceptedSigners(t) {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			pk, err := NewPublicKey(sc.signer.Public())
			if err != nil {
				t.Fatal(err)
			}
			body, sig, err := SignRenewal(sc.signer, "9f86d081884c7d659a2feaa0c55ad015", testNow())
			if err != nil {
				t.Fatal(err)
			}
			p, err := DecodeRenewal(body)
			if err != nil {
				t.Fatalf("DecodeRenewal: %v", err)
			}
			if p.DeviceID != "9f86d081884c7d659a2feaa0c55ad015" {
				t.Errorf("device id %q", p.DeviceID)
			}
			r, err := p.Verify(sig, pk, testNow().Add(30*time.Second), time.Minute)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if r.DeviceID != p.DeviceID || !r.Timestamp.Equal(testNow()) || len(r.Nonce) < MinNonceLen {
				t.Errorf("renewal %+v", r)
			}
			if _, err := ParseRenewal(body, sig, p.DeviceID, pk, testNow(), time.Minute); err != nil {
				t.Errorf("ParseRenewal: %v", err)
			}
		})
	}
}

func TestRenewalRefusals(t *testing.T) {
	t.Parallel()
	k, other := newEd25519(t), newEd25519(t)
	pk, err := NewPublicKey(k.Public())
	if err != nil {
		t.Fatal(err)
	}
	const dev = "dev-1"
	body, sig, err := SignRenewal(k, dev, testNow())
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		body  string
		sig   string
		want  string
		now   time.Time
		field string
		err   error
	}{
		{name: "wrong device", body: string(body), sig: sig, want: "dev-2", field: "device_id"},
		{name: "other key", body: string(body), sig: mustSign(t, other, body), want: dev, err: ErrBadSignature},
		{name: "no signature", body: string(body), want: dev, err: ErrMissingSignature},
		{name: "stale", body: string(body), sig: sig, want: dev, now: testNow().Add(time.Hour), err: ErrStaleRequest},
		{name: "device id missing", body: `{"nonce":"0123456789abcdef","timestamp":"2025-06-01T12:00:00Z"}`, want: dev, field: "device_id"},
		{name: "device id bad chars", body: `{"device_id":"a/b","nonce":"0123456789abcdef","timestamp":"2025-06-01T12:00:00Z"}`, want: "a/b", field: "device_id"},
		{name: "device id too long", body: `{"device_id":"` + strings.Repeat("d", MaxDeviceIDLen+1) + `","nonce":"0123456789abcdef","timestamp":"2025-06-01T12:00:00Z"}`, want: dev, field: "device_id"},
		{name: "nonce short", body: `{"device_id":"dev-1","nonce":"x","timestamp":"2025-06-01T12:00:00Z"}`, want: dev, field: "nonce"},
		{name: "timestamp bad", body: `{"device_id":"dev-1","nonce":"0123456789abcdef","timestamp":"now"}`, want: dev, field: "timestamp"},
		{name: "unknown field", body: `{"device_id":"dev-1","nonce":"0123456789abcdef","timestamp":"2025-06-01T12:00:00Z","epoch":3}`, want: dev, field: "body"},
		{name: "not json", body: `device_id=dev-1`, want: dev, field: "body"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			now := tc.now
			if now.IsZero() {
				now = testNow()
			}
			sig := tc.sig
			if sig == "" && tc.err == nil {
				sig = mustSign(t, k, []byte(tc.body))
			}
			_, err := ParseRenewal([]byte(tc.body), sig, tc.want, pk, now, time.Minute)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.err != nil && !errors.Is(err, tc.err) {
				t.Errorf("got %v, want %v", err, tc.err)
			}
			if tc.field != "" {
				var ve *ValidationError
				if !errors.As(err, &ve) || ve.Field != tc.field {
					t.Errorf("got %v, want a validation error for %s", err, tc.field)
				}
			}
		})
	}
}

func TestSignRenewalRefusesBadDeviceID(t *testing.T) {
	t.Parallel()
	for _, id := range []string{"", "a b", strings.Repeat("x", MaxDeviceIDLen+1)} {
		if _, _, err := SignRenewal(newEd25519(t), id, testNow()); err == nil {
			t.Errorf("SignRenewal(%q) succeeded", id)
		}
	}
}
