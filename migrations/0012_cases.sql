-- Cases and their debtors (the debtor as a whole, R23–R27): every seizure
-- belongs to its case and so to its debtors. A debtor is kept as the keyed
-- hash the audit trail uses (never the clear identifier) and the masked form.
-- A case is registered on its first seizure. Ledgers from before keep working:
-- each case with seizures is registered from them, its debtors in masked form
-- with no key (none can be made from a masked number); an asset learns its
-- owner's key when it is next seized.
CREATE TABLE cases (
    case_number   TEXT PRIMARY KEY,
    court         TEXT NOT NULL,
    state         TEXT NOT NULL,              -- active
    registered_at BIGINT NOT NULL
);
CREATE TABLE case_debtors (
    case_number TEXT NOT NULL REFERENCES cases (case_number),
    debtor_key  TEXT NOT NULL,                -- '' when not known
    debtor      TEXT NOT NULL,                -- masked
    PRIMARY KEY (case_number, debtor_key, debtor)
);
CREATE INDEX case_debtors_by_debtor ON case_debtors (debtor_key);
ALTER TABLE assets ADD COLUMN debtor_key TEXT NOT NULL DEFAULT '';

INSERT INTO cases (case_number, court, state, registered_at)
SELECT case_number, MIN(court), 'active', MIN(placed_at) FROM seizures GROUP BY case_number;
INSERT INTO case_debtors (case_number, debtor_key, debtor)
SELECT DISTINCT s.case_number, '', a.debtor FROM seizures s JOIN assets a ON a.asset_key = s.asset_key;
