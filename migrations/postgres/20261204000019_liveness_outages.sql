-- dispatch: a worker's liveness on the database's clock (milliseconds since the epoch, written
-- by the database itself), so the claims of a worker that died are released within seconds
-- whatever clock Loa runs on; `heartbeat_at` stays on Loa's clock for the rate share.
ALTER TABLE dispatch_workers ADD COLUMN alive_at BIGINT;

-- dispatch: the worker (dispatch_workers.id) holding a row in 'sending'.
ALTER TABLE deliveries ADD COLUMN claimed_by TEXT;

-- dispatch: a transport marked down after transport-level failures in a row (dispatch::outage).
-- One row per channel while it is down; deleted when a probe gets through. Times on Loa's
-- clock (epoch seconds). While a row exists, the channel's deliveries wait without spending
-- attempts, except one probe at `probe_at`.
CREATE TABLE channel_outages (
    channel    TEXT PRIMARY KEY,
    down_since BIGINT NOT NULL,
    reason     TEXT NOT NULL,
    probe_at   BIGINT NOT NULL,
    probes     BIGINT NOT NULL DEFAULT 0
);
