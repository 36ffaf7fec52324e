-- channels::zalo: the Zalo OA's token pair. The refresh token is single-use and rotates, so the
-- current pair lives here, shared by every process on the database, and one process at a time
-- refreshes it under the lease `lock_holder`/`lock_until_ms`. Times in milliseconds on the
-- database's own clock. `seeded_from`: SHA-256 of the refresh token from the environment the
-- row was started from (a new one there replaces the stored pair). `failure`: why Zalo last
-- refused the refresh token, until a refresh succeeds. `quota_*`: the daily quota as the last
-- send saw it.
CREATE TABLE channel_tokens (
    channel           TEXT PRIMARY KEY,
    access_token      TEXT,
    access_expires_ms INTEGER,
    refresh_token     TEXT NOT NULL,
    seeded_from       TEXT NOT NULL,
    refreshed_ms      INTEGER,
    lock_holder       TEXT,
    lock_until_ms     INTEGER,
    failure           TEXT,
    quota_remaining   INTEGER,
    quota_daily       INTEGER,
    quota_at_ms       INTEGER
);
