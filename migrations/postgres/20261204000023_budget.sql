-- budget: what each delivery costs, in đồng. `cost`: the estimate made at the fan-out (the
-- channel's price × the parts of the message as rendered for the person's commune), replaced
-- by the actual cost when the provider accepts it; `spent`: set at that acceptance, the year's
-- spending is their sum.
ALTER TABLE deliveries ADD COLUMN cost DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN spent DOUBLE PRECISION;
-- An occurrence that would take a channel over its yearly budget waits for an admin's decision
-- (its deliveries `held`): `hold_detail` (JSON: per channel the estimate, what was left and the
-- budget), then `decision` (send, cancel, subset), `decided_by`, `decided_at`.
ALTER TABLE occurrences ADD COLUMN hold_detail TEXT;
ALTER TABLE occurrences ADD COLUMN decision TEXT;
ALTER TABLE occurrences ADD COLUMN decided_by TEXT;
ALTER TABLE occurrences ADD COLUMN decided_at BIGINT;
CREATE INDEX deliveries_held ON deliveries (occurrence_id) WHERE status = 'held';
-- Queued content's audience by reach: `unreached` (year, quarter, month, observance) leaves out
-- people reached in that span; `below_band` keeps the communes below the target band.
ALTER TABLE contents ADD COLUMN unreached TEXT;
ALTER TABLE contents ADD COLUMN below_band INTEGER NOT NULL DEFAULT 0;
