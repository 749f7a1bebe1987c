-- One notification per (recipient, event, kind): one person in two roles of
-- an event (a shop owner buying from their own shop and receiving it as a
-- gift) gets each kind once instead of failing the whole transition.
ALTER TABLE notifications DROP CONSTRAINT notifications_user_id_event_id_key;
ALTER TABLE notifications ADD CONSTRAINT notifications_user_event_kind_key UNIQUE (user_id, event_id, kind);
