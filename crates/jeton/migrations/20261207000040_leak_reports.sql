-- Leaked credentials (API.md §15). Every token reported, by its SHA-256 hex
-- only, with the label of its first report: a repeated report gets that
-- answer and changes nothing more. `credential_id` names what it was, if
-- it was one of ours.
CREATE TABLE leak_reports (
    token_hash    TEXT PRIMARY KEY,
    label         TEXT NOT NULL CHECK (label IN ('true_positive', 'false_positive')),
    credential_id TEXT,
    source        TEXT NOT NULL,
    reported_at   BIGINT NOT NULL
);

-- The audit log names a secret scanning service (GitHub) as an actor. A
-- CHECK cannot be changed in place on SQLite: the table is rebuilt, the
-- same way on both.
CREATE TABLE audit_events_new (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor_kind  TEXT NOT NULL
                CHECK (actor_kind IN ('client_key', 'customer', 'cli', 'staff', 'secret_scanning')),
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
