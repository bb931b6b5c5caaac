-- Events are numbered in a short step of their own instead of inside every
-- ledger step: a step writes its events here, keyed by an id taken in the
-- order of its writes, and the numbering pass moves them into `events` with
-- gap-free numbers from the 'events' counter. So no ledger step holds one row
-- lock across its commit, yet readers still see numbers appear in order.
CREATE TABLE event_queue (
    id           BIGINT PRIMARY KEY,
    at           BIGINT NOT NULL,
    kind         TEXT NOT NULL,
    seizure_id   TEXT NOT NULL,
    asset_key    TEXT NOT NULL,
    court        TEXT NOT NULL,
    case_number  TEXT NOT NULL,
    message      TEXT NOT NULL
);

-- Events used to share their numbers with outbox orders; number them 1..n
-- in their order so the stream has no gaps from here on.
CREATE TABLE event_renumbering (old BIGINT PRIMARY KEY, new BIGINT NOT NULL);
INSERT INTO event_renumbering (old, new) SELECT seq, ROW_NUMBER() OVER (ORDER BY seq) FROM events;
UPDATE events SET seq = -seq;
UPDATE events SET seq = (SELECT new FROM event_renumbering WHERE old = -events.seq);
DROP TABLE event_renumbering;
INSERT INTO counters (name, value) VALUES ('events', (SELECT COUNT(*) FROM events));
