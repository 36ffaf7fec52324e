-- channels as data: an occurrence's own text (queued content) and queued content's text are
-- kept per channel, keyed by the channel's name, instead of a column per channel.
CREATE TABLE occurrence_bodies (
    occurrence_id INTEGER NOT NULL REFERENCES occurrences(id),
    channel       TEXT NOT NULL,
    body          TEXT NOT NULL,
    PRIMARY KEY (occurrence_id, channel)
);
INSERT INTO occurrence_bodies (occurrence_id, channel, body)
    SELECT id, 'telegram', body_telegram FROM occurrences WHERE body_telegram IS NOT NULL;
INSERT INTO occurrence_bodies (occurrence_id, channel, body)
    SELECT id, 'sms', body_sms FROM occurrences WHERE body_sms IS NOT NULL;
ALTER TABLE occurrences DROP COLUMN body_telegram;
ALTER TABLE occurrences DROP COLUMN body_sms;

CREATE TABLE content_texts (
    content_id INTEGER NOT NULL REFERENCES contents(id),
    channel    TEXT NOT NULL,
    text       TEXT NOT NULL,
    PRIMARY KEY (content_id, channel)
);
INSERT INTO content_texts (content_id, channel, text)
    SELECT id, 'telegram', telegram_text FROM contents WHERE telegram_text IS NOT NULL;
INSERT INTO content_texts (content_id, channel, text)
    SELECT id, 'sms', sms_text FROM contents WHERE sms_text IS NOT NULL;
ALTER TABLE contents DROP COLUMN telegram_text;
ALTER TABLE contents DROP COLUMN sms_text;
