-- The daily search quota counted in the database, for replicas whose shared
-- counter (Redis) cannot be reached: one row per court and China Standard
-- Time day, raised by one conditional update per search, so replicas racing
-- on it admit exactly the quota between them. Seeded from the audit trail.
CREATE TABLE search_quota (
    court TEXT NOT NULL,
    day   TEXT NOT NULL,                     -- YYYY-MM-DD, China Standard Time
    used  BIGINT NOT NULL,
    PRIMARY KEY (court, day)
);
