package downloadbench

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/download"
	"github.com/updraft/updraft/internal/signedurl"
	"github.com/updraft/updraft/internal/testenv"
)

// fixture is one artifact served by both servers.
type fixture struct {
	info     blob.Info
	dataPath string
	client   *http.Client
	updraft  string // signed download URL on the Updraft handler
	nginx    string // URL of the same file on nginx
}

// newFixture stores size bytes of deterministic pseudo-random content and
// starts both servers. It skips (or fails with UPDRAFT_REQUIRE_SERVICES=1)
// when nginx is not installed.
func newFixture(tb testing.TB, size int64) *fixture {
	tb.Helper()
	nginxBin := requireNginx(tb)

	store, err := blob.NewDisk(filepath.Join(tb.TempDir(), "blobs"), clock.Real{})
	if err != nil {
		tb.Fatal(err)
	}
	src := io.LimitReader(rand.NewChaCha8([32]byte{'u', 'p', 'd', 'r', 'a', 'f', 't'}), size)
	info, err := store.Put(context.Background(), src, size)
	if err != nil {
		tb.Fatal(err)
	}
	dataPath, err := store.DataPath(info.Key)
	if err != nil {
		tb.Fatal(err)
	}

	f := &fixture{info: info, dataPath: dataPath, client: newClient()}
	f.updraft = startUpdraft(tb, store, info.Key)
	rel, err := filepath.Rel(store.Root(), dataPath)
	if err != nil {
		tb.Fatal(err)
	}
	f.nginx = startNginx(tb, nginxBin, store.Root()) + "/" + filepath.ToSlash(rel)
	return f
}

// requireNginx returns the nginx binary, or skips the caller (fails it
// with UPDRAFT_REQUIRE_SERVICES=1).
func requireNginx(tb testing.TB) string {
	tb.Helper()
	// Debian installs nginx in /usr/sbin, which is not on every PATH.
	if _, err := exec.LookPath("nginx"); err != nil {
		if _, serr := os.Stat("/usr/sbin/nginx"); serr == nil {
			return "/usr/sbin/nginx"
		}
	}
	return testenv.Command(tb, "nginx", "run scripts/install-nginx.sh; the download benchmark compares against it")
}

// newClient returns the keep-alive client used against both servers.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{
		DisableCompression:  true,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
	}}
}

// startUpdraft serves the artifact the way the device API does: verify the
// signed URL for the artifact in the path, open the blob, serve it.
func startUpdraft(tb testing.TB, store blob.Store, key string) string {
	tb.Helper()
	clk := clock.Real{}
	k, err := signedurl.GenerateKey("bench")
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := signedurl.NewSigner(clk, k)
	if err != nil {
		tb.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /artifacts/{key}", func(w http.ResponseWriter, r *http.Request) {
		key := r.PathValue("key")
		if _, err := signer.Verify(r.URL.Query(), key); err != nil {
			http.Error(w, "forbidden", http.StatusForbidden)
			return
		}
		obj, err := store.Open(r.Context(), key)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer obj.Close()
		download.Serve(w, r, obj, "bench.img")
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	tb.Cleanup(func() { srv.Close() })

	q, err := signer.Sign(signedurl.Params{Tenant: "default", Device: "bench-device", Artifact: key}, clk.Now().Add(time.Hour))
	if err != nil {
		tb.Fatal(err)
	}
	return "http://" + ln.Addr().String() + "/artifacts/" + key + "?" + q
}

const nginxConf = `daemon off;
master_process off;
worker_processes 1;
pid "{{prefix}}/nginx.pid";
error_log "{{prefix}}/error.log" warn;
events { worker_connections 64; }
http {
	access_log off;
	sendfile on;
	tcp_nopush on;
	keepalive_requests 100000;
	keepalive_timeout 60s;
	types { }
	default_type application/octet-stream;
	client_body_temp_path "{{prefix}}/client_body";
	proxy_temp_path "{{prefix}}/proxy";
	fastcgi_temp_path "{{prefix}}/fastcgi";
	uwsgi_temp_path "{{prefix}}/uwsgi";
	scgi_temp_path "{{prefix}}/scgi";
	server {
		listen 127.0.0.1:{{port}};
		root "{{root}}";
		location / { }
	}
}
`

// startNginx runs a private single-process nginx serving root and returns
// its base URL. It is stopped when the test or benchmark ends.
func startNginx(tb testing.TB, bin, root string) string {
	tb.Helper()
	prefix := tb.TempDir()
	port := freePort(tb)
	conf := strings.NewReplacer("{{prefix}}", prefix, "{{root}}", root, "{{port}}", strconv.Itoa(port)).Replace(nginxConf)
	confPath := filepath.Join(prefix, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o600); err != nil {
		tb.Fatal(err)
	}
	var out bytes.Buffer
	// -e keeps nginx away from the distribution's log file before it has
	// read the configuration.
	cmd := exec.Command(bin, "-p", prefix, "-c", confPath, "-e", filepath.Join(prefix, "error.log"))
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start nginx: %v", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	tb.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGQUIT) // graceful: finish and exit
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
	})

	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			return "http://" + addr
		}
		select {
		case err := <-exited:
			log, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
			tb.Fatalf("nginx exited before listening (%v): %s%s", err, out.Bytes(), log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			tb.Fatalf("nginx not listening on %s after 10s: %s", addr, out.Bytes())
		}
	}
}

