-- audience: 'resident', or 'organisation' (a group chat of a Party, government or mass
-- organisation unit, registered by an admin). The plan counts them apart.
ALTER TABLE persons ADD COLUMN kind TEXT NOT NULL DEFAULT 'resident';

-- reach: the same split, so reports need no join.
ALTER TABLE reach ADD COLUMN kind TEXT NOT NULL DEFAULT 'resident';

-- bot: one row per person per occurrence when they press "Tôi đã đọc".
CREATE TABLE engagements (
    occurrence_id BIGINT NOT NULL REFERENCES occurrences(id),
    person_id     BIGINT NOT NULL REFERENCES persons(id),
    area_code     TEXT NOT NULL,
    -- the local date (campaign time zone) of the press, for period reports
    day           TEXT NOT NULL,
    at            BIGINT NOT NULL,
    PRIMARY KEY (occurrence_id, person_id)
);
CREATE INDEX engagements_day ON engagements(day);
