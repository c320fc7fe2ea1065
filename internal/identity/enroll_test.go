package identity

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	// Time zone checks must not depend on the host's tz database.
	_ "time/tzdata"
)

func testNow() time.Time { return time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC) }

func validIdentity() Identity {
	return Identity{
		Serial:     "GW200-000123",
		DeviceType: "gw-200",
		HWRev:      "B",
		Region:     "eu-west",
		TimeZone:   "Europe/Berlin",
		Attributes: map[string]string{"mac": "02:00:00:00:00:01", "board.rev": "1.2"},
	}
}

func newEd25519(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	_, k, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// enrollmentMap is a valid enrollment request as a generic map, for tests
// that break one field at a time.
func enrollmentMap(t *testing.T, s crypto.Signer) map[string]any {
	t.Helper()
	pk, err := NewPublicKey(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	return map[string]any{
		"identity": map[string]any{
			"serial":      "GW200-000123",
			"device_type": "gw-200",
			"hw_rev":      "B",
			"region":      "eu-west",
			"time_zone":   "Europe/Berlin",
			"attributes":  map[string]any{"mac": "02:00:00:00:00:01"},
		},
		"public_key": pk.PEM,
		"nonce":      "k3JqL0x9QmZ2c1R4dVdYeQ",
		"timestamp":  testNow().Format(time.RFC3339),
	}
}

func marshalSigned(t *testing.T, s crypto.Signer, v any) ([]byte, string) {
	t.Helper()
	body, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return body, mustSign(t, s, body)
}

func TestSignAndParseEnrollment(t *testing.T) {
	t.Parallel()
	for _, sc := range acceptedSigners(t) {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			id := validIdentity()
			body, sig, err := SignEnrollment(sc.signer, id, testNow())
			if err != nil {
				t.Fatalf("SignEnrollment: %v", err)
			}
			e, err := ParseEnrollment(body, sig, testNow().Add(time.Minute), time.Minute)
			if err != nil {
				t.Fatalf("ParseEnrollment: %v", err)
			}
			if !reflect.DeepEqual(e.Identity, id) {
				t.Errorf("identity %+v, want %+v", e.Identity, id)
			}
			if want := fingerprintOf(t, sc.signer.Public()); e.PublicKey.Fingerprint != want || e.PublicKey.Algorithm != sc.alg {
				t.Errorf("key %s/%s, want %s/%s", e.PublicKey.Algorithm, e.PublicKey.Fingerprint, sc.alg, want)
			}
			if !e.Timestamp.Equal(testNow()) || len(e.Nonce) < MinNonceLen {
				t.Errorf("timestamp %v nonce %q", e.Timestamp, e.Nonce)
			}
		})
	}
}

func TestSignEnrollmentFreshNonce(t *testing.T) {
	t.Parallel()
	k := newEd25519(t)
	a, _, err := SignEnrollment(k, validIdentity(), testNow())
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := SignEnrollment(k, validIdentity(), testNow())
	if err != nil {
		t.Fatal(err)
	}
	ea, errA := ParseEnrollment(a, mustSign(t, k, a), testNow(), 0)
	eb, errB := ParseEnrollment(b, mustSign(t, k, b), testNow(), 0)
	if errA != nil || errB != nil {
		t.Fatal(errA, errB)
	}
	if ea.Nonce == eb.Nonce {
		t.Errorf("two enrollments share nonce %q", ea.Nonce)
	}
}

func TestSignEnrollmentRefusesInvalidIdentity(t *testing.T) {
	t.Parallel()
	id := validIdentity()
	id.Region = "eu west"
	var ve *ValidationError
	if _, _, err := SignEnrollment(newEd25519(t), id, testNow()); !errors.As(err, &ve) || ve.Field != "identity.region" {
		t.Errorf("got %v, want a validation error for identity.region", err)
	}
}

