package client

import (
	"context"
	"net/http"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// NewToken describes an API token to create.
type NewToken struct {
	Name string
	Role string
	// ExpiresIn is the token's lifetime, sent in whole seconds; 0 means the
	// token does not expire.
	ExpiresIn time.Duration
}

// CreatedToken is a new API token with its secret, which the server shows
// only in this response.
type CreatedToken struct {
	store.APIToken
	Token string `json:"token"`
}

// CreateToken creates an API token.
func (c *Client) CreateToken(ctx context.Context, t NewToken) (CreatedToken, error) {
	body := struct {
		Name      string `json:"name"`
		Role      string `json:"role"`
		ExpiresIn *int64 `json:"expires_in,omitempty"` // seconds
	}{Name: t.Name, Role: t.Role}
	if t.ExpiresIn != 0 {
		secs := int64((t.ExpiresIn + time.Second - 1) / time.Second)
		body.ExpiresIn = &secs
	}
	var out CreatedToken
	err := c.call(ctx, http.MethodPost, nil, body, &out, "tokens")
	return out, err
}

// ListTokens returns one page of API tokens (never their secrets).
func (c *Client) ListTokens(ctx context.Context, o ListOptions) (List[store.APIToken], error) {
	var l List[store.APIToken]
	err := c.call(ctx, http.MethodGet, o.values(), nil, &l, "tokens")
	return l, err
}

// RevokeToken revokes an API token; it stops working at once.
func (c *Client) RevokeToken(ctx context.Context, id string) error {
	return c.call(ctx, http.MethodDelete, nil, nil, nil, "tokens", id)
}

// NewUser is the body of a user creation. An empty Password asks the server
// to generate a one-time password that must be changed at first sign-in.
type NewUser struct {
	Name     string `json:"name"`
	Role     string `json:"role"`
	Password string `json:"password,omitempty"`
}

// CreatedUser is a new user and, when the server generated it, the one-time
// password, shown only in this response.
type CreatedUser struct {
	store.User
	Password string `json:"password,omitempty"`
}

// CreateUser creates an operator account.
func (c *Client) CreateUser(ctx context.Context, u NewUser) (CreatedUser, error) {
	var out CreatedUser
	err := c.call(ctx, http.MethodPost, nil, u, &out, "users")
	return out, err
}

// ListUsers returns one page of users.
func (c *Client) ListUsers(ctx context.Context, o ListOptions) (List[store.User], error) {
	var l List[store.User]
	err := c.call(ctx, http.MethodGet, o.values(), nil, &l, "users")
	return l, err
}

// SetPasswordRequest is the body of a password change. CurrentPassword is
// required when users change their own password, and refused when an admin
// resets someone else's (who must then change it at next use).
type SetPasswordRequest struct {
	CurrentPassword string `json:"current_password,omitempty"`
	Password        string `json:"password"`
}

// SetPassword sets a user's password.
func (c *Client) SetPassword(ctx context.Context, userID string, r SetPasswordRequest) error {
	return c.call(ctx, http.MethodPost, nil, r, nil, "users", userID, "password")
}

// AuditListOptions filter the audit log.
type AuditListOptions struct {
	Action     string
	ObjectType string
	ObjectID   string
	Actor      string    // actor id
	Since      time.Time // zero: no bound
	Until      time.Time // zero: no bound
	ListOptions
}

// ListAudit returns one page of the audit log.
func (c *Client) ListAudit(ctx context.Context, o AuditListOptions) (List[store.AuditEntry], error) {
	q := o.values()
	for k, v := range map[string]string{"action": o.Action, "object_type": o.ObjectType, "object_id": o.ObjectID, "actor": o.Actor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	if !o.Since.IsZero() {
		q.Set("since", o.Since.UTC().Format(time.RFC3339Nano))
	}
	if !o.Until.IsZero() {
		q.Set("until", o.Until.UTC().Format(time.RFC3339Nano))
	}
	var l List[store.AuditEntry]
	err := c.call(ctx, http.MethodGet, q, nil, &l, "audit")
	return l, err
}

// AuditVerification is the result of recomputing the audit hash chain.
type AuditVerification struct {
	OK      bool   `json:"ok"`
	Checked int    `json:"checked"`
	Problem string `json:"problem,omitempty"`
}

// VerifyAudit recomputes the audit log's hash chain on the server.
func (c *Client) VerifyAudit(ctx context.Context) (AuditVerification, error) {
	var out AuditVerification
	err := c.call(ctx, http.MethodGet, nil, nil, &out, "audit", "verify")
	return out, err
}
