// Package signing is the server's side of Updraft's signed updates: it keeps
// the TUF repository (internal/tufrepo) in the store, accepts signed uploads
// from offline signers, holds the online keys (snapshot, timestamp,
// director), re-signs snapshot and timestamp before they expire, serves
// metadata files to devices, and signs the director's per-device assignment
// and finalize documents.
//
// Invariants:
//   - The store is the only source of truth. Every replica caches the
//     repository it last read and compares the store's generation before
//     answering for timestamp.json or a root that might be new, so a device
//     never sees a version go backwards when a load balancer moves it
//     between replicas.
//   - Every write of metadata is a compare-and-set on the repository's
//     generation; online metadata is also fenced by the "tuf-publisher"
//     lease. Two replicas therefore never store two different files under
//     one role and version.
//   - Online private keys reach the store only sealed (AES-256-GCM under a
//     key-encryption key that lives outside the database, see keys.go).
//   - A director counter is never handed out twice, and the document signed
//     for an assignment is stored and served again until it nears expiry,
//     the target changes or the director key rotates.
//   - Time comes from the injected clock.Clock.
//
// A Service serves one tenant and is safe for concurrent use. Start loads
// the keys and the repository and runs the publisher loop; Stop ends it and
// gives up the lease.
package signing
