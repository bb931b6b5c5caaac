-- The re-searches of one debtor are found by its key (R30: one question
-- serves every terminated case against it): without this index each claim
-- read every terminated case's debtors.
CREATE INDEX research_debtors_key ON research_debtors (debtor_key);