func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// discard hides io.Discard's ReaderFrom, which reads in 8 KiB steps, so the
// client copies with a large buffer and is not the bottleneck.
type discard struct{ io.Writer }

// get downloads url with a GET carrying hdr into w and returns the response
// (body closed) and the byte count.
func (f *fixture) get(url string, hdr map[string]string, w io.Writer, buf []byte) (*http.Response, int64, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, 0, err
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return nil, 0, err
	}
	defer resp.Body.Close()
	n, err := io.CopyBuffer(w, resp.Body, buf)
	if err != nil {
		return resp, n, fmt.Errorf("read body: %w", err)
	}
	return resp, n, nil
}

// fetchAll downloads url completely and checks status and length.
func (f *fixture) fetchAll(url string, buf []byte) error {
	resp, n, err := f.get(url, nil, discard{io.Discard}, buf)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != f.info.Size {
		return fmt.Errorf("GET %s: status %d, %d bytes; want 200, %d bytes", url, resp.StatusCode, n, f.info.Size)
	}
	return nil
}

// checkResume asks for the second half of the artifact with Range and
// If-Range, as a client resuming a dropped download does, and checks that
// exactly the remaining bytes arrive and complete the artifact's SHA-256.
func (f *fixture) checkResume(url string, offset int64) error {
	head, err := f.client.Head(url)
	if err != nil {
		return err
	}
	head.Body.Close()
	etag := head.Header.Get("Etag")
	if head.StatusCode != http.StatusOK || etag == "" || head.Header.Get("Accept-Ranges") != "bytes" {
		return fmt.Errorf("HEAD: status %d, ETag %q, Accept-Ranges %q", head.StatusCode, etag, head.Header.Get("Accept-Ranges"))
	}

	h := sha256.New()
	file, err := os.Open(f.dataPath)
	if err != nil {
		return err
	}
	_, err = io.CopyN(h, file, offset)
	file.Close()
	if err != nil {
		return fmt.Errorf("hash first %d bytes: %w", offset, err)
	}
	hdr := map[string]string{"Range": fmt.Sprintf("bytes=%d-", offset), "If-Range": etag}
	resp, n, err := f.get(url, hdr, h, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	want := fmt.Sprintf("bytes %d-%d/%d", offset, f.info.Size-1, f.info.Size)
	if resp.StatusCode != http.StatusPartialContent || resp.Header.Get("Content-Range") != want {
		return fmt.Errorf("resume: status %d, Content-Range %q; want 206, %q", resp.StatusCode, resp.Header.Get("Content-Range"), want)
	}
	if n != f.info.Size-offset {
		return fmt.Errorf("resume from %d returned %d bytes, want exactly %d", offset, n, f.info.Size-offset)
	}
	if sum := hex.EncodeToString(h.Sum(nil)); sum != f.info.SHA256 {
		return fmt.Errorf("resumed download hashes to %s, want %s", sum, f.info.SHA256)
	}

	// A stale validator must get the whole artifact, not a splice of two.
	hdr["If-Range"] = `"stale"`
	resp, n, err = f.get(url, hdr, discard{io.Discard}, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || n != f.info.Size {
		return fmt.Errorf("stale If-Range: status %d, %d bytes; want 200, %d", resp.StatusCode, n, f.info.Size)
	}
	return nil
}

var errNoSamples = errors.New("no samples")

// throughput returns MB/s (10^6 bytes) for n downloads of size bytes in d.
func throughput(size int64, n int, d time.Duration) (float64, error) {
	if n == 0 || d <= 0 {
		return 0, errNoSamples
	}
	return float64(size) * float64(n) / d.Seconds() / 1e6, nil
}
