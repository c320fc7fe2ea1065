// Command loadgen is the load generator of bench/capacity. It runs in a
// process of its own, so the server under test does not share its heap,
// scheduler or garbage collector with the client side.
//
// Two modes:
//
//   - checkin: an open-loop (constant arrival rate) generator of short-poll
//     check-ins over a bounded pool of keep-alive connections. Request i is
//     due at start + i/rate whether or not earlier requests have answered,
//     and its latency is measured from that due time, so a server that
//     stalls cannot hide the stall by slowing the client down (coordinated
//     omission). Requests cycle through the device tokens in the token file.
//   - longpoll: opens -n check-ins with ?wait=, each on a connection of its
//     own, re-polls as each answers (as a device does), and keeps them
//     open until stdin closes. A device whose check-in fails waits before
//     it tries again, as the agent does (internal/agent): -backoff-min
//     doubled for each consecutive failure up to -backoff-max, drawn
//     uniformly from the upper half of that, so a fleet that failed
//     together does not reconnect together. The draws come from -seed
//     (device i has its own stream, seeded with -seed and i), so a run can
//     be repeated.
//
// Either mode prints one JSON object (Result) on stdout at the end; the
// longpoll mode also prints "opened N" lines while it ramps up. The process
// raises its open-file limit as far as the kernel allows first.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// checkInBody is what every device reports: the same as what the benchmark
// stored, so a check-in is the no-news path and writes nothing.
var checkInBody = []byte(`{"version":"1.0.0","state":"idle","attributes":{"kernel":"6.1.0"}}`)

const checkInPath = "/api/device/v1/checkin"

// Result is the JSON summary printed at the end.
type Result struct {
	Mode        string  `json:"mode"`
	TargetRate  float64 `json:"target_rate,omitempty"`
	Seconds     float64 `json:"seconds"`
	Sent        int     `json:"sent"`
	OK          int     `json:"ok"`
	Errors      int     `json:"errors"`
	FirstError  string  `json:"first_error,omitempty"`
	Overload    int     `json:"overload"` // not sent: too many requests in flight
	Rate        float64 `json:"rate"`     // answered requests per second
	P50ms       float64 `json:"p50_ms"`
	P90ms       float64 `json:"p90_ms"`
	P99ms       float64 `json:"p99_ms"`
	P999ms      float64 `json:"p999_ms"`
	MaxMs       float64 `json:"max_ms"`
	Conns       int64   `json:"conns"`       // connections opened
	TLSResumed  int64   `json:"tls_resumed"` // of those, TLS sessions resumed
	CPUSeconds  float64 `json:"cpu_seconds"` // this process, user + system
	NoFile      uint64  `json:"nofile"`      // open-file limit after raising it
	NoFileError string  `json:"nofile_error,omitempty"`
	Opened      int     `json:"opened,omitempty"` // longpoll: connections opened and polling
	Answered    int     `json:"answered,omitempty"`
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		mode       = flag.String("mode", "checkin", "checkin or longpoll")
		base       = flag.String("url", "", "server base URL (http:// or https://)")
		caFile     = flag.String("ca", "", "PEM certificate to trust for https")
		tokenFile  = flag.String("tokens", "", "file with one device token per line")
		offset     = flag.Int("offset", 0, "index of the first token used")
		rate       = flag.Float64("rate", 100, "checkin: requests per second")
		duration   = flag.Duration("duration", 10*time.Second, "checkin: measured duration")
		warmup     = flag.Duration("warmup", time.Second, "checkin: unmeasured lead-in at the same rate")
		conns      = flag.Int("conns", 128, "checkin: keep-alive connections at most")
		inflight   = flag.Int("max-inflight", 20000, "checkin: requests in flight at most; more count as overload")
		timeout    = flag.Duration("timeout", 10*time.Second, "per-request timeout")
		n          = flag.Int("n", 1000, "longpoll: connections")
		wait       = flag.Duration("wait", 60*time.Second, "longpoll: ?wait= of each check-in")
		openRate   = flag.Float64("open-rate", 2000, "longpoll: new connections per second")
		sourceIPs  = flag.Int("source-ips", 1, "spread connections over this many loopback source addresses (127.0.0.1, .2, …) to pass the ephemeral-port limit")
		reportStep = flag.Int("report-every", 5000, "longpoll: print progress every this many opened connections")
		expect     = flag.String("expect", `"poll_after_seconds"`, "text every 200 answer must contain")
		backoffMin = flag.Duration("backoff-min", time.Second, "longpoll: wait after a first failed check-in (the agent's default is 5s; shorter so a run recovers within minutes)")
		backoffMax = flag.Duration("backoff-max", time.Minute, "longpoll: longest wait between retries (the agent's default is 15m)")
		seed       = flag.Uint64("seed", 1, "longpoll: seed of the back-off jitter")
	)
	flag.Parse()
	res := &Result{Mode: *mode}
	res.NoFile, res.NoFileError = raiseNoFile()
	tokens, err := readTokens(*tokenFile)
	if err != nil {
		return err
	}
	g, err := newGen(*base, *caFile, *sourceIPs, *timeout)
	if err != nil {
		return err
	}
	g.expect = []byte(*expect)
	if err := g.prime(); err != nil {
		return err
	}
	cpu0 := cpuTime()
	switch *mode {
	case "checkin":
		g.tr.MaxConnsPerHost = *conns
		g.tr.MaxIdleConnsPerHost = *conns
		err = g.checkIns(res, tokens, *offset, *rate, *warmup, *duration, *inflight)
	case "longpoll":
		g.tr.MaxIdleConnsPerHost = *n
		b := backoff{min: *backoffMin, max: max(*backoffMin, *backoffMax), seed: *seed}
		err = g.longPolls(res, tokens, *offset, *n, *wait, *openRate, *reportStep, b)
	default:
		err = fmt.Errorf("unknown -mode %q", *mode)
	}
	if err != nil {
		return err
	}
	res.CPUSeconds = (cpuTime() - cpu0).Seconds()
	res.Conns, res.TLSResumed = g.conns.Load(), g.resumed.Load()
	return json.NewEncoder(os.Stdout).Encode(res)
}

