-- SQLite only: the ledger's invariants, enforced by the database itself
-- (docs/RULES.md, "Invariants the database keeps"). A step that would break
-- one fails whole, and nothing of it is recorded. SQLite checks each row as
-- it is written, so a step writes what shrinks first, then the asset, then
-- what grows (ledger::store::rows): every state in between stays valid.

CREATE TRIGGER invariant_asset_quantity_insert BEFORE INSERT ON assets
WHEN NEW.total NOT BETWEEN 0 AND 1000000000000000 OR (NEW.kind NOT IN (1, 6) AND NEW.total > 1)
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: an asset quantity out of range');
END;

-- A balance is never re-inflated by an older registry figure: the time of
-- the figure the ledger holds only moves forward.
CREATE TRIGGER invariant_asset_quantity_update BEFORE UPDATE ON assets
WHEN NEW.total NOT BETWEEN 0 AND 1000000000000000 OR (NEW.kind NOT IN (1, 6) AND NEW.total > 1)
    OR NEW.total_at < OLD.total_at
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: an asset quantity out of range, or its balance going back to an older figure');
END;

CREATE TRIGGER invariant_seizure_amounts_insert BEFORE INSERT ON seizures
WHEN NOT (
    NEW.requested BETWEEN 0 AND 1000000000000000
    AND (NEW.claim IS NULL OR NEW.claim BETWEEN 0 AND 1000000000000000)
    AND CASE NEW.state
        WHEN 'waiting' THEN NEW.effective = 0
        WHEN 'effective' THEN NEW.effective > 0 AND NEW.effective = NEW.requested
        WHEN 'partly_effective' THEN NEW.effective > 0 AND NEW.effective < NEW.requested
        WHEN 'released' THEN NEW.effective = 0
        WHEN 'lapsed' THEN NEW.effective = 0
        WHEN 'disposed' THEN NEW.effective = 0
        WHEN 'satisfied' THEN NEW.effective = 0
        ELSE 0
    END
)
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: a seizure amount out of range or not matching its state');
END;

CREATE TRIGGER invariant_seizure_amounts_update BEFORE UPDATE ON seizures
WHEN NOT (
    NEW.requested BETWEEN 0 AND 1000000000000000
    AND (NEW.claim IS NULL OR NEW.claim BETWEEN 0 AND 1000000000000000)
    AND CASE NEW.state
        WHEN 'waiting' THEN NEW.effective = 0
        WHEN 'effective' THEN NEW.effective > 0 AND NEW.effective = NEW.requested
        WHEN 'partly_effective' THEN NEW.effective > 0 AND NEW.effective < NEW.requested
        WHEN 'released' THEN NEW.effective = 0
        WHEN 'lapsed' THEN NEW.effective = 0
        WHEN 'disposed' THEN NEW.effective = 0
        WHEN 'satisfied' THEN NEW.effective = 0
        ELSE 0
    END
)
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: a seizure amount out of range or not matching its state');
END;

-- What is in effect on an asset stays within its balance (one effective
-- seizure on an indivisible asset, whose quantity is at most 1).
CREATE TRIGGER invariant_holdings_insert AFTER INSERT ON seizures
WHEN (SELECT SUM(effective) FROM seizures WHERE asset_key = NEW.asset_key
        AND state IN ('waiting', 'effective', 'partly_effective'))
     > (SELECT total FROM assets WHERE asset_key = NEW.asset_key)
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: more in effect on an asset than its balance');
END;

CREATE TRIGGER invariant_holdings_update AFTER UPDATE ON seizures
WHEN (SELECT SUM(effective) FROM seizures WHERE asset_key = NEW.asset_key
        AND state IN ('waiting', 'effective', 'partly_effective'))
     > (SELECT total FROM assets WHERE asset_key = NEW.asset_key)
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: more in effect on an asset than its balance');
END;

CREATE TRIGGER invariant_holdings_balance AFTER UPDATE ON assets
WHEN (SELECT SUM(effective) FROM seizures WHERE asset_key = NEW.asset_key
        AND state IN ('waiting', 'effective', 'partly_effective')) > NEW.total
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: more in effect on an asset than its balance');
END;

-- A case's live deposit freezes in one currency stay within its claim (R4),
-- checked as a freeze is placed or its amount changes.
CREATE TRIGGER invariant_claim_insert AFTER INSERT ON seizures
WHEN NEW.claim IS NOT NULL AND (
    SELECT SUM(s.requested) > MAX(s.claim) FROM seizures s JOIN assets a ON a.asset_key = s.asset_key
     WHERE s.case_number = NEW.case_number AND a.kind = 1
       AND a.unit = (SELECT unit FROM assets WHERE asset_key = NEW.asset_key)
       AND s.state IN ('waiting', 'effective', 'partly_effective'))
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: a case frozen over its claim (R4)');
END;

CREATE TRIGGER invariant_claim_update AFTER UPDATE OF requested ON seizures
WHEN NEW.claim IS NOT NULL AND (
    SELECT SUM(s.requested) > MAX(s.claim) FROM seizures s JOIN assets a ON a.asset_key = s.asset_key
     WHERE s.case_number = NEW.case_number AND a.kind = 1
       AND a.unit = (SELECT unit FROM assets WHERE asset_key = NEW.asset_key)
       AND s.state IN ('waiting', 'effective', 'partly_effective'))
BEGIN
    SELECT RAISE(ABORT, 'ledger invariant: a case frozen over its claim (R4)');
END;
