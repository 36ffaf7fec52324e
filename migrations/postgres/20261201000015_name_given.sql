-- Whether a person's name is one they gave (an import, or /ten in the bot) rather than a
-- Telegram display name: only a given name is printed after "ông/bà". People who came through
-- the bot alone kept their Telegram name until now.
ALTER TABLE persons ADD COLUMN name_given INTEGER NOT NULL DEFAULT 1;
UPDATE persons SET name_given = 0
WHERE kind = 'resident'
  AND NOT EXISTS (SELECT 1 FROM contacts c WHERE c.person_id = persons.id AND c.channel = 'sms');
