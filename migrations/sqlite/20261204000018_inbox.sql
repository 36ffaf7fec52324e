-- inbound: every text a resident sends that is not a command (SMS replies, private Telegram
-- messages), for the console's "Tin nhắn đến". Kept `inbox.keep_days` (default 90), then
-- deleted with what was queued for it. `address` is the E.164 number or the Telegram chat id;
-- `area_code` the sender's commune when known (NULL: unknown sender, seen by district-wide
-- accounts only). `state`: new | read | answered | forwarded (inbound::inbox::State).
CREATE TABLE inbox (
    id          INTEGER PRIMARY KEY,
    at          INTEGER NOT NULL,
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    person_id   INTEGER REFERENCES persons(id),
    area_code   TEXT,
    text        TEXT NOT NULL,
    urgent      INTEGER NOT NULL DEFAULT 0,
    state       TEXT NOT NULL,
    updated_at  INTEGER NOT NULL,
    updated_by  TEXT
);
CREATE INDEX inbox_list ON inbox(urgent, at);
CREATE INDEX inbox_at ON inbox(at);

-- inbound: messages Loa sends that are not campaign deliveries: an urgent text forwarded to
-- the contact point and the admins, the hotlines to its sender, a staff answer. The dispatcher
-- sends them in its next step, under the channels' rate limits, retrying a temporary failure.
-- kind: alert | hotlines | answer; status: pending | sent | failed.
CREATE TABLE inbox_outbox (
    id          INTEGER PRIMARY KEY,
    inbox_id    INTEGER REFERENCES inbox(id),
    kind        TEXT NOT NULL,
    channel     TEXT NOT NULL,
    address     TEXT NOT NULL,
    text        TEXT NOT NULL,
    status      TEXT NOT NULL,
    due_at      INTEGER NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0,
    lease_until INTEGER,
    claim_token TEXT,
    last_error  TEXT,
    sent_at     INTEGER,
    created_at  INTEGER NOT NULL
);
CREATE INDEX inbox_outbox_due ON inbox_outbox(status, due_at);

-- inbound: the hotlines go to a sender once a local day, however many urgent texts they send.
CREATE TABLE inbox_hotline_replies (
    channel TEXT NOT NULL,
    address TEXT NOT NULL,
    day     TEXT NOT NULL,
    at      INTEGER NOT NULL,
    PRIMARY KEY (channel, address, day)
);
