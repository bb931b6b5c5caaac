-- Every acknowledged control step is audited (R16), even when its gateway
-- died between the ledger's commit and the audit record: a step's stored
-- reply says who asked and whether its record was written; a sweep records
-- those left behind. Replies stored earlier count as audited.
ALTER TABLE replies ADD COLUMN officer TEXT NOT NULL DEFAULT '';
ALTER TABLE replies ADD COLUMN case_number TEXT NOT NULL DEFAULT '';
ALTER TABLE replies ADD COLUMN audited BIGINT NOT NULL DEFAULT 1;
CREATE INDEX replies_unaudited ON replies (audited, at);
