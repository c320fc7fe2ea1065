package identity

import (
	"crypto"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Identity is what a device says about itself when it enrolls.
type Identity struct {
	// Serial is 1 to 128 characters of printable ASCII, with no leading or
	// trailing space.
	Serial string `json:"serial"`
	// DeviceType, HWRev and Region are 1 to 64 characters of
	// [A-Za-z0-9._-].
	DeviceType string `json:"device_type"`
	HWRev      string `json:"hw_rev"`
	Region     string `json:"region"`
	// TimeZone is an optional IANA zone name such as "Europe/Berlin".
	TimeZone string `json:"time_zone,omitempty"`
	// Attributes are optional free-form key/values: at most 64, keys as
	// for DeviceType, values up to 1024 bytes of UTF-8 without control
	// characters.
	Attributes map[string]string `json:"attributes,omitempty"`
}

// Validate checks every field; the error is a *ValidationError whose
// Field is prefixed with "identity.".
func (id Identity) Validate() error {
	if err := checkSerial("identity.serial", id.Serial); err != nil {
		return err
	}
	if err := checkName("identity.device_type", id.DeviceType); err != nil {
		return err
	}
	if err := checkName("identity.hw_rev", id.HWRev); err != nil {
		return err
	}
	if err := checkName("identity.region", id.Region); err != nil {
		return err
	}
	if id.TimeZone != "" {
		if err := checkTimeZone("identity.time_zone", id.TimeZone); err != nil {
			return err
		}
	}
	return checkAttributes("identity.attributes", id.Attributes)
}

// EnrollmentRequest is the JSON body of POST /api/device/v1/enroll. The
// request carries the device's signature over the exact body bytes in
// SignatureHeader, made with the private key matching PublicKey.
type EnrollmentRequest struct {
	Identity Identity `json:"identity"`
	// PublicKey is a PEM public key; see ParsePublicKeyPEM.
	PublicKey string `json:"public_key"`
	// Nonce is 16 to 128 base64 or hex characters, fresh per request.
	Nonce string `json:"nonce"`
	// Timestamp is the device's RFC 3339 time of signing.
	Timestamp string `json:"timestamp"`
}

// Enrollment is a verified enrollment request.
type Enrollment struct {
	Identity  Identity
	PublicKey *PublicKey
	Nonce     string
	Timestamp time.Time
}

// ParseEnrollment decodes and checks an enrollment request body and its
// signature header. now is the server's time and maxSkew the replay window
// (DefaultMaxSkew if not positive). It checks, in order: strict JSON (no
// unknown fields, nothing after the object), every field, the public key,
// the timestamp window and the signature with the enclosed key.
//
// Errors are a *ValidationError (unsupported keys wrap ErrUnsupportedKey or
// ErrMalformedKey), ErrStaleRequest, ErrMissingSignature or ErrBadSignature,
// possibly wrapped; test them with errors.Is and errors.As.
//
// The request proves possession of the key, not freshness beyond the
// window: a caller that must refuse replays within the window has to
// remember nonces for maxSkew in each direction.
func ParseEnrollment(body []byte, sigHeader string, now time.Time, maxSkew time.Duration) (*Enrollment, error) {
	var req EnrollmentRequest
	if err := decodeStrict(body, &req); err != nil {
		return nil, err
	}
	if err := req.Identity.Validate(); err != nil {
		return nil, err
	}
	if req.PublicKey == "" {
		return nil, invalid("public_key", "required")
	}
	pk, err := ParsePublicKeyPEM([]byte(req.PublicKey))
	if err != nil {
		sentinel := ErrMalformedKey
		if errors.Is(err, ErrUnsupportedKey) {
			sentinel = ErrUnsupportedKey
		}
		return nil, &ValidationError{Field: "public_key", Msg: err.Error(), Err: sentinel}
	}
	if err := checkNonce("nonce", req.Nonce); err != nil {
		return nil, err
	}
	ts, err := parseTimestamp("timestamp", req.Timestamp)
	if err != nil {
		return nil, err
	}
	if err := checkSkew(ts, now, maxSkew); err != nil {
		return nil, err
	}
	sig, err := DecodeSignature(sigHeader)
	if err != nil {
		return nil, err
	}
	if err := pk.Verify(body, sig); err != nil {
		return nil, err
	}
	return &Enrollment{Identity: req.Identity, PublicKey: pk, Nonce: req.Nonce, Timestamp: ts}, nil
}

// SignEnrollment builds and signs an enrollment request for id with signer,
// stamped with now and a fresh nonce. It returns the body to send and the
// value for SignatureHeader. It refuses identities that ParseEnrollment
// would refuse, so a client learns of mistakes before sending.
func SignEnrollment(signer crypto.Signer, id Identity, now time.Time) (body []byte, signature string, err error) {
	if err := id.Validate(); err != nil {
		return nil, "", fmt.Errorf("sign enrollment: %w", err)
	}
	pk, err := NewPublicKey(signer.Public())
	if err != nil {
		return nil, "", fmt.Errorf("sign enrollment: %w", err)
	}
	nonce, err := NewNonce()
	if err != nil {
		return nil, "", fmt.Errorf("sign enrollment: %w", err)
	}
	req := EnrollmentRequest{
		Identity:  id,
		PublicKey: pk.PEM,
		Nonce:     nonce,
		Timestamp: now.UTC().Format(time.RFC3339),
	}
	body, err = json.Marshal(req)
	if err != nil {
		return nil, "", fmt.Errorf("sign enrollment: %w", err)
	}
	signature, err = SignBody(signer, body)
	if err != nil {
		return nil, "", fmt.Errorf("sign enrollment: %w", err)
	}
	return body, signature, nil
}

// NewNonce returns 128 random bits as unpadded URL-safe base64 (22
// characters).
func NewNonce() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("read random nonce: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ValidateTimeZone applies the enrollment's time-zone rule to a zone a
// device reports later (for example at check-in): an IANA name known to
// the tz database, not "Local", not a path. The error is a
// *ValidationError for field "time_zone".
func ValidateTimeZone(name string) error {
	if name == "" {
		return invalid("time_zone", "required")
	}
	return checkTimeZone("time_zone", name)
}

// ValidateAttributes applies the enrollment's attribute rules to attributes
// a device reports later. The error is a *ValidationError whose Field
// starts with "attributes".
func ValidateAttributes(attrs map[string]string) error {
	return checkAttributes("attributes", attrs)
}
