package server

import (
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/updraft/updraft/internal/clock"
)

// readFromRecorder records what reaches the connection's ReaderFrom, the
// method the real connection implements with sendfile(2).
type readFromRecorder struct {
	*httptest.ResponseRecorder
	sources []io.Reader
}

func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.sources = append(r.sources, src)
	return io.Copy(r.ResponseRecorder, src)
}

// TestMetricsKeepSendfile checks that the per-route metrics wrapper hands
// a file body to the connection's ReaderFrom unchanged, so artifact
// downloads through the full server stay zero-copy.
func TestMetricsKeepSendfile(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "artifact")
	if err := os.WriteFile(p, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	m := newHTTPMetrics(prometheus.NewRegistry(), clock.NewFake(time.Unix(0, 0)))
	h := m.wrap(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(p)
		if err != nil {
			t.Error(err)
			return
		}
		defer f.Close()
		http.ServeContent(w, r, "artifact", time.Time{}, f)
	}), func(*http.Request) string { return "test" })
	for _, rng := range []string{"", "bytes=1000-"} {
		rec := &readFromRecorder{ResponseRecorder: httptest.NewRecorder()}
		req := httptest.NewRequest("GET", "/", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		h.ServeHTTP(rec, req)
		if len(rec.sources) != 1 {
			t.Fatalf("Range %q: %d ReadFrom calls reached the connection, want 1", rng, len(rec.sources))
		}
		src := rec.sources[0]
		if lr, ok := src.(*io.LimitedReader); ok {
			src = lr.R
		}
		if _, ok := src.(*os.File); !ok {
			t.Fatalf("Range %q: the connection got a %T, want the *os.File", rng, src)
		}
		if want := map[string]int{"": 200, "bytes=1000-": 206}[rng]; rec.Code != want {
			t.Fatalf("Range %q: status %d, want %d", rng, rec.Code, want)
		}
	}
}
