-- The year a person was born, when a commune's list gives it ("Năm sinh"): `thanh-nien`
-- (ages 16–30) is derived from it for the year an audience or a report is computed, so the
-- tag never goes stale as people age.
ALTER TABLE persons ADD COLUMN birth_year INTEGER;

-- A list uploaded in the console, kept between its preview and the clerk's confirmation (and
-- for its rejected rows' file) for an hour, then deleted: one per account, in the database so that any of
-- several processes can confirm it.
CREATE TABLE pending_imports (
    token TEXT PRIMARY KEY,
    account TEXT NOT NULL UNIQUE,
    file_name TEXT NOT NULL,
    sheet TEXT,
    bytes BLOB NOT NULL,
    -- The rows refused, as the CSV file the clerk downloads (NULL: none).
    rejected BLOB,
    created_at INTEGER NOT NULL,
    confirmed_at INTEGER
);
