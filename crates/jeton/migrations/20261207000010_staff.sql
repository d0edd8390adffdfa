-- Staff: the shop's people, who sign in to the console (API.md §13).
-- Emails are stored as customers' are (lower-cased, IDNA ASCII domain).
-- Their sessions are jeton-auth's (`auth_staff_sessions`), keyed by `id`.
CREATE TABLE staff (
    id            TEXT PRIMARY KEY,
    email         TEXT NOT NULL UNIQUE,
    name          TEXT NOT NULL,
    role          TEXT NOT NULL CHECK (role IN ('owner', 'developer', 'support', 'viewer')),
    password_hash TEXT NOT NULL,
    created_at    BIGINT NOT NULL,
    last_login_at BIGINT,
    disabled_at   BIGINT
);

-- Secrets of the deployment, made once by the first process to start and
-- read by every other: the key staff sessions' CSRF tokens are an HMAC
-- under (`staff_csrf`), so that every process of a fleet agrees on them.
CREATE TABLE server_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The audit log names staff members as actors too. A CHECK cannot be
-- changed in place on SQLite: the table is rebuilt, the same way on both.
CREATE TABLE audit_events_new (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor_kind  TEXT NOT NULL CHECK (actor_kind IN ('client_key', 'customer', 'cli', 'staff')),
    actor_id    TEXT,
    client_id   TEXT,
    customer_id TEXT,
    subject_id  TEXT,
    client_ip   TEXT,
    detail      TEXT
);
INSERT INTO audit_events_new (id, at, action, actor_kind, actor_id, client_id, customer_id,
                              subject_id, client_ip, detail)
SELECT id, at, action, actor_kind, actor_id, client_id, customer_id, subject_id, client_ip, detail
FROM audit_events;
DROP TABLE audit_events;
ALTER TABLE audit_events_new RENAME TO audit_events;
CREATE INDEX audit_events_client ON audit_events (client_id, id);
CREATE INDEX audit_events_customer ON audit_events (customer_id, id);
CREATE INDEX audit_events_actor ON audit_events (actor_kind, actor_id, id);
