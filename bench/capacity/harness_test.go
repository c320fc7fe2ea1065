package capacitybench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/server"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

// deviceTokenSecret is the name under which the server keeps its device
// token key in the store (server.secretDeviceTokenKey). The benchmark
// creates the key before the server starts, issues the fleet's tokens with
// it, and the server then loads the same key; the smoke test's check-ins
// fail with 401 if the name ever drifts.
const deviceTokenSecret = "device-token-key-1"

// checkInBody matches what seedDevices stores (and what the load generator
// sends), so every check-in is the no-news path and writes nothing.
var checkInBody = []byte(`{"version":"1.0.0","state":"idle","attributes":{"kernel":"6.1.0"}}`)

// buildLoadgen compiles the load generator into a temporary directory.
func buildLoadgen(tb testing.TB) string {
	tb.Helper()
	bin := filepath.Join(tb.TempDir(), "loadgen")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/updraft/updraft/bench/capacity/loadgen")
	if out, err := cmd.CombinedOutput(); err != nil {
		tb.Fatalf("go build loadgen: %v\n%s", err, out)
	}
	return bin
}

// raiseNoFile lifts this process's RLIMIT_NOFILE (the server's, when it
// runs in the benchmark process) to the kernel's per-process maximum when
// allowed, else the soft limit to the hard one; it returns the limit.
func raiseNoFile() (uint64, string) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err.Error()
	}
	note := ""
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if max, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil && max > lim.Max {
			want := syscall.Rlimit{Cur: max, Max: max}
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
				return max, ""
			} else {
				note = fmt.Sprintf("raise hard limit to %d: %v", max, err)
			}
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		note = err.Error()
	}
	return lim.Cur, note
}

// certPair writes a self-signed certificate for 127.0.0.1 and its key.
func certPair(tb testing.TB) (certFile, keyFile string) {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "updraft capacity bench"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		tb.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		tb.Fatal(err)
	}
	dir := tb.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		tb.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		tb.Fatal(err)
	}
	return certFile, keyFile
}

// fleet is a seeded database: where it is, and a file with one device
// token per line.
type fleet struct {
	backend    string
	dataDir    string
	database   string // PostgreSQL URL, "" for SQLite in dataDir
	tokensFile string
	devices    int
}

// seedFleet creates the database the server will use, migrates it, inserts
// n accepted devices and writes a token for each, issued with the key the
// server will load.
func seedFleet(tb testing.TB, backend string, n int) *fleet {
	tb.Helper()
	ctx := context.Background()
	f := &fleet{backend: backend, dataDir: tb.TempDir(), devices: n}
	if backend == "postgres" {
		f.database = testenv.Postgres(tb)
	}
	start := time.Now()
	st, err := server.OpenStore(ctx, server.Config{DataDir: f.dataDir, Database: f.database})
	if err != nil {
		tb.Fatal(err)
	}
	defer st.Close()
	c := clock.Real{}
	if _, err := st.Migrate(ctx, sqlstore.MigrateOptions{Now: c.Now()}); err != nil {
		tb.Fatal(err)
	}
	ids := seedDevices(tb, st, n, c.Now())
	secret, err := st.Secret(ctx, deviceTokenSecret, func() ([]byte, error) {
		k := make([]byte, 32)
		_, err := rand.Read(k)
		return k, err
	})
	if err != nil {
		tb.Fatal(err)
	}
	issuer := &identity.Issuer{Keys: identity.TokenKeys{Current: identity.TokenKey{ID: "k1", Secret: secret}}, Clock: c}
	var buf bytes.Buffer
	for _, id := range ids {
		tok, _, err := issuer.Issue(identity.Claims{Tenant: store.DefaultTenant, DeviceID: id})
		if err != nil {
			tb.Fatal(err)
		}
		buf.WriteString(tok)
		buf.WriteByte('\n')
	}
	f.tokensFile = filepath.Join(tb.TempDir(), "tokens")
	if err := os.WriteFile(f.tokensFile, buf.Bytes(), 0o600); err != nil {
		tb.Fatal(err)
	}
	tb.Logf("%s: seeded %d devices and tokens in %s", backend, n, time.Since(start).Round(time.Millisecond))
	return f
}