func TestParseEnrollmentValidation(t *testing.T) {
	t.Parallel()
	signer := newEd25519(t)
	rsa1024PEM := string(pkixPEM(t, genRSA(t, 1024).Public()))
	manyAttrs := map[string]any{}
	for i := range MaxAttributes + 1 {
		manyAttrs[fmt.Sprintf("k%d", i)] = "v"
	}
	setID := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m["identity"].(map[string]any)[k] = v }
	}
	delID := func(k string) func(m map[string]any) {
		return func(m map[string]any) { delete(m["identity"].(map[string]any), k) }
	}
	set := func(k string, v any) func(m map[string]any) {
		return func(m map[string]any) { m[k] = v }
	}
	del := func(k string) func(m map[string]any) {
		return func(m map[string]any) { delete(m, k) }
	}

	cases := []struct {
		name    string
		mutate  func(map[string]any)
		field   string // "" means the request is valid
		wantErr error
	}{
		{"valid", func(map[string]any) {}, "", nil},
		{"serial max length", setID("serial", strings.Repeat("S", MaxSerialLen)), "", nil},
		{"serial inner space", setID("serial", "SN 0001"), "", nil},
		{"no time zone", delID("time_zone"), "", nil},
		{"no attributes", delID("attributes"), "", nil},
		{"tz UTC", setID("time_zone", "UTC"), "", nil},
		{"tz deep", setID("time_zone", "America/Argentina/Buenos_Aires"), "", nil},
		{"tz Etc offset", setID("time_zone", "Etc/GMT+5"), "", nil},
		{"hex nonce", set("nonce", "0123456789abcdef0123456789abcdef"), "", nil},
		{"fractional timestamp", set("timestamp", testNow().Add(500*time.Millisecond).Format(time.RFC3339Nano)), "", nil},
		{"offset timestamp", set("timestamp", testNow().In(time.FixedZone("", 2*3600)).Format(time.RFC3339)), "", nil},

		{"serial missing", delID("serial"), "identity.serial", nil},
		{"serial too long", setID("serial", strings.Repeat("S", MaxSerialLen+1)), "identity.serial", nil},
		{"serial newline", setID("serial", "SN\n1"), "identity.serial", nil},
		{"serial non-ascii", setID("serial", "SNé1"), "identity.serial", nil},
		{"serial leading space", setID("serial", " SN1"), "identity.serial", nil},
		{"serial number type", setID("serial", 12), "body", nil},
		{"device_type missing", delID("device_type"), "identity.device_type", nil},
		{"device_type space", setID("device_type", "gw 200"), "identity.device_type", nil},
		{"device_type too long", setID("device_type", strings.Repeat("g", MaxNameLen+1)), "identity.device_type", nil},
		{"hw_rev missing", delID("hw_rev"), "identity.hw_rev", nil},
		{"hw_rev quote", setID("hw_rev", `B"`), "identity.hw_rev", nil},
		{"region missing", delID("region"), "identity.region", nil},
		{"region slash", setID("region", "eu/west"), "identity.region", nil},
		{"tz unknown", setID("time_zone", "Mars/Olympus_Mons"), "identity.time_zone", nil},
		{"tz Local", setID("time_zone", "Local"), "identity.time_zone", nil},
		{"tz path", setID("time_zone", "../../etc/passwd"), "identity.time_zone", nil},
		{"tz absolute", setID("time_zone", "/etc/localtime"), "identity.time_zone", nil},
		{"tz too long", setID("time_zone", strings.Repeat("A", MaxTimeZoneLen+1)), "identity.time_zone", nil},
		{"attribute key", setID("attributes", map[string]any{"a b": "x"}), "identity.attributes", nil},
		{"attribute empty key", setID("attributes", map[string]any{"": "x"}), "identity.attributes", nil},
		{"attribute control char", setID("attributes", map[string]any{"a": "x\x01y"}), "identity.attributes.a", nil},
		{"attribute value too long", setID("attributes", map[string]any{"a": strings.Repeat("v", MaxAttributeValueLen+1)}), "identity.attributes.a", nil},
		{"attribute number", setID("attributes", map[string]any{"a": 1}), "body", nil},
		{"too many attributes", setID("attributes", manyAttrs), "identity.attributes", nil},
		{"unknown identity field", setID("mac", "x"), "body", nil},
		{"public key missing", del("public_key"), "public_key", nil},
		{"public key rsa-1024", set("public_key", rsa1024PEM), "public_key", ErrUnsupportedKey},
		{"public key garbage", set("public_key", "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n"), "public_key", ErrMalformedKey},
		{"nonce missing", del("nonce"), "nonce", nil},
		{"nonce short", set("nonce", "abc"), "nonce", nil},
		{"nonce bad chars", set("nonce", "abcdefghijklmnop!"), "nonce", nil},
		{"nonce too long", set("nonce", strings.Repeat("n", MaxNonceLen+1)), "nonce", nil},
		{"timestamp missing", del("timestamp"), "timestamp", nil},
		{"timestamp not rfc3339", set("timestamp", "2025-06-01 12:00:00"), "timestamp", nil},
		{"timestamp number", set("timestamp", 1748779200), "body", nil},
		{"unknown field", set("tenant_token", "x"), "body", nil},
		{"identity wrong type", set("identity", "x"), "body", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			m := enrollmentMap(t, signer)
			tc.mutate(m)
			body, sig := marshalSigned(t, signer, m)
			_, err := ParseEnrollment(body, sig, testNow(), time.Minute)
			if tc.field == "" {
				if err != nil {
					t.Fatalf("refused valid request: %v", err)
				}
				return
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("got %v, want *ValidationError", err)
			}
			if ve.Field != tc.field {
				t.Errorf("field %q (%v), want %q", ve.Field, err, tc.field)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("error %v is not %v", err, tc.wantErr)
			}
			if strings.Contains(err.Error(), "identity.Identity") || strings.Contains(err.Error(), "map[string]string") {
				t.Errorf("error leaks Go type names: %v", err)
			}
		})
	}
}

