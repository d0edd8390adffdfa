-- OAuth access tokens move into jeton-auth's table (`auth_access_tokens`,
-- created by the library's own migration, which `Db::connect` runs first):
-- the library verifies them, so it stores them and writes every change to
-- them. Ids, hashes, scopes and times are kept as they are: every issued
-- token keeps working, with the key that obtained it.
INSERT INTO auth_access_tokens (id, token_hash, client_id, key_id, scope, created_at,
                                expires_at, revoked_at)
SELECT id, token_hash, client_id, key_id, scope, created_at, expires_at, revoked_at
FROM access_tokens;
DROP TABLE access_tokens;

-- Credential changes have one feed, jeton-auth's (`auth_changes`).
DROP TABLE credential_changes;
