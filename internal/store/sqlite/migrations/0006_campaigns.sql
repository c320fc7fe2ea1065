-- Campaigns: the campaign itself (spec, plan and engine state as JSON text
-- owned by internal/campaign and internal/rollout), one row per targeted
-- device, per-(step, stratum, state) tallies kept in the same transactions
-- as the device rows, stored decisions, hourly rate evidence, and webhooks
-- with their delivery log. Times are INTEGER microseconds since the Unix
-- epoch.

CREATE TABLE campaigns (
    tenant_id       TEXT NOT NULL REFERENCES tenants(id),
    id              TEXT NOT NULL,
    name            TEXT NOT NULL,
    kind            TEXT NOT NULL,
    release_id      TEXT NOT NULL,
    rollback_of     TEXT NOT NULL DEFAULT '',
    spec            TEXT NOT NULL,
    plan            TEXT NOT NULL DEFAULT '{}',
    engine          TEXT NOT NULL DEFAULT '{}',
    state           TEXT NOT NULL,
    state_reason    TEXT NOT NULL DEFAULT '',
    step            INTEGER NOT NULL DEFAULT 0,
    approved_step   INTEGER NOT NULL DEFAULT -1,
    retry_requested INTEGER NOT NULL DEFAULT 0,
    seed            INTEGER NOT NULL,
    version         INTEGER NOT NULL DEFAULT 1,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    started_at      INTEGER,
    finished_at     INTEGER,
    finalized_at    INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, release_id) REFERENCES releases (tenant_id, id)
);
CREATE INDEX campaigns_created ON campaigns (tenant_id, created_at, id);
CREATE INDEX campaigns_state ON campaigns (state);

-- One row per device a campaign targets. state is the campaign's view:
-- queued, assigned, succeeded, failed, rolled-back, timed-out, canceled,
-- superseded, skipped or excluded. step -1 is the hold-back control group.
CREATE TABLE campaign_devices (
    tenant_id       TEXT NOT NULL,
    campaign_id     TEXT NOT NULL,
    device_id       TEXT NOT NULL,
    stratum         TEXT NOT NULL,
    step            INTEGER NOT NULL,
    silent          INTEGER NOT NULL DEFAULT 0,
    state           TEXT NOT NULL,
    release_id      TEXT NOT NULL DEFAULT '',
    from_version    TEXT NOT NULL DEFAULT '',
    assignment_id   TEXT NOT NULL DEFAULT '',
    eligible_at     INTEGER NOT NULL,
    due_at          INTEGER,
    waiting         INTEGER NOT NULL DEFAULT 0,
    attempts        INTEGER NOT NULL DEFAULT 0,
    reason          TEXT NOT NULL DEFAULT '',
    assigned_at     INTEGER,
    soak_started_at INTEGER,
    finished_at     INTEGER,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, device_id),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX campaign_devices_dispatch ON campaign_devices (tenant_id, campaign_id, state, eligible_at, device_id);
CREATE INDEX campaign_devices_due ON campaign_devices (tenant_id, campaign_id, state, due_at);
CREATE INDEX campaign_devices_device ON campaign_devices (tenant_id, device_id);

CREATE TABLE campaign_tallies (
    tenant_id   TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    step        INTEGER NOT NULL,
    stratum     TEXT NOT NULL,
    state       TEXT NOT NULL,
    silent      INTEGER NOT NULL,
    n           INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, step, stratum, state, silent),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE campaign_decisions (
    tenant_id   TEXT NOT NULL,
    campaign_id TEXT NOT NULL,
    seq         INTEGER NOT NULL,
    at          INTEGER NOT NULL,
    step        INTEGER NOT NULL,
    verdict     TEXT NOT NULL,
    action      TEXT NOT NULL,
    summary     TEXT NOT NULL,
    detail      TEXT NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, seq),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);

CREATE TABLE campaign_rate_periods (
    tenant_id      TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    hour           INTEGER NOT NULL,
    stratum        TEXT NOT NULL,
    metric         TEXT NOT NULL,
    canary_events  INTEGER NOT NULL,
    canary_hours   REAL NOT NULL,
    control_events INTEGER NOT NULL,
    control_hours  REAL NOT NULL,
    PRIMARY KEY (tenant_id, campaign_id, hour, stratum, metric),
    FOREIGN KEY (tenant_id, campaign_id) REFERENCES campaigns (tenant_id, id) ON DELETE CASCADE
);

-- The engine follows changes, not the fleet: a campaign's assignments by
-- update time, and devices by update time (continuous targeting).
CREATE INDEX assignments_campaign_updated ON assignments (tenant_id, campaign_id, updated_at, id);
CREATE INDEX devices_updated ON devices (tenant_id, updated_at, id);

CREATE TABLE webhooks (
    tenant_id  TEXT NOT NULL REFERENCES tenants(id),
    id         TEXT NOT NULL,
    url        TEXT NOT NULL,
    secret     TEXT NOT NULL,
    events     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, id)
);

CREATE TABLE webhook_deliveries (
    tenant_id    TEXT NOT NULL,
    id           TEXT NOT NULL,
    webhook_id   TEXT NOT NULL,
    event        TEXT NOT NULL,
    payload      TEXT NOT NULL,
    state        TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    next_at      INTEGER NOT NULL,
    last_status  INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT NOT NULL DEFAULT '',
    created_at   INTEGER NOT NULL,
    delivered_at INTEGER,
    PRIMARY KEY (tenant_id, id),
    FOREIGN KEY (tenant_id, webhook_id) REFERENCES webhooks (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (state, next_at);
CREATE INDEX webhook_deliveries_webhook ON webhook_deliveries (tenant_id, webhook_id, created_at, id);
