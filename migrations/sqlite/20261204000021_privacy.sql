-- audience: how and when a person first agreed to receive messages, set once by the first way
-- they were subscribed and never overwritten by a later one (audience::consent::ConsentSource:
-- bot, sms, import, organisation, poster; `legacy` for persons from before it was recorded).
-- `consent_detail` says more where there is more: the commune chosen, the imported file's name.
ALTER TABLE persons ADD COLUMN consent_via TEXT;
ALTER TABLE persons ADD COLUMN consent_at INTEGER;
ALTER TABLE persons ADD COLUMN consent_detail TEXT;
UPDATE persons SET consent_via = 'legacy';

-- privacy: set on the anonymous person that holds a forgotten person's deliveries and reach
-- (`loa person forget`): when they were forgotten. Such a person has no name, tag or address.
ALTER TABLE persons ADD COLUMN forgotten_at INTEGER;

-- privacy: the daily purge finds old attempts by their time (privacy::retention).
CREATE INDEX delivery_attempts_at ON delivery_attempts(at);

-- privacy: the last run of each daily upkeep (the retention purge), so that of several
-- processes on one database one runs it a day.
CREATE TABLE upkeep_runs (
    name TEXT PRIMARY KEY,
    at   INTEGER NOT NULL
);
