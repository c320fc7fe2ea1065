// Package capacitybench measures how large a fleet one Updraft server
// carries on this machine, with the load generator in a process of its own
// (bench/capacity/loadgen, built into a temporary directory by the
// benchmark).
//
// BenchmarkCapacity seeds a database (SQLite, and PostgreSQL when
// reachable) with 100,000 accepted devices and issues each a real device
// token with the key the server then loads. It runs the server in the
// benchmark process — the same assembly as `updraft serve`: server.New,
// Listen, Serve, with the metrics wrapper and every API mounted — so that
// its CPU time per check-in and a pprof CPU profile can be taken without
// adding a debug endpoint to the product. The load generator sends
// short-poll check-ins at a constant arrival rate (open loop: latency is
// measured from each request's due time) over a pool of keep-alive
// connections, cycling through all devices, over plain HTTP and over TLS
// with a session cache. After an unjudged warm-up step, the rate doubles
// until a step fails (an error, a request that could not be sent, or p99
// over 100 ms), is bisected to within 10 %, and is confirmed by a run of at
// least 35 s (so it spans a last-seen flush), stepping down 15 % while that
// fails. A failed step is measured once more before it counts, so one
// transient cannot drive the result; every step is printed with its rate,
// p99 and errors (findRate holds this logic, tested with a fake
// measurement). A fleet of N devices polling every
// 5 minutes sends N/300 check-ins per second, so the rate found times 300
// is the fleet size. The same search runs against bench/checkin's bare
// net/http handler (same response size and headers) in the same run, and
// the ratio is printed.
//
// BenchmarkLongPoll opens idle long-polls (?wait=60s, each on its own
// connection, re-polled as each answers, as the agent does, backing off
// after a failure as the agent does: doubling, jittered, seeded) in stages and
// prints how many the server holds and its VmRSS and Go memory per
// connection. Both processes raise RLIMIT_NOFILE as far as the kernel lets
// them; connections are spread over several loopback source addresses to
// pass the ephemeral-port range.
//
// Run them once each:
//
//	go test -run '^$' -bench . -benchtime 1x -timeout 60m ./bench/capacity
//
// Environment: UPDRAFT_CAPACITY_DEVICES (fleet seeded, default 100000),
// UPDRAFT_CAPACITY_STEP (measured time of one step, default 8s),
// UPDRAFT_CAPACITY_CONNS (keep-alive connections, default 128),
// UPDRAFT_CAPACITY_LONGPOLLS (default 100000), UPDRAFT_CAPACITY_PROFILE_DIR
// (where the CPU profiles go, default $TMPDIR/updraft-capacity),
// UPDRAFT_CAPACITY_TRANSPORTS (plain, tls or plain,tls, the default). Select
// a database with -bench 'Capacity/postgres'. Without
// PostgreSQL its half skips with a message; with UPDRAFT_REQUIRE_SERVICES=1
// it fails instead. TestSmoke checks in seconds that both processes start
// and a small rate and a few long-polls succeed.
package capacitybench
