-- scheduler: 'created' (fanned out) or 'missed' (its fire time passed while Loa was down and it
-- had expired by the time Loa came back: recorded, never sent).
ALTER TABLE occurrences ADD COLUMN status TEXT NOT NULL DEFAULT 'created';

-- scheduler: the last instant any instance ticked up to, so a restart knows what it missed.
CREATE TABLE scheduler_state (
    name TEXT PRIMARY KEY,
    at   BIGINT NOT NULL
);

-- dispatch: live workers, so a channel's rate limit (which belongs to a bot token or a gateway
-- account, not to a process) is shared among them.
CREATE TABLE dispatch_workers (
    id           TEXT PRIMARY KEY,
    heartbeat_at BIGINT NOT NULL
);

-- dispatch: the frequency cap counts a person's messages sent today.
CREATE INDEX deliveries_person_sent ON deliveries(person_id, sent_at);
