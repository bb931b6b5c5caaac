-- The seizure ledger. One schema for SQLite and PostgreSQL: times are Unix
-- microseconds and flags 0/1 in BIGINT, bytes are hex in TEXT, so both run the
-- same statements.

CREATE TABLE assets (
    asset_key     TEXT PRIMARY KEY,          -- "<kind>:<asset id>"
    kind          BIGINT NOT NULL,
    asset_id      TEXT NOT NULL,
    registry      TEXT NOT NULL,
    debtor        TEXT NOT NULL,             -- masked
    unit          TEXT NOT NULL,
    total         BIGINT NOT NULL,
    sale_started  BIGINT NOT NULL,           -- 0 or 1
    disposed      BIGINT NOT NULL            -- 0 or 1
);

CREATE TABLE seizures (
    seizure_id    TEXT PRIMARY KEY,
    asset_key     TEXT NOT NULL REFERENCES assets (asset_key),
    seq           BIGINT NOT NULL,
    court         TEXT NOT NULL,
    case_number   TEXT NOT NULL,
    requested     BIGINT NOT NULL,
    effective     BIGINT NOT NULL,
    state         TEXT NOT NULL,
    placed_at     BIGINT NOT NULL,
    start_at      BIGINT,
    end_at        BIGINT,
    ended_at      BIGINT,
    registry_ref  TEXT,
    renewals      BIGINT NOT NULL,
    UNIQUE (asset_key, seq)
);
CREATE INDEX seizures_case ON seizures (case_number);
CREATE INDEX seizures_end ON seizures (end_at);

-- One global sequence for events and outbox orders; its row lock orders commits.
CREATE TABLE counters (
    name   TEXT PRIMARY KEY,
    value  BIGINT NOT NULL
);
INSERT INTO counters (name, value) VALUES ('seq', 0);

CREATE TABLE events (
    seq          BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    seizure_id   TEXT NOT NULL,
    asset_key    TEXT NOT NULL,
    court        TEXT NOT NULL,
    case_number  TEXT NOT NULL,
    message      TEXT NOT NULL
);

CREATE TABLE outbox (
    id               BIGINT PRIMARY KEY,
    asset_key        TEXT NOT NULL,
    seizure_id       TEXT NOT NULL,
    registry         TEXT NOT NULL,
    kind             TEXT NOT NULL,
    amount           BIGINT NOT NULL,
    end_at           BIGINT,
    court            TEXT NOT NULL,
    case_number      TEXT NOT NULL,
    attempts         BIGINT NOT NULL,
    next_attempt_at  BIGINT NOT NULL,
    lease_until      BIGINT NOT NULL,
    delivered_at     BIGINT,
    last_error       TEXT
);
CREATE INDEX outbox_pending ON outbox (delivered_at, id);
CREATE INDEX outbox_asset ON outbox (asset_key, id);
CREATE INDEX outbox_seizure ON outbox (seizure_id, id);

CREATE TABLE requests (
    request_id  TEXT PRIMARY KEY,
    method      TEXT NOT NULL,
    reply       TEXT NOT NULL,             -- the encoded reply, hex
    at          BIGINT NOT NULL
);

CREATE TABLE transfers (
    transfer_id         TEXT PRIMARY KEY,
    from_case           TEXT NOT NULL UNIQUE,
    from_court          TEXT NOT NULL,
    to_court            TEXT NOT NULL,
    to_case             TEXT,
    decision_reference  TEXT NOT NULL,
    decided_at          BIGINT NOT NULL,
    handed_over_at      BIGINT NOT NULL,
    filed_at            BIGINT,
    seizure_count       BIGINT NOT NULL
);

CREATE TABLE disposal_transfers (
    id            TEXT PRIMARY KEY,
    asset_key     TEXT NOT NULL,
    from_case     TEXT NOT NULL,
    to_case       TEXT NOT NULL,
    requested_at  BIGINT NOT NULL,
    answered_at   BIGINT,
    state         TEXT NOT NULL
);