// seedDevices inserts n accepted devices in one transaction, reporting
// exactly checkInBody, and returns their ids.
func seedDevices(tb testing.TB, st *sqlstore.Store, n int, now time.Time) []string {
	tb.Helper()
	ctx := context.Background()
	const batch = 1000 // rows per INSERT: within both databases' parameter limits
	key := semver.Key(semver.MustParse("1.0.0"))
	us := now.UnixMicro()
	ids := make([]string, n)
	tx, err := st.WriteDB().BeginTx(ctx, nil)
	if err != nil {
		tb.Fatal(err)
	}
	defer tx.Rollback()
	row := `(?, ?, ?, 'accepted', 'native', 'gw-200', 'B', 'eu-west', '', '1.0.0', ?, '{"kernel":"6.1.0"}', ?, ?)`
	for lo := 0; lo < n; lo += batch {
		hi := min(lo+batch, n)
		args := make([]any, 0, 6*(hi-lo))
		rows := make([]string, 0, hi-lo)
		for i := lo; i < hi; i++ {
			var raw [16]byte
			rand.Read(raw[:])
			ids[i] = hex.EncodeToString(raw[:])
			args = append(args, store.DefaultTenant, ids[i], "CAP-"+strconv.Itoa(i), key, us, us)
			rows = append(rows, row)
		}
		q := `INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, region, time_zone,
			version, version_key, attributes, created_at, updated_at) VALUES ` + strings.Join(rows, ", ")
		if _, err := tx.ExecContext(ctx, st.Dialect().Rebind(q), args...); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
	if st.Dialect().Name() == "sqlite" {
		if _, err := st.WriteDB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			tb.Fatal(err)
		}
	} else if _, err := st.WriteDB().ExecContext(ctx, `ANALYZE devices`); err != nil {
		tb.Fatal(err)
	}
	return ids
}

// running is a server started by startServer.
type running struct {
	srv    *server.Server
	url    string
	client *http.Client // trusts the server's certificate
	stop   func()
}

// startServer runs the same assembly as `updraft serve` (server.New,
// Listen, Serve) in this process on a loopback port, over TLS when given a
// certificate. Stop shuts it down gracefully.
func startServer(tb testing.TB, f *fleet, certFile, keyFile string) *running {
	tb.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	srv, err := server.New(ctx, server.Config{
		DataDir: f.dataDir, Database: f.database, Addr: "127.0.0.1:0",
		TLSCert: certFile, TLSKey: keyFile, Out: io.Discard,
		Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})),
	})
	if err != nil {
		cancel()
		tb.Fatal(err)
	}
	if err := srv.Listen(); err != nil {
		cancel()
		srv.Close()
		tb.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	r := &running{srv: srv, url: srv.PublicURL(), client: httpClient(tb, certFile)}
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			tb.Errorf("server: %v", err)
		}
		srv.Close()
	}
	tb.Cleanup(r.stop)
	// Wait until it answers.
	for i := 0; ; i++ {
		resp, err := r.client.Get(r.url + "/healthz")
		if err == nil {
			resp.Body.Close()
			break
		}
		if i == 100 {
			tb.Fatalf("server did not come up: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return r
}

func httpClient(tb testing.TB, certFile string) *http.Client {
	tr := &http.Transport{}
	if certFile != "" {
		b, err := os.ReadFile(certFile)
		if err != nil {
			tb.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(b)
		tr.TLSClientConfig = &tls.Config{RootCAs: pool}
	}
	tb.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}
}

// checkInOnce checks in with the fleet's first token from this process and
// returns the answer's size.
func checkInOnce(tb testing.TB, r *running, f *fleet) int {
	tb.Helper()
	b, err := os.ReadFile(f.tokensFile)
	if err != nil {
		tb.Fatal(err)
	}
	tok, _, _ := strings.Cut(string(b), "\n")
	req, _ := http.NewRequest("POST", r.url+"/api/device/v1/checkin", bytes.NewReader(checkInBody))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	resp, err := r.client.Do(req)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		tb.Fatalf("check-in: %d %s", resp.StatusCode, body)
	}
	return len(body)
}

// bareHandler is bench/checkin's baseline: it reads the request body and
// answers with size bytes of JSON and the device API's headers, nothing
// else.
func bareHandler(size int) http.Handler {
	body := []byte(`{"pad":"` + strings.Repeat("x", max(0, size-11)) + `"}` + "\n")
	n := strconv.Itoa(len(body))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Content-Length", n)
		h.Set("Cache-Control", "no-store")
		w.Write(body)
	})
}

// startBare serves bareHandler on loopback, over TLS with the same
// certificate when given one; the URL is the base.
func startBare(tb testing.TB, size int, certFile, keyFile string) string {
	tb.Helper()
	mux := http.NewServeMux()
	mux.Handle("POST /api/device/v1/checkin", bareHandler(size))
	srv := httptest.NewUnstartedServer(mux)
	srv.Config.IdleTimeout = 5 * time.Minute
	if certFile != "" {
		cert, err := tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			tb.Fatal(err)
		}
		srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12, NextProtos: []string{"http/1.1"}}
		srv.StartTLS()
	} else {
		srv.Start()
	}
	tb.Cleanup(srv.Close)
	return srv.URL
}

