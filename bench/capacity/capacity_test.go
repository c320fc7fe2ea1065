package capacitybench

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Goal and pass criteria.
const (
	goalDevices  = 1_000_000
	pollInterval = 5 * time.Minute
	p99Limit     = 100.0 // ms
)

// settings of one run, from the environment (see doc.go).
type settings struct {
	devices    int
	step       time.Duration
	conns      int
	longPolls  int
	profiles   string
	transports []string // of BenchmarkCapacity: "plain", "tls"
}

func loadSettings(tb testing.TB) settings {
	s := settings{devices: 100_000, step: 8 * time.Second, conns: 128, longPolls: 100_000,
		profiles: filepath.Join(os.TempDir(), "updraft-capacity"), transports: []string{"plain", "tls"}}
	atoi := func(env string, dst *int) {
		if v := os.Getenv(env); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n <= 0 {
				tb.Fatalf("%s=%q: want a positive integer", env, v)
			}
			*dst = n
		}
	}
	atoi("UPDRAFT_CAPACITY_DEVICES", &s.devices)
	atoi("UPDRAFT_CAPACITY_CONNS", &s.conns)
	atoi("UPDRAFT_CAPACITY_LONGPOLLS", &s.longPolls)
	if v := os.Getenv("UPDRAFT_CAPACITY_STEP"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second {
			tb.Fatalf("UPDRAFT_CAPACITY_STEP=%q: want a duration of at least 1s", v)
		}
		s.step = d
	}
	if v := os.Getenv("UPDRAFT_CAPACITY_TRANSPORTS"); v != "" {
		s.transports = strings.Split(v, ",")
		for _, t := range s.transports {
			if t != "plain" && t != "tls" {
				tb.Fatalf("UPDRAFT_CAPACITY_TRANSPORTS=%q: want plain, tls or plain,tls", v)
			}
		}
	}
	if v := os.Getenv("UPDRAFT_CAPACITY_PROFILE_DIR"); v != "" {
		s.profiles = v
	}
	return s
}

// fleetAt is the fleet that checks in at rate per second, each device once
// per pollInterval.
func fleetAt(rate float64) float64 { return rate * pollInterval.Seconds() }

// outcome is the search's answer for one target.
type outcome struct {
	name     string
	max      float64       // highest rate that passed, check-ins/s
	at       loadResult    // the confirming run at max
	firstBad string        // why the next rate up failed
	cpuPer   time.Duration // server CPU per check-in in the confirming run, idle CPU taken out
	idle     float64       // server CPU with no load, in cores
	// confirmed is false when no confirming run passed; max is then the
	// short steps' figure.
	confirmed bool
}

// judge says whether one step passed, and why not.
func judge(r loadResult) (bool, string) {
	switch {
	case r.Errors > 0:
		return false, fmt.Sprintf("%d errors (%s)", r.Errors, r.FirstError)
	case r.Overload > 0:
		return false, fmt.Sprintf("%d requests not sent: too many in flight", r.Overload)
	case r.P99ms > p99Limit:
		return false, fmt.Sprintf("p99 %.1f ms > %.0f ms", r.P99ms, p99Limit)
	}
	return true, ""
}

