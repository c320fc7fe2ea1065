package download_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/updraft/updraft/internal/blob"
	"github.com/updraft/updraft/internal/clock"
	"github.com/updraft/updraft/internal/download"
)

type bundle struct {
	store   *blob.Disk
	content []byte
	info    blob.Info
	srv     *httptest.Server
}

// setup stores a random artifact of size bytes and serves it at / through
// download.Serve on a real loopback HTTP server.
func setup(t *testing.T, size int) bundle {
	t.Helper()
	store, err := blob.NewDisk(filepath.Join(t.TempDir(), "blobs"), clock.NewFake(time.Unix(1e9, 0)))
	if err != nil {
		t.Fatal(err)
	}
	content := make([]byte, size)
	if _, err := rand.Read(content); err != nil {
		t.Fatal(err)
	}
	info, err := store.Put(context.Background(), bytes.NewReader(content), int64(size)+1)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		obj, err := store.Open(r.Context(), info.Key)
		if err != nil {
			http.Error(w, "not found", http.StatusNotFound)
			return
		}
		defer obj.Close()
		download.Serve(w, r, obj, "gw-200/firmware v2.swu")
	}))
	t.Cleanup(srv.Close)
	return bundle{store: store, content: content, info: info, srv: srv}
}

func (b bundle) do(t *testing.T, method string, hdr map[string]string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, b.srv.URL, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := b.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func TestServe(t *testing.T) {
	t.Parallel()
	const size = 1<<20 + 3 // not a multiple of any buffer size
	b := setup(t, size)
	etag := `"` + b.info.Key + `"`
	n := strconv.Itoa(size)
	tests := []struct {
		name      string
		method    string
		hdr       map[string]string
		wantCode  int
		wantBody  []byte // nil: no body expected
		wantRange string // Content-Range
	}{
		{name: "full", method: "GET", wantCode: 200, wantBody: b.content},
		{name: "head", method: "HEAD", wantCode: 200},
		{name: "resume from middle", method: "GET", hdr: map[string]string{"Range": "bytes=524289-"},
			wantCode: 206, wantBody: b.content[524289:], wantRange: "bytes 524289-" + strconv.Itoa(size-1) + "/" + n},
		{name: "closed range", method: "GET", hdr: map[string]string{"Range": "bytes=10-19"},
			wantCode: 206, wantBody: b.content[10:20], wantRange: "bytes 10-19/" + n},
		{name: "suffix", method: "GET", hdr: map[string]string{"Range": "bytes=-100"},
			wantCode: 206, wantBody: b.content[size-100:], wantRange: "bytes " + strconv.Itoa(size-100) + "-" + strconv.Itoa(size-1) + "/" + n},
		{name: "last byte", method: "GET", hdr: map[string]string{"Range": "bytes=" + strconv.Itoa(size-1) + "-"},
			wantCode: 206, wantBody: b.content[size-1:], wantRange: "bytes " + strconv.Itoa(size-1) + "-" + strconv.Itoa(size-1) + "/" + n},
		{name: "end past size is clamped", method: "GET", hdr: map[string]string{"Range": "bytes=100-99999999"},
			wantCode: 206, wantBody: b.content[100:], wantRange: "bytes 100-" + strconv.Itoa(size-1) + "/" + n},
		{name: "range head", method: "HEAD", hdr: map[string]string{"Range": "bytes=100-"},
			wantCode: 206, wantRange: "bytes 100-" + strconv.Itoa(size-1) + "/" + n},
		{name: "start at size", method: "GET", hdr: map[string]string{"Range": "bytes=" + n + "-"},
			wantCode: 416, wantRange: "bytes */" + n},
		{name: "start past size", method: "GET", hdr: map[string]string{"Range": "bytes=99999999-"},
			wantCode: 416, wantRange: "bytes */" + n},
		{name: "garbage range", method: "GET", hdr: map[string]string{"Range": "bytes=abc"}, wantCode: 416},
		{name: "inverted range", method: "GET", hdr: map[string]string{"Range": "bytes=20-10"}, wantCode: 416},
		{name: "other unit", method: "GET", hdr: map[string]string{"Range": "items=0-1"}, wantCode: 416},
		{name: "if-range current etag", method: "GET", hdr: map[string]string{"Range": "bytes=1000-", "If-Range": etag},
			wantCode: 206, wantBody: b.content[1000:], wantRange: "bytes 1000-" + strconv.Itoa(size-1) + "/" + n},
		{name: "if-range stale etag", method: "GET", hdr: map[string]string{"Range": "bytes=1000-", "If-Range": `"0000"`},
			wantCode: 200, wantBody: b.content},
		{name: "if-range weak etag", method: "GET", hdr: map[string]string{"Range": "bytes=1000-", "If-Range": "W/" + etag},
			wantCode: 200, wantBody: b.content},
		{name: "if-range date", method: "GET", hdr: map[string]string{"Range": "bytes=1000-", "If-Range": "Sat, 01 Mar 2025 12:00:00 GMT"},
			wantCode: 200, wantBody: b.content},
		{name: "if-none-match current", method: "GET", hdr: map[string]string{"If-None-Match": etag}, wantCode: 304},
		{name: "if-none-match stale", method: "GET", hdr: map[string]string{"If-None-Match": `"0000"`}, wantCode: 200, wantBody: b.content},
		{name: "if-match stale", method: "GET", hdr: map[string]string{"If-Match": `"0000"`}, wantCode: 412},
		{name: "if-match current", method: "GET", hdr: map[string]string{"If-Match": etag}, wantCode: 200, wantBody: b.content},
		{name: "ranges beyond size ignored", method: "GET", hdr: map[string]string{"Range": "bytes=0-,0-"}, wantCode: 200, wantBody: b.content},
		{name: "too many ranges ignored", method: "GET", hdr: map[string]string{"Range": "bytes=" + manyRanges(download.MaxRanges+1)}, wantCode: 200, wantBody: b.content},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			resp, body := b.do(t, tt.method, tt.hdr)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status = %d, want %d (body %.100q)", resp.StatusCode, tt.wantCode, body)
			}
			if got := resp.Header.Get("Content-Range"); got != tt.wantRange {
				t.Errorf("Content-Range = %q, want %q", got, tt.wantRange)
			}
			if tt.wantBody != nil && !bytes.Equal(body, tt.wantBody) {
				t.Fatalf("body is %d bytes (sha256 %x), want %d bytes (sha256 %x)",
					len(body), sha256.Sum256(body), len(tt.wantBody), sha256.Sum256(tt.wantBody))
			}
			if tt.wantCode >= 300 {
				return
			}
			if tt.method == "HEAD" && len(body) != 0 {
				t.Errorf("HEAD returned %d body bytes", len(body))
			}
			wantLen := int64(size)
			if tt.wantCode == 206 {
				var first, last, total int64
				if _, err := fmt.Sscanf(tt.wantRange, "bytes %d-%d/%d", &first, &last, &total); err != nil {
					t.Fatal(err)
				}
				wantLen = last - first + 1
			}
			if resp.ContentLength != wantLen {
				t.Errorf("Content-Length = %d, want %d", resp.ContentLength, wantLen)
			}
			for k, want := range map[string]string{
				"Etag":                   etag,
				"Content-Type":           "application/octet-stream",
				"Accept-Ranges":          "bytes",
				"Cache-Control":          "private, no-transform",
				"X-Content-Type-Options": "nosniff",
				"Content-Disposition":    `attachment; filename="firmware_v2.swu"`,
				"Last-Modified":          "",
			} {
				if got := resp.Header.Get(k); got != want {
					t.Errorf("%s = %q, want %q", k, got, want)
				}
			}
		})
	}
}

