-- Webhooks (API.md §14): endpoints, the outbox of events, and one delivery
-- per (event, endpoint). An event and its deliveries are written in the
-- transaction of the change that raised it, so none is lost and none
-- claims a change that did not happen.

-- The secret signs every delivery, so it is kept as it is (not hashed); the
-- previous one signs beside it until `previous_secret_expires_at`.
-- `events` holds event types separated by spaces (`*`: all).
-- `failing_since`: when the first failed attempt since the last success
-- happened; five days of it disables the endpoint.
CREATE TABLE webhook_endpoints (
    id                         TEXT PRIMARY KEY,
    url                        TEXT NOT NULL,
    description                TEXT NOT NULL,
    events                     TEXT NOT NULL,
    secret                     TEXT NOT NULL,
    previous_secret            TEXT,
    previous_secret_expires_at BIGINT,
    created_at                 BIGINT NOT NULL,
    updated_at                 BIGINT NOT NULL,
    disabled_at                BIGINT,
    disabled_reason            TEXT,
    failing_since              BIGINT
);

-- `body` is the JSON sent, `{"type", "timestamp", "data"}`, fixed when the
-- event happens so that every retry sends (and signs) the same bytes.
CREATE TABLE webhook_events (
    id         TEXT PRIMARY KEY,
    type       TEXT NOT NULL,
    subject_id TEXT,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- A delivery is claimed by one process at a time (`claimed_by` until
-- `claimed_until`): a process that dies mid-send leaves a claim that runs
-- out, and another process sends it again.
CREATE TABLE webhook_deliveries (
    id                 TEXT PRIMARY KEY,
    event_id           TEXT NOT NULL REFERENCES webhook_events (id),
    endpoint_id        TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    status             TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts           BIGINT NOT NULL DEFAULT 0,
    -- 8, or one more than `attempts` after an admin asked for a retry.
    attempt_limit      BIGINT NOT NULL DEFAULT 8,
    next_attempt_at    BIGINT,
    claimed_by         TEXT,
    claimed_until      BIGINT,
    created_at         BIGINT NOT NULL,
    last_attempt_at    BIGINT,
    last_response_code BIGINT,
    last_response_body TEXT,
    last_error         TEXT,
    UNIQUE (event_id, endpoint_id)
);

CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_by_endpoint ON webhook_deliveries (endpoint_id, id);
CREATE INDEX webhook_events_by_subject ON webhook_events (subject_id, type, created_at);
