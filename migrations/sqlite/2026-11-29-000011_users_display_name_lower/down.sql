DROP INDEX users_display_name_lower_idx;
ALTER TABLE users DROP COLUMN display_name_lower;
