-- console: API tokens can be given an expiry and revoked, and `loa token list` shows when each
-- was last used. All three are UTC seconds; NULL: never expires, not revoked, never used.
-- A token authenticates while revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now).
ALTER TABLE api_tokens ADD COLUMN expires_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN revoked_at INTEGER;
ALTER TABLE api_tokens ADD COLUMN last_used_at INTEGER;