// loadResult is the load generator's JSON summary (loadgen.Result).
type loadResult struct {
	TargetRate float64 `json:"target_rate"`
	Seconds    float64 `json:"seconds"`
	Sent       int     `json:"sent"`
	OK         int     `json:"ok"`
	Errors     int     `json:"errors"`
	FirstError string  `json:"first_error"`
	Overload   int     `json:"overload"`
	Rate       float64 `json:"rate"`
	P50ms      float64 `json:"p50_ms"`
	P99ms      float64 `json:"p99_ms"`
	P999ms     float64 `json:"p999_ms"`
	MaxMs      float64 `json:"max_ms"`
	Conns      int64   `json:"conns"`
	TLSResumed int64   `json:"tls_resumed"`
	CPUSeconds float64 `json:"cpu_seconds"`
	NoFile     uint64  `json:"nofile"`
	NoFileErr  string  `json:"nofile_error"`
	Opened     int     `json:"opened"`
	Answered   int     `json:"answered"`
}

// loadgen runs one open-loop check-in step in the load generator process.
type loadgen struct {
	bin, caFile, tokensFile string
	conns                   int
	warmup, step            time.Duration
	offset                  int
	expect                  string // text every answer contains; "" for the device API's
}

func (lg *loadgen) run(tb testing.TB, url string, rate float64, d time.Duration) loadResult {
	tb.Helper()
	args := []string{"-mode", "checkin", "-url", url, "-tokens", lg.tokensFile,
		"-rate", strconv.FormatFloat(rate, 'f', 1, 64), "-duration", d.String(), "-warmup", lg.warmup.String(),
		"-conns", strconv.Itoa(lg.conns), "-offset", strconv.Itoa(lg.offset)}
	if strings.HasPrefix(url, "https://") {
		args = append(args, "-ca", lg.caFile)
	}
	if lg.expect != "" {
		args = append(args, "-expect", lg.expect)
	}
	lg.offset += int(rate * (d + lg.warmup).Seconds())
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(lg.bin, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		tb.Fatalf("loadgen %v: %v\n%s", args, err, stderr.String())
	}
	var res loadResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		tb.Fatalf("loadgen output %q: %v", stdout.String(), err)
	}
	return res
}

// longPoller is a running load generator in longpoll mode.
type longPoller struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string
	stdout bytes.Buffer
}

func startLongPolls(tb testing.TB, bin, url, caFile, tokensFile string, n int, openRate float64, reportEvery int) *longPoller {
	tb.Helper()
	args := []string{"-mode", "longpoll", "-url", url, "-tokens", tokensFile, "-n", strconv.Itoa(n),
		"-wait", "60s", "-open-rate", strconv.FormatFloat(openRate, 'f', 0, 64),
		"-source-ips", strconv.Itoa(1 + n/20000), "-report-every", strconv.Itoa(reportEvery)}
	if caFile != "" {
		args = append(args, "-ca", caFile)
	}
	lp := &longPoller{cmd: exec.Command(bin, args...), lines: make(chan string, 1024)}
	lp.cmd.Stderr = os.Stderr
	var err error
	if lp.stdin, err = lp.cmd.StdinPipe(); err != nil {
		tb.Fatal(err)
	}
	out, err := lp.cmd.StdoutPipe()
	if err != nil {
		tb.Fatal(err)
	}
	if err := lp.cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "{") {
				lp.stdout.WriteString(line)
			}
			lp.lines <- line
		}
		close(lp.lines)
	}()
	tb.Cleanup(func() {
		if lp.cmd.ProcessState == nil {
			lp.cmd.Process.Kill()
			lp.cmd.Wait()
		}
	})
	return lp
}

// finish closes the generator's stdin and returns its summary.
func (lp *longPoller) finish(tb testing.TB) loadResult {
	tb.Helper()
	lp.stdin.Close()
	for range lp.lines {
	}
	if err := lp.cmd.Wait(); err != nil {
		tb.Fatalf("loadgen longpoll: %v", err)
	}
	var res loadResult
	if err := json.Unmarshal(lp.stdout.Bytes(), &res); err != nil {
		tb.Fatalf("loadgen output %q: %v", lp.stdout.String(), err)
	}
	return res
}

// metric reads one unlabeled gauge or counter from the server's /metrics.
func metric(tb testing.TB, r *running, name string) float64 {
	tb.Helper()
	resp, err := r.client.Get(r.url + "/metrics")
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				tb.Fatalf("metric %s: %v", name, err)
			}
			return f
		}
	}
	tb.Fatalf("metric %s not found", name)
	return 0
}

// vmRSS is this process's resident set size in bytes, from /proc.
func vmRSS(tb testing.TB) int64 {
	tb.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		tb.Fatal(err)
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				tb.Fatal(err)
			}
			return kb << 10
		}
	}
	tb.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// processCPU is this process's CPU time (user and system).
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// loadAvg is /proc/loadavg's first three fields.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
