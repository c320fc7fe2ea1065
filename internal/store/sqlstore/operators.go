package sqlstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// Operators: user names are unique per tenant; API token ids are unique
// across tenants (a presented token names its id, and the tenant follows
// from it). Password and token hashes are stored but never audited.

var (
	userNamePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$`)
	// objectIDPattern is what a caller-chosen user or token id looks like.
	objectIDPattern = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)
)

const maxTokenNameLen = 128

func validRole(r store.Role) bool {
	switch r {
	case store.RoleAdmin, store.RoleOperator, store.RoleViewer:
		return true
	}
	return false
}

// pickID keeps a caller-chosen id (a token id may be part of the token
// string the caller built) or makes a new one.
func pickID(id string) (string, error) {
	if id == "" {
		return newID(), nil
	}
	if !objectIDPattern.MatchString(id) {
		return "", fmt.Errorf("%w: id %q: want 1 to 64 of A-Z a-z 0-9 _ -", store.ErrInvalidRequest, id)
	}
	return id, nil
}

const userColumns = `tenant_id, id, name, role, password_hash, must_change_password, disabled, created_at, updated_at`

func scanUser(row interface{ Scan(...any) error }) (store.User, error) {
	var u store.User
	var role string
	var mustChange, disabled int64
	var created, updated int64
	if err := row.Scan(&u.TenantID, &u.ID, &u.Name, &role, &u.PasswordHash, &mustChange, &disabled, &created, &updated); err != nil {
		return u, err
	}
	u.Role = store.Role(role)
	u.MustChangePassword = mustChange != 0
	u.Disabled = disabled != 0
	u.CreatedAt = fromMicros(created)
	u.UpdatedAt = fromMicros(updated)
	return u, nil
}

// checkUser validates a new user and fills in its id and times.
func checkUser(u store.User, now time.Time) (store.User, error) {
	if u.TenantID == "" {
		return store.User{}, fmt.Errorf("%w: user without tenant", store.ErrInvalidRequest)
	}
	if !userNamePattern.MatchString(u.Name) {
		return store.User{}, fmt.Errorf("%w: user name %q: want 1 to 64 of A-Z a-z 0-9 . _ @ -, starting with a letter or digit", store.ErrInvalidRequest, u.Name)
	}
	if !validRole(u.Role) {
		return store.User{}, fmt.Errorf("%w: unknown role %q", store.ErrInvalidRequest, u.Role)
	}
	if u.PasswordHash == "" {
		return store.User{}, fmt.Errorf("%w: user without password hash", store.ErrInvalidRequest)
	}
	id, err := pickID(u.ID)
	if err != nil {
		return store.User{}, err
	}
	u.ID = id
	u.CreatedAt, u.UpdatedAt = storedTime(now), storedTime(now)
	return u, nil
}

// insertUser stores a checked user and audits it.
func (t *txn) insertUser(ctx context.Context, u store.User, by store.Actor, now time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO users (`+userColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		u.TenantID, u.ID, u.Name, string(u.Role), u.PasswordHash, boolInt(u.MustChangePassword), boolInt(u.Disabled),
		micros(u.CreatedAt), micros(u.UpdatedAt)); err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return store.Conflictf("user %q already exists", u.Name)
		}
		return err
	}
	return t.audit(ctx, u.TenantID, by, "user.create", "user", u.ID, map[string]any{
		"name": u.Name, "role": u.Role, "must_change_password": u.MustChangePassword, "disabled": u.Disabled,
	}, now)
}

// CreateUser implements store.Operators. A taken name is a conflict.
func (s *Store) CreateUser(ctx context.Context, u store.User, by store.Actor, now time.Time) (store.User, error) {
	u, err := checkUser(u, now)
	if err != nil {
		return store.User{}, err
	}
	if err := s.tx(ctx, func(t *txn) error { return t.insertUser(ctx, u, by, now) }); err != nil {
		return store.User{}, fmt.Errorf("create user %q: %w", u.Name, err)
	}
	return u, nil
}

