package mgmtapi

import (
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/updraft/updraft/internal/apierror"
	"github.com/updraft/updraft/internal/auth"
	"github.com/updraft/updraft/internal/store"
)

// API token lifetimes.
const (
	minTokenTTL = time.Minute
	maxTokenTTL = 10 * 365 * 24 * time.Hour
)

func parseRole(s string) (store.Role, error) {
	switch r := store.Role(s); r {
	case store.RoleAdmin, store.RoleOperator, store.RoleViewer:
		return r, nil
	case "":
		return "", apierror.BadRequest("role is required: admin, operator or viewer")
	}
	return "", apierror.BadRequest("role %q is not one of admin, operator, viewer", s)
}

// newUserBody is the answer to POST /users: the user and, when the server
// chose it, the one-time password (shown only here).
type newUserBody struct {
	store.User
	Password string `json:"password,omitempty"`
}

func (a *API) createUser(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Name     string `json:"name"`
		Role     string `json:"role"`
		Password string `json:"password"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return apierror.BadRequest("name is required")
	}
	role, err := parseRole(req.Role)
	if err != nil {
		return err
	}
	pw, generated := req.Password, false
	if pw == "" {
		if pw, err = generatePassword(); err != nil {
			return err
		}
		generated = true
	} else if err := checkPasswordPolicy(pw); err != nil {
		return err
	}
	hash, err := a.hashPassword(pw)
	if err != nil {
		return err
	}
	u, err := a.store.CreateUser(r.Context(), store.User{
		TenantID:           c.tenant(),
		Name:               req.Name,
		Role:               role,
		PasswordHash:       hash,
		MustChangePassword: generated,
	}, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("create user %s: %w", req.Name, err)
	}
	out := newUserBody{User: u}
	if generated {
		out.Password = pw
	}
	return created(w, out)
}

func (a *API) listUsers(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	users, next, err := a.store.ListUsers(r.Context(), c.tenant(), p)
	if err != nil {
		return fmt.Errorf("list users: %w", err)
	}
	writeList(w, users, next)
	return nil
}

// setPassword changes a password. Users change their own by proving the
// current one (a stolen token alone cannot take over the account); an
// admin resets anyone else's, and the user must change it at next use.
func (a *API) setPassword(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		CurrentPassword string `json:"current_password"`
		Password        string `json:"password"`
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	ctx := r.Context()
	// {id} is a user id or name. Non-admins may only name themselves, so
	// they learn nothing about other accounts.
	ref := r.PathValue("id")
	u, err := a.store.User(ctx, c.tenant(), ref)
	if errors.Is(err, store.ErrNotFound) {
		u, err = a.store.UserByName(ctx, c.tenant(), ref)
	}
	if c.role != store.RoleAdmin && (err != nil || u.ID != c.userID) {
		return apierror.Forbidden("only an admin can set another user's password")
	}
	if err != nil {
		return err
	}
	id := u.ID
	self := c.userID != "" && c.userID == id
	if err := checkPasswordPolicy(req.Password); err != nil {
		return err
	}
	if self {
		if req.CurrentPassword == "" {
			return apierror.BadRequest("current_password is required to change your own password")
		}
		okPw, err := checkPassword(req.CurrentPassword, u.PasswordHash)
		if err != nil {
			return fmt.Errorf("check password of user %s: %w", id, err)
		}
		if !okPw {
			return apierror.New(http.StatusForbidden, "wrong_password", "current_password is wrong")
		}
		if req.Password == req.CurrentPassword {
			return apierror.New(http.StatusBadRequest, "weak_password", "the new password must differ from the current one")
		}
	} else if req.CurrentPassword != "" {
		return apierror.BadRequest("current_password is only for changing your own password")
	}
	hash, err := a.hashPassword(req.Password)
	if err != nil {
		return err
	}
	if err := a.store.SetPassword(ctx, c.tenant(), id, hash, !self, c.actor, a.now()); err != nil {
		return fmt.Errorf("set password of user %s: %w", id, err)
	}
	return noContent(w)
}

// newTokenBody is the answer to POST /tokens: the token's record and the
// token itself, shown only here.
type newTokenBody struct {
	store.APIToken
	Token string `json:"token"`
}

func (a *API) createToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	var req struct {
		Name      string `json:"name"`
		Role      string `json:"role"`
		ExpiresIn *int64 `json:"expires_in"` // seconds
	}
	if err := decodeBody(w, r, maxBody, &req); err != nil {
		return err
	}
	if req.Name == "" {
		return apierror.BadRequest("name is required: what the token is for, e.g. ci-upload")
	}
	role, err := parseRole(req.Role)
	if err != nil {
		return err
	}
	if !auth.Role(c.role).Includes(auth.Role(role)) {
		return apierror.Forbidden("a %s cannot create a token with role %s", c.role, role)
	}
	now := a.now()
	var expires *time.Time
	if req.ExpiresIn != nil {
		d := time.Duration(*req.ExpiresIn) * time.Second
		if *req.ExpiresIn <= 0 || d < minTokenTTL || *req.ExpiresIn > int64(maxTokenTTL/time.Second) {
			return apierror.BadRequest("expires_in must be from %d to %d seconds", int64(minTokenTTL/time.Second), int64(maxTokenTTL/time.Second))
		}
		t := now.Add(d)
		expires = &t
	}
	// Token ids are short; on the rare collision the store refuses the id
	// and a fresh token is drawn.
	var (
		tok apiToken
		rec store.APIToken
	)
	for attempt := 0; ; attempt++ {
		if tok, err = newAPIToken(); err != nil {
			return err
		}
		rec, err = a.store.CreateAPIToken(r.Context(), store.APIToken{
			TenantID:   c.tenant(),
			ID:         tok.id,
			Name:       req.Name,
			UserID:     c.userID,
			Role:       role,
			SecretHash: tok.hash,
			ExpiresAt:  expires,
		}, c.actor, now)
		if err == nil {
			break
		}
		if !errors.Is(err, store.ErrConflict) || attempt == 2 {
			return fmt.Errorf("create api token %s: %w", req.Name, err)
		}
	}
	return created(w, newTokenBody{APIToken: rec, Token: tok.text})
}

func (a *API) listTokens(w http.ResponseWriter, r *http.Request, c *caller) error {
	p, err := page(r)
	if err != nil {
		return err
	}
	toks, next, err := a.store.ListAPITokens(r.Context(), c.tenant(), p)
	if err != nil {
		return fmt.Errorf("list api tokens: %w", err)
	}
	// Uses not yet flushed are newer than what the store has.
	for i, tk := range toks {
		if at, ok := a.uses.latest(tk.ID); ok && (tk.LastUsedAt == nil || at.After(*tk.LastUsedAt)) {
			toks[i].LastUsedAt = &at
		}
	}
	writeList(w, toks, next)
	return nil
}

func (a *API) revokeToken(w http.ResponseWriter, r *http.Request, c *caller) error {
	id := r.PathValue("id")
	err := a.store.RevokeAPIToken(r.Context(), c.tenant(), id, c.actor, a.now())
	if err != nil {
		return fmt.Errorf("revoke api token %s: %w", id, err)
	}
	return noContent(w)
}

// listAudit and verifyAudit expose the hash-chained audit log.

func (a *API) listAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	q := r.URL.Query()
	p, err := page(r)
	if err != nil {
		return err
	}
	since, err := timeParam(r, "since")
	if err != nil {
		return err
	}
	until, err := timeParam(r, "until")
	if err != nil {
		return err
	}
	if !since.IsZero() && !until.IsZero() && !since.Before(until) {
		return apierror.New(http.StatusBadRequest, "bad_parameter", "since must be before until")
	}
	entries, next, err := a.store.ListAudit(r.Context(), c.tenant(), store.AuditQuery{
		Action:     q.Get("action"),
		ObjectType: q.Get("object_type"),
		ObjectID:   q.Get("object_id"),
		ActorID:    q.Get("actor"),
		Since:      since,
		Until:      until,
		Page:       p,
	})
	if err != nil {
		return fmt.Errorf("list audit: %w", err)
	}
	writeList(w, entries, next)
	return nil
}

type auditVerifyBody struct {
	OK      bool   `json:"ok"`
	Checked int    `json:"checked"`
	Problem string `json:"problem,omitempty"`
}

// verifyAudit answers 200 whether or not the chain verifies: a broken
// chain is the answer to the question, with the store's description of the
// break (sequence numbers only). A database failure is a 500 like any other.
func (a *API) verifyAudit(w http.ResponseWriter, r *http.Request, c *caller) error {
	n, err := a.store.VerifyAudit(r.Context(), c.tenant())
	var broken *store.AuditBrokenError
	switch {
	case err == nil:
		return ok(w, auditVerifyBody{OK: true, Checked: n})
	case errors.As(err, &broken):
		a.log.WarnContext(r.Context(), "audit chain does not verify", "tenant", c.tenant(), "checked", n, "seq", broken.Seq, "problem", broken.Problem)
		return ok(w, auditVerifyBody{OK: false, Checked: n, Problem: broken.Error()})
	}
	return fmt.Errorf("verify audit: %w", err)
}
