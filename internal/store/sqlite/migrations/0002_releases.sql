-- Releases, artifacts, assignments, their status history and report gaps.
-- Times are INTEGER microseconds since the Unix epoch (UTC); booleans are
-- 0/1; string lists are JSON text.

-- A release is a draft while artifacts are added, then published and
-- immutable except for bad/bad_reason and affected_by (audited flags).
-- version is the canonical semantic version; version_key orders versions
-- by semver precedence as plain text (see internal/semver.Key).
CREATE TABLE releases (
    tenant_id        TEXT NOT NULL REFERENCES tenants(id),
    id               TEXT NOT NULL,
    version          TEXT NOT NULL,
    version_key      TEXT NOT NULL,
    notes            TEXT NOT NULL DEFAULT '',
    security_version INTEGER NOT NULL DEFAULT 0,
    severity         TEXT NOT NULL,
    cves             TEXT NOT NULL DEFAULT '[]',
    state            TEXT NOT NULL,
    bad              INTEGER NOT NULL DEFAULT 0,
    bad_reason       TEXT NOT NULL DEFAULT '',
    affected_by      TEXT NOT NULL DEFAULT '[]',
    created_at       INTEGER NOT NULL,
    published_at     INTEGER,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, version)
);
CREATE INDEX releases_created ON releases (tenant_id, created_at, id);
CREATE INDEX releases_version_key ON releases (tenant_id, version_key);

-- One installable file of a release. hw_revs is the JSON list of hardware
-- revisions it suits; artifact_hw holds one row per revision so that the
-- database enforces the artifact key (release, hardware, type, component,
-- from_version) across overlapping revision sets.
CREATE TABLE artifacts (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    release_id   TEXT NOT NULL,
    device_type  TEXT NOT NULL,
    hw_revs      TEXT NOT NULL,
    type         TEXT NOT NULL,
    component    TEXT NOT NULL DEFAULT '',
    from_version TEXT NOT NULL DEFAULT '',
    compression  TEXT NOT NULL DEFAULT '',
    name         TEXT NOT NULL,
    size         INTEGER NOT NULL,
    sha256       TEXT NOT NULL,
    sha1         TEXT NOT NULL,
    md5          TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, release_id) REFERENCES releases (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX artifacts_release ON artifacts (tenant_id, release_id, created_at, id);
-- BlobInUse looks blobs up across tenants.
CREATE INDEX artifacts_sha256 ON artifacts (sha256);

CREATE TABLE artifact_hw (
    tenant_id    TEXT NOT NULL,
    release_id   TEXT NOT NULL,
    artifact_id  TEXT NOT NULL,
    device_type  TEXT NOT NULL,
    hw_rev       TEXT NOT NULL,
    type         TEXT NOT NULL,
    component    TEXT NOT NULL,
    from_version TEXT NOT NULL,
    UNIQUE (tenant_id, release_id, device_type, hw_rev, type, component, from_version),
    FOREIGN KEY (tenant_id, artifact_id) REFERENCES artifacts (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX artifact_hw_artifact ON artifact_hw (tenant_id, artifact_id);

-- One release assigned to one device. active is 1 exactly while the state
-- is not terminal; the partial unique index keeps at most one active
-- assignment per device.
CREATE TABLE assignments (
    tenant_id     TEXT NOT NULL,
    id            TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    release_id    TEXT NOT NULL,
    campaign_id   TEXT NOT NULL DEFAULT '',
    state         TEXT NOT NULL,
    active        INTEGER NOT NULL,
    progress      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT NOT NULL DEFAULT '',
    reason        TEXT NOT NULL DEFAULT '',
    superseded_by TEXT NOT NULL DEFAULT '',
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id),
    FOREIGN KEY (tenant_id, release_id) REFERENCES releases (tenant_id, id)
);
CREATE UNIQUE INDEX assignments_one_active ON assignments (tenant_id, device_id) WHERE active = 1;
CREATE INDEX assignments_device ON assignments (tenant_id, device_id, created_at, id);
CREATE INDEX assignments_created ON assignments (tenant_id, created_at, id);
CREATE INDEX assignments_release ON assignments (tenant_id, release_id);
CREATE INDEX assignments_campaign ON assignments (tenant_id, campaign_id) WHERE campaign_id <> '';

-- Every stored status report, keyed by the device's own sequence number.
-- assignment_id is what the device sent; applied says whether the report
-- moved that assignment.
CREATE TABLE assignment_events (
    tenant_id     TEXT NOT NULL,
    device_id     TEXT NOT NULL,
    seq           INTEGER NOT NULL,
    assignment_id TEXT NOT NULL,
    state         TEXT NOT NULL,
    progress      INTEGER NOT NULL DEFAULT 0,
    error_code    TEXT NOT NULL DEFAULT '',
    message       TEXT NOT NULL DEFAULT '',
    log_tail      TEXT NOT NULL DEFAULT '',
    reported_at   INTEGER NOT NULL,
    received_at   INTEGER NOT NULL,
    applied       INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, device_id, seq),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
CREATE INDEX assignment_events_assignment ON assignment_events (tenant_id, assignment_id, seq);

-- Sequence numbers a device skipped: [from_seq, to_seq], both inclusive.
-- Late reports shrink or split the gap they fall into.
CREATE TABLE report_gaps (
    tenant_id   TEXT NOT NULL,
    device_id   TEXT NOT NULL,
    from_seq    INTEGER NOT NULL,
    to_seq      INTEGER NOT NULL,
    detected_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, device_id, from_seq),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id)
);
