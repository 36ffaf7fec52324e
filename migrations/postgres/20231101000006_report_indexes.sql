-- reach: the report counts per (period, kind, area) from the index alone.
CREATE INDEX reach_report ON reach(period, kind, area_code, person_id);

-- reach: organisations registered are counted apart from residents.
CREATE INDEX persons_kind ON persons(kind);
