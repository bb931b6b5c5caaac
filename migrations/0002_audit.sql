-- The audit trail (R16): every query and control order, allowed or denied.
-- Each gateway process appends to its own chain; a record's hash commits to
-- the previous record's, so any change, deletion, insertion or reordering
-- breaks the chain (`assetgw audit verify`).

CREATE TABLE audit (
    chain         TEXT NOT NULL,             -- one per gateway process
    seq           BIGINT NOT NULL,           -- 1, 2, 3 … within the chain
    at            BIGINT NOT NULL,           -- Unix microseconds
    court         TEXT NOT NULL,             -- caller's court code ('' if unauthenticated)
    officer       TEXT NOT NULL,
    method        TEXT NOT NULL,
    case_number   TEXT NOT NULL,
    debtors       TEXT NOT NULL,             -- masked identifiers, comma-separated
    debtor_keys   TEXT NOT NULL,             -- keyed hashes of the identifiers, comma-separated
    detail        TEXT NOT NULL,             -- JSON: registries asked and their outcomes, or the order's target
    code          TEXT NOT NULL,             -- gRPC status code answered
    message       TEXT NOT NULL,
    prev          TEXT NOT NULL,             -- hash of the chain's previous record
    hash          TEXT NOT NULL,
    PRIMARY KEY (chain, seq)
);
CREATE INDEX audit_case ON audit (case_number);
CREATE INDEX audit_court_at ON audit (court, at);
