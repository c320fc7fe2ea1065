// Package tuffetch fetches TUF metadata for the device-side verifier
// (internal/verifier) over Updraft's native device API: GET
// <server>/api/device/v1/tuf/<name> with the device's bearer token.
//
// It exists so that the verifier itself never imports net/http. Invariants:
//   - A missing file (404) is go-tuf's *metadata.ErrDownloadHTTP with
//     StatusCode 404, which ends the verifier's walk of the root chain;
//     every other non-200 answer is the same error type with its status.
//   - At most maxLength bytes of a body are read, whatever the server's
//     Content-Length says; the verifier asks for one byte more than its
//     limit and refuses a longer file itself.
//   - Only plain metadata file names are requested: nothing with a path
//     separator or "..".
//
// A Fetcher is safe for concurrent use if its Client and Token are.
package tuffetch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/deviceapi/wire"
)

// maxNameLen bounds a metadata file name.
const maxNameLen = 128

// drainLimit is how much of an error body is read so the connection can
// be reused.
const drainLimit = 4 << 10

// Fetcher implements verifier.Fetcher over the device API.
type Fetcher struct {
	// BaseURL is the server's base URL, e.g. "https://updates.example.com".
	BaseURL string
	// Token returns the device token to send; it is called for every
	// request, so it may renew an expired token. nil sends none.
	Token func(ctx context.Context) (string, error)
	// Client carries the requests (mTLS, proxies); nil: a client with a
	// 60 second timeout.
	Client *http.Client
	// Path is where the server serves metadata [wire.MetadataPrefix].
	Path string
	// UserAgent, if set, is sent with every request.
	UserAgent string
}

var defaultClient = &http.Client{Timeout: 60 * time.Second}

// Get returns the named metadata file ("timestamp.json", "3.root.json",
// …), at most maxLength bytes of it.
func (f *Fetcher) Get(ctx context.Context, name string, maxLength int64) ([]byte, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	if maxLength <= 0 {
		return nil, fmt.Errorf("fetch %s: max length %d", name, maxLength)
	}
	path := f.Path
	if path == "" {
		path = wire.MetadataPrefix
	}
	u := strings.TrimSuffix(f.BaseURL, "/") + path + url.PathEscape(name)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	req.Header.Set("Accept", "application/json")
	if f.UserAgent != "" {
		req.Header.Set("User-Agent", f.UserAgent)
	}
	if f.Token != nil {
		tok, err := f.Token(ctx)
		if err != nil {
			return nil, fmt.Errorf("fetch %s: device token: %w", name, err)
		}
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	c := f.Client
	if c == nil {
		c = defaultClient
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, drainLimit))
		return nil, &metadata.ErrDownloadHTTP{StatusCode: resp.StatusCode, URL: u}
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxLength))
	if err != nil {
		return nil, fmt.Errorf("fetch %s: %w", name, err)
	}
	return b, nil
}

var errBadName = errors.New("not a metadata file name")

func checkName(name string) error {
	if name == "" || len(name) > maxNameLen || name == "." || name == ".." || strings.Contains(name, "..") {
		return fmt.Errorf("fetch %q: %w", name, errBadName)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '.' || c == '-' || c == '_') {
			return fmt.Errorf("fetch %q: %w", name, errBadName)
		}
	}
	return nil
}
