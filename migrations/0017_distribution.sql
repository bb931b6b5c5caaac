-- What rank is for (R28–R29): money received for distribution (a sale's
-- proceeds, a deduction's funds), the seizures on the asset in rank order
-- when it came in, the claims secured on assets, participations, plans and
-- their lines, and every movement of a case's funds. Amounts are integer
-- minor units; a case's funds are never negative (`ledger verify` checks it).
CREATE TABLE proceeds (
    proceeds_id      TEXT PRIMARY KEY,
    kind             TEXT NOT NULL,                       -- sale | deduction
    asset_key        TEXT NOT NULL REFERENCES assets (asset_key),
    seizure_id       TEXT NOT NULL,
    court            TEXT NOT NULL,
    case_number      TEXT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount >= 0),
    costs            BIGINT NOT NULL CHECK (costs >= 0),
    currency         TEXT NOT NULL,
    received_at      BIGINT NOT NULL,
    distribution_id  TEXT                                 -- the plan that paid it out
);
CREATE INDEX proceeds_by_case ON proceeds (case_number);
CREATE INDEX proceeds_by_asset ON proceeds (asset_key);
CREATE INDEX proceeds_by_seizure ON proceeds (seizure_id);
CREATE TABLE proceeds_ranks (
    proceeds_id  TEXT NOT NULL REFERENCES proceeds (proceeds_id),
    rank         BIGINT NOT NULL,
    seizure_id   TEXT NOT NULL,
    case_number  TEXT NOT NULL,
    court        TEXT NOT NULL,
    PRIMARY KEY (proceeds_id, rank)
);
CREATE TABLE secured_claims (
    asset_key      TEXT NOT NULL REFERENCES assets (asset_key),
    holder         TEXT NOT NULL,
    registered_at  BIGINT NOT NULL,
    kind           BIGINT NOT NULL,                       -- EncumbranceKind
    amount         BIGINT NOT NULL CHECK (amount >= 0),
    source         TEXT NOT NULL,                         -- registry | court
    evidence       TEXT NOT NULL,
    court          TEXT NOT NULL,
    case_number    TEXT NOT NULL,
    recorded_at    BIGINT NOT NULL,
    PRIMARY KEY (asset_key, holder, registered_at)
);
CREATE TABLE participations (
    proceeds_id  TEXT NOT NULL REFERENCES proceeds (proceeds_id),
    case_number  TEXT NOT NULL,
    court        TEXT NOT NULL,
    applied_at   BIGINT NOT NULL,
    PRIMARY KEY (proceeds_id, case_number)
);
CREATE TABLE distributions (
    distribution_id  TEXT PRIMARY KEY,
    court            TEXT NOT NULL,
    case_number      TEXT NOT NULL,
    debtor_key       TEXT NOT NULL,
    debtor           TEXT NOT NULL,                       -- masked
    state            TEXT NOT NULL,                       -- drafted | served | paid_in_part | paid | withdrawn
    sharing          TEXT NOT NULL,                       -- by_rank | pro_rata
    bonus_percent    BIGINT NOT NULL,
    series           BIGINT NOT NULL,                     -- 0 or 1
    drafted_at       BIGINT NOT NULL,
    served_at        BIGINT,
    next_due         BIGINT,                              -- while served: when its period ends
    objector         TEXT NOT NULL DEFAULT '',
    objected_at      BIGINT,
    opposed_by       TEXT NOT NULL DEFAULT '',
    opposed_at       BIGINT,
    sued             BIGINT NOT NULL DEFAULT 0,
    paid_at          BIGINT,
    fully_paid       TEXT NOT NULL DEFAULT '',            -- cases the payout paid in full, one per line
    message          TEXT NOT NULL DEFAULT ''
);
CREATE INDEX distributions_by_case ON distributions (case_number);
CREATE INDEX distributions_due ON distributions (state, next_due);
CREATE TABLE distribution_proceeds (
    distribution_id  TEXT NOT NULL REFERENCES distributions (distribution_id),
    proceeds_id      TEXT NOT NULL REFERENCES proceeds (proceeds_id),
    PRIMARY KEY (distribution_id, proceeds_id)
);
CREATE INDEX distribution_proceeds_by_proceeds ON distribution_proceeds (proceeds_id);
CREATE TABLE distribution_lines (
    distribution_id  TEXT NOT NULL REFERENCES distributions (distribution_id),
    line             BIGINT NOT NULL,
    proceeds_id      TEXT NOT NULL,
    kind             TEXT NOT NULL,                       -- costs | secured | ordinary | surplus
    payee            TEXT NOT NULL,
    court            TEXT NOT NULL,
    rank             BIGINT NOT NULL,
    claim            BIGINT NOT NULL,
    amount           BIGINT NOT NULL CHECK (amount >= 0),
    corrected        BIGINT,
    held_back        BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (distribution_id, line)
);
CREATE INDEX distribution_lines_by_payee ON distribution_lines (payee);
CREATE TABLE fund_movements (
    id               BIGINT PRIMARY KEY,
    case_number      TEXT NOT NULL,
    kind             TEXT NOT NULL,                       -- received | held_back | paid_out
    amount           BIGINT NOT NULL CHECK (amount > 0),
    proceeds_id      TEXT NOT NULL,
    distribution_id  TEXT NOT NULL,
    counterparty     TEXT NOT NULL,
    at               BIGINT NOT NULL
);
CREATE INDEX fund_movements_by_case ON fund_movements (case_number, id);
CREATE INDEX fund_movements_by_proceeds ON fund_movements (proceeds_id);
-- What distributions have paid toward each case's claim.
ALTER TABLE cases ADD COLUMN paid BIGINT NOT NULL DEFAULT 0;

-- Deductions made before: their funds were received by the deducting case.
INSERT INTO proceeds (proceeds_id, kind, asset_key, seizure_id, court, case_number, amount, costs, currency, received_at)
SELECT 'deduction-' || CAST(o.id AS TEXT), 'deduction', o.asset_key, o.seizure_id, o.court, o.case_number, o.amount, 0,
       a.unit, o.created_at
FROM outbox o JOIN assets a ON a.asset_key = o.asset_key WHERE o.kind = 'deduct';
INSERT INTO fund_movements (id, case_number, kind, amount, proceeds_id, distribution_id, counterparty, at)
SELECT o.id, o.case_number, 'received', o.amount, 'deduction-' || CAST(o.id AS TEXT), '', o.seizure_id, o.created_at
FROM outbox o WHERE o.kind = 'deduct' AND o.amount > 0;
INSERT INTO proceeds_ranks (proceeds_id, rank, seizure_id, case_number, court)
SELECT 'deduction-' || CAST(o.id AS TEXT), 1, o.seizure_id, o.case_number, o.court FROM outbox o WHERE o.kind = 'deduct';
