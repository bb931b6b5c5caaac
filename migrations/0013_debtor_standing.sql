-- Where each debtor stands between enforcement and bankruptcy (R24–R26), by
-- the keyed hash cases know it by, and every decision taken on it (a refused
-- review's grounds are not used again, R26). No row: enforcement goes on.
CREATE TABLE debtor_decisions (
    id                 TEXT PRIMARY KEY,
    debtor_key         TEXT NOT NULL,
    act                TEXT NOT NULL,   -- review | accepted | refused
    decision_reference TEXT NOT NULL,
    court              TEXT NOT NULL,
    case_number        TEXT NOT NULL,
    grounds            TEXT NOT NULL,
    decided_at         BIGINT NOT NULL,
    recorded_at        BIGINT NOT NULL
);
CREATE INDEX debtor_decisions_by_debtor ON debtor_decisions (debtor_key);
CREATE TABLE debtor_standing (
    debtor_key TEXT PRIMARY KEY,
    standing   TEXT NOT NULL,           -- review | bankrupt
    decision   TEXT NOT NULL REFERENCES debtor_decisions (id)
);
CREATE INDEX assets_by_debtor ON assets (debtor_key);
