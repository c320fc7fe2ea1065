// Package tufrepo holds Updraft's TUF repository operations as pure
// functions over metadata bytes: key generation and signers, root and
// targets creation, delegation to release-signing roles, offline signing of
// the next version of a role, threshold signing, the checks the server
// applies to uploaded metadata, snapshot and timestamp generation, root and
// key rotation, and the director's per-device documents.
//
// Nothing here does I/O. Callers own storage: the offline CLI reads and
// writes files, the server keeps a Repository in its store and serves the
// Files it lists. Every function that produces metadata returns canonical
// bytes (go-tuf's JSON encoding); functions named Next… return unsigned
// bytes that one or more holders of the role's keys then pass to Sign, and
// Combine merges signatures made separately over the same bytes.
//
// Trust layout (see docs/security.md):
//
//	root (offline, m-of-n) ─┬─ targets (offline) ── delegates by path ──► one role per product line ("gw-200": "gw-200/*/*/*")
//	                        ├─ snapshot, timestamp (online, server)
//	                        └─ director (online, server; tufmeta.RoleDirector)
//
// Release-signing roles do not delegate further: a device trusts a target
// only from top-level targets or from a role delegated by it whose paths
// cover the target, so a leaked release key can sign only its own line.
//
// Repository values are not safe for concurrent use; the server serializes
// version bumps (one writer under its database lease) so that two replicas
// never publish different metadata under the same version.
package tufrepo
