-- console: staff, approvers, officials and admins of the web console. A NULL area_code sees the
-- whole district; otherwise the area and everything under it.
CREATE TABLE users (
    id                   INTEGER PRIMARY KEY,
    name                 TEXT NOT NULL UNIQUE,
    role                 TEXT NOT NULL,
    area_code            TEXT,
    password_hash        TEXT NOT NULL,
    -- set by `loa user add`: the printed password works once, to choose a new one
    must_change_password INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL
);

-- console: a browser session; only a hash of the cookie's token is kept.
CREATE TABLE sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    csrf_token TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);

-- console: bearer tokens of the JSON API (`loa token create`); only a hash is kept.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    area_code  TEXT,
    created_at INTEGER NOT NULL
);

-- console: who did what, when.
CREATE TABLE audit_log (
    id      INTEGER PRIMARY KEY,
    at      INTEGER NOT NULL,
    actor   TEXT NOT NULL,
    action  TEXT NOT NULL,
    subject TEXT,
    detail  TEXT
);
CREATE INDEX audit_log_at ON audit_log(at);

-- console: content staff queue. state: draft -> awaiting_approval -> approved -> sending -> done,
-- or cancelled. areas, tags and channels are comma-separated; send_at is UTC seconds.
CREATE TABLE contents (
    id            INTEGER PRIMARY KEY,
    title         TEXT NOT NULL,
    template      TEXT,
    telegram_text TEXT,
    sms_text      TEXT,
    areas         TEXT NOT NULL DEFAULT '',
    tags          TEXT NOT NULL DEFAULT '',
    channels      TEXT NOT NULL,
    observance    TEXT,
    send_at       INTEGER NOT NULL,
    state         TEXT NOT NULL,
    author        TEXT NOT NULL,
    approver      TEXT,
    occurrence_id INTEGER REFERENCES occurrences(id),
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL
);
CREATE INDEX contents_state ON contents(state, send_at);

-- console: banners, loudspeaker broadcasts, communication sessions, trainings: estimated
-- audiences, shown beside measured reach and never added to it.
CREATE TABLE offline_activities (
    id         INTEGER PRIMARY KEY,
    day        TEXT NOT NULL,
    area_code  TEXT NOT NULL REFERENCES areas(code),
    kind       TEXT NOT NULL,
    audience   INTEGER NOT NULL,
    note       TEXT NOT NULL DEFAULT '',
    entered_by TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX offline_activities_day ON offline_activities(day);

-- scheduler: an occurrence from the queue carries its own text per channel (staff's free text,
-- as approved); NULL means render the named template.
ALTER TABLE occurrences ADD COLUMN body_telegram TEXT;
ALTER TABLE occurrences ADD COLUMN body_sms TEXT;

-- reach: when a delivery reached its person (sent, or for an SMS gateway that reports
-- delivery, delivered), so the dashboard can split reach by channel and filter by message.
ALTER TABLE deliveries ADD COLUMN reached_at INTEGER;
UPDATE deliveries SET reached_at = delivered_at WHERE delivered_at IS NOT NULL;
UPDATE deliveries SET reached_at = sent_at WHERE reached_at IS NULL AND status = 'sent' AND channel <> 'sms';
-- Partial: rows not yet reached (every row a fan-out writes) stay out of the index.
CREATE INDEX deliveries_reached ON deliveries(reached_at) WHERE reached_at IS NOT NULL;
