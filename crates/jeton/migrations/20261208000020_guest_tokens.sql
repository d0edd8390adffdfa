-- Guest carts (API.md §3, §16). A customer's live user tokens that may
-- place orders may now keep a cart: each one holding `orders:write` (or a
-- wildcard over it) gains `cart:write`. Revoked and expired tokens are
-- left as they were.
UPDATE auth_credentials SET abilities = abilities || ' cart:write'
WHERE kind = 'user' AND revoked_at IS NULL
  AND (' ' || abilities || ' ') NOT LIKE '% cart:write %'
  AND (' ' || abilities || ' ') NOT LIKE '% cart:* %'
  AND (' ' || abilities || ' ') NOT LIKE '% * %'
  AND ((' ' || abilities || ' ') LIKE '% orders:write %'
       OR (' ' || abilities || ' ') LIKE '% orders:* %');

-- The audit log names a guest (a visitor with a guest token) as an actor.
-- A CHECK cannot be changed in place on SQLite: the table is rebuilt, the
-- same way on both.
CREATE TABLE audit_events_new (
    id          TEXT PRIMARY KEY,
    at          BIGINT NOT NULL,
    action      TEXT NOT NULL,
    actor_kind  TEXT NOT NULL
                CHECK (actor_kind IN ('client_key', 'customer', 'cli', 'staff', 'secret_scanning',
                                      'guest')),
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
