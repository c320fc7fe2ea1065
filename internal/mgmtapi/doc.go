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
//   - The API keeps no mutable state of its own and is safe for concurrent
//     use; all paths act on store.DefaultTenant for now (the token's tenant).
package mgmtapi