// search finds the highest constant arrival rate at which the target
// answers every check-in with p99 under the limit (findRate: a warm-up,
// doubling from start, bisecting, a confirming run of at least 35 s, every
// failed step measured twice), printing every step, and then makes a
// profiled run at that rate when asked. inProcess says the server runs in
// this process, so its CPU per check-in (this process's CPU time over the
// step) and a CPU profile of the confirming run mean something.
func search(b *testing.B, lg *loadgen, name, url string, start, limit float64, inProcess bool, profile string) outcome {
	b.Helper()
	o := outcome{name: name}
	if inProcess {
		// What the server burns with no load (background loops, GC, the
		// runtime), so the CPU of a check-in can be told apart from it.
		const idleFor = 5 * time.Second
		cpu0 := processCPU()
		time.Sleep(idleFor)
		o.idle = float64(processCPU()-cpu0) / float64(idleFor)
		fmt.Printf("  %-22s idle: %.1f %% of a core\n", name, 100*o.idle)
	}
	type measured struct {
		r   loadResult
		per time.Duration // server CPU per check-in
	}
	measure := func(s searchStep) stepVerdict[measured] {
		cpu0, t0 := processCPU(), time.Now()
		r := lg.run(b, url, s.rate, s.d)
		cpu := processCPU() - cpu0
		// Marginal CPU: less what the server burns idle over the same time.
		cpu -= time.Duration(o.idle * float64(time.Since(t0)))
		ok, why := judge(r)
		s.ok, s.why = ok, why
		var per time.Duration
		if inProcess && r.OK > 0 {
			// The step includes the warm-up's requests too.
			per = cpu / time.Duration(float64(r.OK)*(1+lg.warmup.Seconds()/s.d.Seconds()))
		}
		cpuText := ""
		if per > 0 {
			cpuText = fmt.Sprintf("  server CPU %.0f µs/check-in (idle taken out)", float64(per)/float64(time.Microsecond))
		}
		fmt.Printf("  %-22s %s\n  %-22s   p50 %6.2f ms  p99 %7.2f ms  max %7.1f ms  errors %d  not sent %d  conns %d (TLS resumed %d)  loadgen CPU %.0f µs/req%s  load %s\n",
			name, s, "", r.P50ms, r.P99ms, r.MaxMs, r.Errors, r.Overload, r.Conns, r.TLSResumed,
			1e6*r.CPUSeconds/float64(max(1, r.Sent)), cpuText, loadAvg())
		if !ok {
			// Let a queue built up by the failed step drain.
			time.Sleep(2 * time.Second)
		}
		return stepVerdict[measured]{ok: ok, why: why, res: measured{r, per}}
	}
	plan := searchPlan{start: start, limit: limit, floor: 10, warmup: 5 * time.Second,
		short: lg.step, long: max(3*lg.step, 35*time.Second), tolerance: 0.1, maxBisect: 5}
	res, err := findRate(plan, measure)
	if err != nil {
		b.Fatalf("%s: %v", name, err)
	}
	o.max, o.at, o.cpuPer, o.firstBad, o.confirmed = res.rate, res.at.r, res.at.per, res.firstBad, res.confirmed
	if o.confirmed && profile != "" {
		// Profiled separately: the profiler's own cost stays out of the
		// figures.
		f, err := os.Create(profile)
		if err != nil {
			b.Fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			b.Fatal(err)
		}
		measure(searchStep{phase: "profile", rate: o.max, d: plan.long})
		pprof.StopCPUProfile()
		f.Close()
	}
	return o
}

// cores is what the server could use if it had the machine to itself.
var cores = float64(runtime.GOMAXPROCS(0))

func (o outcome) line() string {
	cpu := ""
	if o.cpuPer > 0 {
		ceil := (cores - o.idle) * float64(time.Second) / float64(o.cpuPer)
		cpu = fmt.Sprintf("; server CPU %.0f µs/check-in over %.1f %% of a core idle: CPU ceiling with %.0f cores to itself %.0f/s = %.0f devices",
			float64(o.cpuPer)/float64(time.Microsecond), 100*o.idle, cores, ceil, fleetAt(ceil))
	}
	conf := ""
	if !o.confirmed {
		conf = " [short steps only: no 35 s run held]"
	}
	return fmt.Sprintf("%-14s %7.0f check-ins/s = %9.0f devices at 5 min%s (p99 %.1f ms, %d conns, TLS resumed %d%s; next step up: %s)",
		o.name, o.max, fleetAt(o.max), conf, o.at.P99ms, o.at.Conns, o.at.TLSResumed, cpu, o.firstBad)
}

