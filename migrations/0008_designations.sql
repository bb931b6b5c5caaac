-- A designation takes effect when the original court receives it (R12),
-- before it hands the case over; a handover recorded without one recorded
-- its designation at the same moment.
CREATE TABLE designations (
    from_case           TEXT PRIMARY KEY,
    from_court          TEXT NOT NULL,
    to_court            TEXT NOT NULL,
    decision_reference  TEXT NOT NULL,
    decided_at          BIGINT NOT NULL,
    received_at         BIGINT NOT NULL
);
INSERT INTO designations (from_case, from_court, to_court, decision_reference, decided_at, received_at)
SELECT from_case, from_court, to_court, decision_reference, decided_at, handed_over_at FROM transfers;
