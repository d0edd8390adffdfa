-- OAuth 2.0 access tokens (`<prefix>_at_`), obtained by a client with one
-- of its secret keys: the verifier finds them here, by their hash. A token
-- stands in for the key that obtained it (`key_id`): it stops working when
-- that key does (revoked, or its rotation grace over) and with its client.
-- A table of their own: their scope and their key are theirs alone, and
-- `auth_credentials` keeps its checks.
CREATE TABLE auth_access_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    client_id    TEXT NOT NULL REFERENCES auth_clients (id),
    key_id       TEXT NOT NULL REFERENCES auth_credentials (id),
    scope        TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    revoked_at   BIGINT
);
CREATE INDEX auth_access_tokens_client ON auth_access_tokens (client_id);
CREATE INDEX auth_access_tokens_key ON auth_access_tokens (key_id);
CREATE INDEX auth_access_tokens_expires ON auth_access_tokens (expires_at);
