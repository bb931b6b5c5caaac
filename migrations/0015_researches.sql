-- Terminated cases and their re-searches (R30): a case terminated for now
-- (终本) is searched again every six months for five years. Each re-search
-- is a row, due at the Beijing midnight that starts its day; its debtors are
-- kept sealed (the identifier itself, needed to ask the registries) beside
-- the keyed hash and the masked form, and dropped with the schedule.
ALTER TABLE cases ADD COLUMN terminated_at BIGINT;
CREATE TABLE researches (
    case_number  TEXT NOT NULL,
    round        INTEGER NOT NULL,            -- 1..10: 6, 12, ... 60 months after termination
    court        TEXT NOT NULL,
    due_at       BIGINT NOT NULL,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    search_id    TEXT,                        -- the search job that carried it out
    done_at      BIGINT,
    PRIMARY KEY (case_number, round)
);
CREATE INDEX researches_due ON researches (done_at, due_at);
CREATE INDEX researches_by_court ON researches (court, due_at);
CREATE TABLE research_debtors (
    case_number  TEXT NOT NULL,
    idx          INTEGER NOT NULL,
    debtor_key   TEXT NOT NULL,
    masked       TEXT NOT NULL,
    organisation INTEGER NOT NULL,            -- 1: a credit code, 0: a resident id
    sealed       TEXT NOT NULL,               -- hex, bound to the case and the position
    PRIMARY KEY (case_number, idx)
);
-- A search job opened for a re-search says which (its case is the job's case),
-- so its settling compares what it found with what the case had found before.
ALTER TABLE search_jobs ADD COLUMN research_round BIGINT;
ALTER TABLE researches ADD COLUMN found BIGINT;
ALTER TABLE researches ADD COLUMN new_assets BIGINT;
-- Every asset a terminated case's searches have found (kind, then the
-- asset's identity within it): what a re-search finds beyond these is new.
CREATE TABLE research_seen (
    case_number TEXT NOT NULL,
    asset       TEXT NOT NULL,
    PRIMARY KEY (case_number, asset)
);
-- What each re-search found that was new to its case, to mark in its result.
CREATE TABLE research_new (
    search_id TEXT NOT NULL,
    asset     TEXT NOT NULL,
    PRIMARY KEY (search_id, asset)
);
