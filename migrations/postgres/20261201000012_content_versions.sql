-- console: every version of queued content and who wrote it. Approval binds to a version: the
-- approver is neither the author nor anyone who wrote a version since the last approval, and
-- approves the version they saw. Content queued before this migration knows only its author.
ALTER TABLE contents ADD COLUMN version BIGINT NOT NULL DEFAULT 1;
ALTER TABLE contents ADD COLUMN approved_version BIGINT;
CREATE TABLE content_versions (
    content_id BIGINT NOT NULL REFERENCES contents(id),
    version    BIGINT NOT NULL,
    editor     TEXT NOT NULL,
    at         BIGINT NOT NULL,
    PRIMARY KEY (content_id, version)
);
INSERT INTO content_versions (content_id, version, editor, at)
    SELECT id, 1, author, created_at FROM contents;
UPDATE contents SET approved_version = 1 WHERE state IN ('approved', 'sending', 'done');

-- scheduler: staff text in an occurrence is now stored as typed and filled in at sending (it is
-- never a template). The old version stored it HTML-escaped for Telegram: undo that for content
-- still on its way.
UPDATE occurrences SET body_telegram = REPLACE(REPLACE(REPLACE(REPLACE(body_telegram,
    '&lt;', '<'), '&gt;', '>'), '&quot;', '"'), '&amp;', '&')
    WHERE body_telegram IS NOT NULL;

-- audit: repeated failures (sign-ins) are one row with a count, not one row each.
ALTER TABLE audit_log ADD COLUMN repeats BIGINT NOT NULL DEFAULT 1;
ALTER TABLE audit_log ADD COLUMN last_at BIGINT;
