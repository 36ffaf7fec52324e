-- dispatch: when the gateway reported an SMS delivered (an SMS reaches someone only then).
ALTER TABLE deliveries ADD COLUMN delivered_at INTEGER;

-- inbound: at most one automatic SMS reply per number per local day.
CREATE TABLE sms_auto_replies (
    number TEXT NOT NULL,
    day    TEXT NOT NULL,
    kind   TEXT NOT NULL,
    at     INTEGER NOT NULL,
    PRIMARY KEY (number, day)
);