// raiseNoFile lifts RLIMIT_NOFILE to the kernel's per-process maximum if
// the process may (root), else the soft limit to the hard one.
func raiseNoFile() (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err.Error()
	}
	msg := ""
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		var max uint64
		if _, err := fmt.Sscan(string(b), &max); err == nil && max > lim.Max {
			want := syscall.Rlimit{Cur: max, Max: max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
				return max, ""
			} else {
				msg = fmt.Sprintf("raise hard limit to %d: %v", max, err)
			}
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		msg = err.Error()
	}
	return lim.Cur, msg
}

func readTokens(path string) ([]string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read tokens: %w", err)
	}
	tokens := strings.Fields(string(b))
	if len(tokens) == 0 {
		return nil, errors.New("no tokens in " + path)
	}
	return tokens, nil
}

type gen struct {
	base    string
	expect  []byte
	tr      *http.Transport
	client  *http.Client
	conns   atomic.Int64
	resumed atomic.Int64
}

func newGen(base, caFile string, sourceIPs int, timeout time.Duration) (*gen, error) {
	g := &gen{base: strings.TrimRight(base, "/")}
	var next atomic.Uint32
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		d := net.Dialer{Timeout: timeout}
		if sourceIPs > 1 {
			i := next.Add(1) % uint32(sourceIPs)
			d.LocalAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, byte(1+i))}
		}
		c, err := d.DialContext(ctx, network, addr)
		if err == nil {
			g.conns.Add(1)
		}
		return c, err
	}
	g.tr = &http.Transport{DialContext: dial, IdleConnTimeout: 5 * time.Minute, DisableCompression: true}
	if strings.HasPrefix(base, "https://") {
		pool := x509.NewCertPool()
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read CA: %w", err)
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, errors.New("no certificate in " + caFile)
		}
		// HTTP/1.1 keep-alive, as the agent polls; a shared session cache
		// so reconnects resume TLS sessions instead of full handshakes.
		cfg := &tls.Config{RootCAs: pool, ClientSessionCache: tls.NewLRUClientSessionCache(4096), NextProtos: []string{"http/1.1"}}
		g.tr.DialTLSContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := dial(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			c := cfg.Clone()
			c.ServerName, _, _ = net.SplitHostPort(addr)
			tc := tls.Client(raw, c)
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			if tc.ConnectionState().DidResume {
				g.resumed.Add(1)
			}
			return tc, nil
		}
	}
	g.client = &http.Client{Transport: g.tr, Timeout: timeout}
	return g, nil
}

