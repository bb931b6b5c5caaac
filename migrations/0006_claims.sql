-- The claim each deposit freeze stated, so that `ledger verify` can check
-- R4's cap across a case's freezes.
ALTER TABLE seizures ADD COLUMN claim BIGINT;
