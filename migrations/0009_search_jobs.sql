-- Searches that outlive the court's call (search jobs): a search whose
-- registries have not all answered is kept here until every one settles, so
-- late answers reach the court across restarts and replicas. Times are Unix
-- microseconds. Debtors are kept as the audit trail keeps them (masked, and a
-- keyed hash); the identifier itself only sealed, and only while a registry
-- may still have to be asked again.
CREATE TABLE search_jobs (
    search_id     TEXT PRIMARY KEY,
    court         TEXT NOT NULL,
    request_id    TEXT NOT NULL,             -- the court's id of a SubmitSearch ('' for a Search call)
    digest        TEXT NOT NULL,             -- hash of the query: a reused request_id must repeat it
    case_number   TEXT NOT NULL,
    kinds         TEXT NOT NULL,             -- asked asset kinds, comma-separated numbers ('' for all)
    submitted_at  BIGINT NOT NULL,
    settled_at    BIGINT,                    -- when the last registry settled
    last_seq      BIGINT NOT NULL DEFAULT 0  -- the last answer's sequence number
);
CREATE UNIQUE INDEX search_jobs_request ON search_jobs (court, request_id) WHERE request_id <> '';
CREATE INDEX search_jobs_court ON search_jobs (court, submitted_at);

CREATE TABLE search_debtors (
    search_id   TEXT NOT NULL REFERENCES search_jobs (search_id) ON DELETE CASCADE,
    idx         INTEGER NOT NULL,            -- position in the query
    masked      TEXT NOT NULL,
    organisation INTEGER NOT NULL,           -- 1: a credit code, 0: a resident id
    debtor_key  TEXT NOT NULL,               -- keyed hash, as in the audit trail
    sealed      TEXT,                        -- the debtor, sealed (hex); cleared when the search settles
    PRIMARY KEY (search_id, idx)
);

-- One registry's part for one debtor. state: asking (a call under way, held
-- by lease_until), pending (a ticket, asked again at next_ask), answered,
-- failed, expired.
CREATE TABLE search_legs (
    search_id    TEXT NOT NULL REFERENCES search_jobs (search_id) ON DELETE CASCADE,
    debtor_idx   INTEGER NOT NULL,
    registry     TEXT NOT NULL,
    kind         INTEGER NOT NULL,           -- RegistryKind
    state        TEXT NOT NULL CHECK (state IN ('asking', 'pending', 'answered', 'failed', 'expired')),
    ticket       TEXT,
    next_ask     BIGINT NOT NULL,
    answer_by    BIGINT,
    lease_until  BIGINT NOT NULL DEFAULT 0,
    claim        TEXT,                       -- the claim that holds the lease
    attempts     INTEGER NOT NULL DEFAULT 0,
    status       INTEGER NOT NULL DEFAULT 0, -- RegistryStatus once settled
    message      TEXT NOT NULL DEFAULT '',
    answer       TEXT,                       -- the checked answer (hex), once answered
    settled_at   BIGINT,
    seq          BIGINT,                     -- order of settling within the search
    PRIMARY KEY (search_id, debtor_idx, registry)
);
CREATE INDEX search_legs_due ON search_legs (next_ask) WHERE state IN ('asking', 'pending');
