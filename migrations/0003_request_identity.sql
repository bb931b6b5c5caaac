-- Request identity (AIP-155): a request id is the calling court's, for one
-- method, and bound to a digest of the request. Stored replies are compact
-- (a step's outcome, not the asset's queue) and purged after the configured
-- window (`ledger.request_window`). Replies stored before this migration
-- keep their ids under an empty court and digest, and expire like the rest.
CREATE TABLE replies (
    court       TEXT NOT NULL,
    method      TEXT NOT NULL,
    request_id  TEXT NOT NULL,
    digest      TEXT NOT NULL,             -- SHA-256 of the request, hex
    reply       TEXT NOT NULL,             -- the encoded reply, hex
    at          BIGINT NOT NULL,
    PRIMARY KEY (court, method, request_id)
);
CREATE INDEX replies_at ON replies (at);
INSERT INTO replies (court, method, request_id, digest, reply, at)
    SELECT '', method, request_id, '', reply, at FROM requests;
DROP TABLE requests;

-- When the ledger last set an asset's balance itself (a deduction or a partial
-- sale), or took a registry's figure: an older registry figure never replaces
-- it (R4, R9).
ALTER TABLE assets ADD COLUMN total_at BIGINT NOT NULL DEFAULT 0;
