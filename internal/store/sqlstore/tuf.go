package sqlstore

import (
	"context"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"time"

	"github.com/updraft/updraft/internal/store"
)

// TUFGeneration implements store.TUF.
func (s *Store) TUFGeneration(ctx context.Context, tenant string) (int64, error) {
	var gen int64
	err := s.queryRow(ctx, `SELECT generation FROM tuf_state WHERE tenant_id = ?`, tenant).Scan(&gen)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read TUF generation: %w", err)
	}
	return gen, nil
}

// tufRow is a *sql.Row or *sql.Rows.
type tufRow interface{ Scan(dest ...any) error }

const tufFileColumns = `role, version, data, expires_at, created_at, superseded_at`

func scanTUFFile(r tufRow) (store.TUFFile, error) {
	var (
		f          store.TUFFile
		data       string
		exp, at    int64
		superseded sql.NullInt64
	)
	if err := r.Scan(&f.Role, &f.Version, &data, &exp, &at, &superseded); err != nil {
		return store.TUFFile{}, err
	}
	f.Data = []byte(data)
	f.Expires, f.CreatedAt, f.SupersededAt = fromMicros(exp), fromMicros(at), timePtr(superseded)
	return f, nil
}

// TUFState implements store.TUF. The generation is read before the files:
// a write that commits in between is then seen in the files but not in the
// generation, which only makes the reader's next compare-and-set fail and
// retry — never the other way round, which would let a reader believe
// stale files current.
func (s *Store) TUFState(ctx context.Context, tenant string) (store.TUFState, error) {
	var (
		st store.TUFState
		at int64
	)
	err := s.queryRow(ctx, `SELECT generation, updated_at FROM tuf_state WHERE tenant_id = ?`, tenant).Scan(&st.Generation, &at)
	if err != nil {
		return store.TUFState{}, notFound(err, "TUF repository of tenant "+tenant)
	}
	st.UpdatedAt = fromMicros(at)
	rows, err := s.query(ctx, `SELECT `+tufFileColumns+` FROM tuf_files f
		WHERE tenant_id = ? AND (role = 'root' OR version = (SELECT MAX(version) FROM tuf_files g WHERE g.tenant_id = f.tenant_id AND g.role = f.role))
		ORDER BY role, version`, tenant)
	if err != nil {
		return store.TUFState{}, fmt.Errorf("read TUF files: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		f, err := scanTUFFile(rows)
		if err != nil {
			return store.TUFState{}, fmt.Errorf("read TUF files: %w", err)
		}
		if f.Role == "root" {
			st.Roots = append(st.Roots, f)
		} else {
			st.Current = append(st.Current, f)
		}
	}
	if err := rows.Err(); err != nil {
		return store.TUFState{}, fmt.Errorf("read TUF files: %w", err)
	}
	return st, nil
}

// TUFFile implements store.TUF.
func (s *Store) TUFFile(ctx context.Context, tenant, role string, version int64) (store.TUFFile, error) {
	var r *sql.Row
	if version == 0 {
		r = s.queryRow(ctx, `SELECT `+tufFileColumns+` FROM tuf_files WHERE tenant_id = ? AND role = ? ORDER BY version DESC LIMIT 1`, tenant, role)
	} else {
		r = s.queryRow(ctx, `SELECT `+tufFileColumns+` FROM tuf_files WHERE tenant_id = ? AND role = ? AND version = ?`, tenant, role, version)
	}
	f, err := scanTUFFile(r)
	if err != nil {
		return store.TUFFile{}, notFound(err, fmt.Sprintf("TUF file %d.%s.json", version, role))
	}
	return f, nil
}

// WriteTUF implements store.TUF. The compare-and-set on tuf_state is what
// serializes writers: on PostgreSQL the UPDATE waits for a concurrent
// writer's row lock and then sees its new generation; on SQLite the single
// writer connection does the same. The lease check fences a publisher that
// lost its lease.
func (s *Store) WriteTUF(ctx context.Context, tenant string, w store.TUFWrite) (int64, error) {
	if len(w.Files) == 0 {
		return 0, fmt.Errorf("%w: a TUF write needs at least one file", store.ErrInvalidRequest)
	}
	for _, f := range w.Files {
		if f.Role == "" || f.Version < 1 || len(f.Data) == 0 {
			return 0, fmt.Errorf("%w: TUF file needs a role, a positive version and data", store.ErrInvalidRequest)
		}
	}
	var gen int64
	err := s.tx(ctx, func(t *txn) error {
		if w.Lease != nil {
			if err := t.checkLease(ctx, *w.Lease, w.Now); err != nil {
				return err
			}
		}
		if w.Generation == 0 {
			res, err := t.exec(ctx, `INSERT INTO tuf_state (tenant_id, generation, updated_at) VALUES (?, 1, ?) ON CONFLICT (tenant_id) DO NOTHING`,
				tenant, micros(w.Now))
			if err != nil {
				return fmt.Errorf("create TUF repository: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return store.Conflictf("the TUF repository of tenant %s was created by another writer", tenant)
			}
		} else {
			res, err := t.exec(ctx, `UPDATE tuf_state SET generation = generation + 1, updated_at = ? WHERE tenant_id = ? AND generation = ?`,
				micros(w.Now), tenant, w.Generation)
			if err != nil {
				return fmt.Errorf("update TUF generation: %w", err)
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return store.Conflictf("the TUF repository of tenant %s changed since generation %d", tenant, w.Generation)
			}
		}
		if err := t.queryRow(ctx, `SELECT generation FROM tuf_state WHERE tenant_id = ?`, tenant).Scan(&gen); err != nil {
			return fmt.Errorf("read TUF generation: %w", err)
		}
		for _, f := range w.Files {
			_, err := t.exec(ctx, `INSERT INTO tuf_files (tenant_id, role, version, data, expires_at, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
				tenant, f.Role, f.Version, string(f.Data), micros(f.Expires), micros(w.Now))
			if s.d.IsUniqueViolation(err) {
				return store.Conflictf("TUF file %s exists already", f.Name())
			}
			if err != nil {
				return fmt.Errorf("store TUF file %s: %w", f.Name(), err)
			}
			if _, err := t.exec(ctx, `UPDATE tuf_files SET superseded_at = ? WHERE tenant_id = ? AND role = ? AND version < ? AND superseded_at IS NULL`,
				micros(w.Now), tenant, f.Role, f.Version); err != nil {
				return fmt.Errorf("supersede older %s files: %w", f.Role, err)
			}
		}
		if w.Action != "" {
			return t.audit(ctx, tenant, w.By, w.Action, "tuf_repository", tenant, w.Details, w.Now)
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("write TUF metadata: %w", err)
	}
	return gen, nil
}

// PruneTUFFiles implements store.TUF.
func (s *Store) PruneTUFFiles(ctx context.Context, tenant string, before time.Time) (int64, error) {
	var n int64
	err := s.tx(ctx, func(t *txn) error {
		res, err := t.exec(ctx, `DELETE FROM tuf_files WHERE tenant_id = ? AND role <> 'root' AND superseded_at IS NOT NULL AND superseded_at < ?`,
			tenant, micros(before))
		if err != nil {
			return err
		}
		n, _ = res.RowsAffected()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune TUF files: %w", err)
	}
	return n, nil
}

// OnlineKeys implements store.TUF.
func (s *Store) OnlineKeys(ctx context.Context, tenant string) ([]store.OnlineKey, error) {
	rows, err := s.query(ctx, `SELECT key_id, role, public_key, sealed, created_at FROM tuf_online_keys
		WHERE tenant_id = ? ORDER BY created_at, key_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list online keys: %w", err)
	}
	defer rows.Close()
	var out []store.OnlineKey
	for rows.Next() {
		k := store.OnlineKey{TenantID: tenant}
		var sealed string
		var at int64
		if err := rows.Scan(&k.KeyID, &k.Role, &k.PublicKey, &sealed, &at); err != nil {
			return nil, fmt.Errorf("list online keys: %w", err)
		}
		if k.Sealed, err = base64.StdEncoding.DecodeString(sealed); err != nil {
			return nil, fmt.Errorf("online key %s: stored sealed key is not base64: %w", k.KeyID, err)
		}
		k.CreatedAt = fromMicros(at)
		out = append(out, k)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list online keys: %w", err)
	}
	return out, nil
}

// AddOnlineKey implements store.TUF.
func (s *Store) AddOnlineKey(ctx context.Context, k store.OnlineKey, by store.Actor, now time.Time) (store.OnlineKey, error) {
	if k.TenantID == "" || k.KeyID == "" || k.Role == "" || k.PublicKey == "" || len(k.Sealed) == 0 {
		return store.OnlineKey{}, fmt.Errorf("%w: an online key needs a tenant, key id, role, public key and sealed private key", store.ErrInvalidRequest)
	}
	k.CreatedAt = fromMicros(micros(now))
	err := s.tx(ctx, func(t *txn) error {
		_, err := t.exec(ctx, `INSERT INTO tuf_online_keys (tenant_id, key_id, role, public_key, sealed, created_at) VALUES (?, ?, ?, ?, ?, ?)`,
			k.TenantID, k.KeyID, k.Role, k.PublicKey, base64.StdEncoding.EncodeToString(k.Sealed), micros(now))
		if s.d.IsUniqueViolation(err) {
			return store.Conflictf("online key %s exists already", k.KeyID)
		}
		if err != nil {
			return err
		}
		return t.audit(ctx, k.TenantID, by, "tuf.online_key.add", "tuf_online_key", k.KeyID, map[string]any{"role": k.Role}, now)
	})
	if err != nil {
		return store.OnlineKey{}, fmt.Errorf("add online key: %w", err)
	}
	return k, nil
}

const directorDocColumns = `subject, counter, expires_at, doc, created_at`

func scanDirectorDoc(r tufRow, d *store.DirectorDocument) error {
	var doc string
	var exp, at int64
	if err := r.Scan(&d.Subject, &d.Counter, &exp, &doc, &at); err != nil {
		return err
	}
	d.Doc, d.Expires, d.CreatedAt = []byte(doc), fromMicros(exp), fromMicros(at)
	return nil
}

// DirectorDocument implements store.TUF.
func (s *Store) DirectorDocument(ctx context.Context, tenant, deviceID, kind, key string) (store.DirectorDocument, error) {
	d := store.DirectorDocument{TenantID: tenant, DeviceID: deviceID, Kind: kind, Key: key}
	err := scanDirectorDoc(s.queryRow(ctx, `SELECT `+directorDocColumns+` FROM director_documents
		WHERE tenant_id = ? AND device_id = ? AND kind = ? AND doc_key = ?`, tenant, deviceID, kind, key), &d)
	if err != nil {
		return store.DirectorDocument{}, notFound(err, fmt.Sprintf("%s document %s of device %s", kind, key, deviceID))
	}
	return d, nil
}

// SignDirectorDocument implements store.TUF. Incrementing the counter
// first takes the counter row's lock, which serializes concurrent signers
// for one device; the stored document is re-read under it.
func (s *Store) SignDirectorDocument(ctx context.Context, tenant, deviceID, kind, key string,
	reuse func(store.DirectorDocument) bool, sign func(counter int64) (store.DirectorDocument, error), now time.Time) (store.DirectorDocument, error) {
	var out store.DirectorDocument
	err := s.tx(ctx, func(t *txn) error {
		if _, err := t.exec(ctx, `INSERT INTO director_counters (tenant_id, device_id, counter) VALUES (?, ?, 1)
			ON CONFLICT (tenant_id, device_id) DO UPDATE SET counter = director_counters.counter + 1`, tenant, deviceID); err != nil {
			return fmt.Errorf("advance director counter: %w", err)
		}
		old := store.DirectorDocument{TenantID: tenant, DeviceID: deviceID, Kind: kind, Key: key}
		err := scanDirectorDoc(t.queryRow(ctx, `SELECT `+directorDocColumns+` FROM director_documents
			WHERE tenant_id = ? AND device_id = ? AND kind = ? AND doc_key = ?`, tenant, deviceID, kind, key), &old)
		switch {
		case err == nil && reuse != nil && reuse(old):
			// Another signer got here first; keep its document. Rolling
			// back also undoes the increment.
			out = old
			return errReuse
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("read director document: %w", err)
		}
		var counter int64
		if err := t.queryRow(ctx, `SELECT counter FROM director_counters WHERE tenant_id = ? AND device_id = ?`, tenant, deviceID).Scan(&counter); err != nil {
			return fmt.Errorf("read director counter: %w", err)
		}
		d, err := sign(counter)
		if err != nil {
			return err
		}
		if d.Counter != counter || len(d.Doc) == 0 {
			return fmt.Errorf("%w: signed director document must carry counter %d and bytes", store.ErrInvalidRequest, counter)
		}
		d.TenantID, d.DeviceID, d.Kind, d.Key = tenant, deviceID, kind, key
		d.CreatedAt = fromMicros(micros(now))
		if _, err := t.exec(ctx, `INSERT INTO director_documents (tenant_id, device_id, kind, doc_key, subject, counter, expires_at, doc, created_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
			ON CONFLICT (tenant_id, device_id, kind, doc_key) DO UPDATE SET subject = excluded.subject, counter = excluded.counter,
				expires_at = excluded.expires_at, doc = excluded.doc, created_at = excluded.created_at`,
			tenant, deviceID, kind, key, d.Subject, d.Counter, micros(d.Expires), string(d.Doc), micros(now)); err != nil {
			return fmt.Errorf("store director document: %w", err)
		}
		d.Expires = fromMicros(micros(d.Expires))
		out = d
		return nil
	})
	if err != nil && !errors.Is(err, errReuse) {
		return store.DirectorDocument{}, fmt.Errorf("sign %s document %s for device %s: %w", kind, key, deviceID, err)
	}
	return out, nil
}

// errReuse rolls back a SignDirectorDocument transaction that found a
// usable document.
var errReuse = errors.New("reuse stored director document")

// DirectorCounter implements store.TUF.
func (s *Store) DirectorCounter(ctx context.Context, tenant, deviceID string) (int64, error) {
	var n int64
	err := s.queryRow(ctx, `SELECT counter FROM director_counters WHERE tenant_id = ? AND device_id = ?`, tenant, deviceID).Scan(&n)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return 0, nil
	case err != nil:
		return 0, fmt.Errorf("read director counter: %w", err)
	}
	return n, nil
}

// FinalizeRelease implements store.TUF.
func (s *Store) FinalizeRelease(ctx context.Context, tenant, releaseID string, by store.Actor, now time.Time) (store.FinalizedRelease, error) {
	var out store.FinalizedRelease
	err := s.tx(ctx, func(t *txn) error {
		r, err := t.lockRelease(ctx, tenant, releaseID)
		if err != nil {
			return err
		}
		if r.State != store.ReleasePublished {
			return store.Conflictf("release %s is a draft: publish it before finalizing it", r.Version)
		}
		res, err := t.exec(ctx, `INSERT INTO finalized_releases (tenant_id, release_id, version, security_version, finalized_at)
			VALUES (?, ?, ?, ?, ?) ON CONFLICT (tenant_id, release_id) DO NOTHING`, tenant, releaseID, r.Version, r.SecurityVersion, micros(now))
		if err != nil {
			return fmt.Errorf("record finalize: %w", err)
		}
		var at int64
		out = store.FinalizedRelease{TenantID: tenant, ReleaseID: releaseID}
		if err := t.queryRow(ctx, `SELECT version, security_version, finalized_at FROM finalized_releases WHERE tenant_id = ? AND release_id = ?`,
			tenant, releaseID).Scan(&out.Version, &out.SecurityVersion, &at); err != nil {
			return fmt.Errorf("read finalize: %w", err)
		}
		out.FinalizedAt = fromMicros(at)
		if n, _ := res.RowsAffected(); n == 0 {
			return nil
		}
		return t.audit(ctx, tenant, by, "release.finalize", "release", releaseID,
			map[string]any{"version": r.Version, "security_version": r.SecurityVersion}, now)
	})
	if err != nil {
		return store.FinalizedRelease{}, fmt.Errorf("finalize release: %w", err)
	}
	return out, nil
}

// FinalizedReleases implements store.TUF.
func (s *Store) FinalizedReleases(ctx context.Context, tenant string) ([]store.FinalizedRelease, error) {
	rows, err := s.query(ctx, `SELECT release_id, version, security_version, finalized_at FROM finalized_releases
		WHERE tenant_id = ? ORDER BY finalized_at, release_id`, tenant)
	if err != nil {
		return nil, fmt.Errorf("list finalized releases: %w", err)
	}
	defer rows.Close()
	var out []store.FinalizedRelease
	for rows.Next() {
		f := store.FinalizedRelease{TenantID: tenant}
		var at int64
		if err := rows.Scan(&f.ReleaseID, &f.Version, &f.SecurityVersion, &at); err != nil {
			return nil, fmt.Errorf("list finalized releases: %w", err)
		}
		f.FinalizedAt = fromMicros(at)
		out = append(out, f)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list finalized releases: %w", err)
	}
	return out, nil
}
