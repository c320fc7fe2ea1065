-- hawkBit DDI: short numeric action ids for assignments. Zephyr's client
-- keeps action ids in small integers and deploymentBase paths in 50 bytes,
-- so assignment ids (random text) cannot be used directly.

CREATE TABLE ddi_actions (
    id            BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id     TEXT NOT NULL REFERENCES tenants(id),
    assignment_id TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    UNIQUE (tenant_id, assignment_id)
);
