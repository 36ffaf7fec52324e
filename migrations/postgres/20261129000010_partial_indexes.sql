-- A fan-out writes every delivery row with no claim and no send time: leaving those rows out of
-- these two indexes spares the fan-out two index writes per row. Lookups compare the column to
-- a value (claim_token = ?, sent_at >= ?), which the partial indexes serve.
DROP INDEX deliveries_claim;
CREATE INDEX deliveries_claim ON deliveries(claim_token) WHERE claim_token IS NOT NULL;
DROP INDEX deliveries_person_sent;
CREATE INDEX deliveries_person_sent ON deliveries(person_id, sent_at) WHERE sent_at IS NOT NULL;
