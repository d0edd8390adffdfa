-- OAuth 2.0 access tokens (client credentials grant). Only SHA-256 hex is
-- stored. Each remembers the secret key that obtained it: the token dies
-- with that key (revoked, or its rotation grace over) and with its client.
CREATE TABLE access_tokens (
    id          TEXT PRIMARY KEY,
    client_id   TEXT NOT NULL REFERENCES clients (id),
    key_id      TEXT NOT NULL REFERENCES client_keys (id),
    token_hash  TEXT NOT NULL UNIQUE,
    scope       TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    revoked_at  BIGINT
);
CREATE INDEX access_tokens_client ON access_tokens (client_id);
CREATE INDEX access_tokens_expires ON access_tokens (expires_at);
