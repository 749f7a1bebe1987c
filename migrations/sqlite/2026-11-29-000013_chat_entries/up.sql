-- Chat v2: every change to a conversation is an entry of its seq stream.
-- kind: text | image | edit | delete | member_added | member_removed |
-- renamed | owner_changed | history_changed. An edit or delete entry names
-- the message it changed (target_seq); membership and settings entries carry
-- JSON in data. The changed message itself shows its latest state:
-- edited_at_ms after an edit, deleted_at_ms (and an empty body) after a delete.
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN target_seq BIGINT;
ALTER TABLE messages ADD COLUMN data TEXT;
ALTER TABLE messages ADD COLUMN edited_at_ms BIGINT;
ALTER TABLE messages ADD COLUMN deleted_at_ms BIGINT;
-- A group's owner (its creator until handed on; null for direct and trip
-- conversations, and for groups made before this migration, whose creator
-- was not recorded) and what members added later may read: full | since_join.
ALTER TABLE conversations ADD COLUMN owner_id BIGINT;
ALTER TABLE conversations ADD COLUMN history_visibility TEXT NOT NULL DEFAULT 'full';
-- The first seq a member may read (0: all of it).
ALTER TABLE conversation_members ADD COLUMN visible_from_seq BIGINT NOT NULL DEFAULT 0;
-- A member who muted the conversation: clients raise no alert for it;
-- unread counts go on.
ALTER TABLE conversation_members ADD COLUMN muted BOOLEAN NOT NULL DEFAULT FALSE;
-- A group's admins (besides its owner) add and remove members and rename it.
ALTER TABLE conversation_members ADD COLUMN is_admin BOOLEAN NOT NULL DEFAULT FALSE;
