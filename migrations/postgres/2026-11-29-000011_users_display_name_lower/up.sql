-- Member search (GET /api/v1/users?q=) matches the start of the username or
-- of the display name, case-insensitively in any script: the display name
-- is kept lowercased beside it (by the server, with Unicode rules; lower()
-- here fills the rows that exist).
ALTER TABLE users ADD COLUMN display_name_lower TEXT NOT NULL DEFAULT '';
UPDATE users SET display_name_lower = lower(display_name);
CREATE INDEX users_display_name_lower_idx ON users (display_name_lower);
