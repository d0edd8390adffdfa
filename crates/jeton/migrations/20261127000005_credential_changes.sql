-- One row per change other servers must drop cached credentials for (a
-- revocation, a rotation, a new client's origins), written in the change's
-- own transaction. Servers poll MAX(id). Logins do not write here, so they
-- never cool anyone's cache.
CREATE TABLE credential_changes (
    id TEXT PRIMARY KEY,
    at BIGINT NOT NULL
);
