-- Staff members' second factor (TOTP) and invitations (API.md §13).
--
-- `totp_secret` is the base32 secret of a confirmed enrolment, and
-- `totp_pending` one shown but not yet confirmed. `totp_last_step` is the
-- last 30-second step a code was accepted for: only a later one passes,
-- so a code works once. An invited member has no password yet
-- (`password_hash` is empty) until they accept.
ALTER TABLE staff ADD COLUMN totp_secret TEXT;
ALTER TABLE staff ADD COLUMN totp_pending TEXT;
ALTER TABLE staff ADD COLUMN totp_last_step BIGINT;
ALTER TABLE staff ADD COLUMN mfa_enabled_at BIGINT;

-- A single-use link to set a first password: only its SHA-256 is kept.
CREATE TABLE staff_invitations (
    token_hash TEXT PRIMARY KEY,
    staff_id   TEXT NOT NULL REFERENCES staff (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX staff_invitations_staff ON staff_invitations (staff_id);
