-- A case's record (R23–R28): its applicant and claim as the court registered
-- them (cases registered on a seizure have none until then), and where it
-- stands: active, terminated (终本), transferred or closed. Suspension is not
-- stored: a case is suspended while its debtor is in bankruptcy review or
-- bankrupt, which the debtor's standing says.
ALTER TABLE cases ADD COLUMN applicant TEXT NOT NULL DEFAULT '';
ALTER TABLE cases ADD COLUMN claim BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN currency TEXT NOT NULL DEFAULT 'CNY';
CREATE INDEX cases_by_court ON cases (court);
UPDATE cases SET state = 'transferred' WHERE case_number IN (SELECT from_case FROM transfers WHERE filed_at IS NOT NULL);
-- Why a release was ordered, for the registry to read (R25's lift names the acceptance).
ALTER TABLE outbox ADD COLUMN reason TEXT NOT NULL DEFAULT '';
