-- Usage: each credential's requests by outcome, in buckets of a minute, an
-- hour and a day (`granularity`; `bucket` is its start in microseconds),
-- which every process adds its own counts to at each flush. One row of no
-- credential per bucket (`credential_id` '', kind 'none') counts the
-- unattributed requests (malformed and unknown tokens).
--
-- `client_id` and `user_id` are the credential's, copied: a client's or a
-- customer's chart is one range read of an index, and stays whole when
-- their revoked keys and tokens are purged.
CREATE TABLE auth_usage (
    granularity           TEXT NOT NULL CHECK (granularity IN ('minute', 'hour', 'day')),
    bucket                BIGINT NOT NULL,
    credential_id         TEXT NOT NULL,
    kind                  TEXT NOT NULL,
    client_id             TEXT,
    user_id               TEXT,
    ok                    BIGINT NOT NULL DEFAULT 0,
    insufficient_scope    BIGINT NOT NULL DEFAULT 0,
    origin_not_allowed    BIGINT NOT NULL DEFAULT 0,
    secret_key_in_browser BIGINT NOT NULL DEFAULT 0,
    csrf_failed           BIGINT NOT NULL DEFAULT 0,
    rate_limited          BIGINT NOT NULL DEFAULT 0,
    revoked               BIGINT NOT NULL DEFAULT 0,
    expired               BIGINT NOT NULL DEFAULT 0,
    unattributed          BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (granularity, credential_id, bucket)
);
CREATE INDEX auth_usage_client ON auth_usage (client_id, granularity, bucket)
    WHERE client_id IS NOT NULL;
CREATE INDEX auth_usage_user ON auth_usage (user_id, granularity, bucket)
    WHERE user_id IS NOT NULL;
-- The whole shop's chart, the ranking of clients, and pruning.
CREATE INDEX auth_usage_time ON auth_usage (granularity, bucket);
