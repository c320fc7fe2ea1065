// Package mgmtapi is Updraft's management API: the JSON REST interface under
// /api/v1 that the CLI, CI jobs and (later) the dashboard use to manage
// devices, releases, assignments, operators, API tokens and the audit log.
//
// The API is described by an OpenAPI 3.0 document embedded in the package
// (openapi.yaml) and served at /api/v1/openapi.yaml. The route table
// (Routes) is the single source of truth for paths, methods, required
// roles and accepted query parameters; tests check the document against it
// and validate real responses against the document.
//
// Invariants:
//   - Every request except the unknown-route fallback is authenticated with
//     an API token ("Authorization: Bearer updraft_<id>_<secret>") and
//     authorized by the route's Action before its handler runs. A token
//     owned by a user never has more rights than that user, and a user who
//     must change the password can do nothing else.
//   - Every change goes through one store call, which writes the change and
//     its audit entry in one transaction with the caller as actor; a
//     refused request changes nothing.
//   - Request bodies are bounded and decoded strictly (unknown fields are
//     refused); unknown query parameters are refused too, so a misspelt
//     filter never silently lists everything.
//   - Errors leave through internal/apierror only.
//   - The API's only state of its own is when each API token was last
//     used: kept in memory (an authenticated request writes nothing) and
//     written in one batch every Config.TokenUseFlush by the loop Start
//     runs, and once more by Stop. It is lossy by design; a crash loses at
//     most one interval of last-use times.
//   - The API is safe for concurrent use; all paths act on the token's
//     tenant (store.DefaultTenant for now).
package mgmtapi
