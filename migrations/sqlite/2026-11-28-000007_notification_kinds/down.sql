CREATE TABLE notifications_old (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    event_id BIGINT,
    read BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (user_id, event_id)
);
INSERT INTO notifications_old (id, user_id, kind, data, event_id, read, created_at_ms)
    SELECT id, user_id, kind, data, event_id, read, created_at_ms FROM notifications
    WHERE id IN (SELECT MIN(id) FROM notifications GROUP BY user_id, event_id);
DROP TABLE notifications;
ALTER TABLE notifications_old RENAME TO notifications;
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