// errUsersExist ends CreateInitialAdmin's transaction without a change.
var errUsersExist = errors.New("the tenant already has users")

// CreateInitialAdmin implements store.Operators. The update of the tenant's
// audit chain head comes first: it is the row lock every audited write
// takes, so a second caller waits here until the first has committed and
// then sees its user (on SQLite the single writer serializes anyway).
func (s *Store) CreateInitialAdmin(ctx context.Context, u store.User, tk store.APIToken, now time.Time) (bool, error) {
	u, err := checkUser(u, now)
	if err != nil {
		return false, fmt.Errorf("create initial admin: %w", err)
	}
	if tk.TenantID != "" && tk.TenantID != u.TenantID {
		return false, fmt.Errorf("create initial admin: %w: token of tenant %s for a user of tenant %s", store.ErrInvalidRequest, tk.TenantID, u.TenantID)
	}
	if tk.UserID != "" && tk.UserID != u.ID {
		return false, fmt.Errorf("create initial admin: %w: the token must belong to the new user", store.ErrInvalidRequest)
	}
	tk.TenantID, tk.UserID = u.TenantID, u.ID
	if tk, err = checkToken(tk, now); err != nil {
		return false, fmt.Errorf("create initial admin: %w", err)
	}
	err = s.tx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `UPDATE audit_heads SET seq = seq WHERE tenant_id = ?`, u.TenantID)
		if err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("lock tenant: %w", err)
		} else if n == 0 {
			return fmt.Errorf("tenant %s: %w", u.TenantID, store.ErrNotFound)
		}
		var users int
		if err := t.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = ?`, u.TenantID).Scan(&users); err != nil {
			return fmt.Errorf("count users: %w", err)
		}
		if users > 0 {
			return errUsersExist
		}
		if err := t.insertUser(ctx, u, store.System, now); err != nil {
			return err
		}
		return t.insertToken(ctx, tk, store.System, now)
	})
	switch {
	case errors.Is(err, errUsersExist):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("create initial admin %q: %w", u.Name, err)
	}
	return true, nil
}

// User implements store.Operators.
func (s *Store) User(ctx context.Context, tenant, id string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = ? AND id = ?`, tenant, id))
	if err != nil {
		return u, notFound(err, "user "+id)
	}
	return u, nil
}

// UserByName implements store.Operators.
func (s *Store) UserByName(ctx context.Context, tenant, name string) (store.User, error) {
	u, err := scanUser(s.queryRow(ctx, `SELECT `+userColumns+` FROM users WHERE tenant_id = ? AND name = ?`, tenant, name))
	if err != nil {
		return u, notFound(err, fmt.Sprintf("user %q", name))
	}
	return u, nil
}

// ListUsers implements store.Operators: users by name.
func (s *Store) ListUsers(ctx context.Context, tenant string, p store.Page) ([]store.User, string, error) {
	where := `tenant_id = ?`
	args := []any{tenant}
	if p.After != "" {
		parts, err := decodeCursor(p.After, 1)
		if err != nil {
			return nil, "", err
		}
		where += ` AND name > ?`
		args = append(args, parts[0])
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT `+userColumns+` FROM users WHERE `+where+` ORDER BY name LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	defer rows.Close()
	out := []store.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, "", fmt.Errorf("list users: %w", err)
		}
		out = append(out, u)
	}
	if err := rows.Err(); err != nil {
		return nil, "", fmt.Errorf("list users: %w", err)
	}
	next := ""
	if len(out) > n {
		out = out[:n]
		next = encodeCursor(out[n-1].Name)
	}
	return out, next, nil
}