// prime makes one request and reads its answer before the load starts.
// Over TLS 1.3 the session ticket arrives after the handshake and is only
// taken in when the client reads from the connection; without a first
// answer read, connections opened at once would all make full handshakes
// and none could resume.
func (g *gen) prime() error {
	resp, err := g.client.Get(g.base + "/healthz")
	if err != nil {
		return fmt.Errorf("first request: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return err
}

// checkIn sends one check-in and reads the whole answer.
func (g *gen) checkIn(ctx context.Context, token, query string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", g.base+checkInPath+query, bytes.NewReader(checkInBody))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := g.client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, g.expect) {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return nil
}

// checkIns runs the open-loop check-in load: warmup, then duration, at
// rate. Only requests due in the measured part count.
func (g *gen) checkIns(res *Result, tokens []string, offset int, rate float64, warmup, duration time.Duration, maxInflight int) error {
	if rate <= 0 {
		return errors.New("-rate must be positive")
	}
	res.TargetRate = rate
	lead := int(rate * warmup.Seconds())
	total := lead + int(rate*duration.Seconds())
	lat := make([]time.Duration, total) // -1: failed or not sent
	var inflight atomic.Int64
	var wg sync.WaitGroup
	var mu sync.Mutex
	var firstErr string
	start := time.Now()
	for i := range total {
		due := start.Add(time.Duration(float64(i) / rate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		if inflight.Load() >= int64(maxInflight) {
			lat[i] = -2
			continue
		}
		inflight.Add(1)
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer inflight.Add(-1)
			err := g.checkIn(context.Background(), tokens[(offset+i)%len(tokens)], "")
			if err != nil {
				lat[i] = -1
				mu.Lock()
				if firstErr == "" {
					firstErr = err.Error()
				}
				mu.Unlock()
				return
			}
			lat[i] = time.Since(due)
		}()
	}
	wg.Wait()
	measured := lat[lead:]
	res.Seconds = duration.Seconds()
	ok := make([]time.Duration, 0, len(measured))
	for _, d := range measured {
		switch {
		case d == -2:
			res.Overload++
		case d < 0:
			res.Sent++
			res.Errors++
		default:
			res.Sent++
			ok = append(ok, d)
		}
	}
	res.OK = len(ok)
	res.FirstError = firstErr
	res.Rate = float64(res.OK) / duration.Seconds()
	if len(ok) > 0 {
		slices.Sort(ok)
		q := func(p float64) float64 {
			return float64(ok[min(len(ok)-1, int(p*float64(len(ok))))]) / float64(time.Millisecond)
		}
		res.P50ms, res.P90ms, res.P99ms, res.P999ms = q(0.50), q(0.90), q(0.99), q(0.999)
		res.MaxMs = float64(ok[len(ok)-1]) / float64(time.Millisecond)
	}
	return nil
}

// longPolls opens n long-polling devices at openRate, each looping on
// check-in with ?wait= on its own connection, until stdin closes.
func (g *gen) longPolls(res *Result, tokens []string, offset, n int, wait time.Duration, openRate float64, reportEvery int, b backoff) error {
	if n > len(tokens) {
		return fmt.Errorf("-n %d is more than the %d tokens", n, len(tokens))
	}
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	// Each device gets a transport of its own's worth: one connection.
	g.tr.MaxConnsPerHost = 0
	g.client.Timeout = wait + 30*time.Second
	query := fmt.Sprintf("?wait=%ds", int(wait/time.Second))
	var errs, answered atomic.Int64
	var mu sync.Mutex
	var firstErr string
	var wg sync.WaitGroup
	start := time.Now()
	out := bufio.NewWriter(os.Stdout)
	opened := 0
	for i := range n {
		if ctx.Err() != nil {
			break
		}
		due := start.Add(time.Duration(float64(i) / openRate * float64(time.Second)))
		if d := time.Until(due); d > 0 {
			time.Sleep(d)
		}
		wg.Add(1)
		opened++
		go func() {
			defer wg.Done()
			tok := tokens[(offset+i)%len(tokens)]
			rnd := b.rand(i)
			failures := 0
			for ctx.Err() == nil {
				if err := g.checkIn(ctx, tok, query); err != nil {
					if ctx.Err() != nil {
						return
					}
					errs.Add(1)
					mu.Lock()
					if firstErr == "" {
						firstErr = err.Error()
					}
					mu.Unlock()
					failures++
					select {
					case <-ctx.Done():
					case <-time.After(b.delay(failures, rnd)):
					}
					continue
				}
				failures = 0
				answered.Add(1)
			}
		}()
		if opened%reportEvery == 0 || opened == n {
			fmt.Fprintf(out, "opened %d errors %d\n", opened, errs.Load())
			out.Flush()
		}
	}
	<-ctx.Done()
	wg.Wait()
	res.Seconds = time.Since(start).Seconds()
	res.Opened = opened
	res.Errors = int(errs.Load())
	res.Answered = int(answered.Load())
	res.FirstError = firstErr
	return nil
}

// backoff is a long-polling device's wait after failed check-ins: the
// agent's rule (internal/agent), with its bounds as flags.
type backoff struct {
	min, max time.Duration
	seed     uint64
}

// rand is device i's jitter source: its own stream, fixed by the seed.
func (b backoff) rand(i int) *rand.Rand {
	return rand.New(rand.NewPCG(b.seed, uint64(i)))
}

// delay is the wait after the failures-th consecutive failure (from 1):
// min doubled per failure, capped at max, drawn uniformly from the upper
// half of that (full jitter in the upper half, as the agent does).
func (b backoff) delay(failures int, rnd *rand.Rand) time.Duration {
	d := b.min << min(failures-1, 30)
	if d <= 0 || d > b.max {
		d = b.max
	}
	return d/2 + time.Duration(rnd.Int64N(int64(d/2)+1))
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
