-- Signed updates (TUF and the director). See docs/security.md.

-- One row per tenant with a TUF repository. Every write of metadata bumps
-- generation with a compare-and-set, so concurrent writers (an upload on
-- one replica, the publisher on another) never both commit against the
-- same state; readers poll it to notice another replica's writes.
CREATE TABLE tuf_state (
    tenant_id  TEXT PRIMARY KEY REFERENCES tenants(id),
    generation INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Every metadata file ever published, by role and version (served as
-- "N.<role>.json"; the newest timestamp as "timestamp.json"). A role's
-- current file is its highest version. superseded_at is set when a newer
-- version of the role arrives; older files stay downloadable for a while
-- after that, then are pruned. Root versions are never pruned: devices
-- walk the chain.
CREATE TABLE tuf_files (
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    role          TEXT NOT NULL,
    version       INTEGER NOT NULL,
    data          TEXT NOT NULL,
    expires_at    INTEGER NOT NULL,
    created_at    INTEGER NOT NULL,
    superseded_at INTEGER,
    PRIMARY KEY (tenant_id, role, version)
);
CREATE INDEX tuf_files_superseded ON tuf_files (superseded_at) WHERE superseded_at IS NOT NULL;

-- The server's online keys (snapshot, timestamp, director). sealed is the
-- private key encrypted by the signing service with a key-encryption key
-- kept outside the database; the store never sees it in clear.
CREATE TABLE tuf_online_keys (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    key_id     TEXT NOT NULL,
    role       TEXT NOT NULL,
    public_key TEXT NOT NULL,
    sealed     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, key_id)
);

-- The director's per-device counter: it grows with every document signed
-- for the device (assignments and finalizes) and never goes back.
CREATE TABLE director_counters (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    counter   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, device_id)
);

-- The signed director document a device is handed for one assignment
-- (kind 'assignment', doc_key the assignment id) or for one finalized
-- version (kind 'finalize', doc_key the version). The same bytes are
-- served on every check-in until they near expiry, so a device can resume.
CREATE TABLE director_documents (
    tenant_id  TEXT NOT NULL,
    device_id  TEXT NOT NULL,
    kind       TEXT NOT NULL,
    doc_key    TEXT NOT NULL,
    subject    TEXT NOT NULL,
    counter    INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    doc        TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, device_id, kind, doc_key)
);

-- Releases an operator finalized: devices running them get a finalize
-- document that raises their security floor.
CREATE TABLE finalized_releases (
    tenant_id        TEXT NOT NULL,
    release_id       TEXT NOT NULL,
    version          TEXT NOT NULL,
    security_version INTEGER NOT NULL,
    finalized_at     INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, release_id),
    FOREIGN KEY (tenant_id, release_id) REFERENCES releases (tenant_id, id)
);
