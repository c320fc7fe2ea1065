package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/theupdateframework/go-tuf/v2/metadata"

	"github.com/updraft/updraft/internal/store"
)

// OnlineKey is one of the server's online signing keys (snapshot,
// timestamp or director); only its public half ever leaves the server.
type OnlineKey struct {
	KeyID     string        `json:"key_id"`
	Role      string        `json:"role"`
	PublicKey *metadata.Key `json:"public_key"`
	InRoot    bool          `json:"in_root"`
	Usable    bool          `json:"usable"`
	Problem   string        `json:"problem,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
}

// RoleVersion names one stored metadata file.
type RoleVersion struct {
	Role    string `json:"role"`
	Version int64  `json:"version"`
}

// MetadataStored is the server's answer to an upload of signed metadata.
type MetadataStored struct {
	Stored []RoleVersion `json:"stored"`
	// Published says whether the server re-signed snapshot and timestamp
	// at once; otherwise its publisher does so within its interval.
	Published bool  `json:"published"`
	Snapshot  int64 `json:"snapshot_version"`
	Timestamp int64 `json:"timestamp_version"`
}

// RoleMetadata is one targets file of a change.
type RoleMetadata struct {
	Role     string          `json:"role"`
	Metadata json.RawMessage `json:"metadata"`
}

// SigningStatus describes the server's TUF repository.
type SigningStatus struct {
	Initialized bool  `json:"initialized"`
	Generation  int64 `json:"generation"`
	Roles       []struct {
		Role    string    `json:"role"`
		Version int64     `json:"version"`
		Expires time.Time `json:"expires"`
		Offline bool      `json:"offline"`
	} `json:"roles"`
	OnlineKeys []OnlineKey `json:"online_keys"`
	Health     struct {
		Initialized bool     `json:"initialized"`
		Leader      bool     `json:"publisher_leader"`
		Degraded    bool     `json:"degraded"`
		Warnings    []string `json:"warnings"`
	} `json:"health"`
}

// SigningStatus returns the repository's roles, online keys and health.
func (c *Client) SigningStatus(ctx context.Context) (SigningStatus, error) {
	var s SigningStatus
	err := c.call(ctx, "GET", nil, nil, &s, "tuf")
	return s, err
}

// Metadata returns a signed metadata file: "<role>.json" for the role's
// current version or "N.<role>.json". A missing file is an *APIError with
// status 404 (IsNotFound).
func (c *Client) Metadata(ctx context.Context, name string) ([]byte, error) {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.endpoint(nil, api("tuf", "metadata", name)...), nil)
	if err != nil {
		return nil, fmt.Errorf("build request: %w", err)
	}
	// The bytes must come back exactly as stored (their hashes are
	// signed), so they are not decoded.
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", c.ua)
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil && errors.Is(ctxErr, context.Canceled) {
			return nil, ctxErr
		}
		return nil, &NetError{Server: c.base.String(), Err: err}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, readAPIError(resp)
	}
	b, err := readBounded(resp.Body, MaxResponseBytes)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", name, err)
	}
	return b, nil
}

// UploadRole sends the next version of one role (root, targets or a
// release-signing role), byte for byte.
func (c *Client) UploadRole(ctx context.Context, role string, signed []byte) (MetadataStored, error) {
	var out MetadataStored
	err := c.raw(ctx, http.MethodPut, signed, "application/json", &out, "tuf", "roles", role)
	return out, err
}

// ApplyMetadata sends several signed files as one change: roots (oldest
// first) and targets metadata, stored together or not at all.
func (c *Client) ApplyMetadata(ctx context.Context, roots [][]byte, targets []RoleMetadata) (MetadataStored, error) {
	body := struct {
		Roots   []json.RawMessage `json:"roots"`
		Targets []RoleMetadata    `json:"targets"`
	}{Roots: []json.RawMessage{}, Targets: targets}
	for _, r := range roots {
		body.Roots = append(body.Roots, r)
	}
	if body.Targets == nil {
		body.Targets = []RoleMetadata{}
	}
	var out MetadataStored
	err := c.call(ctx, "POST", nil, body, &out, "tuf", "changes")
	return out, err
}

// OnlineKeys lists the server's online keys.
func (c *Client) OnlineKeys(ctx context.Context) ([]OnlineKey, error) {
	var l List[OnlineKey]
	err := c.call(ctx, "GET", nil, nil, &l, "tuf", "online-keys")
	return l.Items, err
}

// GenerateOnlineKeys asks the server for a new key per role (admin).
func (c *Client) GenerateOnlineKeys(ctx context.Context, roles []string) ([]OnlineKey, error) {
	var l List[OnlineKey]
	err := c.call(ctx, "POST", nil, map[string]any{"roles": roles}, &l, "tuf", "online-keys")
	return l.Items, err
}

// ImportOnlineKey uploads a private key (unencrypted PKCS#8 PEM) as an
// online key for role (admin).
func (c *Client) ImportOnlineKey(ctx context.Context, role string, pemKey []byte) (OnlineKey, error) {
	var k OnlineKey
	err := c.raw(ctx, http.MethodPut, pemKey, "application/x-pem-file", &k, "tuf", "online-keys", role)
	return k, err
}

// FinalizeRelease records that devices running the release may raise their
// security floor to its security version.
func (c *Client) FinalizeRelease(ctx context.Context, id string) (store.FinalizedRelease, error) {
	var f store.FinalizedRelease
	err := c.call(ctx, "POST", nil, nil, &f, "releases", id, "finalize")
	return f, err
}

// raw sends body as is and decodes a JSON response into out.
func (c *Client) raw(ctx context.Context, method string, body []byte, ctype string, out any, segs ...string) error {
	if c.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	req, err := http.NewRequestWithContext(ctx, method, c.endpoint(nil, api(segs...)...), bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", ctype)
	return c.do(req, out)
}