// BenchmarkCapacity searches, for SQLite and PostgreSQL over plain HTTP and
// TLS, the highest check-in rate one server sustains with p99 under
// 100 ms, and the same for bench/checkin's bare handler over the same
// transport in the same run. Run it once: -benchtime 1x.
func BenchmarkCapacity(b *testing.B) {
	s := loadSettings(b)
	nofile, note := raiseNoFile()
	bin := buildLoadgen(b)
	certFile, keyFile := certPair(b)
	if err := os.MkdirAll(s.profiles, 0o755); err != nil {
		b.Fatal(err)
	}
	fmt.Printf("capacity: %d devices, %d keep-alive connections, steps of %s (+1 s warm-up), transports %v, GOMAXPROCS %d, RLIMIT_NOFILE %d %s, load %s\n",
		s.devices, s.conns, s.step, s.transports, runtime.GOMAXPROCS(0), nofile, note, loadAvg())
	var results []string
	bare := map[string]outcome{}
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			f := seedFleet(b, backend, s.devices)
			for _, transport := range s.transports {
				cf, kf := "", ""
				if transport == "tls" {
					cf, kf = certFile, keyFile
				}
				lg := &loadgen{bin: bin, caFile: certFile, tokensFile: f.tokensFile, conns: s.conns, warmup: time.Second, step: s.step}
				srv := startServer(b, f, cf, kf)
				size := checkInOnce(b, srv, f)
				if _, done := bare[transport]; !done {
					url := startBare(b, size, cf, kf)
					blg := *lg
					blg.expect = `"pad"`
					bare[transport] = search(b, &blg, "bare/"+transport, url, 1000, 64000, true, "")
					lg.offset = blg.offset
					results = append(results, bare[transport].line())
					fmt.Println("  =>", bare[transport].line())
				}
				profile := filepath.Join(s.profiles, backend+"-"+transport+".pprof")
				api := search(b, lg, backend+"/"+transport, srv.url, 500, 64000, true, profile)
				srv.stop()
				ratio := api.max / bare[transport].max
				cpuRatio := ""
				if api.cpuPer > 0 && bare[transport].cpuPer > 0 {
					cpuRatio = fmt.Sprintf(", CPU per request bare/API %.2f", float64(bare[transport].cpuPer)/float64(api.cpuPer))
				}
				if !api.confirmed || !bare[transport].confirmed {
					cpuRatio += " (a side without a 35 s run: compare with care)"
				}
				results = append(results, api.line()+fmt.Sprintf("\n%14s ratio to the bare handler: rate %.2f%s; goal %d devices (%.0f/s): %s; CPU profile %s",
					"", ratio, cpuRatio, goalDevices, goalDevices/pollInterval.Seconds(), met(fleetAt(api.max) >= goalDevices), profile))
				fmt.Println("  =>", results[len(results)-1])
				b.ReportMetric(api.max, backend+"-"+transport+"-checkins/s")
				b.ReportMetric(ratio, backend+"-"+transport+"-ratio")
			}
		})
	}
	fmt.Printf("capacity summary (p99 < %.0f ms, no errors; load %s):\n  %s\n", p99Limit, loadAvg(), strings.Join(results, "\n  "))
}

func met(ok bool) string {
	if ok {
		return "met"
	}
	return "NOT met"
}

