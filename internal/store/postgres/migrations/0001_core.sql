-- Core registry: tenants, devices and their credentials, tags, groups,
-- operators, API tokens, the hash-chained audit log and server secrets.
-- Times are BIGINT microseconds since the Unix epoch (UTC) in both dialects.

CREATE TABLE tenants (
    id         TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
INSERT INTO tenants (id, name, created_at) VALUES ('default', 'Default', 0);

CREATE TABLE devices (
    tenant_id          TEXT NOT NULL REFERENCES tenants(id),
    id                 TEXT NOT NULL,
    serial             TEXT NOT NULL,
    state              TEXT NOT NULL,
    protocol           TEXT NOT NULL,
    device_type        TEXT NOT NULL DEFAULT '',
    hw_rev             TEXT NOT NULL DEFAULT '',
    region             TEXT NOT NULL DEFAULT '',
    time_zone          TEXT NOT NULL DEFAULT '',
    version            TEXT NOT NULL DEFAULT '',
    version_key        TEXT COLLATE "C" NOT NULL DEFAULT '',
    previous_version   TEXT NOT NULL DEFAULT '',
    version_since      BIGINT,
    security_floor     BIGINT NOT NULL DEFAULT 0,
    attributes         TEXT NOT NULL DEFAULT '{}',
    credential_epoch   BIGINT NOT NULL DEFAULT 0,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL,
    last_seen_at       BIGINT,
    pending_expires_at BIGINT,
    last_report_seq    BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, serial)
);
CREATE INDEX devices_state ON devices (tenant_id, state);
CREATE INDEX devices_created ON devices (tenant_id, created_at, id);
CREATE INDEX devices_pending_expiry ON devices (pending_expires_at) WHERE state = 'pending';

CREATE TABLE device_credentials (
    tenant_id      TEXT NOT NULL REFERENCES tenants(id),
    id             TEXT NOT NULL,
    device_id      TEXT,
    kind           TEXT NOT NULL,
    algorithm      TEXT NOT NULL DEFAULT '',
    fingerprint    TEXT NOT NULL,
    material       TEXT NOT NULL DEFAULT '',
    state          TEXT NOT NULL,
    preauth_serial TEXT NOT NULL DEFAULT '',
    created_at     BIGINT NOT NULL,
    revoked_at     BIGINT,
    PRIMARY KEY (tenant_id, id)
);
-- A key or token identifies at most one live credential per tenant.
CREATE UNIQUE INDEX device_credentials_live ON device_credentials (tenant_id, kind, fingerprint) WHERE state <> 'revoked';
CREATE INDEX device_credentials_device ON device_credentials (tenant_id, device_id);

CREATE TABLE device_tags (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    tag       TEXT NOT NULL,
    PRIMARY KEY (tenant_id, device_id, tag),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX device_tags_tag ON device_tags (tenant_id, tag);

CREATE TABLE device_group_members (
    tenant_id  TEXT NOT NULL,
    group_name TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    PRIMARY KEY (tenant_id, group_name, device_id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX device_group_members_device ON device_group_members (tenant_id, device_id);

CREATE TABLE users (
    tenant_id            TEXT NOT NULL REFERENCES tenants(id),
    id                   TEXT NOT NULL,
    name                 TEXT COLLATE "C" NOT NULL,
    role                 TEXT NOT NULL,
    password_hash        TEXT NOT NULL,
    must_change_password BIGINT NOT NULL DEFAULT 0,
    disabled             BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, name)
);

CREATE TABLE api_tokens (
    id           TEXT PRIMARY KEY,
    tenant_id    TEXT NOT NULL REFERENCES tenants(id),
    name         TEXT NOT NULL,
    user_id      TEXT NOT NULL DEFAULT '',
    role         TEXT NOT NULL,
    secret_hash  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    revoked_at   BIGINT,
    last_used_at BIGINT
);
CREATE INDEX api_tokens_tenant ON api_tokens (tenant_id, created_at, id);

CREATE TABLE audit_log (
    tenant_id   TEXT NOT NULL REFERENCES tenants(id),
    seq         BIGINT NOT NULL,
    at          BIGINT NOT NULL,
    actor_kind  TEXT NOT NULL,
    actor_id    TEXT NOT NULL,
    actor_name  TEXT NOT NULL,
    action      TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id   TEXT NOT NULL,
    details     TEXT NOT NULL DEFAULT '',
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL,
    PRIMARY KEY (tenant_id, seq)
);
CREATE INDEX audit_log_object ON audit_log (tenant_id, object_type, object_id);
CREATE INDEX audit_log_action ON audit_log (tenant_id, action, seq);

-- One row per tenant: the head of the audit hash chain. Appends update it
-- in the same transaction, which serializes appends per tenant.
CREATE TABLE audit_heads (
    tenant_id TEXT PRIMARY KEY REFERENCES tenants(id),
    seq       BIGINT NOT NULL,
    hash      TEXT NOT NULL
);
INSERT INTO audit_heads (tenant_id, seq, hash) VALUES ('default', 0, '');

CREATE TABLE secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
