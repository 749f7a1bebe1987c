-- PATCH /api/v1/posts/{id}: when the author last edited the post (null: never).
ALTER TABLE posts ADD COLUMN edited_at_ms BIGINT;
