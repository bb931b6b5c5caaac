-- The outbox is drained in one lane per registry: each lane claims its
-- registry's due orders, so the claim reads only that registry's pending rows.
CREATE INDEX outbox_due ON outbox (registry, next_attempt_at) WHERE delivered_at IS NULL;

-- When each order was made, for the age of a registry's oldest pending order.
ALTER TABLE outbox ADD COLUMN created_at BIGINT NOT NULL DEFAULT 0;
