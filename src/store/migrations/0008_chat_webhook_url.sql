-- The chat channel's contact point: a Slack-compatible incoming-webhook URL per user.
--
-- Only the users table changes. herald_take does not return this column: the chat provider reads
-- it by the user's id when it sends (SqlUserStore.getUser), so the hot take statement keeps its
-- shape and its cost, and the URL used is the one stored at the time of the attempt.

ALTER TABLE users ADD COLUMN chat_webhook_url text;
