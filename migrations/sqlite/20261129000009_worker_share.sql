-- dispatch: the number of workers each worker last divided the rate limits by, so a worker that
-- joins starts sending as soon as every other has recounted (instead of after a fixed pause).
ALTER TABLE dispatch_workers ADD COLUMN share_of INTEGER NOT NULL DEFAULT 0;
