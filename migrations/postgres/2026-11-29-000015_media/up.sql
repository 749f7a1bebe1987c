-- Pictures: what was uploaded (re-encoded without metadata) and by whom.
-- attached_at_ms is set when the uploader first uses it (an avatar, a post,
-- a chat message); a picture never used is deleted after a day.
CREATE TABLE media (
    id BIGINT PRIMARY KEY,
    owner_id BIGINT NOT NULL REFERENCES users (id),
    content_type TEXT NOT NULL,
    width BIGINT NOT NULL,
    height BIGINT NOT NULL,
    byte_size BIGINT NOT NULL,
    etag TEXT NOT NULL,
    thumb_etag TEXT NOT NULL,
    attached_at_ms BIGINT,
    created_at_ms BIGINT NOT NULL
);
CREATE INDEX media_unattached_idx ON media (created_at_ms) WHERE attached_at_ms IS NULL;
-- The bytes, when the database is the picture store (several nodes).
CREATE TABLE media_blobs (
    blob_key TEXT PRIMARY KEY,
    bytes BYTEA NOT NULL
);
ALTER TABLE users ADD COLUMN avatar_media_id BIGINT;
-- A post's pictures: a JSON array of media ids (null: none).
ALTER TABLE posts ADD COLUMN media_ids TEXT;
-- A product's and an animal's picture (null: none).
ALTER TABLE products ADD COLUMN image_media_id BIGINT;
ALTER TABLE animals ADD COLUMN image_media_id BIGINT;
