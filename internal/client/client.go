// Package client is a Go client for Updraft's management API (/api/v1).
//
// A Client holds a validated server base URL, an API token and an
// *http.Client; it is safe for concurrent use. Every method takes a context.
// Failures reported by the server come back as *APIError carrying the HTTP
// status and the API's stable error code; failures to reach the server come
// back wrapped in *NetError. Response bodies are read with a size bound, so a
// misbehaving server or proxy cannot make the client buffer without limit.
//
// Request and response objects are the store's JSON types (store.Device,
// store.Release, …); the types in this package cover only what the API adds
// around them (pages, one-time secrets, request bodies).
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Limits on what the client reads from a response.
const (
	// MaxResponseBytes bounds a successful JSON response body.
	MaxResponseBytes = 32 << 20
	// maxErrorBytes bounds an error response body.
	maxErrorBytes = 64 << 10
)

// DefaultTimeout bounds a whole request/response exchange for everything but
// artifact uploads, whose duration depends on their size.
const DefaultTimeout = 60 * time.Second

// Options configure a Client. The zero value is usable.
type Options struct {
	// Token is the API token ("updraft_<id>_<secret>") sent as a bearer token.
	Token string
	// HTTPClient sends the requests; nil means a client with dial, TLS and
	// response-header timeouts but no overall timeout (see Timeout).
	HTTPClient *http.Client
	// Timeout bounds each non-upload call; 0 means DefaultTimeout and a
	// negative value means no bound beyond the caller's context.
	Timeout time.Duration
	// UserAgent is sent with every request; empty means "updraft-client".
	UserAgent string
}

// Client talks to one Updraft server.
type Client struct {
	base    *url.URL
	token   string
	hc      *http.Client
	timeout time.Duration
	ua      string
}

// New returns a client for the server at base (see ParseServerURL).
func New(base string, opts Options) (*Client, error) {
	u, err := ParseServerURL(base)
	if err != nil {
		return nil, err
	}
	c := &Client{base: u, token: opts.Token, hc: opts.HTTPClient, timeout: opts.Timeout, ua: opts.UserAgent}
	if c.hc == nil {
		c.hc = defaultHTTPClient()
	}
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.ua == "" {
		c.ua = "updraft-client"
	}
	return c, nil
}

func defaultHTTPClient() *http.Client {
	tr := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   10 * time.Second,
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 2 * time.Minute, // after the request body is sent
		ExpectContinueTimeout: time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConns:          4,
	}
	return &http.Client{
		Transport: tr,
		// A redirect would resend the bearer token to wherever it points
		// and cannot replay a streamed upload; the API never redirects.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ParseServerURL validates a server base URL such as
// "https://updraft.example.com" or "http://127.0.0.1:8080/updraft" (a path
// prefix is kept, for servers behind a reverse proxy). It must be an absolute
// http or https URL with a host and without credentials, query or fragment.
func ParseServerURL(s string) (*url.URL, error) {
	if s == "" {
		return nil, errors.New("server URL is empty")
	}
	if !strings.Contains(s, "://") {
		return nil, fmt.Errorf("invalid server URL %q: scheme must be http or https, e.g. http://%s", s, s)
	}
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("invalid server URL %q: %w", s, errors.Unwrap(err))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("invalid server URL %q: scheme must be http or https", s)
	case u.Host == "" || u.Hostname() == "":
		return nil, fmt.Errorf("invalid server URL %q: no host", s)
	case u.User != nil:
		return nil, fmt.Errorf("invalid server URL %q: credentials belong in the token, not the URL", s)
	case u.RawQuery != "" || u.ForceQuery:
		return nil, fmt.Errorf("invalid server URL %q: must not have a query", s)
	case u.Fragment != "":
		return nil, fmt.Errorf("invalid server URL %q: must not have a fragment", s)
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, fmt.Errorf("invalid server URL %q: bad port %q", s, p)
		}
	}
	u.Path = strings.TrimRight(u.Path, "/")
	u.RawPath = ""
	return u, nil
}

// BaseURL returns the server base URL the client uses.
func (c *Client) BaseURL() string { return c.base.String() }

