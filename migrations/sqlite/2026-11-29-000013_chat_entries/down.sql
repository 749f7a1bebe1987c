ALTER TABLE conversation_members DROP COLUMN visible_from_seq;
ALTER TABLE conversations DROP COLUMN history_visibility;
ALTER TABLE conversations DROP COLUMN owner_id;
ALTER TABLE messages DROP COLUMN deleted_at_ms;
ALTER TABLE messages DROP COLUMN edited_at_ms;
ALTER TABLE messages DROP COLUMN data;
ALTER TABLE messages DROP COLUMN target_seq;
ALTER TABLE messages DROP COLUMN kind;
