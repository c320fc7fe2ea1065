package identity

import (
	"crypto"
	"encoding/json"
	"fmt"
	"time"
)

// RenewRequest is the JSON body a device sends to get a new device token.
// Like an enrollment it carries the device's signature over the exact body
// bytes in SignatureHeader, made with the key the server has on record.
type RenewRequest struct {
	// DeviceID is the id the server assigned: 1 to 64 characters of
	// [A-Za-z0-9._-].
	DeviceID string `json:"device_id"`
	Nonce    string `json:"nonce"`
	// Timestamp is the device's RFC 3339 time of signing.
	Timestamp string `json:"timestamp"`
}

// Renewal is a verified renewal request.
type Renewal struct {
	DeviceID  string
	Nonce     string
	Timestamp time.Time
}

// PendingRenewal is a renewal request that decoded and validated but whose
// signature has not been checked yet. Its DeviceID tells the caller which
// stored key to verify it with; nothing else about it can be trusted.
type PendingRenewal struct {
	DeviceID  string
	nonce     string
	timestamp time.Time
	body      []byte
}

// DecodeRenewal strictly decodes and validates a renewal body without
// checking its signature, so the caller can look up the device's stored key
// and call Verify. body must not be modified afterwards.
func DecodeRenewal(body []byte) (*PendingRenewal, error) {
	var req RenewRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if req.DeviceID == "" {
		return nil, invalid("device_id", "required")
	}
	if !isName(req.DeviceID, MaxDeviceIDLen) {
		return nil, invalid("device_id", "must be 1 to %d characters of A-Z a-z 0-9 . _ -", MaxDeviceIDLen)
	}
	if err := checkNonce("nonce", req.Nonce); err != nil {
		return nil, err
	}
	ts, err := parseTimestamp("timestamp", req.Timestamp)
	if err != nil {
		return nil, err
	}
	return &PendingRenewal{DeviceID: req.DeviceID, nonce: req.Nonce, timestamp: ts, body: body}, nil
}

// Verify checks the time window and the signature against key, the
// device's stored public key. now is the server's time and maxSkew the
// replay window (DefaultMaxSkew if not positive). Errors are
// ErrStaleRequest, ErrMissingSignature or ErrBadSignature, possibly wrapped.
// As with enrollment, refusing replays inside the window needs the caller
// to remember nonces.
func (p *PendingRenewal) Verify(sigHeader string, key *PublicKey, now time.Time, maxSkew time.Duration) (*Renewal, error) {
	if err := checkSkew(p.timestamp, now, maxSkew); err != nil {
		return nil, err
	}
	sig, err := DecodeSignature(sigHeader)
	if err != nil {
		return nil, err
	}
	if err := key.Verify(p.body, sig); err != nil {
		return nil, err
	}
	return &Renewal{DeviceID: p.DeviceID, Nonce: p.nonce, Timestamp: p.timestamp}, nil
}

// ParseRenewal decodes a renewal and verifies it against key in one step,
// for callers that already know which device is renewing (for example from
// an expired token or the request path). It fails with a *ValidationError
// if the body names a device other than wantDeviceID.
func ParseRenewal(body []byte, sigHeader, wantDeviceID string, key *PublicKey, now time.Time, maxSkew time.Duration) (*Renewal, error) {
	p, err := DecodeRenewal(body)
	if err != nil {
		return nil, err
	}
	if p.DeviceID != wantDeviceID {
		return nil, invalid("device_id", "does not match the device being renewed")
	}
	return p.Verify(sigHeader, key, now, maxSkew)
}

// SignRenewal builds and signs a renewal request for deviceID, stamped with
// now and a fresh nonce. It returns the body and the SignatureHeader value.
func SignRenewal(signer crypto.Signer, deviceID string, now time.Time) (body []byte, signature string, err error) {
	if !isName(deviceID, MaxDeviceIDLen) {
		return nil, "", fmt.Errorf("sign renewal: device id %q is not 1 to %d characters of A-Z a-z 0-9 . _ -", deviceID, MaxDeviceIDLen)
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, "", fmt.Errorf("sign renewal: %w", err)
	}
	body, err = json.Marshal(RenewRequest{DeviceID: deviceID, Nonce: nonce, Timestamp: now.UTC().Format(time.RFC3339)})
	if err != nil {
		return nil, "", fmt.Errorf("sign renewal: %w", err)
	}
	signature, err = SignBody(signer, body)
	if err != nil {
		return nil, "", fmt.Errorf("sign renewal: %w", err)
	}
	return body, signature, nil
}
