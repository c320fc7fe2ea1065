package deviceapi_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"net/http"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/store"
)

var idle = wire.CheckInRequest{Version: "1.0.0", State: "idle"}

func TestTokenExpiryAndRenewal(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	d.checkInOK("", idle)
	old := d.token

	e.clock.Advance(tokenTTL)
	r := d.checkIn("", idle)
	if r.status != http.StatusUnauthorized || r.errCode() != "token_expired" {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
	if r := d.renew(); r.status != http.StatusOK || d.token == old {
		t.Fatalf("renew: %d %s", r.status, r.body)
	}
	d.checkInOK("", idle)
}

func TestEpochRevocationStopsOldTokensAtOnce(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		revoke func(e *env, d *device)
		// after revocation: what the old token gets, and what renewal gets
		checkIn, renew int
	}{
		{"decommission", func(e *env, d *device) {
			if _, err := e.store.DecommissionDevice(e.ctx, store.DefaultTenant, d.devID, admin, e.clock.Now()); err != nil {
				e.t.Fatal(err)
			}
		}, http.StatusUnauthorized, http.StatusForbidden},
		{"revoke key", func(e *env, d *device) {
			creds, err := e.store.ListCredentials(e.ctx, store.DefaultTenant, d.devID)
			if err != nil || len(creds) != 1 {
				e.t.Fatalf("credentials %+v, err %v", creds, err)
			}
			if err := e.store.RevokeCredential(e.ctx, store.DefaultTenant, creds[0].ID, admin, e.clock.Now()); err != nil {
				e.t.Fatal(err)
			}
		}, http.StatusUnauthorized, http.StatusForbidden},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			e := setup(t, options{})
			d := e.enrollAccepted("SN-1")
			d.checkInOK("", idle)
			tt.revoke(e, d)
			r := d.checkIn("", idle)
			if r.status != tt.checkIn || r.errCode() != "token_revoked" {
				t.Fatalf("check-in with the old token: %d %s", r.status, r.body)
			}
			if r := d.report(wire.Report{AssignmentID: "a1", Seq: 1, State: "downloading"}); r.status != http.StatusUnauthorized {
				t.Fatalf("report with the old token: %d %s", r.status, r.body)
			}
			if r := d.renew(); r.status != tt.renew {
				t.Fatalf("renew after revocation: %d %s", r.status, r.body)
			}
		})
	}
}

