package client

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/updraft/updraft/internal/store"
)

// NewRelease is the body of a release creation: a draft with no artifacts.
type NewRelease struct {
	Version         string   `json:"version"`
	Notes           string   `json:"notes,omitempty"`
	SecurityVersion int64    `json:"security_version,omitempty"`
	Severity        string   `json:"severity,omitempty"`
	CVEs            []string `json:"cves,omitempty"`
}

// CreateRelease creates a draft release.
func (c *Client) CreateRelease(ctx context.Context, r NewRelease) (store.Release, error) {
	var out store.Release
	err := c.call(ctx, http.MethodPost, nil, r, &out, "releases")
	return out, err
}

// Release returns a release by id or by version.
func (c *Client) Release(ctx context.Context, idOrVersion string) (store.Release, error) {
	var out store.Release
	err := c.call(ctx, http.MethodGet, nil, nil, &out, "releases", idOrVersion)
	return out, err
}

// ListReleases returns one page of releases.
func (c *Client) ListReleases(ctx context.Context, o ListOptions) (List[store.Release], error) {
	var l List[store.Release]
	err := c.call(ctx, http.MethodGet, o.values(), nil, &l, "releases")
	return l, err
}

// DeleteRelease deletes a draft release and the artifact content only it used.
func (c *Client) DeleteRelease(ctx context.Context, idOrVersion string) error {
	return c.call(ctx, http.MethodDelete, nil, nil, nil, "releases", idOrVersion)
}

// PublishRelease makes a draft release immutable and assignable. Release
// arguments of this and the following methods take an id or a version.
func (c *Client) PublishRelease(ctx context.Context, id string) (store.Release, error) {
	var out store.Release
	err := c.call(ctx, http.MethodPost, nil, nil, &out, "releases", id, "publish")
	return out, err
}

// MarkBadRequest sets or clears a release's bad flag; a reason is
// required to set it.
type MarkBadRequest struct {
	Bad    bool   `json:"bad"`
	Reason string `json:"reason,omitempty"`
}

// MarkBad sets (bad=true) or clears the release's bad flag.
func (c *Client) MarkBad(ctx context.Context, id string, r MarkBadRequest) (store.Release, error) {
	var out store.Release
	err := c.call(ctx, http.MethodPost, nil, r, &out, "releases", id, "mark-bad")
	return out, err
}

// MarkAffectedRequest records CVE ids found to affect a release.
type MarkAffectedRequest struct {
	CVEs []string `json:"cves"`
}

// MarkAffected sets the release's affected_by list to cves (an empty list
// clears it).
func (c *Client) MarkAffected(ctx context.Context, id string, cves []string) (store.Release, error) {
	var out store.Release
	err := c.call(ctx, http.MethodPost, nil, MarkAffectedRequest{CVEs: nonNil(cves)}, &out, "releases", id, "mark-affected")
	return out, err
}

// Upload describes one artifact upload. Body is read exactly once, to the
// end, and must yield exactly Size bytes.
type Upload struct {
	DeviceType  string
	HWRevs      []string
	Type        string // raw-image, file, archive, …
	Component   string // empty: the default component
	Name        string // file name shown to operators and devices
	Compression string // empty: none
	FromVersion string // for delta artifacts
	// SHA256 is the lowercase hex digest of the content; when set, the server
	// refuses content that does not match it.
	SHA256 string
	Size   int64
	Body   io.Reader
	// Progress, when set, is called with the number of bytes sent so far as
	// the body is read by the transport (from the transport's goroutine).
	Progress func(sent int64)
}

// UploadArtifact streams an artifact into a draft release. The request has a
// Content-Length of u.Size; the server stores the blob under its SHA-256.
func (c *Client) UploadArtifact(ctx context.Context, release string, u Upload) (store.Artifact, error) {
	var out store.Artifact
	if u.Body == nil {
		return out, errors.New("upload: no body")
	}
	if u.Size < 0 {
		return out, fmt.Errorf("upload: negative size %d", u.Size)
	}
	q := url.Values{}
	set := func(k, v string) {
		if v != "" {
			q.Set(k, v)
		}
	}
	set("device_type", u.DeviceType)
	set("hw_revs", strings.Join(u.HWRevs, ","))
	set("type", u.Type)
	set("component", u.Component)
	set("name", u.Name)
	set("compression", u.Compression)
	set("from_version", u.FromVersion)

	body := &countingReader{ctx: ctx, r: io.LimitReader(u.Body, u.Size), size: u.Size, progress: u.Progress}
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, c.endpoint(q, api("releases", release, "artifacts")...), body)
	if err != nil {
		return out, fmt.Errorf("build request: %w", err)
	}
	req.ContentLength = u.Size
	if u.Size == 0 {
		// net/http treats ContentLength 0 with a non-nil body as unknown.
		req.Body = http.NoBody
	}
	req.Header.Set("Content-Type", "application/octet-stream")
	if u.SHA256 != "" {
		req.Header.Set("X-Updraft-SHA256", u.SHA256)
	}
	if err := c.do(req, &out); err != nil {
		if cerr := ctx.Err(); cerr != nil {
			return out, cerr
		}
		// A failure of our own reader surfaces from the transport as a
		// network error; name the real cause.
		if rerr := body.failure(); rerr != nil {
			return out, rerr
		}
		return out, err
	}
	if n := body.n.Load(); n != u.Size {
		return out, fmt.Errorf("upload: body yielded %d of %d bytes", n, u.Size)
	}
	return out, nil
}

// countingReader reports how many bytes have been read through it and
// remembers why reading stopped early, if it did.
type countingReader struct {
	ctx      context.Context // stops the upload between reads once done
	r        io.Reader
	size     int64
	progress func(int64)
	n        atomic.Int64
	mu       sync.Mutex
	err      error
}

func (c *countingReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.r.Read(p)
	total := c.n.Add(int64(n))
	if n > 0 && c.progress != nil {
		c.progress(total)
	}
	if err != nil && (err != io.EOF || total < c.size) {
		c.mu.Lock()
		if err == io.EOF {
			c.err = fmt.Errorf("upload: content ended after %d of %d bytes", total, c.size)
		} else {
			c.err = fmt.Errorf("upload: read content: %w", err)
		}
		c.mu.Unlock()
	}
	return n, err
}

func (c *countingReader) failure() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}
