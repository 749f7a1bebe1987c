ALTER TABLE animals DROP COLUMN image_media_id;
ALTER TABLE products DROP COLUMN image_media_id;
ALTER TABLE posts DROP COLUMN media_ids;
ALTER TABLE users DROP COLUMN avatar_media_id;
DROP TABLE media_blobs;
DROP TABLE media;
