-- Telemetry: raw points and hourly roll-ups.
-- A raw point is keyed by (device, metric, time), so a batch a device sends
-- again is stored once and counted once in the roll-up. Times (at, hour,
-- last_at) are BIGINT microseconds since the Unix epoch; hour is the start
-- of the UTC hour. last is the value of the point with the latest at.
-- Rows go with their device (ON DELETE CASCADE).

CREATE TABLE telemetry_raw (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    at        BIGINT NOT NULL,
    value     DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (tenant_id, device_id, metric, at),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
-- Pruning deletes by time across devices.
CREATE INDEX telemetry_raw_at ON telemetry_raw (at);

CREATE TABLE telemetry_hourly (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    count     BIGINT NOT NULL,
    sum       DOUBLE PRECISION NOT NULL,
    min       DOUBLE PRECISION NOT NULL,
    max       DOUBLE PRECISION NOT NULL,
    last      DOUBLE PRECISION NOT NULL,
    last_at   BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, device_id, metric, hour),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX telemetry_hourly_hour ON telemetry_hourly (hour);
-- Fleet-wide queries over one metric (health analysis) scan by hour.
CREATE INDEX telemetry_hourly_metric ON telemetry_hourly (tenant_id, metric, hour);
