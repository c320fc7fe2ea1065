package tuffetch_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/tuffetch"
)

func TestGet(t *testing.T) {
	t.Parallel()
	files := map[string][]byte{
		"timestamp.json": []byte(`{"signed":{"_type":"timestamp"}}`),
		"1.root.json":    []byte(`{"signed":{"_type":"root"}}`),
		"9.huge.json":    bytes.Repeat([]byte("x"), 1<<20),
	}
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if r.Header.Get("Authorization") != "Bearer dev-token" {
			http.Error(w, `{"error":{"code":"unauthorized"}}`, http.StatusUnauthorized)
			return
		}
		if r.Header.Get("User-Agent") != "updraft-agent/test" {
			t.Errorf("user agent %q", r.Header.Get("User-Agent"))
		}
		name, ok := strings.CutPrefix(r.URL.Path, "/api/device/v1/tuf/")
		if !ok {
			http.Error(w, "wrong path", http.StatusTeapot)
			return
		}
		if name == "5.broken.json" {
			http.Error(w, `{"error":{"code":"internal"}}`, http.StatusInternalServerError)
			return
		}
		b, ok := files[name]
		if !ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`{"error":{"code":"not_found","message":"no metadata file"}}`))
			return
		}
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	f := &tuffetch.Fetcher{BaseURL: srv.URL + "/", Token: func(context.Context) (string, error) { return "dev-token", nil },
		Client: srv.Client(), UserAgent: "updraft-agent/test"}
	ctx := context.Background()

	b, err := f.Get(ctx, "timestamp.json", 1024)
	if err != nil || !bytes.Equal(b, files["timestamp.json"]) {
		t.Fatalf("timestamp.json = %q, %v", b, err)
	}
	// The next root does not exist: go-tuf's 404, which ends the walk.
	_, err = f.Get(ctx, "2.root.json", 1024)
	var httpErr *metadata.ErrDownloadHTTP
	if !errors.As(err, &httpErr) || httpErr.StatusCode != 404 {
		t.Fatalf("missing root: %v, want ErrDownloadHTTP 404", err)
	}
	_, err = f.Get(ctx, "5.broken.json", 1024)
	if !errors.As(err, &httpErr) || httpErr.StatusCode != 500 {
		t.Fatalf("server error: %v, want ErrDownloadHTTP 500", err)
	}
	// A body longer than asked for is cut at maxLength: the verifier asks
	// for limit+1 bytes and refuses the file itself.
	b, err = f.Get(ctx, "9.huge.json", 1001)
	if err != nil || len(b) != 1001 {
		t.Fatalf("huge file: %d bytes, %v; want 1001", len(b), err)
	}
	// Names that are not plain file names never reach the server.
	before := requests.Load()
	for _, name := range []string{"", "../1.root.json", "a/b.json", "..", `a\b.json`, "x?y.json", strings.Repeat("a", 200)} {
		if _, err := f.Get(ctx, name, 1024); err == nil {
			t.Errorf("name %q was fetched", name)
		}
	}
	if requests.Load() != before {
		t.Fatal("a bad name was sent to the server")
	}
	// The token is asked for on every request, and its failure stops it.
	bad := *f
	bad.Token = func(context.Context) (string, error) { return "", errors.New("enrollment pending") }
	if _, err := bad.Get(ctx, "timestamp.json", 1024); err == nil || !strings.Contains(err.Error(), "enrollment pending") {
		t.Fatalf("token failure: %v", err)
	}
	wrong := *f
	wrong.Token = func(context.Context) (string, error) { return "other", nil }
	if _, err := wrong.Get(ctx, "timestamp.json", 1024); !errors.As(err, &httpErr) || httpErr.StatusCode != 401 {
		t.Fatalf("wrong token: %v", err)
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := f.Get(canceled, "timestamp.json", 1024); !errors.Is(err, context.Canceled) {
		t.Fatalf("canceled: %v", err)
	}
}
