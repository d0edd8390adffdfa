-- The tables of jeton-auth's SqlStore. All are named `auth_…`, and the
-- store records its migrations in `_jeton_auth_migrations`, so they share a
-- database with an app's own tables and migrations without either knowing.
--
-- One schema for SQLite and PostgreSQL: TEXT and BIGINT only, times as
-- microseconds since the Unix epoch, ids as UUIDv7 text, lists (abilities,
-- origins) as space-separated words, tokens only as SHA-256 hex.

-- Client applications: what their keys may do, and from where.
CREATE TABLE auth_clients (
    id              TEXT PRIMARY KEY,
    abilities       TEXT NOT NULL,
    allowed_origins TEXT NOT NULL,
    -- Requests per minute, per key and per key and client IP; NULL: none.
    per_key_limit   BIGINT,
    per_ip_limit    BIGINT,
    created_at      BIGINT NOT NULL,
    revoked_at      BIGINT
);

-- Client keys and user tokens in one table: the verifier's lookup is one
-- probe of the unique index on the hash, whatever the kind. A key holds its
-- client's abilities; a user token its own.
CREATE TABLE auth_credentials (
    id           TEXT PRIMARY KEY,
    kind         TEXT NOT NULL CHECK (kind IN ('publishable', 'secret', 'user')),
    token_hash   TEXT NOT NULL UNIQUE,
    -- The token's last four characters, to tell tokens apart in a list.
    last4        TEXT NOT NULL,
    client_id    TEXT REFERENCES auth_clients (id),
    user_id      TEXT,
    abilities    TEXT,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT,
    CHECK ((kind = 'user') = (user_id IS NOT NULL)),
    CHECK (kind = 'user' OR client_id IS NOT NULL)
);
CREATE INDEX auth_credentials_client ON auth_credentials (client_id);
CREATE INDEX auth_credentials_user ON auth_credentials (user_id);

-- The change feed: a counter moved in the same transaction as every change
-- a verifier must not serve stale (a revocation, a rotation). Each process
-- reads it a few times a second and drops its cached credentials when it
-- moves. A counter rather than a log of changes: a committed change always
-- shows, whatever the order of commits or the processes' clocks, and
-- nothing needs pruning.
CREATE TABLE auth_changes (
    id         BIGINT PRIMARY KEY CHECK (id = 1),
    generation BIGINT NOT NULL
);
INSERT INTO auth_changes (id, generation) VALUES (1, 0);

-- Keys refused for where they were used from (a secret key sent by a
-- browser has leaked): at most one row a minute per key and code.
CREATE TABLE auth_refusals (
    id            TEXT PRIMARY KEY,
    at            BIGINT NOT NULL,
    credential_id TEXT NOT NULL,
    client_id     TEXT,
    code          TEXT NOT NULL,
    origin        TEXT,
    client_ip     TEXT
);
CREATE INDEX auth_refusals_client ON auth_refusals (client_id, id);
