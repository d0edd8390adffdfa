-- Idempotency keys of POST /orders, scoped to the customer. The primary key
-- is what decides a race between two requests with the same key: only one
-- INSERT wins.
--
-- A row is first written `in_flight` with a lease (a random id and when it
-- runs out) in a short transaction of its own, so a concurrent request with
-- the same key can see it and answer 409. The order's transaction then turns
-- it `done` and stores the response, so the order and the key's final state
-- commit together. A lease that ran out (the server died mid-request) may be
-- taken over by a retry. Rows are pruned once older than a day.
CREATE TABLE idempotency_keys (
    customer_id      TEXT NOT NULL REFERENCES customers (id),
    idempotency_key  TEXT NOT NULL,
    -- SHA-256 hex of the canonical form of the parsed request.
    request_hash     TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('in_flight', 'done')),
    lease_id         TEXT,
    lease_expires_at BIGINT,
    response_status  BIGINT,
    response_body    TEXT,
    order_id         TEXT REFERENCES orders (id),
    created_at       BIGINT NOT NULL,
    completed_at     BIGINT,
    PRIMARY KEY (customer_id, idempotency_key)
);
CREATE INDEX idempotency_keys_created ON idempotency_keys (created_at);
