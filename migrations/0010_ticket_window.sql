-- The end of a ticket's answer window as the registry stated it. `answer_by`
-- is the end the gateway keeps (capped at the registry's declared window and
-- the gateway's maximum); the registry must repeat the stated end on every
-- pending reply, as the contract fixes it for the ticket's life.
ALTER TABLE search_legs ADD COLUMN stated_by BIGINT;
