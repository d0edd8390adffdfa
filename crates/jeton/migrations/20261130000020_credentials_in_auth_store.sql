-- Jeton's credentials move into jeton-auth's tables (`auth_clients`,
-- `auth_credentials`, `auth_refusals`; created by the library's own
-- migration, which `Db::connect` runs first), so the library's SqlStore
-- finds them for the verifier. What only Jeton keeps (a client's name and
-- kind, a user token's customer, name and parent) moves to tables beside
-- them, keyed by the same ids. Ids, hashes and times are kept as they are:
-- every issued token keeps working.

INSERT INTO auth_clients (id, abilities, allowed_origins, per_key_limit, per_ip_limit,
                          created_at, revoked_at)
SELECT id, abilities, allowed_origins, rate_limit_per_minute, per_ip_rate_limit_per_minute,
       created_at, revoked_at
FROM clients;

-- The details go with the row they describe (`ON DELETE CASCADE`), so that
-- jeton-auth's own purge can delete a client or a credential.
CREATE TABLE client_details (
    client_id TEXT PRIMARY KEY REFERENCES auth_clients (id) ON DELETE CASCADE,
    name      TEXT NOT NULL,
    kind      TEXT NOT NULL CHECK (kind IN ('publishable', 'secret'))
);
INSERT INTO client_details (client_id, name, kind) SELECT id, name, kind FROM clients;

INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, created_at, expires_at,
                              revoked_at)
SELECT id, kind, token_hash, last4, client_id, created_at, expires_at, revoked_at
FROM client_keys;

-- A key's browser refusals are now the library's recorded refusals (the
-- gate records at most one a minute per key, as it did before): one row
-- per refusal counted, the newest at the time the key was last refused,
-- each earlier one a microsecond before. Their ids sort as their times do
-- (a suffix of fixed width that falls as the row gets older).
INSERT INTO auth_refusals (id, at, credential_id, client_id, code)
WITH RECURSIVE n (i) AS (
    SELECT 0
    UNION ALL
    SELECT i + 1 FROM n WHERE i + 1 < (SELECT MAX(browser_refusals) FROM client_keys)
)
SELECT k.id || '-' || CAST(1000000000 - n.i AS TEXT),
       COALESCE(k.last_browser_refusal_at, k.created_at) - n.i,
       k.id, k.client_id, 'secret_key_in_browser'
FROM client_keys k JOIN n ON n.i < k.browser_refusals;
-- A key's refusals, counted for the admin API and `client list`.
CREATE INDEX refusals_by_credential ON auth_refusals (credential_id, code);

INSERT INTO auth_credentials (id, kind, token_hash, last4, client_id, user_id, abilities,
                              created_at, expires_at, last_used_at, revoked_at)
SELECT id, 'user', token_hash, last4, client_id, customer_id, abilities,
       created_at, expires_at, last_used_at, revoked_at
FROM user_tokens;

-- The library knows a user token's `user_id` as text; here it is a
-- customer, and a personal token names the token that made it (it is
-- revoked with it).
CREATE TABLE user_token_details (
    token_id    TEXT PRIMARY KEY REFERENCES auth_credentials (id) ON DELETE CASCADE,
    customer_id TEXT NOT NULL REFERENCES customers (id),
    name        TEXT NOT NULL,
    parent_id   TEXT
);
CREATE INDEX user_token_details_parent ON user_token_details (parent_id);
INSERT INTO user_token_details (token_id, customer_id, name, parent_id)
SELECT id, customer_id, name, parent_id FROM user_tokens;

-- Access tokens now refer to the library's tables; a table is rebuilt
-- rather than altered, as SQLite cannot change a foreign key in place.
CREATE TABLE access_tokens_new (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES auth_clients (id),
    key_id      TEXT NOT NULL REFERENCES auth_credentials (id),
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
INSERT INTO access_tokens_new SELECT id, client_id, key_id, token_hash, scope, created_at,
       expires_at, revoked_at FROM access_tokens;

DROP TABLE access_tokens;
DROP TABLE user_tokens;
DROP TABLE client_keys;
DROP TABLE clients;

ALTER TABLE access_tokens_new RENAME TO access_tokens;
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