// SetPassword implements store.Operators.
func (s *Store) SetPassword(ctx context.Context, tenant, userID, hash string, mustChange bool, by store.Actor, now time.Time) error {
	if hash == "" {
		return fmt.Errorf("set password: %w: empty password hash", store.ErrInvalidRequest)
	}
	err := s.tx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `UPDATE users SET password_hash = ?, must_change_password = ?, updated_at = ? WHERE tenant_id = ? AND id = ?`,
			hash, boolInt(mustChange), micros(now), tenant, userID)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("user %s: %w", userID, store.ErrNotFound)
		}
		return t.audit(ctx, tenant, by, "user.password", "user", userID, map[string]any{"must_change_password": mustChange}, now)
	})
	if err != nil {
		return fmt.Errorf("set password of user %s: %w", userID, err)
	}
	return nil
}

// CountUsers implements store.Operators.
func (s *Store) CountUsers(ctx context.Context, tenant string) (int, error) {
	var n int
	if err := s.queryRow(ctx, `SELECT COUNT(*) FROM users WHERE tenant_id = ?`, tenant).Scan(&n); err != nil {
		return 0, fmt.Errorf("count users: %w", err)
	}
	return n, nil
}

const tokenColumns = `tenant_id, id, name, user_id, role, secret_hash, created_at, expires_at, revoked_at, last_used_at`

func scanToken(row interface{ Scan(...any) error }) (store.APIToken, error) {
	var tk store.APIToken
	var role string
	var created int64
	var expires, revoked, used sql.NullInt64
	if err := row.Scan(&tk.TenantID, &tk.ID, &tk.Name, &tk.UserID, &role, &tk.SecretHash, &created, &expires, &revoked, &used); err != nil {
		return tk, err
	}
	tk.Role = store.Role(role)
	tk.CreatedAt = fromMicros(created)
	tk.ExpiresAt = timePtr(expires)
	tk.RevokedAt = timePtr(revoked)
	tk.LastUsedAt = timePtr(used)
	return tk, nil
}

// checkToken validates a new API token and fills in its id and times.
func checkToken(tk store.APIToken, now time.Time) (store.APIToken, error) {
	if tk.TenantID == "" {
		return store.APIToken{}, fmt.Errorf("%w: token without tenant", store.ErrInvalidRequest)
	}
	if tk.Name == "" || len(tk.Name) > maxTokenNameLen || !printable(tk.Name) {
		return store.APIToken{}, fmt.Errorf("%w: token name must be 1 to %d printable bytes", store.ErrInvalidRequest, maxTokenNameLen)
	}
	if !validRole(tk.Role) {
		return store.APIToken{}, fmt.Errorf("%w: unknown role %q", store.ErrInvalidRequest, tk.Role)
	}
	if tk.SecretHash == "" {
		return store.APIToken{}, fmt.Errorf("%w: token without secret hash", store.ErrInvalidRequest)
	}
	if tk.ExpiresAt != nil && !tk.ExpiresAt.After(now) {
		return store.APIToken{}, fmt.Errorf("%w: token would expire before it is created", store.ErrInvalidRequest)
	}
	id, err := pickID(tk.ID)
	if err != nil {
		return store.APIToken{}, err
	}
	tk.ID = id
	tk.CreatedAt = storedTime(now)
	tk.RevokedAt, tk.LastUsedAt = nil, nil
	if tk.ExpiresAt != nil {
		e := storedTime(*tk.ExpiresAt)
		tk.ExpiresAt = &e
	}
	return tk, nil
}

// insertToken stores a checked token and audits it, without its hash.
func (t *txn) insertToken(ctx context.Context, tk store.APIToken, by store.Actor, now time.Time) error {
	if _, err := t.exec(ctx, `INSERT INTO api_tokens (`+tokenColumns+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tk.TenantID, tk.ID, tk.Name, tk.UserID, string(tk.Role), tk.SecretHash, micros(tk.CreatedAt),
		nullMicros(tk.ExpiresAt), nullMicros(nil), nullMicros(nil)); err != nil {
		if t.s.d.IsUniqueViolation(err) {
			return store.Conflictf("token id %s is taken", tk.ID)
		}
		return err
	}
	details := map[string]any{"name": tk.Name, "role": tk.Role}
	if tk.UserID != "" {
		details["user_id"] = tk.UserID
	}
	if tk.ExpiresAt != nil {
		details["expires_at"] = tk.ExpiresAt
	}
	return t.audit(ctx, tk.TenantID, by, "token.create", "token", tk.ID, details, now)
}