func manyRanges(n int) string {
	parts := make([]string, n)
	for i := range parts {
		parts[i] = fmt.Sprintf("%d-%d", i*10, i*10)
	}
	return strings.Join(parts, ",")
}

func TestServeMultipleRanges(t *testing.T) {
	t.Parallel()
	b := setup(t, 1000)
	resp, body := b.do(t, "GET", map[string]string{"Range": "bytes=0-9,500-509,-5"})
	if resp.StatusCode != 206 {
		t.Fatalf("status = %d, want 206", resp.StatusCode)
	}
	mt, params, err := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/byteranges" {
		t.Fatalf("Content-Type = %q (%v), want multipart/byteranges", resp.Header.Get("Content-Type"), err)
	}
	if resp.ContentLength != int64(len(body)) {
		t.Errorf("Content-Length = %d, body %d bytes", resp.ContentLength, len(body))
	}
	mr := multipart.NewReader(bytes.NewReader(body), params["boundary"])
	want := []struct {
		rng  string
		data []byte
	}{
		{"bytes 0-9/1000", b.content[0:10]},
		{"bytes 500-509/1000", b.content[500:510]},
		{"bytes 995-999/1000", b.content[995:]},
	}
	for i, w := range want {
		part, err := mr.NextPart()
		if err != nil {
			t.Fatalf("part %d: %v", i, err)
		}
		if got := part.Header.Get("Content-Range"); got != w.rng {
			t.Errorf("part %d Content-Range = %q, want %q", i, got, w.rng)
		}
		if got := part.Header.Get("Content-Type"); got != "application/octet-stream" {
			t.Errorf("part %d Content-Type = %q", i, got)
		}
		data, err := io.ReadAll(part)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(data, w.data) {
			t.Errorf("part %d data differs", i)
		}
	}
	if _, err := mr.NextPart(); err != io.EOF {
		t.Fatalf("more than %d parts (err %v)", len(want), err)
	}
}

