-- The observance's theme for the occurrence's year, fixed when the occurrence is created (as
-- its template and observance are), so what goes out is what the plan showed.
ALTER TABLE occurrences ADD COLUMN theme TEXT NOT NULL DEFAULT '';
