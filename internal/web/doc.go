// Package web is the operator dashboard that `updraft serve` serves under
// /ui/: server-rendered HTML from embedded templates, a small script for
// live updates (server-sent events) and SVG charts drawn on the server.
//
// The dashboard holds no privileges of its own. Signing in creates a
// short-lived API token for the user (with the user's role); the session
// cookie carries that token, and every page reads and changes state by
// calling the management API in process with it. Authorization, validation
// and the audit trail are therefore exactly the management API's: a viewer's
// session cannot change anything because the API refuses it, and the
// buttons a viewer cannot use are not shown either. Signing out revokes the
// token.
//
// Invariants:
//   - Browser routes live under /ui/ only; the session cookie is scoped to
//     that path and is never accepted by the device or management APIs.
//   - Every state-changing request is a POST carrying the session's CSRF
//     token and passing net/http's cross-origin protection.
//   - Pages send a strict Content-Security-Policy: no inline script or
//     style, nothing loaded from elsewhere.
//   - The UI reads the server clock only through its Clock; the refresh
//     cadence of live views is real time (a person watches it).
package web