// TestServeResumeAfterDrop cuts a download off part way, as a flaky link
// would, and resumes it with Range and If-Range the way updraft-agent and
// curl-based clients do. The joined bytes must hash to the artifact.
func TestServeResumeAfterDrop(t *testing.T) {
	t.Parallel()
	b := setup(t, 3<<20)
	resp, err := b.srv.Client().Get(b.srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	etag := resp.Header.Get("Etag")
	got := make([]byte, 1234567)
	if _, err := io.ReadFull(resp.Body, got); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close() // the link drops

	resp2, rest := b.do(t, "GET", map[string]string{"Range": fmt.Sprintf("bytes=%d-", len(got)), "If-Range": etag})
	if resp2.StatusCode != 206 {
		t.Fatalf("resume status = %d, want 206", resp2.StatusCode)
	}
	if len(rest) != len(b.content)-len(got) {
		t.Fatalf("resume returned %d bytes, want exactly the remaining %d", len(rest), len(b.content)-len(got))
	}
	if sum := fmt.Sprintf("%x", sha256.Sum256(append(got, rest...))); sum != b.info.SHA256 {
		t.Fatalf("resumed download hashes to %s, want %s", sum, b.info.SHA256)
	}
}

func TestServeRejectsOtherMethods(t *testing.T) {
	t.Parallel()
	b := setup(t, 10)
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		resp, _ := b.do(t, m, nil)
		if resp.StatusCode != http.StatusMethodNotAllowed || resp.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: status %d Allow %q, want 405 and GET, HEAD", m, resp.StatusCode, resp.Header.Get("Allow"))
		}
	}
}

func TestServeEmptyArtifact(t *testing.T) {
	t.Parallel()
	b := setup(t, 0)
	// net/http ignores a Range on an empty body rather than answering 416;
	// clients that always send Range get the (empty) artifact.
	for _, hdr := range []map[string]string{nil, {"Range": "bytes=0-"}} {
		resp, body := b.do(t, "GET", hdr)
		if resp.StatusCode != 200 || len(body) != 0 || resp.ContentLength != 0 {
			t.Errorf("Range %q: status %d, %d bytes, Content-Length %d; want 200 and empty", hdr["Range"], resp.StatusCode, len(body), resp.ContentLength)
		}
	}
}

func TestServeOmitsEmptyFilename(t *testing.T) {
	t.Parallel()
	b := setup(t, 10)
	obj, err := b.store.Open(context.Background(), b.info.Key)
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	rec := httptest.NewRecorder()
	download.Serve(rec, httptest.NewRequest("GET", "/", nil), obj, "../")
	if got := rec.Header().Get("Content-Disposition"); got != "" {
		t.Fatalf("Content-Disposition = %q, want none", got)
	}
	if rec.Code != 200 || !bytes.Equal(rec.Body.Bytes(), b.content) {
		t.Fatalf("status %d, %d bytes", rec.Code, rec.Body.Len())
	}
}

// fromRecorder records what net/http's copy hands to the connection, the
// way *net.TCPConn.ReadFrom sees it when it decides on sendfile.
type fromRecorder struct {
	*httptest.ResponseRecorder
	sources []io.Reader
}

func (f *fromRecorder) ReadFrom(r io.Reader) (int64, error) {
	f.sources = append(f.sources, r)
	return io.Copy(f.ResponseRecorder, r)
}

// TestServeHandsFileToSendfile checks the zero-copy path: the reader that
// reaches the connection must be the open file (inside the LimitedReader
// that bounds a range), since the kernel can only sendfile from a file
// descriptor.
func TestServeHandsFileToSendfile(t *testing.T) {
	t.Parallel()
	b := setup(t, 100000)
	for _, rng := range []string{"", "bytes=50000-"} {
		obj, err := b.store.Open(context.Background(), b.info.Key)
		if err != nil {
			t.Fatal(err)
		}
		rec := &fromRecorder{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest("GET", "/", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		download.Serve(rec, req, obj, "fw.bin")
		obj.Close()
		if len(rec.sources) != 1 {
			t.Fatalf("Range %q: body copied with %d ReadFrom calls, want 1", rng, len(rec.sources))
		}
		src := rec.sources[0]
		if lr, ok := src.(*io.LimitedReader); ok {
			src = lr.R
		}
		if _, ok := src.(*os.File); !ok {
			t.Fatalf("Range %q: connection got a %T, want *os.File", rng, src)
		}
		if _, ok := src.(syscall.Conn); !ok {
			t.Fatalf("Range %q: %T has no file descriptor", rng, src)
		}
	}
}