func TestRenewRefusesForgeriesAndReplays(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.enrollAccepted("SN-1")
	_, otherKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}

	body, sig, err := identity.SignRenewal(d.key, d.devID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	forgedBody, forgedSig, err := identity.SignRenewal(otherKey, d.devID, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	unknownBody, unknownSig, err := identity.SignRenewal(d.key, "0123456789abcdef0123456789abcdef", e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	staleBody, staleSig, err := identity.SignRenewal(d.key, d.devID, e.clock.Now().Add(-time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	hdr := func(s string) http.Header { return http.Header{identity.SignatureHeader: {s}} }
	tests := []struct {
		name   string
		body   []byte
		header http.Header
		status int
		code   string
	}{
		{"genuine", body, hdr(sig), http.StatusOK, ""},
		{"replayed", body, hdr(sig), http.StatusUnauthorized, "replayed"},
		{"signed by another key", forgedBody, hdr(forgedSig), http.StatusUnauthorized, "bad_signature"},
		{"signature of another body", forgedBody, hdr(sig), http.StatusUnauthorized, "bad_signature"},
		{"no signature", forgedBody, nil, http.StatusUnauthorized, "missing_signature"},
		{"unknown device", unknownBody, hdr(unknownSig), http.StatusNotFound, "unknown_device"},
		{"stale", staleBody, hdr(staleSig), http.StatusBadRequest, "stale_request"},
		{"unknown field", []byte(`{"device_id":"x","nonce":"AAAAAAAAAAAAAAAAAAAAAA","timestamp":"2025-06-02T09:00:00Z","extra":1}`), hdr(sig), http.StatusBadRequest, "invalid_request"},
	}
	for _, tt := range tests { // in order: "replayed" follows "genuine"
		r := e.do("POST", wire.PathToken, tt.header, tt.body)
		if r.status != tt.status || (tt.code != "" && r.errCode() != tt.code) {
			t.Errorf("%s: %d %s, want %d %s", tt.name, r.status, r.body, tt.status, tt.code)
		}
	}
}

func TestEnrollmentOutcomes(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limits: deviceapi.Limits{MaxPending: 2}})

	// A preauthorized key is accepted on first contact.
	pre := e.newDevice("SN-PRE")
	pk, err := identity.NewPublicKey(pre.key.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.PreauthorizeKey(e.ctx, store.Credential{TenantID: store.DefaultTenant, Kind: store.CredPublicKey,
		Algorithm: pk.Algorithm, Fingerprint: pk.Fingerprint, Material: pk.PEM, PreauthSerial: "SN-PRE"}, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := pre.enroll(); r.status != http.StatusOK || pre.token == "" {
		t.Fatalf("preauthorized enroll: %d %s", r.status, r.body)
	}
	pre.checkInOK("", idle)

	// Rejected and decommissioned devices are refused.
	rej := e.newDevice("SN-REJ")
	rej.enroll()
	if _, err := e.store.RejectDevice(e.ctx, store.DefaultTenant, rej.devID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := rej.enroll(); r.status != http.StatusForbidden || r.errCode() != "device_rejected" {
		t.Fatalf("rejected enroll: %d %s", r.status, r.body)
	}
	if _, err := e.store.DecommissionDevice(e.ctx, store.DefaultTenant, pre.devID, admin, e.clock.Now()); err != nil {
		t.Fatal(err)
	}
	if r := pre.enroll(); r.status != http.StatusForbidden || r.errCode() != "device_decommissioned" {
		t.Fatalf("decommissioned enroll: %d %s", r.status, r.body)
	}

	// The pending cap (rej counts only while pending: now one pending slot is used).
	p1 := e.newDevice("SN-P1")
	if r := p1.enroll(); r.status != http.StatusAccepted {
		t.Fatalf("pending 1: %d %s", r.status, r.body)
	}
	p2 := e.newDevice("SN-P2")
	if r := p2.enroll(); r.status != http.StatusAccepted {
		t.Fatalf("pending 2: %d %s", r.status, r.body)
	}
	p3 := e.newDevice("SN-P3")
	r := p3.enroll()
	if r.status != http.StatusTooManyRequests || r.header.Get("Retry-After") == "" {
		t.Fatalf("over the pending cap: %d %s", r.status, r.body)
	}

	// The same serial with another key is a conflict.
	clash := e.newDevice("SN-P1")
	if r := clash.enroll(); r.status != http.StatusConflict {
		t.Fatalf("serial with another key: %d %s", r.status, r.body)
	}
	// A pending device cannot renew or check in.
	if r := p1.renew(); r.status != http.StatusForbidden || r.errCode() != "device_pending" {
		t.Fatalf("pending renew: %d %s", r.status, r.body)
	}
}

func TestEnrollmentRateLimitPerAddress(t *testing.T) {
	t.Parallel()
	e := setup(t, options{limits: deviceapi.Limits{EnrollPerMinute: 2, EnrollBurst: 3}})
	for i := range 3 {
		if r := e.newDevice("SN-" + string(rune('A'+i))).enroll(); r.status != http.StatusAccepted {
			t.Fatalf("enroll %d within burst: %d %s", i, r.status, r.body)
		}
	}
	before := e.snapshot()
	r := e.newDevice("SN-X").enroll()
	if r.status != http.StatusTooManyRequests || r.errCode() != "rate_limited" || r.header.Get("Retry-After") != "30" {
		t.Fatalf("over the rate: %d %s Retry-After %q", r.status, r.body, r.header.Get("Retry-After"))
	}
	if e.snapshot() != before {
		t.Fatal("a rate-limited enrollment changed the database")
	}
	e.clock.Advance(30 * time.Second)
	if r := e.newDevice("SN-Y").enroll(); r.status != http.StatusAccepted {
		t.Fatalf("after refill: %d %s", r.status, r.body)
	}
	if got := metricValue(t, e, `updraft_device_enrollments_total{result="rate_limited"}`); got != 1 {
		t.Fatalf("rate_limited enrollments = %v", got)
	}
}

func TestEnrollReplayIsRefused(t *testing.T) {
	t.Parallel()
	e := setup(t, options{})
	d := e.newDevice("SN-1")
	body, sig, err := identity.SignEnrollment(d.key, d.id, e.clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{identity.SignatureHeader: {sig}}
	if r := e.do("POST", wire.PathEnroll, h, body); r.status != http.StatusAccepted {
		t.Fatalf("enroll: %d %s", r.status, r.body)
	}
	if r := e.do("POST", wire.PathEnroll, h, body); r.status != http.StatusUnauthorized || r.errCode() != "replayed" {
		t.Fatalf("replayed enroll: %d %s", r.status, r.body)
	}
}
