-- PostgreSQL only: the ledger's invariants, enforced by the database itself
-- (docs/RULES.md, "Invariants the database keeps"). A step that would break
-- one fails whole, and nothing of it is recorded. Cross-row checks run at
-- commit, over the rows the step wrote.

ALTER TABLE assets ADD CONSTRAINT invariant_asset_quantity CHECK (
    total BETWEEN 0 AND 1000000000000000 AND (kind IN (1, 6) OR total <= 1)
);

ALTER TABLE seizures ADD CONSTRAINT invariant_seizure_amounts CHECK (
    requested BETWEEN 0 AND 1000000000000000
    AND (claim IS NULL OR claim BETWEEN 0 AND 1000000000000000)
    AND CASE state
        WHEN 'waiting' THEN effective = 0
        WHEN 'effective' THEN effective > 0 AND effective = requested
        WHEN 'partly_effective' THEN effective > 0 AND effective < requested
        WHEN 'released' THEN effective = 0
        WHEN 'lapsed' THEN effective = 0
        WHEN 'disposed' THEN effective = 0
        WHEN 'satisfied' THEN effective = 0
        ELSE FALSE
    END
);

-- A balance is never re-inflated by an older registry figure: the time of
-- the figure the ledger holds only moves forward.
CREATE FUNCTION ledger_balance_time() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.total_at < OLD.total_at THEN
        RAISE EXCEPTION 'ledger invariant: the balance of asset % would go back to an older figure', NEW.asset_key
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NEW;
END $$;
CREATE TRIGGER invariant_balance_time BEFORE UPDATE ON assets FOR EACH ROW EXECUTE FUNCTION ledger_balance_time();

-- What is in effect on an asset stays within its balance (one effective
-- seizure on an indivisible asset, whose quantity is at most 1).
CREATE FUNCTION ledger_holdings() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    balance BIGINT;
    held NUMERIC;
BEGIN
    SELECT a.total, COALESCE(SUM(s.effective), 0) INTO balance, held
      FROM assets a
      LEFT JOIN seizures s ON s.asset_key = a.asset_key AND s.state IN ('waiting', 'effective', 'partly_effective')
     WHERE a.asset_key = NEW.asset_key
     GROUP BY a.total;
    IF held > balance THEN
        RAISE EXCEPTION 'ledger invariant: % in effect on asset % exceeds its balance of %', held, NEW.asset_key, balance
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER invariant_seizure_holdings AFTER INSERT OR UPDATE ON seizures
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_holdings();
CREATE CONSTRAINT TRIGGER invariant_asset_holdings AFTER UPDATE ON assets
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION ledger_holdings();

-- A case's live deposit freezes in one currency stay within its claim (R4).
CREATE FUNCTION ledger_claim() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    frozen NUMERIC;
    cap BIGINT;
BEGIN
    SELECT COALESCE(SUM(s.requested), 0), MAX(s.claim) INTO frozen, cap
      FROM seizures s JOIN assets a ON a.asset_key = s.asset_key
     WHERE s.case_number = NEW.case_number AND a.kind = 1
       AND a.unit = (SELECT unit FROM assets WHERE asset_key = NEW.asset_key)
       AND s.state IN ('waiting', 'effective', 'partly_effective');
    IF frozen > cap THEN
        RAISE EXCEPTION 'ledger invariant: case % has % frozen over its claim of % (R4)', NEW.case_number, frozen, cap
            USING ERRCODE = 'check_violation';
    END IF;
    RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER invariant_claim AFTER INSERT OR UPDATE ON seizures
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW WHEN (NEW.claim IS NOT NULL) EXECUTE FUNCTION ledger_claim();
