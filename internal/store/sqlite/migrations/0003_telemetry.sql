-- Telemetry: raw points and hourly roll-ups.
-- A raw point is keyed by (device, metric, time), so a batch a device sends
-- again is stored once and counted once in the roll-up. Times (at, hour,
-- last_at) are INTEGER microseconds since the Unix epoch; hour is the start
-- of the UTC hour. last is the value of the point with the latest at.
-- Rows go with their device (ON DELETE CASCADE).

CREATE TABLE telemetry_raw (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    at        INTEGER NOT NULL,
    value     REAL NOT NULL,
    PRIMARY KEY (tenant_id, device_id, metric, at),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
-- Pruning deletes by time across devices.
CREATE INDEX telemetry_raw_at ON telemetry_raw (at);

CREATE TABLE telemetry_hourly (
    tenant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    metric    TEXT NOT NULL,
    hour      INTEGER NOT NULL,
    count     INTEGER NOT NULL,
    sum       REAL NOT NULL,
    min       REAL NOT NULL,
    max       REAL NOT NULL,
    last      REAL NOT NULL,
    last_at   INTEGER NOT NULL,
    PRIMARY KEY (tenant_id, device_id, metric, hour),
    FOREIGN KEY (tenant_id, device_id) REFERENCES devices (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX telemetry_hourly_hour ON telemetry_hourly (hour);
-- Fleet-wide queries over one metric (health analysis) scan by hour.
CREATE INDEX telemetry_hourly_metric ON telemetry_hourly (tenant_id, metric, hour);
