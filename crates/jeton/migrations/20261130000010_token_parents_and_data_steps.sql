-- The token that made a personal token (`POST /me/tokens`); NULL for logins
-- and cookie sessions. A personal token never outlives the token that made
-- it and is revoked with it; only tokens with a parent count toward the
-- per-customer cap. No foreign key: pruning deletes parents before children.
ALTER TABLE user_tokens ADD COLUMN parent_id TEXT;
CREATE INDEX user_tokens_parent ON user_tokens (parent_id);

-- Data steps that SQL cannot express (an email's IDNA form is computed in
-- Rust), each recorded here once it has run (`store/data_steps.rs`).
CREATE TABLE data_steps (
    name       TEXT PRIMARY KEY,
    applied_at BIGINT NOT NULL
);
