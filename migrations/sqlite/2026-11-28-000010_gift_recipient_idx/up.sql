-- A gift's recipient lists the gifts bought for them, newest first
-- (GET /api/v1/gifts/received). Only gift orders carry a recipient.
CREATE INDEX orders_gift_to_user_idx ON orders (gift_to_user_id, id)
    WHERE gift_to_user_id IS NOT NULL;
