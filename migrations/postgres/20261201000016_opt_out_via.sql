-- Where an opt-out came from: `sms:<number>` when the person texted a stop word from that
-- number. Only such an opt-out can be taken back by texting DK from the same number; a /stop in
-- Telegram or an opt-out recorded otherwise stays until the person subscribes again there.
ALTER TABLE persons ADD COLUMN opted_out_via TEXT;
-- An admin's work is the whole district's: accounts and tokens made before admins were refused
-- an area lose theirs.
UPDATE users SET area_code = NULL WHERE role = 'admin';
UPDATE api_tokens SET area_code = NULL WHERE role = 'admin';
