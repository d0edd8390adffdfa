-- Guest tokens (`<prefix>_gt_`): anonymous visitors of a client's pages,
-- each obtained through the client's publishable key. A table of their
-- own: a guest belongs to a client (not to the key that obtained it, so a
-- rotation keeps it), is bound to the origin it came from (`origin`; NULL:
-- obtained with no `Origin`, by an app), holds its own abilities, and ends
-- at `expires_at` (its absolute end) or after `idle_timeout` microseconds
-- unused (NULL: never), counted from `last_used_at`, which the verifier's
-- batched flush writes (from `created_at` until first used). Revoking the
-- client revokes its guests. An app keys what a guest owns on `id`.
CREATE TABLE auth_guest_tokens (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    last4        TEXT NOT NULL,
    client_id    TEXT NOT NULL REFERENCES auth_clients (id),
    origin       TEXT,
    abilities    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    idle_timeout BIGINT,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX auth_guest_tokens_client ON auth_guest_tokens (client_id);
CREATE INDEX auth_guest_tokens_expires ON auth_guest_tokens (expires_at);
