// Package reliability runs Updraft's reliability scenario: a fleet of
// real agents (internal/sim) against an `updraft serve` process on a
// scaled clock, over a link that drops connections mid-transfer, with
// power cuts during installs, a release that never boots on hardware
// revision B, and the server killed with SIGKILL mid-campaign and
// restarted on the same data (SQLite or PostgreSQL).
//
// The server is a separate process so that a kill is a real kill: no
// deferred function, no graceful shutdown, no flush. Server and devices
// share one simulated timeline (clock.Scaled with the same origin and
// factor), which a restarted server continues.
//
// Run returns a Report: devices bricked, status reports lost, campaigns
// that ended in the wrong state, the simulated time to halt the bad
// release and how many devices it reached. The tests in this package run
// a small fleet in CI; bench/reliability runs 10,000 devices.
//
// A Server is used by one goroutine; Run owns everything it starts and
// stops it before returning.
package reliability