func TestParseEnrollmentMalformedBody(t *testing.T) {
	t.Parallel()
	signer := newEd25519(t)
	good, _ := marshalSigned(t, signer, enrollmentMap(t, signer))
	cases := map[string][]byte{
		"empty":          nil,
		"not json":       []byte("serial=1"),
		"array":          []byte("[]"),
		"truncated":      good[:len(good)-1],
		"trailing data":  append(append([]byte{}, good...), []byte(` {}`)...),
		"trailing comma": append(append([]byte{}, good...), ','),
		"too large":      append(append([]byte{}, good...), make([]byte, MaxRequestBytes)...),
	}
	for name, body := range cases {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnrollment(body, mustSign(t, signer, body), testNow(), time.Minute)
			var ve *ValidationError
			if !errors.As(err, &ve) || ve.Field != "body" {
				t.Errorf("got %v, want a validation error for body", err)
			}
		})
	}
}

func TestParseEnrollmentSignature(t *testing.T) {
	t.Parallel()
	signer, other := newEd25519(t), newEd25519(t)
	body, sig := marshalSigned(t, signer, enrollmentMap(t, signer))
	_, otherSig := marshalSigned(t, signer, func() map[string]any {
		m := enrollmentMap(t, signer)
		m["nonce"] = "ZZZZZZZZZZZZZZZZZZZZ"
		return m
	}())
	var reindented []byte
	{
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			t.Fatal(err)
		}
		var err error
		if reindented, err = json.MarshalIndent(m, "", " "); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		name string
		body []byte
		sig  string
		want error
	}{
		{"valid", body, sig, nil},
		{"missing header", body, "", ErrMissingSignature},
		{"not base64", body, "%%%", ErrBadSignature},
		{"signed by another key", body, mustSign(t, other, body), ErrBadSignature},
		{"signature of another request", body, otherSig, ErrBadSignature},
		{"same json, other bytes", reindented, sig, ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnrollment(tc.body, tc.sig, testNow(), time.Minute)
			if tc.want == nil {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				return
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestParseEnrollmentSkew(t *testing.T) {
	t.Parallel()
	signer := newEd25519(t)
	body, sig := marshalSigned(t, signer, enrollmentMap(t, signer))
	cases := []struct {
		name    string
		now     time.Time
		maxSkew time.Duration
		stale   bool
	}{
		{"same time", testNow(), time.Minute, false},
		{"device behind by the limit", testNow().Add(time.Minute), time.Minute, false},
		{"device ahead by the limit", testNow().Add(-time.Minute), time.Minute, false},
		{"device behind beyond the limit", testNow().Add(time.Minute + time.Second), time.Minute, true},
		{"device ahead beyond the limit", testNow().Add(-time.Minute - time.Second), time.Minute, true},
		{"default window inside", testNow().Add(DefaultMaxSkew), 0, false},
		{"default window outside", testNow().Add(DefaultMaxSkew + time.Second), -1, true},
		{"device clock at 1970", time.Unix(0, 0), time.Minute, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := ParseEnrollment(body, sig, tc.now, tc.maxSkew)
			if tc.stale != errors.Is(err, ErrStaleRequest) {
				t.Errorf("got %v, stale=%v", err, tc.stale)
			}
			if !tc.stale && err != nil {
				t.Errorf("refused: %v", err)
			}
		})
	}
}

// TestSignedRequestsAreNotInterchangeable makes sure a signed renewal can
// never be replayed as an enrollment and the other way round.
func TestSignedRequestsAreNotInterchangeable(t *testing.T) {
	t.Parallel()
	k := newEd25519(t)
	eb, _, err := SignEnrollment(k, validIdentity(), testNow())
	if err != nil {
		t.Fatal(err)
	}
	rb, rs, err := SignRenewal(k, "0123abcd", testNow())
	if err != nil {
		t.Fatal(err)
	}
	var ve *ValidationError
	if _, err := ParseEnrollment(rb, rs, testNow(), 0); !errors.As(err, &ve) {
		t.Errorf("renewal parsed as enrollment: %v", err)
	}
	if _, err := DecodeRenewal(eb); !errors.As(err, &ve) {
		t.Errorf("enrollment decoded as renewal: %v", err)
	}
}

func TestValidateReportedFields(t *testing.T) {
	t.Parallel()
	tz := map[string]bool{
		"Europe/Berlin": true, "UTC": true, "Asia/Kolkata": true,
		"": false, "Local": false, "Europe/Atlantis": false, "/etc/localtime": false, "Europe//Berlin": false, "Europe/Berlin ": false,
	}
	for name, ok := range tz {
		err := ValidateTimeZone(name)
		var ve *ValidationError
		if ok != (err == nil) || (!ok && (!errors.As(err, &ve) || ve.Field != "time_zone")) {
			t.Errorf("ValidateTimeZone(%q) = %v, want ok=%v", name, err, ok)
		}
	}
	attrs := []struct {
		a     map[string]string
		field string
	}{
		{nil, ""},
		{map[string]string{"fw.build": "2025-06-01 #42"}, ""},
		{map[string]string{"bad key": "x"}, "attributes"},
		{map[string]string{"k": "line\nbreak"}, "attributes.k"},
	}
	for _, tc := range attrs {
		err := ValidateAttributes(tc.a)
		var ve *ValidationError
		if (tc.field == "" && err != nil) || (tc.field != "" && (!errors.As(err, &ve) || ve.Field != tc.field)) {
			t.Errorf("ValidateAttributes(%v) = %v, want field %q", tc.a, err, tc.field)
		}
	}
}
