ALTER TABLE notifications DROP CONSTRAINT notifications_user_event_kind_key;
ALTER TABLE notifications ADD CONSTRAINT notifications_user_id_event_id_key UNIQUE (user_id, event_id);
