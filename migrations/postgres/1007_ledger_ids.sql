-- PostgreSQL only. Outbox orders and queued events take their ids from a
-- sequence, which no replica's commit waits on (SQLite's one writer keeps
-- using the 'seq' counter). Ids continue after the counter's last number.
CREATE SEQUENCE ledger_ids;
SELECT setval('ledger_ids', GREATEST((SELECT value FROM counters WHERE name = 'seq'), 1));
