-- Staff sessions (`<prefix>_st_`): an app's operators signed in to its
-- console. A table of their own: a session belongs to a staff member (the
-- app's id for them, `staff_id`), holds their role's abilities (rewritten
-- when the role changes), and ends at `expires_at` (its absolute end) or
-- after an idle time the store is configured with, counted from
-- `last_used_at` (from `created_at` until first used).
CREATE TABLE auth_staff_sessions (
    id           TEXT PRIMARY KEY,
    token_hash   TEXT NOT NULL UNIQUE,
    staff_id     TEXT NOT NULL,
    abilities    TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL,
    last_used_at BIGINT,
    revoked_at   BIGINT
);
CREATE INDEX auth_staff_sessions_staff ON auth_staff_sessions (staff_id);
CREATE INDEX auth_staff_sessions_expires ON auth_staff_sessions (expires_at);
