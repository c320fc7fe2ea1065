package checkinbench

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/deviceapi"
	"github.com/updraft/updraft/internal/deviceapi/wire"
	"github.com/updraft/updraft/internal/identity"
	"github.com/updraft/updraft/internal/semver"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/store"
	"github.com/updraft/updraft/internal/store/postgres"
	"github.com/updraft/updraft/internal/store/sqlite"
	"github.com/updraft/updraft/internal/store/sqlstore"
	"github.com/updraft/updraft/internal/testenv"
)

const (
	deviceCount = 100_000
	// clients is the number of keep-alive connections sending check-ins.
	clients = 8
	// insertBatch rows per INSERT statement (14 parameters each, within
	// both databases' parameter limits).
	insertBatch = 1000
)

// checkInBody is what every device reports: exactly what is stored, so
// the check-in writes nothing.
var checkInBody = []byte(`{"version":"1.0.0","state":"idle","attributes":{"kernel":"6.1.0"}}`)

// fixture is a store holding deviceCount accepted devices and the device
// API serving it.
type fixture struct {
	api    *deviceapi.API
	tokens []string
}

func BenchmarkCheckIn(b *testing.B) {
	for _, backend := range []string{"sqlite", "postgres"} {
		b.Run(backend, func(b *testing.B) {
			fx := newFixture(b, backend)
			for _, useTLS := range []bool{false, true} {
				transport := "plain"
				if useTLS {
					transport = "tls"
				}
				api := target{name: "device API"}
				api.url, api.client = serve(b, fx.api.Handler(), useTLS)
				size := responseSize(b, api.url, api.client, fx.tokens[0])
				bare := target{name: "bare net/http"}
				bare.url, bare.client = serve(b, bareHandler(size), useTLS)
				var res comparison
				b.Run(transport, func(b *testing.B) { res = compare(b, &api, &bare, fx.tokens) })
				fmt.Printf("checkin %s/%s: %d devices, %d keep-alive clients, %d-byte responses\n"+
					"  device API    %8.0f req/s  p99 %7.3f ms%s\n"+
					"  bare net/http %8.0f req/s  p99 %7.3f ms%s\n"+
					"  ratio %.2f (goal on plain HTTP: >= 0.5)%s\n",
					backend, transport, deviceCount, clients, size,
					res.api.rps, ms(res.api.p99), res.api.cpuText(), res.bare.rps, ms(res.bare.p99), res.bare.cpuText(),
					res.api.rps/res.bare.rps, res.cpuRatioText(backend))
			}
		})
	}
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func newFixture(b *testing.B, backend string) *fixture {
	b.Helper()
	ctx := context.Background()
	var s *sqlstore.Store
	var err error
	switch backend {
	case "sqlite":
		s, err = sqlite.Open(filepath.Join(b.TempDir(), "updraft.db"), nil)
	case "postgres":
		s, err = postgres.Open(ctx, testenv.Postgres(b), nil)
	}
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	c := clock.Real{}
	if _, err := s.Migrate(ctx, sqlstore.MigrateOptions{Now: c.Now()}); err != nil {
		b.Fatal(err)
	}
	ids := insertDevices(b, s, c.Now())

	key, err := identity.GenerateTokenKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	issuer := &identity.Issuer{Keys: identity.TokenKeys{Current: key}, Clock: c, TTL: 24 * time.Hour}
	fx := &fixture{tokens: make([]string, len(ids))}
	for i, id := range ids {
		if fx.tokens[i], _, err = issuer.Issue(identity.Claims{Tenant: store.DefaultTenant, DeviceID: id}); err != nil {
			b.Fatal(err)
		}
	}
	blobs, err := blob.NewDisk(filepath.Join(b.TempDir(), "blobs"), c)
	if err != nil {
		b.Fatal(err)
	}
	ukey, err := signedurl.GenerateKey("bench")
	if err != nil {
		b.Fatal(err)
	}
	urls, err := signedurl.NewSigner(c, ukey)
	if err != nil {
		b.Fatal(err)
	}
	fx.api, err = deviceapi.New(deviceapi.Config{
		Store: s, Blobs: blobs, Tokens: issuer, URLs: urls, Clock: c,
		PublicURL: "https://updates.example.com",
	})
	if err != nil {
		b.Fatal(err)
	}
	if err := fx.api.Start(ctx); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(fx.api.Stop)
	return fx
}

// insertDevices registers deviceCount accepted devices in one transaction.
func insertDevices(b *testing.B, s *sqlstore.Store, now time.Time) []string {
	b.Helper()
	ctx := context.Background()
	start := time.Now()
	key := semver.Key(semver.MustParse("1.0.0"))
	us := now.UnixMicro()
	ids := make([]string, deviceCount)
	tx, err := s.DB().BeginTx(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer tx.Rollback()
	row := "(?, ?, ?, 'accepted', 'native', 'gw-200', 'B', 'eu-west', '', '1.0.0', ?, '{\"kernel\":\"6.1.0\"}', ?, ?)"
	for lo := 0; lo < deviceCount; lo += insertBatch {
		hi := min(lo+insertBatch, deviceCount)
		args := make([]any, 0, 6*(hi-lo))
		for i := lo; i < hi; i++ {
			var raw [16]byte
			if _, err := rand.Read(raw[:]); err != nil {
				b.Fatal(err)
			}
			ids[i] = hex.EncodeToString(raw[:])
			args = append(args, store.DefaultTenant, ids[i], "SN-"+strconv.Itoa(i), key, us, us)
		}
		q := `INSERT INTO devices (tenant_id, id, serial, state, protocol, device_type, hw_rev, region, time_zone,
			version, version_key, attributes, created_at, updated_at) VALUES ` + strings.TrimSuffix(strings.Repeat(row+", ", hi-lo), ", ")
		if _, err := tx.ExecContext(ctx, s.Dialect().Rebind(q), args...); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	if s.Dialect().Name() == "sqlite" {
		// Move the bulk insert out of the write-ahead log, as SQLite's
		// automatic checkpoint would soon do, so reads do not pay for it.
		if _, err := s.DB().ExecContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`); err != nil {
			b.Fatal(err)
		}
	}
	n, err := s.CountDevices(ctx, store.DefaultTenant, nil)
	if err != nil || n != deviceCount {
		b.Fatalf("%d devices registered (err %v), want %d", n, err, deviceCount)
	}
	b.Logf("registered %d devices in %s", deviceCount, time.Since(start).Round(time.Millisecond))
	return ids
}

// serve starts h on a loopback port, over TLS with a self-signed
// certificate if asked, and returns its URL and a keep-alive client for
// it. The TLS client keeps a session cache, and serve checks that a new
// connection resumes the session.
func serve(b *testing.B, h http.Handler, useTLS bool) (string, *http.Client) {
	b.Helper()
	srv := httptest.NewUnstartedServer(h)
	if useTLS {
		srv.StartTLS()
	} else {
		srv.Start()
	}
	b.Cleanup(srv.Close)
	tr := &http.Transport{MaxIdleConns: clients, MaxIdleConnsPerHost: clients, MaxConnsPerHost: clients, IdleConnTimeout: time.Minute}
	if useTLS {
		tr.TLSClientConfig = srv.Client().Transport.(*http.Transport).TLSClientConfig.Clone()
		tr.TLSClientConfig.ClientSessionCache = tls.NewLRUClientSessionCache(clients)
	}
	c := &http.Client{Transport: tr}
	b.Cleanup(tr.CloseIdleConnections)
	if useTLS {
		for i, want := range []bool{false, true} {
			resp, err := c.Get(srv.URL + "/")
			if err != nil {
				b.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.TLS.DidResume != want {
				b.Fatalf("TLS connection %d: resumed = %v, want %v", i+1, resp.TLS.DidResume, want)
			}
			tr.CloseIdleConnections()
		}
	}
	return srv.URL, c
}

// responseSize checks in once, checks the answer is the no-work one, and
// returns the body size.
func responseSize(b *testing.B, base string, c *http.Client, token string) int {
	b.Helper()
	status, body, err := checkIn(c, base, token)
	if err != nil || status != http.StatusOK {
		b.Fatalf("check-in: %d %s %v", status, body, err)
	}
	var ci wire.CheckInResponse
	if err := json.Unmarshal(body, &ci); err != nil || ci.Assignment != nil || ci.Cancel != nil {
		b.Fatalf("check-in answer %s: %v", body, err)
	}
	return len(body)
}

// bareHandler reads the request body and answers with size bytes of JSON,
// the same headers the device API sends, and nothing else.
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

func checkIn(c *http.Client, base, token string) (int, []byte, error) {
	req, err := http.NewRequest("POST", base+wire.PathCheckIn, bytes.NewReader(checkInBody))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// target is one server under load.
type target struct {
	name   string
	url    string
	client *http.Client
}

type result struct {
	rps float64
	p99 time.Duration
	// cpu is the process's CPU time per request (client and server side
	// together), 0 if unknown.
	cpu time.Duration
}

func (r result) cpuText() string {
	if r.cpu == 0 {
		return ""
	}
	return fmt.Sprintf("  CPU %5.1f µs/req", float64(r.cpu)/float64(time.Microsecond))
}

type comparison struct{ api, bare result }

// cpuRatioText compares CPU per request, which background load on a
// shared machine disturbs much less than requests/s. It counts this
// process only: PostgreSQL's own CPU is not in it.
func (c comparison) cpuRatioText(backend string) string {
	if c.api.cpu == 0 || c.bare.cpu == 0 {
		return ""
	}
	note := ""
	if backend == "postgres" {
		note = ", not counting the PostgreSQL server"
	}
	return fmt.Sprintf("; CPU per request bare/API %.2f%s", float64(c.bare.cpu)/float64(c.api.cpu), note)
}

// chunk is how many requests one side sends before the other side takes
// over. Alternating in small chunks exposes both to the same background
// load, which keeps the ratio meaningful on a busy machine.
const chunk = 2000

// compare sends b.N check-ins to each target, alternating in chunks, and
// reports each side's throughput, p99 latency and CPU per request, and
// their ratio.
func compare(b *testing.B, api, bare *target, tokens []string) comparison {
	var apiLat, bareLat []time.Duration
	var apiTime, bareTime, apiCPU, bareCPU time.Duration
	cpuKnown := true
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		d, cpu, ok, lat := load(b, api, tokens, done, n)
		apiTime += d
		apiCPU += cpu
		cpuKnown = cpuKnown && ok
		apiLat = append(apiLat, lat...)
		d, cpu, ok, lat = load(b, bare, tokens, done, n)
		bareTime += d
		bareCPU += cpu
		cpuKnown = cpuKnown && ok
		bareLat = append(bareLat, lat...)
	}
	b.StopTimer()
	c := comparison{api: summarize(apiLat, apiTime), bare: summarize(bareLat, bareTime)}
	if cpuKnown {
		c.api.cpu = apiCPU / time.Duration(len(apiLat))
		c.bare.cpu = bareCPU / time.Duration(len(bareLat))
	}
	b.ReportMetric(c.api.rps, "api-req/s")
	b.ReportMetric(c.bare.rps, "bare-req/s")
	b.ReportMetric(c.api.rps/c.bare.rps, "ratio")
	b.ReportMetric(float64(c.api.p99.Microseconds()), "api-p99-µs")
	b.ReportMetric(float64(c.bare.p99.Microseconds()), "bare-p99-µs")
	if cpuKnown {
		b.ReportMetric(float64(c.api.cpu.Nanoseconds())/1e3, "api-cpu-µs/req")
		b.ReportMetric(float64(c.bare.cpu.Nanoseconds())/1e3, "bare-cpu-µs/req")
	}
	return c
}

func summarize(lat []time.Duration, total time.Duration) result {
	slices.Sort(lat)
	return result{rps: float64(len(lat)) / total.Seconds(), p99: lat[(len(lat)*99)/100]}
}

// load sends n check-ins from `clients` goroutines, round-robin over the
// devices starting at device first, and returns the wall time, the
// process's CPU time (ok false if unknown) and each request's latency.
func load(b *testing.B, t *target, tokens []string, first, n int) (wall, cpu time.Duration, ok bool, lat []time.Duration) {
	var next atomic.Int64
	var mu sync.Mutex
	var failure string
	lats := make([][]time.Duration, clients)
	var wg sync.WaitGroup
	cpu0, ok0 := processCPU()
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				t0 := time.Now()
				status, body, err := checkIn(t.client, t.url, tokens[(first+i)%len(tokens)])
				lats[w] = append(lats[w], time.Since(t0))
				if err != nil || status != http.StatusOK {
					mu.Lock()
					failure = fmt.Sprintf("%s: check-in %d: %d %s %v", t.name, first+i, status, body, err)
					mu.Unlock()
					return
				}
			}
		}()
	}
	wg.Wait()
	wall = time.Since(start)
	cpu1, ok1 := processCPU()
	if failure != "" {
		b.Fatal(failure)
	}
	return wall, cpu1 - cpu0, ok0 && ok1, slices.Concat(lats...)
}
