-- An append-only log of credential lifecycle events. Never any secret:
-- ids, who acted, when, from which IP, and a short detail.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('client_key', 'customer', 'cli')),
    actor_id    TEXT,
    client_id   TEXT,
    customer_id TEXT,
    subject_id  TEXT,
    client_ip   TEXT,
    detail      TEXT
);
CREATE INDEX audit_events_client ON audit_events (client_id, id);
CREATE INDEX audit_events_customer ON audit_events (customer_id, id);

-- A secret key seen in a browser has leaked; the key says so until rotated.
ALTER TABLE client_keys ADD COLUMN browser_refusals BIGINT NOT NULL DEFAULT 0;
ALTER TABLE client_keys ADD COLUMN last_browser_refusal_at BIGINT;
