ALTER TABLE posts DROP COLUMN edited_at_ms;
