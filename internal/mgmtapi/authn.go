package mgmtapi

import (
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
)

// caller is the authenticated party of one request.
type caller struct {
	tenantID string
	actor    store.Actor // recorded in the audit log
	role     store.Role  // effective role: the token's, capped by its user's
	tokenID  string
	userID   string // the token's owner, if any
	// mustChangePassword confines the caller to ActionSelf routes.
	mustChangePassword bool
}

// errBadToken is the one answer to every kind of bad token, so that a
// client cannot probe which token ids exist.
var errBadToken = apierror.Unauthorized("invalid API token")

// authenticate checks the bearer token of r. Tokens are the only way in:
// a password on every request would mean a slow password hash per request
// and a guessing target.
func (a *API) authenticate(r *http.Request) (*caller, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return nil, apierror.Unauthorized("missing API token: send Authorization: Bearer updraft_<id>_<secret>")
	}
	scheme, text, found := strings.Cut(h, " ")
	if !found || !strings.EqualFold(scheme, "Bearer") {
		return nil, apierror.Unauthorized("unsupported authorization scheme: send Authorization: Bearer updraft_<id>_<secret>")
	}
	id, secret, err := auth.ParseAPIToken(strings.TrimSpace(text))
	if err != nil {
		return nil, apierror.Unauthorized("malformed API token: want updraft_<id>_<secret>")
	}
	ctx := r.Context()
	tok, err := a.store.APITokenByID(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return nil, errBadToken
	}
	if err != nil {
		return nil, fmt.Errorf("look up api token: %w", err)
	}
	if auth.CheckAPITokenSecret(secret, tok.SecretHash) != nil {
		return nil, errBadToken
	}
	now := a.now()
	if tok.RevokedAt != nil {
		return nil, apierror.Unauthorized("API token %s was revoked", tok.ID)
	}
	if tok.ExpiresAt != nil && !now.Before(*tok.ExpiresAt) {
		return nil, apierror.Unauthorized("API token %s expired at %s", tok.ID, tok.ExpiresAt.UTC().Format("2006-01-02T15:04:05Z"))
	}
	c := &caller{
		tenantID: tok.TenantID,
		actor:    store.Actor{Kind: store.ActorToken, ID: tok.ID, Name: tok.Name},
		role:     tok.Role,
		tokenID:  tok.ID,
		userID:   tok.UserID,
	}
	if tok.UserID != "" {
		u, err := a.store.User(ctx, tok.TenantID, tok.UserID)
		if errors.Is(err, store.ErrNotFound) {
			return nil, apierror.Unauthorized("API token %s belongs to a user who no longer exists", tok.ID)
		}
		if err != nil {
			return nil, fmt.Errorf("look up owner of api token: %w", err)
		}
		if u.Disabled {
			return nil, apierror.Unauthorized("API token %s belongs to a disabled user", tok.ID)
		}
		c.actor = store.Actor{Kind: store.ActorUser, ID: u.ID, Name: u.Name}
		if !auth.Role(u.Role).Includes(auth.Role(c.role)) {
			c.role = u.Role
		}
		c.mustChangePassword = u.MustChangePassword
	}
	a.uses.touch(tok.ID, now)
	return c, nil
}

// authorize checks that the caller may perform action.
func (c *caller) authorize(action Action) error {
	if c.mustChangePassword && action != ActionSelf {
		return apierror.New(http.StatusForbidden, "password_change_required",
			"the password must be changed first: POST %s/users/%s/password", Prefix, c.userID)
	}
	var need auth.Action
	switch action {
	case ActionSelf:
		return nil // the handler decides between self and admin
	case ActionRead:
		need = auth.ActionRead
	case ActionWrite:
		need = auth.ActionWrite
	case ActionAdmin:
		need = auth.ActionAdmin
	default:
		return fmt.Errorf("route with unknown action %q", action)
	}
	if !auth.Role(c.role).Allows(need) {
		return apierror.Forbidden("role %s may not %s here (needs %s)", c.role, action, requiredRole(action))
	}
	return nil
}

func requiredRole(action Action) store.Role {
	switch action {
	case ActionWrite:
		return store.RoleOperator
	case ActionAdmin:
		return store.RoleAdmin
	}
	return store.RoleViewer
}

// apiToken is a freshly made token: text goes to the client once, hash
// to the store.
type apiToken struct {
	id, text, hash string
}

func newAPIToken() (apiToken, error) {
	t, err := auth.GenerateAPIToken()
	if err != nil {
		return apiToken{}, fmt.Errorf("generate api token: %w", err)
	}
	return apiToken{id: t.ID, text: t.Token, hash: t.SecretHash}, nil
}

// checkPasswordPolicy refuses a new password that auth's policy refuses,
// with the policy's own explanation.
func checkPasswordPolicy(pw string) error {
	if err := auth.CheckPasswordPolicy(pw); err != nil {
		return &apierror.Error{Status: http.StatusBadRequest, Code: "weak_password", Message: err.Error(), Err: err}
	}
	return nil
}

func (a *API) hashPassword(pw string) (string, error) {
	h, err := auth.HashPassword(pw, a.pwParams)
	if err != nil {
		if errors.Is(err, auth.ErrPasswordPolicy) {
			return "", checkPasswordPolicy(pw)
		}
		return "", fmt.Errorf("hash password: %w", err)
	}
	return h, nil
}

// checkPassword reports whether pw matches the stored hash.
func checkPassword(pw, hash string) (bool, error) {
	switch err := auth.VerifyPassword(pw, hash); {
	case err == nil:
		return true, nil
	case errors.Is(err, auth.ErrPasswordMismatch):
		return false, nil
	default:
		return false, err
	}
}

func generatePassword() (string, error) {
	pw, err := auth.GenerateOneTimePassword()
	if err != nil {
		return "", fmt.Errorf("generate password: %w", err)
	}
	return pw, nil
}
