// Package auth holds the pure parts of operator authentication: roles and
// what they allow, password hashing and policy, one-time passwords for the
// first start, and management API tokens.
//
// It has no storage and no HTTP code: the store keeps password hashes and
// token hashes, the management API decides which Action a route needs and
// asks Role.Allows.
//
// Invariants:
//   - Plaintext passwords and token secrets are never stored or returned
//     after creation; only argon2id PHC strings and SHA-256 hashes are.
//   - Every secret comparison is constant time.
//   - Random values come from crypto/rand only.
//   - The zero Role allows nothing.
//
// Everything here is safe for concurrent use.
package auth
