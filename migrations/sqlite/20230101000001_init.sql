-- Loa's tables. Times are UTC seconds since the Unix epoch; user-facing times are converted to
-- the campaign time zone when shown. The PostgreSQL copy in ../postgres must stay equivalent.

-- audience: the units of loa.toml, mirrored at start-up so reports can join on them.
CREATE TABLE areas (
    code        TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    parent_code TEXT,
    population  INTEGER
);

-- audience: one row per resident (or organisation), whatever the number of contacts.
CREATE TABLE persons (
    id           INTEGER PRIMARY KEY,
    name         TEXT NOT NULL,
    area_code    TEXT NOT NULL REFERENCES areas(code),
    created_at   INTEGER NOT NULL,
    opted_out_at INTEGER
);
CREATE INDEX persons_area ON persons(area_code);

CREATE TABLE person_tags (
    person_id INTEGER NOT NULL REFERENCES persons(id),
    tag       TEXT NOT NULL,
    PRIMARY KEY (person_id, tag)
);

-- audience: a way to reach a person: a Telegram chat id or an E.164 phone number.
CREATE TABLE contacts (
    id              INTEGER PRIMARY KEY,
    person_id       INTEGER NOT NULL REFERENCES persons(id),
    channel         TEXT NOT NULL,
    address         TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1,
    inactive_reason TEXT,
    created_at      INTEGER NOT NULL,
    UNIQUE (channel, address)
);
CREATE INDEX contacts_person ON contacts(person_id);

-- scheduler: one row per fire time of a schedule; the key makes a second insert impossible.
CREATE TABLE occurrences (
    id          INTEGER PRIMARY KEY,
    schedule_id TEXT NOT NULL,
    fire_at     INTEGER NOT NULL,
    template    TEXT NOT NULL,
    observance  TEXT NOT NULL,
    channels    TEXT NOT NULL,
    expires_at  INTEGER NOT NULL,
    recipients  INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    UNIQUE (schedule_id, fire_at)
);

-- scheduler (fan-out) creates, dispatch moves: one row per person per occurrence.
-- status: pending -> sending -> sent | failed | dead | expired | skipped
CREATE TABLE deliveries (
    id                  INTEGER PRIMARY KEY,
    occurrence_id       INTEGER NOT NULL REFERENCES occurrences(id),
    person_id           INTEGER NOT NULL REFERENCES persons(id),
    contact_id          INTEGER NOT NULL REFERENCES contacts(id),
    channel             TEXT NOT NULL,
    status              TEXT NOT NULL,
    due_at              INTEGER NOT NULL,
    expires_at          INTEGER NOT NULL,
    attempts            INTEGER NOT NULL DEFAULT 0,
    failures            INTEGER NOT NULL DEFAULT 0,
    lease_until         INTEGER,
    claim_token         TEXT,
    provider_message_id TEXT,
    last_error          TEXT,
    sent_at             INTEGER,
    updated_at          INTEGER NOT NULL,
    UNIQUE (occurrence_id, person_id)
);
CREATE INDEX deliveries_due ON deliveries(status, due_at);
CREATE INDEX deliveries_claim ON deliveries(claim_token);

-- dispatch: every send attempt and its outcome, for the delivery log.
CREATE TABLE delivery_attempts (
    id          INTEGER PRIMARY KEY,
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    at          INTEGER NOT NULL,
    outcome     TEXT NOT NULL,
    detail      TEXT
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts(delivery_id);

-- reach: one row per (period, person) the first time the person is reached in that period.
-- period: 'D2023-03-08', 'M2023-03' or 'Y2023' (campaign time zone).
CREATE TABLE reach (
    period    TEXT NOT NULL,
    person_id INTEGER NOT NULL REFERENCES persons(id),
    area_code TEXT NOT NULL,
    channel   TEXT NOT NULL,
    first_at  INTEGER NOT NULL,
    PRIMARY KEY (period, person_id)
);
CREATE INDEX reach_period_area ON reach(period, area_code);
