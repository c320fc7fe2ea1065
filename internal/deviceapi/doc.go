// Package deviceapi serves Updraft's native device API v1 under
// /api/device/v1: enrollment, token renewal, check-in (with long-poll),
// artifact download through signed URLs, status reports and telemetry.
// docs/device-api.md is the protocol reference; the JSON messages live in
// the wire subpackage, which the device agent shares.
//
// Invariants:
//   - Every request body is size-limited and strictly decoded; a request
//     that fails validation, authentication or authorization changes
//     nothing, and its answer never carries internal error text (errors
//     go through internal/apierror).
//   - Device tokens are verified without the store; each authenticated
//     request then reads the device once and refuses tokens whose
//     credential epoch is not the device's current one, so decommissioning
//     or revoking a credential stops old tokens at once.
//   - A check-in that changes nothing writes nothing. Last-seen times are
//     the one lossy datum: kept in memory and flushed in batches.
//   - A status report is acknowledged (2xx) only after the transaction
//     holding it committed (group commit, see committer); retries are
//     idempotent by (device, sequence number).
//   - Time comes from the injected clock.Clock, including long-poll waits,
//     the group-commit window and the background loops.
//
// API is safe for concurrent use. Start runs the background work (report
// committer, last-seen flusher, pending-enrollment expiry, telemetry
// pruning); Stop ends it after committing queued reports and flushing
// last-seen times.
package deviceapi
