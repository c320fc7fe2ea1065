// Package identity holds the credentials devices authenticate with and the
// pure checks the device API runs on them: parsing and verifying device
// public keys, decoding and verifying signed enrollment and token-renewal
// requests, issuing and verifying short-lived device tokens, and
// hawkBit-style per-device target tokens.
//
// The package has no storage and no HTTP code. Callers (the store and the
// device API) own persistence; this package only says whether bytes are well
// formed and whether a signature, token or target token is genuine.
//
// Invariants:
//   - A signature always covers the exact raw request body bytes, as received;
//     nothing is re-encoded before verification.
//   - Only Ed25519, ECDSA P-256 and RSA keys of 2048 to 8192 bits are
//     accepted; a PublicKey value is only ever built from such a key.
//   - Fingerprints are the lowercase hex SHA-256 of the DER
//     SubjectPublicKeyInfo, so the same key yields the same fingerprint whether
//     it arrived as PKIX or PKCS#1 PEM.
//   - Plaintext target tokens are never needed after generation: the stored
//     form is their SHA-256.
//   - Nothing reads the wall clock directly: callers pass the current time or
//     an Issuer carries a clock.Clock.
//
// All exported functions and methods are safe for concurrent use; an Issuer
// must not be modified while in use.
package identity