// APIError is an error response from the server.
type APIError struct {
	Status  int    // HTTP status code
	Code    string // stable machine-readable code, e.g. "not_found"; empty if the body was not an API error
	Message string // human-readable message
}

func (e *APIError) Error() string {
	if e.Code == "" {
		return fmt.Sprintf("%s (HTTP %d)", e.Message, e.Status)
	}
	return fmt.Sprintf("%s (%s)", e.Message, e.Code)
}

// NetError means the server could not be reached or the exchange broke off.
type NetError struct {
	Server string
	Err    error
}

func (e *NetError) Error() string {
	return fmt.Sprintf("cannot reach server %s: %s", e.Server, describeNetErr(e.Err))
}

func (e *NetError) Unwrap() error { return e.Err }

// describeNetErr drops the "Get \"url\": dial tcp addr:" preamble that
// net/http and net add, leaving the cause ("connection refused").
func describeNetErr(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		var se interface{ Unwrap() error }
		if errors.As(oe.Err, &se) && se.Unwrap() != nil {
			return se.Unwrap().Error()
		}
		return oe.Err.Error()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return de.Error()
	}
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return err.Error()
}

// List is one page of a list endpoint. Next is the cursor of the following
// page, empty on the last one.
type List[T any] struct {
	Items []T    `json:"items"`
	Next  string `json:"next,omitempty"`
}

// ListOptions select one page.
type ListOptions struct {
	Limit int    // 0: the server's default
	After string // cursor from List.Next; empty for the first page
}

func (o ListOptions) values() url.Values {
	v := url.Values{}
	if o.Limit > 0 {
		v.Set("limit", fmt.Sprint(o.Limit))
	}
	if o.After != "" {
		v.Set("after", o.After)
	}
	return v
}

// endpoint joins path segments, each escaped, onto the base URL and adds
// the query.
func (c *Client) endpoint(q url.Values, segs ...string) string {
	var b strings.Builder
	b.WriteString(c.base.Scheme)
	b.WriteString("://")
	b.WriteString(c.base.Host)
	b.WriteString(c.base.EscapedPath())
	for _, s := range segs {
		b.WriteByte('/')
		b.WriteString(url.PathEscape(s))
	}
	if len(q) > 0 {
		b.WriteByte('?')
		b.WriteString(q.Encode())
	}
	return b.String()
}

func api(segs ...string) []string { return append([]string{"api", "v1"}, segs...) }

// call sends a JSON request (in may be nil) and decodes a JSON response into
// out (which may be nil).
func (c *Client) call(ctx context.Context, method string, q url.Values, in, out any, segs ...string) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(q, api(segs...)...), body)
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	return c.do(req, out)
}

// do sends req with the client's headers and handles the response.
func (c *Client) do(req *http.Request, out any) error {
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && errors.Is(ctxErr, context.Canceled) {
			return ctxErr
		}
		return &NetError{Server: c.base.String(), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return readAPIError(resp)
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBytes))
		return nil
	}
	b, err := readBounded(resp.Body, MaxResponseBytes)
	if err != nil {
		return fmt.Errorf("read response of %s %s: %w", req.Method, req.URL.Path, err)
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("decode response of %s %s: %w", req.Method, req.URL.Path, err)
	}
	return nil
}

// readBounded reads r to the end, failing if it holds more than limit bytes.
func readBounded(r io.Reader, limit int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("response exceeds %d bytes", limit)
	}
	return b, nil
}

// readAPIError turns a non-2xx response into an *APIError. Bodies that are
// not the API's error JSON (a proxy's HTML page, say) keep the status text.
func readAPIError(resp *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBytes))
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Error struct {
			Code    string `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if json.Unmarshal(b, &body) == nil && body.Error.Code != "" {
		e.Code = body.Error.Code
		e.Message = body.Error.Message
	}
	if e.Message == "" {
		e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		if e.Message == "" {
			e.Message = "unexpected response"
		}
	}
	return e
}

// IsNotFound reports whether err is an API "not found" error.
func IsNotFound(err error) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.Status == http.StatusNotFound
}
