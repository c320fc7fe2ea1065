// Package checkinbench measures authenticated short-poll check-ins against
// the native device API and compares them with a bare net/http handler
// that returns a response of the same size, in the same run.
//
// The setup registers 100,000 accepted devices directly in the database
// (one multi-row INSERT transaction; enrolling them one by one through the
// API would measure enrollment, not check-ins) and issues each a device
// token. Keep-alive clients on loopback then check in round-robin across
// all devices, reporting what is already stored, so every check-in is the
// no-pending-work path: token verification, one store read (the device and
// its active assignment in one prepared statement), no write.
//
// Each backend (SQLite; PostgreSQL when reachable) runs over plain HTTP and
// over TLS with a session cache (resumption is checked before timing).
// Run it with
//
//	go test -run '^$' -bench . -benchtime 40000x ./bench/checkin
//
// It prints requests/s and p99 latency for the API and for the bare
// handler, and their ratio (goal on plain HTTP: at least 0.5). Without
// PostgreSQL the PostgreSQL variant skips with a message; with
// UPDRAFT_REQUIRE_SERVICES=1 it fails instead.
package checkinbench
