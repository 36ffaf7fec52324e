-- deliveries_reached is partial (rows not yet reached stay out of it) since 20261129000008 was
-- edited in place after its release; a database made by the text first released has it whole.
-- One definition for both (store::EDITED_AFTER_RELEASE accepts either text of 20261129000008).
DROP INDEX IF EXISTS deliveries_reached;
CREATE INDEX deliveries_reached ON deliveries(reached_at) WHERE reached_at IS NOT NULL;