// BenchmarkLongPoll opens idle long-polls (?wait=60s, re-polled as each
// answers) in stages and reports how many the server holds and its RSS and
// Go memory per connection, over plain HTTP and TLS on SQLite.
func BenchmarkLongPoll(b *testing.B) {
	s := loadSettings(b)
	nofile, note := raiseNoFile()
	bin := buildLoadgen(b)
	certFile, keyFile := certPair(b)
	if err := os.MkdirAll(s.profiles, 0o755); err != nil {
		b.Fatal(err)
	}
	// Each long-poll is one descriptor in each process; keep some for the
	// database, the listener, /proc reads and the rest (300 were too few
	// once over TLS).
	limit := s.longPolls
	if nofile > 0 && uint64(limit) > nofile-1000 {
		limit = int(nofile - 1000)
		fmt.Printf("long-poll: %d connections asked for, capped at %d by RLIMIT_NOFILE %d (%s)\n", s.longPolls, limit, nofile, note)
	}
	f := seedFleet(b, "sqlite", max(s.devices, limit))
	fmt.Printf("long-poll: up to %d connections, server RLIMIT_NOFILE %d %s, load %s\n", limit, nofile, note, loadAvg())
	for _, transport := range []string{"plain", "tls"} {
		b.Run(transport, func(b *testing.B) {
			cf, kf, ca := "", "", ""
			if transport == "tls" {
				cf, kf, ca = certFile, keyFile, certFile
			}
			srv := startServer(b, f, cf, kf)
			checkInOnce(b, srv, f)
			rss0, mem0 := settledMemory(b)
			stage := max(1000, limit/5)
			// New TLS connections cost a handshake on both sides; opened
			// faster on a loaded machine, handshakes outlast the server's
			// 10 s header timeout and the retries snowball.
			openRate := 2000.0
			if transport == "tls" {
				openRate = 200
			}
			lp := startLongPolls(b, bin, srv.url, ca, f.tokensFile, limit, openRate, stage)
			held := 0
			for line := range lp.lines {
				var opened, errs int
				if _, err := fmt.Sscanf(line, "opened %d errors %d", &opened, &errs); err != nil {
					continue
				}
				parked := waitParked(b, srv, opened)
				rss, mem := settledMemory(b)
				fmt.Printf("  %s: %6d opened, %6d parked, %d errors: RSS %6.0f MiB (+%5.1f KiB per parked long-poll), Go heap+stacks +%5.1f KiB per long-poll, goroutines %d, load %s\n",
					transport, opened, parked, errs, float64(rss)/(1<<20), float64(rss-rss0)/1024/float64(max(1, parked)),
					float64(mem-mem0)/1024/float64(max(1, parked)), runtime.NumGoroutine(), loadAvg())
				held = parked
				if opened == limit {
					heap := filepath.Join(s.profiles, "longpoll-"+transport+".heap.pprof")
					if f, err := os.Create(heap); err == nil {
						pprof.Lookup("heap").WriteTo(f, 0)
						f.Close()
						fmt.Printf("  %s: heap profile %s\n", transport, heap)
					}
					break
				}
			}
			res := lp.finish(b)
			fmt.Printf("  %s: held %d idle long-polls; loadgen RLIMIT_NOFILE %d %s; %d connections opened (TLS resumed %d), %d answered at their 60 s deadline, %d errors %s\n",
				transport, held, res.NoFile, res.NoFileErr, res.Conns, res.TLSResumed, res.Answered, res.Errors, res.FirstError)
			b.ReportMetric(float64(held), "long-polls-held")
			srv.stop()
		})
	}
}

// settledMemory runs a GC, returns freed memory to the system so VmRSS
// readings compare, and returns VmRSS and the Go runtime's heap in use
// plus goroutine stacks.
func settledMemory(b *testing.B) (rss, goMem int64) {
	debug.FreeOSMemory()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return vmRSS(b), int64(ms.HeapInuse + ms.StackInuse)
}

// waitParked waits (up to a minute) until the server holds at least 98 %
// of want long-polls, and returns how many it holds.
func waitParked(b *testing.B, srv *running, want int) int {
	var n float64
	for range 600 {
		n = metric(b, srv, "updraft_device_long_polls_active")
		if n >= 0.98*float64(want) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	return int(n)
}

// TestSmoke starts the server and the load generator process, runs a
// tiny check-in step over HTTP and TLS and parks a few long-polls.
func TestSmoke(t *testing.T) {
	bin := buildLoadgen(t)
	f := seedFleet(t, "sqlite", 200)
	certFile, keyFile := certPair(t)
	for _, useTLS := range []bool{false, true} {
		cf, kf := "", ""
		if useTLS {
			cf, kf = certFile, keyFile
		}
		srv := startServer(t, f, cf, kf)
		checkInOnce(t, srv, f)
		lg := &loadgen{bin: bin, caFile: certFile, tokensFile: f.tokensFile, conns: 4, warmup: 200 * time.Millisecond}
		r := lg.run(t, srv.url, 100, time.Second)
		if r.Errors != 0 || r.Overload != 0 || r.OK != 100 || r.Sent != 100 {
			t.Fatalf("tls=%v: step at 100/s: %+v", useTLS, r)
		}
		if useTLS && r.Conns > 1 && r.TLSResumed == 0 {
			t.Errorf("TLS: %d connections, none resumed a session", r.Conns)
		}
		lp := startLongPolls(t, bin, srv.url, map[bool]string{true: certFile}[useTLS], f.tokensFile, 20, 1000, 20)
		for line := range lp.lines {
			if strings.HasPrefix(line, "opened 20") {
				break
			}
		}
		for i := 0; metric(t, srv, "updraft_device_long_polls_active") < 20; i++ {
			if i == 200 {
				t.Fatalf("tls=%v: the server never held 20 long-polls", useTLS)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if res := lp.finish(t); res.Opened != 20 || res.Errors != 0 {
			t.Fatalf("tls=%v: long-polls: %+v", useTLS, res)
		}
		srv.stop()
	}
}
