-- Notification kinds a member turned off (a row: off). Such notifications
-- are not pushed and not listed; everything else is on.
CREATE TABLE notification_mutes (
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL,
    PRIMARY KEY (user_id, kind)
);
