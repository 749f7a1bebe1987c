-- One notification per (recipient, event, kind): one person in two roles of
-- an event (a shop owner buying from their own shop and receiving it as a
-- gift) gets each kind once instead of failing the whole transition.
-- SQLite cannot change a table constraint in place: rebuild the table.
CREATE TABLE notifications_new (
    id BIGINT PRIMARY KEY NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id),
    kind TEXT NOT NULL,
    data TEXT NOT NULL,
    event_id BIGINT,
    read BOOLEAN NOT NULL DEFAULT FALSE,
    created_at_ms BIGINT NOT NULL,
    UNIQUE (user_id, event_id, kind)
);
INSERT INTO notifications_new (id, user_id, kind, data, event_id, read, created_at_ms)
    SELECT id, user_id, kind, data, event_id, read, created_at_ms FROM notifications;
DROP TABLE notifications;
ALTER TABLE notifications_new RENAME TO notifications;
CREATE INDEX notifications_user_idx ON notifications (user_id, id);