// CreateAPIToken implements store.Operators. The id is kept if the caller
// chose one; a token owned by a user must name a user of the tenant.
func (s *Store) CreateAPIToken(ctx context.Context, tk store.APIToken, by store.Actor, now time.Time) (store.APIToken, error) {
	tk, err := checkToken(tk, now)
	if err != nil {
		return store.APIToken{}, err
	}
	err = s.tx(ctx, func(t *txn) error {
		if tk.UserID != "" {
			var one int
			if err := t.queryRow(ctx, `SELECT 1 FROM users WHERE tenant_id = ? AND id = ?`, tk.TenantID, tk.UserID).Scan(&one); err != nil {
				if errors.Is(err, sql.ErrNoRows) {
					return fmt.Errorf("%w: token owner %s is not a user of tenant %s", store.ErrInvalidRequest, tk.UserID, tk.TenantID)
				}
				return err
			}
		}
		return t.insertToken(ctx, tk, by, now)
	})
	if err != nil {
		return store.APIToken{}, fmt.Errorf("create token %q: %w", tk.Name, err)
	}
	return tk, nil
}

// APIToken implements store.Operators.
func (s *Store) APIToken(ctx context.Context, tenant, id string) (store.APIToken, error) {
	tk, err := scanToken(s.queryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE tenant_id = ? AND id = ?`, tenant, id))
	if err != nil {
		return tk, notFound(err, "token "+id)
	}
	return tk, nil
}

// APITokenByID implements store.Operators.
func (s *Store) APITokenByID(ctx context.Context, id string) (store.APIToken, error) {
	tk, err := scanToken(s.queryRow(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE id = ?`, id))
	if err != nil {
		return tk, notFound(err, "token "+id)
	}
	return tk, nil
}

// ListAPITokens implements store.Operators: tokens in creation order,
// revoked and expired ones included.
func (s *Store) ListAPITokens(ctx context.Context, tenant string, p store.Page) ([]store.APIToken, string, error) {
	where := `tenant_id = ?`
	args := []any{tenant}
	if p.After != "" {
		at, id, err := decodeTimeCursor(p.After)
		if err != nil {
			return nil, "", err
		}
		where += ` AND (created_at > ? OR (created_at = ? AND id > ?))`
		args = append(args, at, at, id)
	}
	n := limit(p)
	rows, err := s.query(ctx, `SELECT `+tokenColumns+` FROM api_tokens WHERE `+where+` ORDER BY created_at, id LIMIT `+strconv.Itoa(n+1), args...)
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", err)
	}
	out, next, err := scanPage(rows, n, scanToken, func(v store.APIToken) string { return timeCursor(v.CreatedAt, v.ID) })
	if err != nil {
		return nil, "", fmt.Errorf("list tokens: %w", err)
	}
	return out, next, nil
}

// RevokeAPIToken implements store.Operators. Revoking a revoked token
// changes nothing.
func (s *Store) RevokeAPIToken(ctx context.Context, tenant, id string, by store.Actor, now time.Time) error {
	err := s.tx(ctx, func(t *txn) error {
		var revoked sql.NullInt64
		var name string
		if err := t.queryRow(ctx, `SELECT name, revoked_at FROM api_tokens WHERE tenant_id = ? AND id = ?`, tenant, id).Scan(&name, &revoked); err != nil {
			return notFound(err, "token "+id)
		}
		if revoked.Valid {
			return nil
		}
		if _, err := t.exec(ctx, `UPDATE api_tokens SET revoked_at = ? WHERE tenant_id = ? AND id = ?`, micros(now), tenant, id); err != nil {
			return err
		}
		return t.audit(ctx, tenant, by, "token.revoke", "token", id, map[string]any{"name": name}, now)
	})
	if err != nil {
		return fmt.Errorf("revoke token %s: %w", id, err)
	}
	return nil
}
