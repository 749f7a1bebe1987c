-- Fewer index writes per order and event (issue 15); SQLite's migration of
-- the same name also makes its id-keyed tables rowid tables.
-- Indexes that hold only the rows their readers look for. The order
-- timers read unpaid orders by deadline and shipped orders by
-- auto-complete time, the stats read paid orders by payment time, the
-- relay reads unpublished events by id, the settlement dated pending
-- rebates by date: an order's creation, its payment, a rebate held until
-- the order completes and an event's publication no longer add or move
-- entries nobody reads.
-- (A query uses a partial index only when its WHERE repeats the index's
-- condition as written: the readers spell the statuses as literals.)
DROP INDEX orders_deadline_idx;
CREATE INDEX orders_deadline_idx ON orders (pay_deadline_ms) WHERE status = 'pending_payment';
DROP INDEX orders_autocomplete_idx;
CREATE INDEX orders_autocomplete_idx ON orders (auto_complete_at_ms) WHERE status = 'shipped';
DROP INDEX orders_paid_idx;
CREATE INDEX orders_paid_idx ON orders (paid_at_ms) WHERE paid_at_ms IS NOT NULL;
DROP INDEX orders_merchant_paid_idx;
CREATE INDEX orders_merchant_paid_idx ON orders (merchant_id, paid_at_ms) WHERE paid_at_ms IS NOT NULL;
DROP INDEX outbox_unpublished_idx;
CREATE INDEX outbox_unpublished_idx ON outbox (id) WHERE published_at_ms IS NULL;
DROP INDEX rebates_due_idx;
CREATE INDEX rebates_due_idx ON rebates (available_at_ms) WHERE status = 'pending' AND available_at_ms IS NOT NULL;
-- Notifications keep the same uniqueness with their columns in another
-- order: event ids grow with time, so new entries go at the index's end,
-- where an order's notifications to three users wrote three pages
-- scattered by user.
ALTER TABLE notifications DROP CONSTRAINT notifications_user_event_kind_key;
ALTER TABLE notifications ADD CONSTRAINT notifications_event_kind_user_key UNIQUE (event_id, kind, user_id);
