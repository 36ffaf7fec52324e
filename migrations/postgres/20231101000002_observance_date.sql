-- scheduler: the first day of the observance an occurrence belongs to (local date, YYYY-MM-DD),
-- for templates that count the days to it.
ALTER TABLE occurrences ADD COLUMN observance_date TEXT;
