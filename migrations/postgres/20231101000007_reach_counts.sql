-- reach: persons reached per (period, kind, area), kept as reach rows are first written, so a
-- report over one period (a year, a month, a day) reads a row per area.
CREATE TABLE reach_counts (
    period    TEXT NOT NULL,
    kind      TEXT NOT NULL,
    area_code TEXT NOT NULL,
    persons   BIGINT NOT NULL,
    PRIMARY KEY (period, kind, area_code)
);
INSERT INTO reach_counts (period, kind, area_code, persons)
    SELECT period, kind, area_code, COUNT(*) FROM reach GROUP BY period, kind, area_code;
